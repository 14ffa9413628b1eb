//! `gitprio demo-agent` (hidden): the simulated agent `gitprio demo` hands to `gitprio run`.
//!
//! It behaves like `claude -p --output-format stream-json --verbose`: it reads the prompt on
//! stdin, streams one `assistant` event per request with its usage, writes a note in its
//! worktree and ends with a `result` event. Its spending follows the task's budget, and a
//! few first attempts go wrong in the two ways real agents do: one reports an error, one
//! keeps spending until `gitprio run` stops it for its budget.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::source::{self, QueueSource};
use gitprio_core::usage::{PriceTable, UsageRecord};
use serde_json::json;

use crate::cli::CommandResult;
use crate::exit_code;
use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The task to work on (`{task_id}` in the agent command of `gitprio run`).
    #[arg(long, value_name = "ID")]
    pub task: String,
    /// How long each simulated request takes, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 40)]
    pub request_ms: u64,
}

/// What the attempt comes to, decided from the task id and whether it is a retry.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    Succeed,
    /// Reports `is_error` after a few requests.
    Fail,
    /// Spends past the budget and does not stop by itself.
    Overspend,
}

pub fn run(settings: &Settings, args: &AgentArgs) -> CommandResult {
    let mut prompt = String::new();
    std::io::stdin()
        .read_to_string(&mut prompt)
        .context("cannot read the prompt on stdin")?;
    if !prompt.contains("## How this run works") {
        return Err(anyhow::anyhow!(
            "demo-agent is the simulated agent of `gitprio demo`; it expects a prompt from `gitprio run` on stdin"
        )
        .into());
    }
    let repo = Repository::discover(&settings.directory)?;
    let loaded = crate::reading::load_tasks(settings, &repo, &QueueSource::Worktree)?;
    let task = loaded
        .tasks
        .iter()
        .find(|task| task.id.as_str() == args.task)
        .with_context(|| format!("no task {} in the worktree", args.task))?;
    Ok(work(settings, &repo, task, &prompt, args)?)
}

/// The simulated agent's one turn, step by step as a real agent takes it.
fn work(
    settings: &Settings,
    repo: &Repository,
    task: &gitprio_core::Task,
    prompt: &str,
    args: &AgentArgs,
) -> anyhow::Result<exit_code::ExitStatus> {
    let kind = task.task_type.as_deref().unwrap_or("chore");
    let config = source::local_config(repo)?;
    let budget = config.token_budget(task);
    let retry = prompt.contains("The previous attempt at this task failed");
    let id = task.id.as_str();
    let plan = match (retry, budget) {
        (false, Some(_)) if seed(id) % 9 == 1 => Plan::Overspend,
        (false, _) if seed(id).is_multiple_of(4) => Plan::Fail,
        _ => Plan::Succeed,
    };
    let session = Session {
        id: format!("demo-{id}-{}", u8::from(retry)),
        model: model_for(kind),
        pause: Duration::from_millis(args.request_ms),
    };
    emit(
        &json!({"type": "system", "subtype": "init", "session_id": session.id, "model": session.model}),
    )?;
    let requests = requests(id, retry, budget, &plan);
    let total = session.stream(&requests)?;
    if plan == Plan::Overspend {
        return session.overspend(
            budget.unwrap_or(100_000),
            total.iter().sum(),
            requests.len(),
        );
    }
    let failed = plan == Plan::Fail;
    let message = if failed {
        "the tests still fail after three attempts at a fix".to_owned()
    } else {
        write_note(settings, task, session.model)?
    };
    session.finish(failed, &message, requests.len(), total)?;
    Ok(if failed {
        exit_code::FAILURE
    } else {
        exit_code::SUCCESS
    })
}

/// The simulated session: its id, its model, and how long each request takes.
struct Session {
    id: String,
    model: &'static str,
    pause: Duration,
}

impl Session {
    /// Takes one request's time, then streams its `assistant` event with its `usage`.
    fn request(&self, index: usize, usage: &serde_json::Value) -> anyhow::Result<()> {
        std::thread::sleep(self.pause);
        emit(&json!({
            "type": "assistant",
            "message": {
                "id": format!("msg_{}_{index}", self.id),
                "model": self.model,
                "usage": usage,
            },
        }))
    }

    /// Streams one `assistant` event per request and returns the usage they add up to, as
    /// `[input, output, cache read, cache write]`.
    fn stream(&self, requests: &[[u64; 4]]) -> anyhow::Result<[u64; 4]> {
        let mut total = [0_u64; 4];
        for (index, [input, output, cache_read, cache_write]) in
            requests.iter().copied().enumerate()
        {
            self.request(
                index,
                &json!({
                    "input_tokens": input,
                    "output_tokens": output,
                    "cache_read_input_tokens": cache_read,
                    "cache_creation_input_tokens": cache_write,
                }),
            )?;
            for (sum, value) in total
                .iter_mut()
                .zip([input, output, cache_read, cache_write])
            {
                *sum += value;
            }
        }
        Ok(total)
    }

    /// Spends from `so_far` tokens until past `budget`, continuing after request `index`,
    /// then waits for `gitprio run` to stop it.
    fn overspend(
        &self,
        budget: u64,
        so_far: u64,
        index: usize,
    ) -> anyhow::Result<exit_code::ExitStatus> {
        // It would never stop by itself: it spends until past its budget, then waits for
        // `gitprio run` to stop it. Waiting instead of spending on keeps what the run records
        // the same on every run of the demo, however quickly the stop comes.
        let spend = budget / 4;
        let mut so_far = so_far;
        let mut index = index;
        while so_far <= budget {
            self.request(
                index,
                &json!({"input_tokens": spend / 10, "output_tokens": spend / 10, "cache_read_input_tokens": spend * 8 / 10}),
            )?;
            so_far += spend / 10 * 2 + spend * 8 / 10;
            index += 1;
        }
        std::thread::sleep(Duration::from_secs(60));
        bail!("demo-agent was not stopped for its budget");
    }

    /// Ends the turn with the `result` event: `message`, and the `total` usage of its
    /// `turns` requests with its cost.
    fn finish(
        &self,
        failed: bool,
        message: &str,
        turns: usize,
        total: [u64; 4],
    ) -> anyhow::Result<()> {
        let model = self.model;
        let cost = PriceTable::new(std::collections::BTreeMap::new()).cost(&UsageRecord {
            model: model.to_owned(),
            input: total[0],
            output: total[1],
            cache_read: total[2],
            cache_write_5m: total[3],
            ..UsageRecord::default()
        });
        emit(&json!({
            "type": "result",
            "subtype": if failed { "error_during_execution" } else { "success" },
            "is_error": failed,
            "num_turns": turns,
            "duration_ms": u64::try_from(turns).unwrap_or(0) * u64::try_from(self.pause.as_millis()).unwrap_or(0),
            "result": message,
            "errors": if failed { vec![message.to_owned()] } else { Vec::new() },
            "session_id": self.id,
            "total_cost_usd": cost,
            "usage": {
                "input_tokens": total[0],
                "output_tokens": total[1],
                "cache_read_input_tokens": total[2],
                "cache_creation_input_tokens": total[3],
            },
            "modelUsage": {
                model: {
                    "inputTokens": total[0],
                    "outputTokens": total[1],
                    "cacheReadInputTokens": total[2],
                    "cacheCreationInputTokens": total[3],
                    "costUSD": cost,
                },
            },
            "permission_denials": [],
        }))
    }
}

/// Writes the agent's note on `task` in the worktree and returns its final message.
fn write_note(
    settings: &Settings,
    task: &gitprio_core::Task,
    model: &str,
) -> anyhow::Result<String> {
    let note = format!("worklog/{}.md", task.id.as_str());
    std::fs::create_dir_all(settings.directory.join("worklog"))?;
    let mut text = format!("# {}\n\n", task.title.trim());
    let _ = writeln!(
        text,
        "Simulated by `gitprio demo-agent` with {model}: no real code was written."
    );
    std::fs::write(settings.directory.join(&note), text)
        .with_context(|| format!("cannot write {note}"))?;
    Ok(format!(
        "Wrote {note}. Deliberately left the code alone: this is a simulated agent. No tests run; unsure of everything."
    ))
}

/// Prints one stream-json event and flushes it, so `gitprio run` follows it live.
fn emit(event: &serde_json::Value) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{event}")?;
    stdout.flush()?;
    Ok(())
}

/// The model an agent would pick for a task of this type.
fn model_for(kind: &str) -> &'static str {
    match kind {
        "docs" | "chore" | "deps" => "claude-haiku-4-5",
        "spike" => "claude-opus-4-6",
        _ => "claude-sonnet-4-5",
    }
}

/// A stable hash of `text`: FNV-1a, the same across runs and platforms, unlike std's hasher.
fn seed(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The requests of one attempt as `[input, output, cache read, cache write]`: a cold first
/// request, then cache reads. With a budget, a successful attempt spends 45–90% of it, and
/// one that overspends starts at 80% of it.
fn requests(id: &str, retry: bool, budget: Option<u64>, plan: &Plan) -> Vec<[u64; 4]> {
    let mut state = seed(id) ^ u64::from(retry);
    let mut next = |low: u64, high: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        low + (state >> 33) % (high - low)
    };
    let count = next(3, 7);
    let mut raw: Vec<[u64; 4]> = (0..count)
        .map(|request| {
            let input = next(300, 3_000);
            let output = next(1_500, 9_000);
            let cache_read = if request == 0 {
                0
            } else {
                next(15_000, 55_000)
            };
            let cache_write = if request == 0 {
                next(12_000, 30_000)
            } else {
                next(0, 4_000)
            };
            [input, output, cache_read, cache_write]
        })
        .collect();
    if let Some(budget) = budget {
        let total: u64 = raw.iter().flatten().sum();
        let percent = if *plan == Plan::Overspend {
            80
        } else {
            next(45, 90)
        };
        let target = budget * percent / 100;
        for value in raw.iter_mut().flatten() {
            *value = *value * target / total.max(1);
        }
    }
    raw
}
