//! The report's views and labels as a manager reads them: where the prices come from, the
//! same prices in every view, and figures that say when they are undefined.

use crate::common::{Output, TestEnv};
use crate::usage::{agent, claim, setup};

/// Commits `.tasks/prices.yaml` with `text` on the queue's branch, from clone `a`.
fn commit_prices(env: &TestEnv, text: &str) {
    env.write("a", &[(".tasks/prices.yaml", text)]);
    env.git("a", &["add", ".tasks/prices.yaml"]);
    env.git("a", &["commit", "--quiet", "-m", "prices"]);
    env.git("a", &["push", "--quiet", "origin", "HEAD:main"]);
}

/// The line of `output`'s stdout that starts with `start`, spaces squeezed.
fn line(output: &Output, start: &str) -> String {
    output
        .stdout
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .find(|line| line.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting with {start:?}: {output}"))
}

/// One run of `cache` by alice: 10,000 output tokens of claude-sonnet-4-5 ($0.15 at list price).
fn one_sonnet_run() -> TestEnv {
    let env = TestEnv::new();
    setup(&env);
    claim(&env, "a", "alice", "cache");
    let recorded = agent(
        &env,
        "a",
        "alice",
        &[
            "usage",
            "record",
            "--model",
            "claude-sonnet-4-5",
            "--output",
            "10000",
        ],
    );
    assert_eq!(recorded.code, 0, "{recorded}");
    env
}

/// walk17 N22: `.tasks/prices.yaml` overrides are named with how many models they price, in
/// `report`, `usage show` and `top` alike, never as the bundled list prices.
#[test]
fn repository_prices_are_labelled_as_such_in_every_view() {
    let env = one_sonnet_run();
    commit_prices(
        &env,
        "house-model: {input: 1, output: 2}\nclaude-sonnet-4-5: {input: 30, output: 150}\n",
    );
    let label = "prices from .tasks/prices.yaml (2 models) over the bundled snapshot of 2026-06-13";
    let report = agent(&env, "a", "alice", &["report"]);
    assert_eq!(report.code, 0, "{report}");
    assert_eq!(
        line(&report, "cost ("),
        "cost (estimated) $1.50",
        "{report}"
    );
    assert_eq!(line(&report, "prices "), label, "{report}");
    assert!(
        report
            .stdout
            .contains(&format!("Costs are estimates, not bills: {label} (")),
        "{report}"
    );
    let json = agent(&env, "a", "alice", &["report", "--json"]).json();
    assert_eq!(
        json["repository_prices"],
        serde_json::json!({"file": ".tasks/prices.yaml", "models": 2}),
        "{json}"
    );
    let show = agent(&env, "a", "alice", &["usage", "show", "cache"]);
    assert_eq!(show.code, 0, "{show}");
    assert!(show.stdout.contains("$1.50"), "{show}");
    assert_eq!(
        show.stdout.lines().last(),
        Some(format!("Costs estimated, {label}.").as_str()),
        "{show}"
    );
    let top = agent(&env, "a", "alice", &["top", "--once"]);
    assert_eq!(top.code, 0, "{top}");
    assert!(top.stdout.contains("$1.50"), "{top}");
    assert!(
        top.stdout.contains(&format!("costs estimated, {label}")),
        "{top}"
    );
}

/// walk17 N23: a teammate's typo in `.tasks/prices.yaml` neither stops `report` and
/// `usage show` nor is ignored without a word by `top`: every view warns with the file and
/// line, and costs that model at its bundled price.
#[test]
fn a_broken_price_entry_is_warned_about_and_bundled_prices_used_in_every_view() {
    let env = one_sonnet_run();
    commit_prices(
        &env,
        "house-model: {input: 1, output: 2}\nclaude-sonnet-4-5: {input: abc, output: 150}\n",
    );
    let warning = "warning: .tasks/prices.yaml line 2: `claude-sonnet-4-5`: ";
    let label = "prices from .tasks/prices.yaml (1 model) over the bundled snapshot of 2026-06-13";
    for args in [
        &["report"][..],
        &["usage", "show", "cache"],
        &["top", "--once"],
    ] {
        let output = agent(&env, "a", "alice", args);
        assert_eq!(output.code, 0, "{args:?}: {output}");
        let warned: Vec<&str> = output
            .stderr
            .lines()
            .filter(|line| line.starts_with(warning))
            .collect();
        assert_eq!(warned.len(), 1, "{args:?}: {output}");
        assert!(
            warned[0].ends_with("; its bundled price is used"),
            "{args:?}: {output}"
        );
        assert!(output.stdout.contains("$0.15"), "{args:?}: {output}");
        if args[0] == "report" {
            assert_eq!(line(&output, "prices "), label, "{output}");
        } else {
            assert!(output.stdout.contains(label), "{args:?}: {output}");
        }
    }
    // YAML that does not parse at all: the whole file is named with its position.
    commit_prices(&env, "claude-sonnet-4-5: {input: 30\n  output: [\n");
    let report = agent(&env, "a", "alice", &["report"]);
    assert_eq!(report.code, 0, "{report}");
    assert!(
        report.stderr.lines().any(|line| line
            .starts_with("warning: .tasks/prices.yaml is not read: ")
            && line.contains("line ")
            && line.ends_with("the bundled prices are used")),
        "{report}"
    );
    assert_eq!(
        line(&report, "cost ("),
        "cost (estimated at list price, prices of 2026-06-13) $0.15",
        "{report}"
    );
}

/// Runs `args` as agent `name` at `now` in `dir`, and checks that it succeeds.
fn at(env: &TestEnv, dir: &str, name: &str, now: &str, args: &[&str]) -> Output {
    let output = env.run_with(dir, args, &[("GITPRIO_AGENT", name), ("GITPRIO_NOW", now)]);
    assert_eq!(output.code, 0, "{output}");
    output
}

/// walk17 N2 and P8: over a period in which the completed task spent nothing (its run spent
/// before it), dollars per task and per value point are undefined (`-`, `null`), not $0.00,
/// the tokens-per-task section does not list it at 0 tokens, and its heading says what counts.
#[test]
fn a_period_whose_completed_tasks_spent_before_it_has_no_dollars_per_task() {
    let env = TestEnv::new();
    setup(&env);
    at(
        &env,
        "a",
        "alice",
        "2026-11-02T09:00:00Z",
        &["claim", "--type", "feature"],
    );
    at(
        &env,
        "a",
        "alice",
        "2026-11-02T09:05:00Z",
        &crate::usage::SPEND,
    );
    at(&env, "a", "alice", "2026-11-02T10:00:00Z", &["done"]);
    let now = "2026-11-02T11:00:00Z";
    let period = ["report", "--since", "2026-11-02T09:30:00Z"];
    let json = at(
        &env,
        "a",
        "alice",
        now,
        &[&period[..], &["--json"]].concat(),
    )
    .json();
    let summary = &json["summary"];
    assert_eq!(summary["completed_tasks"], 1, "{json}");
    assert_eq!(summary["tokens"], 0, "{json}");
    assert_eq!(
        summary["usd_per_completed_task"],
        serde_json::Value::Null,
        "{json}"
    );
    assert_eq!(
        summary["usd_per_value_point"],
        serde_json::Value::Null,
        "{json}"
    );
    assert_eq!(
        summary["value_per_million_tokens"],
        serde_json::Value::Null,
        "{json}"
    );
    let distribution = &json["waste"]["tokens_per_completed_task"];
    assert_eq!(
        distribution,
        &serde_json::json!({"count": 0, "median": null, "p90": null, "p99": null, "max": null, "top": []}),
        "{json}"
    );
    let table = at(&env, "a", "alice", now, &period);
    assert_eq!(
        line(&table, "$ per completed task"),
        "$ per completed task -",
        "{table}"
    );
    assert_eq!(
        line(&table, "$ per value point"),
        "$ per value point -",
        "{table}"
    );
    let section = line(&table, "Tokens per completed task");
    assert!(!section.contains("All runs of a task count"), "{table}");
    assert!(section.contains("inside the period"), "{table}");
    assert!(
        table
            .stdout
            .contains("  no task completed in the period spent tokens in it\n"),
        "{table}"
    );
    assert!(!table.stdout.contains("cache: 0 tokens"), "{table}");
    // Over all time the same task has its dollars, and every run of it counts.
    let all = at(&env, "a", "alice", now, &["report"]);
    let per_task = line(&all, "$ per completed task");
    assert!(per_task.starts_with("$ per completed task $0.0"), "{all}");
    assert!(
        line(&all, "Tokens per completed task").contains("All runs of a task count"),
        "{all}"
    );
}

/// walk17 N11: a run with unpriced tokens overspends "at least" (and says how many tokens
/// are unpriced in JSON); a run whose routed model has no price, or names no tier (a typo),
/// is named with its overspend unknown instead of dropped.
#[test]
fn overspend_with_unpriced_tokens_is_a_floor_and_an_unpriced_routed_model_is_named() {
    let env = TestEnv::new();
    let task = |title: &str, model: &str, priority: &str| {
        format!("---\ntitle: {title}\nmodel: {model}\npriority: {priority}\n---\n")
    };
    env.repo(
        "repo",
        &[
            (
                ".tasks/config.yaml",
                "tiers:\n  small: claude-haiku-4-5\n  medium: claude-sonnet-4-5\n",
            ),
            (".tasks/g2.md", &task("G2", "medium", "p1")),
            (".tasks/g3.md", &task("G3", "my-local-llama", "p2")),
            (".tasks/h1.md", &task("H1", "smal", "p3")),
        ],
    );
    for agent in ["alice", "bob", "carol"] {
        let with = [("GITPRIO_AGENT", agent)];
        let claimed = env.run_with("repo", &["claim", "--local", "--json"], &with);
        let id = claimed.json()["task"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{claimed}"))
            .to_owned();
        let id = id.as_str();
        let extra = (id == "g2").then_some("claude-mystery-9");
        for model in std::iter::once("claude-opus-4-6").chain(extra) {
            let recorded = env.run_with(
                "repo",
                &[
                    "usage", "record", id, "--local", "--model", model, "--output", "10000",
                ],
                &with,
            );
            assert_eq!(recorded.code, 0, "{recorded}");
        }
        let done = env.run_with("repo", &["done", id, "--local"], &with);
        assert_eq!(done.code, 0, "{done}");
    }
    let json = env
        .run("repo", &["report", "--offline", "--local", "--json"])
        .json();
    let waste = &json["waste"];
    assert_eq!(waste["overspend"][0]["task"], "g2", "{json}");
    assert_eq!(waste["overspend"][0]["unpriced_tokens"], 10_000, "{json}");
    assert_eq!(waste["overspend_unpriced_tokens"], 10_000, "{json}");
    let unknown: Vec<(&str, &str)> = waste["overspend_unknown"]
        .as_array()
        .unwrap_or_else(|| panic!("{json}"))
        .iter()
        .map(|run| {
            (
                run["task"].as_str().unwrap(),
                run["routed_model"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        unknown,
        [("g3", "my-local-llama"), ("h1", "smal")],
        "{json}"
    );
    let table = env.run("repo", &["report", "--offline", "--local"]);
    let section: Vec<String> = table
        .stdout
        .lines()
        .skip_while(|line| !line.starts_with("Model overspend"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .map(str::trim)
        .map(str::to_owned)
        .collect();
    assert_eq!(section.len(), 4, "{table}");
    assert!(
        section[0].starts_with("at least $") && section[0].ends_with(" in total"),
        "{table}"
    );
    assert!(
        section[1].starts_with("g2 run ")
            && section[1].contains(": at least $0.25 (10.0k tokens unpriced) spent, at least $0.15 on claude-sonnet-4-5 (at least +$0.10)"),
        "{table}"
    );
    assert!(
        section[2].starts_with("g3 run ")
            && section[2].ends_with(
                ": overspend unknown: routed model my-local-llama has no price ($0.25 spent)"
            ),
        "{table}"
    );
    assert!(
        section[3].contains(": overspend unknown: routed model smal has no price"),
        "{table}"
    );
}

/// walk17 N17: a report by task or feature does not set one task's spend against all the
/// machine's unattributed spend; the unfiltered report keeps the share.
#[test]
fn a_report_by_task_or_feature_has_no_tied_share() {
    let env = one_sonnet_run();
    let all = agent(&env, "a", "alice", &["report", "--json"]).json();
    assert!(all.get("attribution").is_some(), "{all}");
    for filter in [["--task", "cache"], ["--feature", "auth"]] {
        let json = agent(
            &env,
            "a",
            "alice",
            &[&["report", "--json"][..], &filter].concat(),
        )
        .json();
        assert_eq!(json["summary"]["runs"], 1, "{json}");
        assert!(json.get("attribution").is_none(), "{filter:?}: {json}");
        let table = agent(&env, "a", "alice", &[&["report"][..], &filter].concat());
        assert!(
            !table.stdout.contains("tied to tasks"),
            "{filter:?}: {table}"
        );
    }
}

/// walk17 N1, N5, P11, P15, in a real browser: spend on Nov 1 and Nov 5 and only unpriced
/// tokens on Nov 9, every run still in flight. The cost trend is a time axis (the empty
/// days keep their place) with the unpriced day marked `unknown` on the chart; a group
/// whose runs are all in flight has no value bar and says so; with no completed task there
/// is no histogram of zeros; spend over time is not under the "Waste" heading.
#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one page: the HTML's structure, then what the browser draws of it"
)]
fn the_html_report_draws_time_empty_days_unknown_days_and_in_flight_groups_truly() {
    let env = TestEnv::new();
    setup(&env);
    for (dir, name, kind, day, model) in [
        ("b", "bob", "docs", "01", "claude-sonnet-4-5"),
        ("reader", "carol", "bug", "05", "claude-sonnet-4-5"),
        ("a", "alice", "feature", "09", "claude-mystery-9"),
    ] {
        let claimed = format!("2026-11-{day}T09:00:00Z");
        at(
            &env,
            dir,
            name,
            &claimed,
            &["claim", "--type", kind, "--ttl", "30d"],
        );
        let spent = format!("2026-11-{day}T09:05:00Z");
        let record = ["usage", "record", "--model", model, "--output", "10000"];
        at(&env, dir, name, &spent, &record);
    }
    let page = env.path("report.html");
    let page_arg = page.to_str().unwrap();
    let now = "2026-11-09T12:00:00Z";
    at(
        &env,
        "a",
        "alice",
        now,
        &["report", "--format", "html", "-o", page_arg],
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("- (in flight only)"), "{html}");
    assert!(!html.contains(">0.00</text>"), "{html}");
    assert!(html.contains("9 days shown"), "{html}");
    let headings: Vec<&str> = html
        .split("<h2>")
        .skip(1)
        .filter_map(|rest| rest.split("</h2>").next())
        .collect();
    assert!(
        headings.ends_with(&["Waste", "Spend over time"]),
        "{headings:?}"
    );
    let spend_over_time = html.split("<h2>Spend over time</h2>").nth(1).unwrap();
    let waste = html
        .split("<h2>Waste</h2>")
        .nth(1)
        .and_then(|rest| rest.split("<h2>Spend over time</h2>").next())
        .unwrap();
    for title in [
        "Spend per day",
        "Spend per week",
        "Spend per month",
        "5-hour windows",
    ] {
        assert!(
            spend_over_time.contains(&format!("<h3>{title}</h3>")),
            "{title}"
        );
        assert!(!waste.contains(&format!("<h3>{title}</h3>")), "{title}");
    }
    let Some(rendered) = crate::browser::render(&page, env.root.path()) else {
        return;
    };
    let figure = |caption: &str| {
        rendered["figures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|figure| figure["caption"].as_str().unwrap().starts_with(caption))
            .unwrap_or_else(|| panic!("no figure {caption:?}: {rendered}"))
            .clone()
    };
    let texts = |figure: &serde_json::Value| -> Vec<String> {
        figure["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|text| text.as_str().unwrap().to_owned())
            .collect()
    };
    let trend = figure("Cost per day");
    // Nov 1 and Nov 5 drawn, four days apart on a 9-day axis; Nov 9 has no bar but its mark.
    let lefts: Vec<i64> = trend["bar_lefts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|left| left.as_i64().unwrap())
        .collect();
    assert_eq!(lefts.len(), 2, "{trend}");
    let step = (640.0 - 20.0) / 9.0;
    let gap = f64::from(i32::try_from(lefts[1] - lefts[0]).unwrap());
    assert!((gap - 4.0 * step).abs() <= 2.0, "{trend}");
    assert!(texts(&trend).contains(&"unknown".to_owned()), "{trend}");
    let value = figure("Value points per 1M tokens");
    assert_eq!(value["drawn_bars"], 0, "{value}");
    assert!(
        texts(&value)
            .iter()
            .filter(|text| text.as_str() == "- (in flight only)")
            .count()
            == 3,
        "{value}"
    );
    let histogram = figure("Completed tasks by tokens spent");
    assert_eq!(histogram["drawn_bars"], 0, "{histogram}");
    assert_eq!(texts(&histogram), ["no data"], "{histogram}");
    let headings: Vec<&str> = rendered["headings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|heading| heading.as_str().unwrap())
        .collect();
    let position = |name: &str| headings.iter().position(|heading| *heading == name);
    assert!(
        position("Spend over time") > position("Waste"),
        "{headings:?}"
    );
    assert!(
        position("Spend per day") > position("Spend over time"),
        "{headings:?}"
    );
}

/// walk17 N16: a waste list shows the costliest runs first, ten of them, and sums up the
/// rest in one line instead of listing every run by task id.
#[test]
fn waste_lists_are_costliest_first_and_cut_with_the_rest_summed() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[(".tasks/t.md", "---\ntitle: T\ntype: chore\n---\n")],
    );
    let with = [("GITPRIO_AGENT", "alice")];
    for attempt in 1..=12_u32 {
        let claimed = env.run_with("repo", &["claim", "--local"], &with);
        assert_eq!(claimed.code, 0, "{claimed}");
        let output = (attempt * 1000).to_string();
        let record = [
            "usage",
            "record",
            "t",
            "--local",
            "--model",
            "claude-sonnet-4-5",
            "--output",
            &output,
        ];
        let recorded = env.run_with("repo", &record, &with);
        assert_eq!(recorded.code, 0, "{recorded}");
        let released = env.run_with("repo", &["release", "t", "--local"], &with);
        assert_eq!(released.code, 0, "{released}");
    }
    let table = env.run("repo", &["report", "--offline", "--local"]);
    let section: Vec<&str> = table
        .stdout
        .lines()
        .skip_while(|line| !line.starts_with("Runs that did not complete their task"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .map(str::trim)
        .collect();
    assert_eq!(section.len(), 12, "{table}");
    assert!(section[0].starts_with("12 runs, 78.0k tokens"), "{table}");
    assert!(section[1].contains(": released, 12.0k tokens"), "{table}");
    assert!(section[10].contains(": released, 3.0k tokens"), "{table}");
    assert_eq!(section[11], "and 2 more, 3.0k tokens, $0.05", "{table}");
}

/// walk17 N18: task fields in the markdown report (the Action's comment) are text: no HTML,
/// no table cell broken by a `|`, no `@` mention.
#[test]
fn markdown_reports_escape_task_fields() {
    let env = TestEnv::new();
    env.repo(
        "repo",
        &[(
            ".tasks/x1.md",
            "---\ntitle: X\nfeature: '<img src=x onerror=alert(2)> | @octocat'\n---\n",
        )],
    );
    let with = [("GITPRIO_AGENT", "<b>ag</b>")];
    assert_eq!(env.run_with("repo", &["claim", "--local"], &with).code, 0);
    let record = [
        "usage",
        "record",
        "x1",
        "--local",
        "--model",
        "claude-sonnet-4-5",
        "--output",
        "1000",
    ];
    assert_eq!(env.run_with("repo", &record, &with).code, 0);
    for by in ["feature", "agent"] {
        let markdown = env.run(
            "repo",
            &[
                "report",
                "--offline",
                "--local",
                "--format",
                "md",
                "--by",
                by,
            ],
        );
        assert_eq!(markdown.code, 0, "{markdown}");
        let text = &markdown.stdout;
        assert!(
            !text.contains("<img") && !text.contains("<b>"),
            "{markdown}"
        );
        assert!(!text.contains("@octocat"), "{markdown}");
        if by == "feature" {
            assert!(
                text.contains("| &lt;img src=x onerror=alert(2)> \\| @&#8203;octocat |"),
                "{markdown}"
            );
        } else {
            assert!(text.contains("| &lt;b>ag&lt;/b> |"), "{markdown}");
        }
    }
}

/// walk17 P17: `report --offline` in a clone that never fetched the usage ledger says so,
/// not "no runs yet" while the remote holds runs.
#[test]
fn an_offline_report_in_a_clone_that_never_fetched_says_so() {
    let env = one_sonnet_run();
    let offline = agent(&env, "reader", "carol", &["report", "--offline"]);
    assert_eq!(
        (
            offline.code,
            offline.stdout.as_str(),
            offline.stderr.as_str()
        ),
        (
            0,
            "",
            "info: nothing fetched yet: this clone never fetched the usage ledger; run without `--offline` to fetch it\n"
        ),
        "{offline}"
    );
    let fetched = agent(&env, "reader", "carol", &["report"]);
    assert!(line(&fetched, "runs").ends_with(" 1"), "{fetched}");
}
