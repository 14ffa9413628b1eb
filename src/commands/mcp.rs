//! `gitprio mcp`: the queue as a few MCP tools over stdio, for agents that prefer tools to commands.
//!
//! Each tool runs the same code as the CLI command of the same meaning (see `operations`);
//! this module only declares the tools, runs them off the protocol thread one at a time, and
//! turns their outcome into results: data as `structuredContent` and the same JSON as text,
//! errors an agent can act on as `isError` results with a plain sentence. stdout carries
//! nothing but the protocol; messages go to stderr.

mod operations;

use std::sync::{Arc, Mutex, PoisonError};

use clap::Args;
use gitprio_core::TaskId;
use gitprio_core::git::Repository;
use gitprio_core::lease::ClaimFilter;
use gitprio_core::reply::tools::ToolError;
use jiff::Timestamp;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, ErrorData, Implementation, ServerCapabilities, ServerConfig,
};
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::args::{Claimer, StoreArgs};
use crate::cli::CommandResult;
use crate::exit_code::{self, ExitStatus};
use crate::output;
use crate::settings::Settings;
use gitprio_core::workspace::Workspace;

#[derive(Debug, Args)]
pub struct McpArgs {
    /// Who claims (give each agent its own name) and which tasks it is handed.
    #[command(flatten)]
    pub claimer: Claimer,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// The protocol in a few lines, sent to the client as the server's `instructions`, with
/// `heartbeat_every` a third of the leases' TTL.
pub fn instructions(heartbeat_every: &str) -> String {
    format!(
        "\
gitprio hands out this repository's tasks, one lease per task.
1. get_next_task, then do that task, changing only the files its `owns` lists. No task returned: stop, there is nothing for you.
2. heartbeat every {heartbeat_every} while you work (a third of the lease's time to live).
3. report_usage with the tokens you spent, if you know them.
4. When the task's acceptance commands pass: complete_task with a review summary (it runs them again), then commit the task file with your change. Cannot finish: release_task with failed true and the reason.
5. lease_lost or budget_exceeded: stop working on that task (release it as failed when over budget).
Then get_next_task again."
    )
}

/// How often an agent should renew a lease of `ttl_seconds`: a third of it, written short.
pub fn heartbeat_every(ttl_seconds: u64) -> String {
    output::span(i64::try_from((ttl_seconds / 3).max(1)).unwrap_or(i64::MAX))
}

/// Serves the queue over stdio until the client closes it.
pub fn run(settings: &Settings, args: &McpArgs) -> CommandResult {
    let settings = settings.with_agent(args.claimer.agent.as_deref());
    // Fail at start, where the client shows it, rather than on every call.
    let repo = Repository::discover(&settings.directory)?;
    let ttl = {
        let notices = output::Stderr(&settings);
        let workspace =
            Workspace::open(&repo, settings.invocation(), args.store.choice(), &notices)?;
        workspace.lease_context(args.claimer.ttl.as_deref())?.ttl
    };
    let server = QueueServer {
        shared: Arc::new(Shared {
            heartbeat_every: heartbeat_every(ttl.as_secs().unsigned_abs()),
            // A clock fixed by `GITPRIO_NOW` stays fixed; otherwise every call reads the time.
            fixed_clock: std::env::var_os("GITPRIO_NOW").is_some(),
            ttl: args.claimer.ttl.clone(),
            filter: args.claimer.filter(),
            local: args.store.local,
            session: Mutex::new(Session::default()),
            settings,
        }),
    };
    output::message(
        &server.shared.settings,
        "info",
        &format!(
            "serving the queue of {} over MCP on stdio as {}",
            repo.workdir()
                .unwrap_or_else(|| repo.common_dir())
                .display(),
            server.shared.settings.agent
        ),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let service = server.serve(rmcp::transport::stdio()).await?;
        service.waiting().await?;
        anyhow::Ok(())
    })?;
    Ok(exit_code::SUCCESS)
}

/// What every tool call shares: the resolved settings and the one session of this server.
#[derive(Debug)]
struct Shared {
    settings: Settings,
    /// A third of the leases' TTL, as the instructions give it.
    heartbeat_every: String,
    fixed_clock: bool,
    ttl: Option<String>,
    filter: ClaimFilter,
    local: bool,
    /// Locked for the whole of each call, so calls never race each other on one lease.
    session: Mutex<Session>,
}

impl Shared {
    /// Returns the settings with the current time, unless the clock is fixed.
    fn settings_now(&self) -> Settings {
        let mut settings = self.settings.clone();
        if !self.fixed_clock {
            settings.now =
                Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(settings.now);
        }
        settings
    }
}

/// What this server remembers between calls.
#[derive(Debug, Default)]
struct Session {
    /// The task this server claimed and has not completed or released: the default `task_id`.
    current: Option<TaskId>,
    /// Usage reports sent without a key, so each gets its own.
    reports: u64,
}

/// What a tool call came to.
#[derive(Debug)]
enum Reply {
    /// Data for the agent.
    Data(Value),
    /// Something the agent can act on: the CLI's exit code for it, the refusal's name when it
    /// is not the code's, a sentence, and data.
    Refusal {
        code: ExitStatus,
        error: Option<&'static str>,
        message: String,
        data: Value,
    },
}

impl Reply {
    /// Turns an error into a refusal with the exit code the CLI would end with.
    fn failed(error: anyhow::Error) -> Reply {
        let message = crate::cli::message(&error, gitprio_core::hint::FrontEnd::Mcp);
        Reply::Refusal {
            code: crate::cli::CliError::from(error).code,
            error: None,
            message,
            data: Value::Null,
        }
    }

    fn into_result(self) -> CallToolResult {
        match self {
            Reply::Data(value) => CallToolResult::structured(value),
            Reply::Refusal {
                code,
                error,
                message,
                data,
            } => {
                let data = match data {
                    Value::Object(data) => data,
                    _ => serde_json::Map::new(),
                };
                let refusal = ToolError::new(error, code, message.clone(), data);
                let mut result = CallToolResult::error(vec![ContentBlock::text(message)]);
                // A struct of strings, numbers and a map serializes.
                result.structured_content = serde_json::to_value(refusal).ok();
                result
            }
        }
    }
}

/// A tool's arguments that, when they do not fit its schema, name the field at fault
/// (`` `tokens`: invalid value: integer `-1`, expected u64 ``), so the model can correct
/// the call; its schema is the arguments' own.
#[derive(Debug)]
struct Named<T>(T);

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Named<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = Value::deserialize(deserializer)?;
        serde_path_to_error::deserialize(value)
            .map(Named)
            .map_err(|error| {
                let path = error.path().to_string();
                let error = error.into_inner();
                if path == "." {
                    D::Error::custom(error)
                } else {
                    D::Error::custom(format_args!("`{path}`: {error}"))
                }
            })
    }
}

impl<T: JsonSchema> JsonSchema for Named<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HeartbeatParams {
    /// Default: the task claimed here.
    task_id: Option<String>,
    /// Tokens spent on this task so far (cumulative), shown to humans watching the queue.
    tokens: Option<u64>,
    /// Estimated dollars spent so far, with `tokens`.
    cost_usd: Option<f64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CompleteParams {
    /// Default: the task claimed here.
    task_id: Option<String>,
    /// Review summary: what changed, what was left alone, tests run, doubts.
    summary: Option<String>,
    /// Tokens spent, recorded first.
    usage: Option<UsageParams>,
    /// Complete without running the acceptance commands; why (it is recorded).
    no_verify_reason: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReleaseParams {
    /// Default: the task claimed here.
    task_id: Option<String>,
    /// Why you give it back.
    reason: String,
    /// The attempt failed; enough failures park the task for a human.
    #[serde(default)]
    failed: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReportParams {
    /// Default: the task claimed here.
    task_id: Option<String>,
    model: String,
    /// Uncached input tokens.
    #[serde(default)]
    input: u64,
    #[serde(default)]
    output: u64,
    #[serde(default)]
    cache_read: u64,
    #[serde(default)]
    cache_write: u64,
    /// Reporting one key again counts once.
    key: Option<String>,
}

/// Tokens one model spent.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UsageParams {
    model: String,
    /// Uncached input tokens.
    #[serde(default)]
    input: u64,
    #[serde(default)]
    output: u64,
    #[serde(default)]
    cache_read: u64,
    #[serde(default)]
    cache_write: u64,
    /// Reporting one key again counts once.
    key: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct QueueParams {
    /// Default 10.
    limit: Option<usize>,
}

/// The MCP server: one per agent, all of them coordinating through the same leases as the CLI.
#[derive(Clone, Debug)]
struct QueueServer {
    shared: Arc<Shared>,
}

impl QueueServer {
    /// Runs `operation` on a blocking thread (git and the remote are slow), one call at a time.
    async fn call(
        &self,
        operation: impl FnOnce(&Settings, &Shared, &mut Session) -> anyhow::Result<Reply>
        + Send
        + 'static,
    ) -> Result<CallToolResult, ErrorData> {
        let shared = Arc::clone(&self.shared);
        let reply = tokio::task::spawn_blocking(move || {
            let mut session = shared
                .session
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let settings = shared.settings_now();
            operation(&settings, &shared, &mut session).unwrap_or_else(Reply::failed)
        })
        .await
        .map_err(|error| ErrorData::internal_error(format!("the tool stopped: {error}"), None))?;
        Ok(reply.into_result())
    }
}

#[tool_router]
impl QueueServer {
    #[tool(
        description = "Claim the top ready task: returns it with its context and lease. No task means stop.",
        annotations(destructive_hint = false)
    )]
    async fn get_next_task(&self) -> Result<CallToolResult, ErrorData> {
        self.call(operations::next_task).await
    }

    #[tool(
        description = "Renew the lease on your task. Call it every third of the lease's time to live (the server's instructions and the claimed task say how often) while you work.",
        annotations(destructive_hint = false, idempotent_hint = true)
    )]
    async fn heartbeat(
        &self,
        Parameters(Named(params)): Parameters<Named<HeartbeatParams>>,
    ) -> Result<CallToolResult, ErrorData> {
        self.call(move |settings, shared, session| {
            operations::heartbeat(settings, shared, session, &params)
        })
        .await
    }

    #[tool(
        description = "Mark your task done: runs its acceptance commands (skipped only with `no_verify_reason`), then sets `status: done` in its file; commit that with your change.",
        annotations(destructive_hint = false, idempotent_hint = true)
    )]
    async fn complete_task(
        &self,
        Parameters(Named(params)): Parameters<Named<CompleteParams>>,
    ) -> Result<CallToolResult, ErrorData> {
        self.call(move |settings, shared, session| {
            operations::complete(settings, shared, session, params)
        })
        .await
    }

    #[tool(
        description = "Give your task back, e.g. when you cannot finish it.",
        annotations(destructive_hint = true)
    )]
    async fn release_task(
        &self,
        Parameters(Named(params)): Parameters<Named<ReleaseParams>>,
    ) -> Result<CallToolResult, ErrorData> {
        self.call(move |settings, shared, session| {
            operations::release(settings, shared, session, &params)
        })
        .await
    }

    #[tool(
        description = "Record tokens spent on your task; checks its budget.",
        annotations(destructive_hint = false)
    )]
    async fn report_usage(
        &self,
        Parameters(Named(params)): Parameters<Named<ReportParams>>,
    ) -> Result<CallToolResult, ErrorData> {
        self.call(move |settings, shared, session| {
            operations::report_usage(settings, shared, session, params)
        })
        .await
    }

    #[tool(
        description = "List the top ready tasks in rank order, without claiming any.",
        annotations(read_only_hint = true)
    )]
    async fn queue(
        &self,
        Parameters(Named(params)): Parameters<Named<QueueParams>>,
    ) -> Result<CallToolResult, ErrorData> {
        self.call(move |settings, _, _| operations::queue(settings, params.limit))
            .await
    }
}

#[tool_handler]
impl ServerHandler for QueueServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("gitprio", env!("CARGO_PKG_VERSION")))
            .with_instructions(instructions(&self.shared.heartbeat_every))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_are_told_to_renew_every_third_of_the_ttl() {
        assert_eq!(heartbeat_every(1800), "10m");
        assert_eq!(heartbeat_every(300), "1m40s");
        assert_eq!(heartbeat_every(2), "1s");
        assert!(instructions("1m40s").contains("2. heartbeat every 1m40s while you work"));
    }
}
