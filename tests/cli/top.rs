//! `gitprio top`: one frame and its JSON through the binary, and the live screen driven in tmux.

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::assert_output;
use crate::common::{Output, Running, TestEnv, script};
use crate::leases::remote_with_clones;
use serde_json::json;

const T0: &str = "2026-11-01T12:00:00Z";
/// When the cockpit looks: bob last renewed 25 minutes ago (stale), alice 5.
const T1: &str = "2026-11-01T12:25:00Z";

fn at(env: &TestEnv, dir: &str, agent: &str, now: &str, args: &[&str]) -> Output {
    let output = env.run_with(dir, args, &[("GITPRIO_AGENT", agent), ("GITPRIO_NOW", now)]);
    assert!(
        output.code == 0,
        "gitprio {args:?} as {agent} failed: {output}"
    );
    output
}

/// The fleet `gitprio top --once --json` prints in `dir` with `vars`; it must succeed.
fn fleet_json(env: &TestEnv, dir: &str, vars: &[(&str, &str)]) -> serde_json::Value {
    let output = env.run_with(dir, &["top", "--once", "--json"], vars);
    assert_eq!(output.code, 0, "{output}");
    output.json()
}

/// A remote where alice and bob work (bob's heartbeat is late), carol completed one
/// task and parked another, with usage recorded on each run.
fn fleet(env: &TestEnv) {
    let task = |title: &str, kind: &str, extra: &str| {
        format!("---\ntitle: {title}\ntype: {kind}\n{extra}---\nDo it.\n")
    };
    let files = vec![
        (
            ".tasks/config.yaml".to_owned(),
            "types: [bug, docs, feature, chore, test]\n".to_owned(),
        ),
        (
            ".tasks/alpha.md".to_owned(),
            task(
                "Fix the login redirect",
                "bug",
                "budget:\n  tokens: 100000\n",
            ),
        ),
        (
            ".tasks/beta.md".to_owned(),
            task("Document the API", "docs", ""),
        ),
        (
            ".tasks/gamma.md".to_owned(),
            task("Add a health endpoint", "feature", ""),
        ),
        (
            ".tasks/delta.md".to_owned(),
            task("Bump dependencies", "chore", ""),
        ),
        (
            ".tasks/epsilon.md".to_owned(),
            task("Test the README", "test", "priority: 4\n"),
        ),
    ];
    remote_with_clones(env, &files, &["a", "b", "c"]);
    at(env, "a", "alice", T0, &["claim", "--type", "bug"]);
    at(env, "b", "bob", T0, &["claim", "--type", "docs"]);
    at(env, "c", "carol", T0, &["claim", "--type", "feature"]);
    let usage = |dir: &str, agent: &str, id: &str, model: &str, input: &str, output: &str| {
        at(
            env,
            dir,
            agent,
            "2026-11-01T12:05:00Z",
            &[
                "usage", "record", id, "--model", model, "--input", input, "--output", output,
                "--key", id,
            ],
        );
    };
    usage("a", "alice", "alpha", "claude-sonnet-4-5", "60000", "10000");
    usage("b", "bob", "beta", "claude-haiku-4-5", "20000", "2000");
    usage("c", "carol", "gamma", "claude-sonnet-4-5", "30000", "4000");
    at(
        env,
        "c",
        "carol",
        "2026-11-01T12:10:00Z",
        &["done", "gamma", "--no-verify", "--reason", "test fleet"],
    );
    at(
        env,
        "c",
        "carol",
        "2026-11-01T12:11:00Z",
        &["claim", "--type", "chore"],
    );
    at(
        env,
        "c",
        "carol",
        "2026-11-01T12:12:00Z",
        &[
            "release",
            "delta",
            "--park",
            "--reason",
            "the lockfile will not resolve",
        ],
    );
    at(env, "a", "alice", "2026-11-01T12:20:00Z", &["heartbeat"]);
}

/// The frame `gitprio top --once --width <width>` prints in clone `c` at [`T1`].
fn once_at_t1(env: &TestEnv, width: &str) -> Output {
    env.run_with(
        "c",
        &["top", "--once", "--width", width],
        &[("GITPRIO_NOW", T1)],
    )
}

/// Collects every number under a key that names dollars (`cost_usd`, `cost_usd_in_window`).
fn usd_fields(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                if key.contains("usd") && item.is_number() {
                    found.push(item.to_string());
                }
                usd_fields(item, found);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| usd_fields(item, found)),
        _ => {}
    }
}

#[test]
fn once_prints_one_frame_and_its_json() {
    let env = TestEnv::new();
    fleet(&env);
    let frame = once_at_t1(&env, "110");
    assert_output!(frame);
    let json = env.run_with("c", &["top", "--once", "--json"], &[("GITPRIO_NOW", T1)]);
    assert_eq!(json.code, 0, "{json}");
    let fleet = json.json();
    let header = &fleet["header"];
    assert_eq!(header["agents_active"], 2, "{json}");
    assert_eq!(header["done_in_window"], 1);
    assert_eq!(header["ready"], 1, "epsilon is left");
    assert_eq!(header["tokens_in_window"], 126_000);
    // Dollars are sums of prices: written rounded, never as `0.5837999999999999`.
    let mut dollars = Vec::new();
    usd_fields(&fleet, &mut dollars);
    assert!(dollars.len() >= 4, "{json}");
    for amount in dollars {
        let decimals = amount.split_once('.').map_or(0, |(_, after)| after.len());
        assert!(decimals <= 6, "float noise `{amount}` in {json}");
    }
    let leases = fleet["leases"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str, u64)> = leases
        .iter()
        .map(|row| {
            (
                row["task"].as_str().unwrap(),
                row["agent"].as_str().unwrap(),
                row["beat"].as_str().unwrap(),
                row["tokens"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("alpha", "alice", "fresh", 70_000),
            ("beta", "bob", "stale", 22_000)
        ]
    );
    assert_eq!(leases[0]["budget_tokens"], 100_000);
    assert_eq!(leases[0]["model"], "claude-sonnet-4-5");
    assert_eq!(leases[0]["type"], "bug");
    assert_eq!(fleet["recent"][0]["task"], "delta");
    assert_eq!(fleet["recent"][0]["outcome"], "parked");
    assert_eq!(fleet["recent"][1]["task"], "gamma");
    assert_eq!(fleet["recent"][1]["outcome"], "completed");
    assert_eq!(fleet["parked"][0]["task"], "delta");
    assert_eq!(
        fleet["parked"][0]["last_error"],
        "the lockfile will not resolve"
    );

    let no_terminal = env.run("c", &["top"]);
    assert_eq!(no_terminal.code, 1, "{no_terminal}");
    assert!(
        no_terminal.stderr.contains("use `gitprio top --once`"),
        "{no_terminal}"
    );
}

#[test]
fn a_heartbeat_s_progress_shows_in_top_before_the_ledger_knows() {
    let env = TestEnv::new();
    let files = vec![(
        ".tasks/alpha.md".to_owned(),
        "---\ntitle: Fix the login redirect\nbudget:\n  tokens: 100000\n---\nDo it.\n".to_owned(),
    )];
    remote_with_clones(&env, &files, &["a", "b"]);
    at(&env, "a", "alice", T0, &["claim"]);
    let lonely = env.run_with(
        "a",
        &["heartbeat", "--cost-usd", "0.5"],
        &[("GITPRIO_NOW", T0)],
    );
    assert_eq!(lonely.code, 2, "--cost-usd needs --tokens: {lonely}");
    let row = |now: &str| {
        let fleet = fleet_json(&env, "b", &[("GITPRIO_NOW", now)]);
        let row = &fleet["leases"][0];
        (row["tokens"].as_u64().unwrap(), row["cost_usd"].as_f64())
    };
    assert_eq!(row("2026-11-01T12:01:00Z"), (0, Some(0.0)));
    at(
        &env,
        "a",
        "alice",
        "2026-11-01T12:05:00Z",
        &["heartbeat", "--tokens", "42000", "--cost-usd", "0.5"],
    );
    assert_eq!(row("2026-11-01T12:06:00Z"), (42_000, Some(0.5)));
    // A heartbeat with nothing new to say keeps the last report.
    at(&env, "a", "alice", "2026-11-01T12:10:00Z", &["heartbeat"]);
    assert_eq!(row("2026-11-01T12:11:00Z"), (42_000, Some(0.5)));
    let status = at(
        &env,
        "b",
        "bob",
        "2026-11-01T12:11:00Z",
        &["status", "--json"],
    );
    let progress = &status.json()["leases"][0]["progress"];
    assert_eq!(progress["tokens"], 42_000, "{status}");
    assert_eq!(progress["cost_usd"], 0.5, "{status}");
    assert_eq!(progress["at"], "2026-11-01T12:05:00Z", "{status}");
    // Once the ledger knows more than the report, the ledger's numbers show.
    at(
        &env,
        "a",
        "alice",
        "2026-11-01T12:12:00Z",
        &[
            "usage",
            "record",
            "alpha",
            "--model",
            "claude-sonnet-4-5",
            "--input",
            "50000",
            "--output",
            "10000",
        ],
    );
    let (tokens, cost) = row("2026-11-01T12:13:00Z");
    assert_eq!(tokens, 60_000);
    assert!((cost.unwrap() - 0.3).abs() < 1e-9, "{cost:?}");
}

/// An attempt whose lease expired (no heartbeat past its TTL, no submit) has ended: `top`
/// lists it with the runs that ended, as `report` counts it, and no longer adds what its
/// holder last reported to the window's spend as a running attempt's.
#[test]
fn an_expired_run_is_not_in_flight_in_top() {
    let env = TestEnv::new();
    let task =
        |title: &str, kind: &str| format!("---\ntitle: {title}\ntype: {kind}\n---\nDo it.\n");
    let files = vec![
        (
            ".tasks/config.yaml".to_owned(),
            "types: [bug, docs]\n".to_owned(),
        ),
        (
            ".tasks/alpha.md".to_owned(),
            task("Fix the login redirect", "bug"),
        ),
        (
            ".tasks/beta.md".to_owned(),
            task("Document the API", "docs"),
        ),
    ];
    remote_with_clones(&env, &files, &["a", "b", "c"]);
    at(&env, "a", "alice", T0, &["claim", "--type", "bug"]);
    at(
        &env,
        "a",
        "alice",
        "2026-11-01T12:05:00Z",
        &[
            "usage",
            "record",
            "alpha",
            "--model",
            "claude-sonnet-4-5",
            "--input",
            "900",
            "--output",
            "100",
        ],
    );
    // Alice's last heartbeat: her lease expires at 12:40, and she is heard of no more.
    at(
        &env,
        "a",
        "alice",
        "2026-11-01T12:10:00Z",
        &["heartbeat", "--tokens", "42000", "--cost-usd", "0.5"],
    );
    at(
        &env,
        "b",
        "bob",
        "2026-11-01T12:30:00Z",
        &["claim", "--type", "docs"],
    );
    at(
        &env,
        "b",
        "bob",
        "2026-11-01T12:35:00Z",
        &["heartbeat", "--tokens", "5000", "--cost-usd", "0.1"],
    );
    let fleet = fleet_json(&env, "c", &[("GITPRIO_NOW", "2026-11-01T12:50:00Z")]);
    let ended = &fleet["recent"];
    assert_eq!(ended.as_array().map(Vec::len), Some(1), "{fleet}");
    assert_eq!(
        (
            &ended[0]["task"],
            &ended[0]["outcome"],
            &ended[0]["ended_at"]
        ),
        (
            &json!("alpha"),
            &json!("expired"),
            &json!("2026-11-01T12:40:00Z")
        ),
        "{fleet}"
    );
    // The ledger's 1,000 tokens of alice's run, and bob's 5,000 so far: alice's last
    // report (42,000) is not a running attempt's spend any more.
    assert_eq!(fleet["header"]["tokens_in_window"], 6_000, "{fleet}");
    assert_eq!(fleet["header"]["agents_active"], 1, "{fleet}");
    let beats = [&fleet["leases"][0]["beat"], &fleet["leases"][1]["beat"]];
    assert_eq!(beats, [&json!("expired"), &json!("fresh")], "{fleet}");
    let report = at(
        &env,
        "c",
        "carol",
        "2026-11-01T12:50:00Z",
        &["report", "--json"],
    )
    .json();
    assert_eq!(
        report["waste"]["unfinished_runs"][0]["outcome"], "expired",
        "{report}"
    );
    assert_eq!(
        report["waste"]["unfinished_runs"][0]["ended_at"], "2026-11-01T12:40:00Z",
        "{report}"
    );
}

/// A tmux server of its own, killed when the test ends, however it ends.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `gitprio top --interval 1s` as carol in `dir`, in a detached session `top` of
    /// `width` x 30 cells, with the test environment and `exports` (`NAME=value ...`).
    fn start(env: &TestEnv, dir: &str, exports: &str, width: u16) -> Tmux {
        let script = env.path("top.sh");
        let mut text = String::from("#!/bin/sh\n");
        for (name, value) in env.environment() {
            writeln!(text, "export {name}='{}'", value.to_string_lossy()).unwrap();
        }
        write!(
            text,
            "export {exports} GITPRIO_AGENT=carol TERM=xterm-256color\ncd '{}'\nexec '{}' top --interval 1s\n",
            env.path(dir).display(),
            env!("CARGO_BIN_EXE_gitprio")
        )
        .unwrap();
        std::fs::write(&script, text).unwrap();
        let tmux = Tmux {
            socket: format!("gitprio-{}-{}", dir, std::process::id()),
        };
        let started = tmux.command(&[
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            &width.to_string(),
            "-y",
            "30",
            &format!("sh {}", script.display()),
        ]);
        assert!(started.status.success(), "{started:?}");
        tmux
    }

    fn command(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .env_remove("TMUX")
            .output()
            .unwrap()
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.command(&["capture-pane", "-p", "-t", "top"]).stdout)
            .into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        assert!(self.command(&args).status.success());
    }

    /// Waits until the screen shows `text`, for at most 30 seconds.
    fn wait_for(&self, text: &str) -> String {
        self.wait_for_all(&[text])
    }

    /// Waits until one screen shows every one of `texts`, for at most 30 seconds.
    fn wait_for_all(&self, texts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if texts.iter().all(|text| screen.contains(text)) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed all of {texts:?}; it shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command(&["kill-server"]);
    }
}

#[test]
fn the_live_screen_sorts_filters_opens_a_task_and_revokes_in_tmux() {
    if crate::common::tool(&["tmux"]).is_none() {
        return;
    }
    let env = TestEnv::new();
    fleet(&env);
    let tmux = Tmux::start(&env, "c", &format!("GITPRIO_NOW={T1}"), 100);

    // Every check reads one screen that shows all it looks for: a capture can fall in the
    // middle of a frame being drawn, its first lines new and the rest not yet.
    tmux.wait_for_all(&["Leases (2) · sorted by spend", "25m stale", "Parked (1)"]);
    tmux.keys(&["s"]);
    tmux.wait_for("sorted by time");
    tmux.keys(&["a"]);
    tmux.wait_for_all(&["Leases (1)", "only agent alice"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for_all(&["lease history", "renew    alice"]);
    tmux.keys(&["Escape"]);
    tmux.wait_for("Leases (1) · sorted by time · only agent alice");
    tmux.keys(&["a"]);
    tmux.wait_for("only agent bob");
    tmux.keys(&["r"]);
    tmux.wait_for("Revoke beta from bob?");
    tmux.keys(&["y"]);
    tmux.wait_for("revoked beta from bob");
    tmux.keys(&["a"]);
    tmux.wait_for("Leases (1) · sorted by time");
    tmux.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tmux.command(&["has-session", "-t", "top"]).status.success() {
        assert!(Instant::now() < deadline, "q did not end gitprio top");
        std::thread::sleep(Duration::from_millis(100));
    }

    let log = env.git(
        "remote.git",
        &["log", "-1", "--format=%s", "refs/gitprio/leases/beta"],
    );
    assert_eq!(
        log,
        "gitprio lease: revoke beta by carol (generation 1, attempt 1): revoked in gitprio top\n"
    );
    let heartbeat = env.run_with(
        "b",
        &["heartbeat"],
        &[("GITPRIO_AGENT", "bob"), ("GITPRIO_NOW", T1)],
    );
    assert_eq!(heartbeat.code, 4, "{heartbeat}");
}

/// A Claude Code `stream-json` agent that spends 1000 tokens at once, then works until the
/// test creates `finish` (at most 60 seconds) and reports success. Told to stop (SIGTERM),
/// it works until then too, and takes 4 more seconds to exit.
fn patient_agent(env: &TestEnv) -> String {
    let finish = env.path("finish");
    let body = format!(
        r#"cat > /dev/null
echo '{{"type":"system","subtype":"init","session_id":"s-'$GITPRIO_TASK'","model":"claude-sonnet-4-5"}}'
echo '{{"type":"assistant","message":{{"id":"m-'$GITPRIO_TASK'","model":"claude-sonnet-4-5","usage":{{"input_tokens":900,"output_tokens":100}}}}}}'
stopped=
trap 'stopped=1' TERM
i=0
while [ ! -e '{finish}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
# An agent told to stop takes its time: its siblings finish and claim again meanwhile.
if [ -n "$stopped" ]; then sleep 4; fi
echo '{{"type":"result","subtype":"success","is_error":false,"result":"Nothing to change.","session_id":"s-'$GITPRIO_TASK'","usage":{{"input_tokens":900,"output_tokens":100}}}}'
"#,
        finish = finish.display()
    );
    script(env, "claude", &body)
}

/// The `run --parallel 4` of the issue, watched from another clone: `top` shows the four
/// agents with their spend while they work, and a revoke from `top` stops one of them.
#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one end-to-end scenario: a live run, its screen and a revoke"
)]
fn top_shows_a_fleet_from_run_parallel_4_live_and_its_revoke_stops_an_agent() {
    if crate::common::tool(&["tmux"]).is_none() {
        return;
    }
    let env = TestEnv::new();
    let files: Vec<(String, String)> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|id| {
            (
                format!(".tasks/{id}.md"),
                format!("---\ntitle: Task {id}\ntype: chore\nbudget: 50k\n---\nDo {id}.\n"),
            )
        })
        .collect();
    remote_with_clones(&env, &files, &["fleet", "cockpit"]);
    let agent = patient_agent(&env);
    let mut run = Running(Some(env.spawn(
        "fleet",
        &[
            "run",
            "--parallel",
            "4",
            "--agent-name",
            "agent",
            "--json",
            // Renewed every 3s: slow enough that a loaded machine does not let it expire.
            "--ttl",
            "9s",
            // Longer than the stopped agent takes to exit: it is not killed.
            "--grace",
            "60s",
            "--",
            &agent,
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
        ],
    )));

    // Every agent has claimed and reported its first 1000 tokens through a heartbeat.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let json = fleet_json(&env, "cockpit", &[("GITPRIO_AGENT", "carol")]);
        let leases = json["leases"].as_array().unwrap();
        if leases.len() == 4 && leases.iter().all(|lease| lease["tokens"] == 1000) {
            let mut agents: Vec<&str> = leases
                .iter()
                .map(|lease| lease["agent"].as_str().unwrap())
                .collect();
            agents.sort_unstable();
            assert_eq!(
                agents,
                ["agent-1", "agent-2", "agent-3", "agent-4"],
                "{json}"
            );
            assert!(
                leases.iter().all(|lease| lease["budget_tokens"] == 50_000),
                "{json}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the fleet never showed in top: {json}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let tmux = Tmux::start(&env, "cockpit", "", 110);
    // Every agent, with its spend so far counted in the window and its budget bar (1000 of
    // 50k tokens).
    tmux.wait_for_all(&[
        "Leases (4)",
        "4 agents active",
        "last 1h: 4.0k tokens",
        "agent-1",
        "agent-2",
        "agent-3",
        "agent-4",
        "2%",
    ]);

    // Revoke the selected (first) row and read back which lease that was.
    tmux.keys(&["r"]);
    let screen = tmux.wait_for("Revoke ");
    let question = screen
        .lines()
        .find_map(|line| line.split("Revoke ").nth(1))
        .unwrap()
        .to_owned();
    let (task, rest) = question
        .split_once(" from ")
        .unwrap_or_else(|| panic!("unexpected question: {question}"));
    let (task, holder) = (task.to_owned(), rest.split('?').next().unwrap().to_owned());
    tmux.keys(&["y"]);
    tmux.wait_for(&format!("revoked {task} from {holder}"));
    tmux.keys(&["q"]);

    // The run stops that agent, which moves on; the others finish when told to.
    let stopped = format!("{holder}: stopping the agent on {task}: the lease was lost");
    let mut stderr = std::io::BufReader::new(run.0.as_mut().unwrap().stderr.take().unwrap());
    let (seen, saw) = std::sync::mpsc::channel();
    let reader = std::thread::spawn({
        let stopped = stopped.clone();
        move || {
            let mut text = String::new();
            while std::io::BufRead::read_line(&mut stderr, &mut text).unwrap_or(0) > 0 {
                if text.contains(&stopped) {
                    let _ = seen.send(());
                }
            }
            text
        }
    });
    assert!(
        saw.recv_timeout(Duration::from_secs(60)).is_ok(),
        "the run never stopped the agent on the revoked task"
    );
    std::fs::write(env.path("finish"), "").unwrap();
    let output = run.finish();
    let stderr = reader.join().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}\n{stderr}");
    assert!(stderr.contains(&stopped), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["lost"], 1, "{summary}");
    // The revoked task is not claimed again by the run that lost it.
    assert_eq!(summary["completed"], 4, "{summary}");
    assert_eq!(summary["stopped"], "nothing_ready", "{summary}");
    assert_eq!(
        summary["reason"],
        format!(
            "nothing ready apart from 1 tasks passed over with --skip (their lease was lost in this run: {task})"
        ),
        "{summary}"
    );
    let history = env.git(
        "remote.git",
        &["log", "--format=%s", &format!("refs/gitprio/leases/{task}")],
    );
    assert!(
        history.contains(&format!(
            "gitprio lease: revoke {task} by carol (generation 1, attempt 1): revoked in gitprio top"
        )),
        "{history}"
    );
}

#[test]
fn a_narrow_frame_cuts_titles_between_words() {
    let env = TestEnv::new();
    fleet(&env);
    let frame = once_at_t1(&env, "70");
    assert_output!(frame);
}

#[test]
fn the_last_runs_cut_a_long_id_or_agent_with_an_ellipsis_and_line_numbers_up_right() {
    let env = TestEnv::new();
    let id = "billing-stripe-sdk-upgrade-to-the-current-api";
    let agent = "alice@build-host-7:billing";
    let files = vec![(
        format!(".tasks/{id}.md"),
        "---\ntitle: Upgrade Stripe\n---\nDo it.\n".to_owned(),
    )];
    remote_with_clones(&env, &files, &["a"]);
    at(&env, "a", agent, T0, &["claim"]);
    at(
        &env,
        "a",
        agent,
        "2026-11-01T12:10:00Z",
        &["done", id, "--no-verify", "--reason", "x"],
    );
    let frame = env.run_with(
        "a",
        &["top", "--once", "--width", "70"],
        &[("GITPRIO_NOW", T1)],
    );
    assert_eq!(frame.code, 0, "{frame}");
    // Both were cut without a mark (`billing-stripe-sdk-upgrade-to`, `alice@build-`), as if
    // that were the task's id and the agent's name.
    let row: Vec<&str> = frame
        .stdout
        .lines()
        .find(|line| line.starts_with("15m ago"))
        .unwrap_or_else(|| panic!("no ended run: {frame}"))
        .split_whitespace()
        .collect();
    let (task, cut_agent) = (row[2], row[3]);
    let task = task.strip_suffix('…').unwrap_or_else(|| panic!("{frame}"));
    assert!(id.starts_with(task) && task.len() > 10, "{frame}");
    let cut_agent = cut_agent
        .strip_suffix('…')
        .unwrap_or_else(|| panic!("{frame}"));
    assert!(agent.starts_with(cut_agent), "{frame}");

    // And the numbers line up right, as in the report: they were left-aligned.
    let table: Vec<&str> = frame
        .stdout
        .lines()
        .skip_while(|line| !line.starts_with("ENDED "))
        .take(2)
        .collect();
    for column in ["TOKENS", "COST"] {
        crate::usage::assert_right_aligned(&table, column);
    }
}

#[test]
fn top_and_the_report_give_the_same_value_per_token() {
    let env = TestEnv::new();
    fleet(&env);
    let frame = once_at_t1(&env, "110");
    let report = env.run_with("c", &["report"], &[("GITPRIO_NOW", T1)]);
    let in_report = report
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("value per 1M tokens"))
        .unwrap_or_else(|| panic!("{report}"))
        .trim();
    // Every run of the fleet is in top's window: top said 7.9 where the report says 7.94.
    assert!(
        frame.stdout.contains(&format!(
            " · {in_report} value/1M tokens (baseline {in_report})"
        )),
        "{in_report}: {frame}"
    );
}
