//! `gitprio init`: create `.tasks/` with a config and one sample task; with `--agents`,
//! write the instructions agents read, in gitprio's own marked sections.

use anyhow::Context as _;
use clap::Args;
use gitprio_core::git::Repository;
use gitprio_core::lease::Mode;
use gitprio_core::reply::{FileAction, InitReply};
use gitprio_core::workspace::{StoreChoice, Workspace};

use crate::cli::CommandResult;
use crate::embedded::{INIT_CONFIG, INIT_TASK};
use crate::settings::Settings;
use crate::{exit_code, output};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Instead, onboard agents: a section in AGENTS.md (Codex, and the many agents that read
    /// it) and in GEMINI.md (Gemini CLI), a pointer in CLAUDE.md when it exists, the Claude
    /// Code skill `.claude/skills/gitprio/SKILL.md`, the Cursor rule
    /// `.cursor/rules/gitprio.mdc`, and `gitprio mcp` in `.mcp.json`. Only gitprio's marked
    /// sections change; running it again changes nothing.
    #[arg(long)]
    pub agents: bool,
    /// Print JSON: `{"files": [{"path", "action"}]}`, what happened to each file.
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: &InitArgs) -> CommandResult {
    let repo = Repository::discover(&settings.directory)?;
    let root = repo
        .workdir()
        .context("repository has no working tree to create .tasks/ in")?;
    let mut reply = InitReply::default();
    if args.agents {
        onboard_agents(settings, root, &mut reply)?;
    } else {
        create_queue(settings, root, &mut reply)?;
        say_where_leases_live(settings, &repo);
    }
    if args.json {
        output::print_json(&reply)?;
    }
    Ok(exit_code::SUCCESS)
}

/// Creates `.tasks/` with the config and the sample task, leaving existing files alone.
fn create_queue(
    settings: &Settings,
    root: &std::path::Path,
    reply: &mut InitReply,
) -> anyhow::Result<()> {
    let tasks = root.join(gitprio_core::TASKS_DIR);
    std::fs::create_dir_all(&tasks)
        .with_context(|| format!("cannot create {}", tasks.display()))?;
    for (name, content) in [("config.yaml", INIT_CONFIG), ("first-task.md", INIT_TASK)] {
        let path = tasks.join(name);
        match gitprio_core::file::create_new(&path, content.as_bytes()) {
            Ok(()) => {
                output::message(settings, "info", &format!("created .tasks/{name}"));
                reply.note(format!(".tasks/{name}"), FileAction::Created);
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                output::message(
                    settings,
                    "info",
                    &format!(".tasks/{name} exists; left as it is"),
                );
                reply.note(format!(".tasks/{name}"), FileAction::Kept);
            }
            Err(error) => {
                return Err(
                    anyhow::Error::new(error).context(format!("cannot create {}", path.display()))
                );
            }
        }
    }
    Ok(())
}

/// Says where the leases will live, so nobody goes looking for fetch config to set up:
/// gitprio fetches `refs/gitprio/leases/*` itself, into its own mirrors, and keeps them
/// out of `remote.<name>.fetch` on purpose (a plain `git fetch` would bring every lease
/// of the fleet). Ends with the hint of what to do next.
fn say_where_leases_live(settings: &Settings, repo: &Repository) {
    let notices = output::Stderr(settings);
    match Workspace::open_quietly(
        repo,
        settings.invocation(),
        StoreChoice::Configured,
        &notices,
    ) {
        Ok(workspace) => {
            let text = match workspace.store().mode() {
                Mode::Remote { remote, .. } => format!(
                    "leases will live on remote `{remote}` (refs/gitprio/leases/*); gitprio fetches and pushes them itself, so git's fetch config needs no refspec"
                ),
                Mode::Local => format!(
                    "leases will live in this repository's refs: it has no remote `{}`, so only its worktrees share them; add the remote before agents in other clones claim",
                    workspace.config().remote.as_deref().unwrap_or("origin")
                ),
            };
            output::message(settings, "info", &text);
        }
        Err(error) => output::message(settings, "warning", &format!("{error}")),
    }
    output::message(
        settings,
        "hint",
        "edit the sample task, then `gitprio check` and commit .tasks/",
    );
}

/// The line that opens gitprio's section in a file it shares with people.
const BEGIN: &str = "<!-- gitprio:begin -->";
/// The line that closes it.
const END: &str = "<!-- gitprio:end -->";

/// The protocol an agent follows, in the CLI's words, with the MCP tools that do the same.
const PROTOCOL: &str = "\
Take work from the gitprio queue in `.tasks/`, one task at a time:

1. `gitprio claim` prints your task and the documents it needs. Exit code 3: nothing is ready; stop.
2. Change only the files the task's `owns` lists.
3. `gitprio heartbeat` at least every third of the lease's time to live while you work (every 10 minutes with the default 30m; the claim prints when the lease expires). Exit code 4: the lease is lost; stop working on the task. Exit code 5: over budget; stop and `gitprio release --failed --reason \"over budget\"`.
4. `gitprio usage record --model <model> --input <n> --output <n>` for tokens gitprio cannot read from your CLI's logs.
5. When every `acceptance` command of the task passes: `gitprio done`, then commit the task file with your change; the commit message lists the commands you ran and their results. If you cannot finish: `gitprio release --failed --reason \"<why>\"`.
6. Claim the next task.

Over MCP (`gitprio mcp`) the same steps are the tools `get_next_task`, `heartbeat`, `report_usage`, `complete_task` and `release_task`.
";

/// The frontmatter of the Claude Code skill: only this is loaded until the skill is used.
const SKILL_FRONTMATTER: &str = "\
---
name: gitprio
description: Work from this repository's gitprio task queue (.tasks/): claim the next task, keep its lease alive, record token usage, finish it with evidence. Use when asked to work on the next task, the queue or the backlog.
---
";

/// The frontmatter of the Cursor rule: Cursor's agent pulls the rule in when the description
/// fits what it is asked, like a skill.
const CURSOR_FRONTMATTER: &str = "\
---
description: Work from this repository's gitprio task queue (.tasks/): claim the next task, keep its lease alive, record token usage, finish it with evidence. Use when asked to work on the next task, the queue or the backlog.
alwaysApply: false
---
";

/// What CLAUDE.md says when it exists: AGENTS.md holds the protocol.
const CLAUDE_POINTER: &str = "\
Tasks come from the gitprio queue: follow the \"Task queue (gitprio)\" section of AGENTS.md.
";

/// One file `init --agents` writes, and what happens to it.
struct Planned {
    path: std::path::PathBuf,
    shown: &'static str,
    /// The new content, or `None` when the file is right already.
    content: Option<String>,
    existed: bool,
}

/// `gitprio init --agents`: works out every file first, so nothing is written when one of them
/// cannot be updated.
fn onboard_agents(
    settings: &Settings,
    root: &std::path::Path,
    reply: &mut InitReply,
) -> anyhow::Result<()> {
    let mut planned = Vec::new();
    let agents_md = root.join("AGENTS.md");
    planned.push(plan(&agents_md, "AGENTS.md", |text| {
        upsert_section(text, &format!("## Task queue (gitprio)\n\n{PROTOCOL}"))
    })?);
    let claude_md = root.join("CLAUDE.md");
    if claude_md.exists() {
        let same_file =
            std::fs::canonicalize(&claude_md).ok() == std::fs::canonicalize(&agents_md).ok();
        let text = read_optional(&claude_md)?.unwrap_or_default();
        if same_file || text.lines().any(|line| line.trim() == "@AGENTS.md") {
            output::message(
                settings,
                "info",
                "CLAUDE.md reads AGENTS.md already; left as it is",
            );
            reply.note("CLAUDE.md".to_owned(), FileAction::Kept);
        } else {
            planned.push(plan(&claude_md, "CLAUDE.md", |text| {
                upsert_section(text, CLAUDE_POINTER)
            })?);
        }
    }
    // Gemini CLI reads GEMINI.md, not AGENTS.md, unless GEMINI.md imports it.
    let gemini_md = root.join("GEMINI.md");
    let imports_agents = read_optional(&gemini_md)?.is_some_and(|text| {
        text.lines()
            .any(|line| matches!(line.trim(), "@AGENTS.md" | "@./AGENTS.md"))
    });
    if imports_agents {
        output::message(
            settings,
            "info",
            "GEMINI.md imports AGENTS.md already; left as it is",
        );
        reply.note("GEMINI.md".to_owned(), FileAction::Kept);
    } else {
        planned.push(plan(&gemini_md, "GEMINI.md", |text| {
            upsert_section(text, &format!("## Task queue (gitprio)\n\n{PROTOCOL}"))
        })?);
    }
    let section = format!("# Working from the gitprio queue\n\n{PROTOCOL}");
    for (path, frontmatter) in [
        (".claude/skills/gitprio/SKILL.md", SKILL_FRONTMATTER),
        (".cursor/rules/gitprio.mdc", CURSOR_FRONTMATTER),
    ] {
        planned.push(plan(&root.join(path), path, |text| match text {
            None => upsert_section(Some(frontmatter), &section),
            Some(_) => upsert_section(text, &section),
        })?);
    }
    planned.push(plan(&root.join(".mcp.json"), ".mcp.json", register_server)?);
    for file in &planned {
        let Some(content) = &file.content else {
            output::message(settings, "info", &format!("{} is up to date", file.shown));
            reply.note(file.shown.to_owned(), FileAction::Kept);
            continue;
        };
        if let Some(parent) = file.path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        gitprio_core::file::replace(&file.path, content.as_bytes())
            .with_context(|| format!("cannot write {}", file.path.display()))?;
        let (verb, action) = if file.existed {
            ("updated", FileAction::Updated)
        } else {
            ("created", FileAction::Created)
        };
        output::message(settings, "info", &format!("{verb} {}", file.shown));
        reply.note(file.shown.to_owned(), action);
    }
    output::message(
        settings,
        "hint",
        "commit these files; agents then claim with `gitprio claim`, or over MCP with get_next_task",
    );
    Ok(())
}

/// Reads `path` and works out its new content with `update` (given `None` when it does not exist).
fn plan(
    path: &std::path::Path,
    shown: &'static str,
    update: impl FnOnce(Option<&str>) -> anyhow::Result<Option<String>>,
) -> anyhow::Result<Planned> {
    let text = read_optional(path)?;
    let content = update(text.as_deref()).with_context(|| format!("cannot update {shown}"))?;
    Ok(Planned {
        path: path.to_path_buf(),
        shown,
        content,
        existed: text.is_some(),
    })
}

fn read_optional(path: &std::path::Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => {
            Err(anyhow::Error::new(error).context(format!("cannot read {}", path.display())))
        }
    }
}

/// Puts `body` between gitprio's markers in `text`: in place of the marked section, else at the
/// end. Returns `None` when `text` has it already.
fn upsert_section(text: Option<&str>, body: &str) -> anyhow::Result<Option<String>> {
    let block = format!("{BEGIN}\n{body}{END}\n");
    let Some(text) = text.filter(|text| !text.trim().is_empty()) else {
        return Ok(Some(block));
    };
    let mut offset = 0;
    let mut begin = None;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let end = offset + line.len();
        match (begin, line.trim()) {
            (None, BEGIN) => begin = Some((offset, index + 1)),
            (Some((start, _)), END) => {
                let updated = format!("{}{block}{}", &text[..start], &text[end..]);
                return Ok((updated != text).then_some(updated));
            }
            _ => {}
        }
        offset = end;
    }
    if let Some((_, line)) = begin {
        anyhow::bail!(
            "line {line} opens gitprio's section with `{BEGIN}`, but no `{END}` line closes it; add it, or delete the section"
        );
    }
    let separator = if text.ends_with('\n') { "\n" } else { "\n\n" };
    Ok(Some(format!("{text}{separator}{block}")))
}

/// Adds the `gitprio` server to the `mcpServers` of `.mcp.json`, editing the text in place so
/// the user's order and layout stay; an existing `gitprio` entry is left as it is.
fn register_server(text: Option<&str>) -> anyhow::Result<Option<String>> {
    let Some(text) = text.filter(|text| !text.trim().is_empty()) else {
        return Ok(Some(
            "{\n  \"mcpServers\": {\n    \"gitprio\": {\n      \"command\": \"gitprio\",\n      \"args\": [\"mcp\"]\n    }\n  }\n}\n".to_owned(),
        ));
    };
    let mut expected: serde_json::Value = serde_json::from_str(text).map_err(|error| {
        anyhow::anyhow!(
            "it is not valid JSON (line {}, column {}: {error}); fix it and run again",
            error.line(),
            error.column()
        )
    })?;
    let Some(top) = expected.as_object_mut() else {
        anyhow::bail!("it is not a JSON object");
    };
    let servers = top
        .entry("mcpServers")
        .or_insert_with(|| serde_json::json!({}));
    let Some(servers) = servers.as_object_mut() else {
        anyhow::bail!("its `mcpServers` is not an object");
    };
    if servers.contains_key("gitprio") {
        return Ok(None);
    }
    servers.insert(
        "gitprio".to_owned(),
        serde_json::json!({ "command": "gitprio", "args": ["mcp"] }),
    );
    let inserted = insert_server(text).filter(|inserted| {
        serde_json::from_str::<serde_json::Value>(inserted)
            .ok()
            .as_ref()
            == Some(&expected)
    });
    // Text that defeats the in-place edit is rewritten whole, with the same content.
    Ok(Some(inserted.unwrap_or_else(|| {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&expected).expect("JSON values serialize")
        )
    })))
}

/// Inserts the `gitprio` entry at the start of `mcpServers` (made when missing), indented like
/// the file's first level.
fn insert_server(text: &str) -> Option<String> {
    let top = text.find('{')?;
    let unit = text[top + 1..]
        .split_once('\n')
        .map(|(_, rest)| {
            let indent = rest.len() - rest.trim_start_matches([' ', '\t']).len();
            rest[..indent].to_owned()
        })
        .filter(|indent| !indent.is_empty())
        .unwrap_or_else(|| "  ".to_owned());
    let inner = unit.repeat(2);
    let entry = format!(
        "\n{inner}\"gitprio\": {{\n{inner}{unit}\"command\": \"gitprio\",\n{inner}{unit}\"args\": [\"mcp\"]\n{inner}}}"
    );
    let (open, close, insertion, closing_indent) = match object_value_span(text, "mcpServers") {
        Some((open, close)) => (open, close, entry, unit),
        None => (
            top,
            text.rfind('}')?,
            format!("\n{unit}\"mcpServers\": {{{entry}\n{unit}}}"),
            String::new(),
        ),
    };
    Some(if text[open + 1..close].trim().is_empty() {
        format!(
            "{}{insertion}\n{closing_indent}{}",
            &text[..=open],
            &text[close..]
        )
    } else {
        format!("{}{insertion},{}", &text[..=open], &text[open + 1..])
    })
}

/// Finds the `{` and `}` of the object that is the value of `key` in the top-level object.
fn object_value_span(text: &str, key: &str) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    let (mut in_string, mut escaped, mut after_key) = (false, false, false);
    let mut string_start = 0;
    let mut last_string = "";
    let mut open = None;
    for (index, byte) in text.bytes().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => {
                    in_string = false;
                    last_string = &text[string_start..index];
                }
                _ => {}
            }
            continue;
        }
        if after_key && !byte.is_ascii_whitespace() {
            after_key = false;
            if byte != b'{' {
                return None;
            }
            open = Some(index);
        }
        match byte {
            b'"' => {
                in_string = true;
                string_start = index + 1;
            }
            b':' if depth == 1 && open.is_none() && last_string == key => after_key = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 1
                    && let Some(open) = open
                {
                    return Some((open, index));
                }
            }
            _ => {}
        }
    }
    None
}
