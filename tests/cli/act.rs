//! The Action on a real runner: nektos/act runs the workflows of docs/github-action.md,
//! read from the document itself, on this host (`-P ubuntu-latest=-self-hosted`, no
//! Docker, no network) against the GitHub stand-in of `github_fake`. `gitprio/gitprio@<tag>`
//! resolves to this checkout's `action.yml` and install script (`--local-repository`),
//! which installs the binary under test from a release-shaped directory (tarball and
//! `SHA256SUMS`) through `GITPRIO_DOWNLOAD_URL=file://...`. The third-party actions the
//! workflows use are replaced by the stand-ins in `tests/fixtures/act`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};
use wiremock::MockServer;

use crate::action::{
    break_a_task, complete_two_tasks, event, record_usage, remote_lease, setup, submitted_lease,
};
use crate::common::{Output, TestEnv, tool};
use crate::github_fake::{BOT, FakeGitHub, MARKER, NUMBER, REPOSITORY};

const DOC: &str = include_str!("../../docs/github-action.md");

/// The token of the pull request's own repository, and a fork's read-only one.
const TOKEN: &str = "ghs_test";
const FORK_TOKEN: &str = "ghs_fork";

/// The workflow of docs/github-action.md whose first line is `# .github/workflows/{title}`.
fn doc_workflow(title: &str) -> &'static str {
    let header = format!("# .github/workflows/{title}");
    DOC.split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split_once("```").map(|(yaml, _)| yaml))
        .find(|yaml| yaml.lines().next() == Some(header.as_str()))
        .unwrap_or_else(|| panic!("docs/github-action.md shows no workflow `{header}`"))
}

/// The action's tag the documented workflows use (`gitprio/gitprio@v0.1.0`).
fn doc_tag() -> &'static str {
    let (_, rest) = DOC
        .split_once("uses: gitprio/gitprio@")
        .expect("the documented workflows use gitprio/gitprio@<tag>");
    rest.split_whitespace().next().unwrap()
}

/// What every act run shares: the action's files and a release-shaped directory holding
/// the binary under test, built once per test run.
struct Release {
    /// `action.yml` and `scripts/`, as `gitprio/gitprio@<tag>` resolves.
    action: PathBuf,
    /// `<tag>/gitprio-<tag>-<target>.tar.gz` and `<tag>/SHA256SUMS`.
    downloads: PathBuf,
}

/// The release target the install script picks on this host (a Linux runner).
fn target() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "aarch64-unknown-linux-musl",
        _ => "x86_64-unknown-linux-musl",
    }
}

fn release() -> &'static Release {
    static RELEASE: OnceLock<Release> = OnceLock::new();
    RELEASE.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("act-release");
        let _ = std::fs::remove_dir_all(&root);
        let source = Path::new(env!("CARGO_MANIFEST_DIR"));
        let action = root.join("action");
        std::fs::create_dir_all(action.join("scripts")).unwrap();
        std::fs::copy(source.join("action.yml"), action.join("action.yml")).unwrap();
        std::fs::copy(
            source.join("scripts/action-install.sh"),
            action.join("scripts/action-install.sh"),
        )
        .unwrap();
        // Packed by the release workflow's own script; stripped first, the debug binary
        // packs and unpacks in a second instead of several.
        let binary = root.join("gitprio");
        let stripped = Command::new("strip")
            .arg("-o")
            .arg(&binary)
            .arg(env!("CARGO_BIN_EXE_gitprio"))
            .status()
            .is_ok_and(|status| status.success());
        if !stripped {
            std::fs::copy(env!("CARGO_BIN_EXE_gitprio"), &binary).unwrap();
        }
        let tag = doc_tag();
        let downloads = root.join("downloads");
        let script = source.join("scripts/release-package.sh");
        let dir = downloads.join(tag);
        run_ok(
            Command::new("bash")
                .arg(&script)
                .arg("pack")
                .arg(&binary)
                .args([tag, target()])
                .arg(&dir),
        );
        run_ok(Command::new("bash").arg(&script).arg("checksums").arg(&dir));
        Release { action, downloads }
    })
}

fn run_ok(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{command:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// One repository, the GitHub stand-in it talks to, and its runs under act.
struct Scenario {
    env: TestEnv,
    github: FakeGitHub,
    act: PathBuf,
    api: String,
    /// Where the install step downloads releases from: the shared release unless a test changes it.
    downloads: PathBuf,
    _server: MockServer,
}

impl Scenario {
    /// Returns `None` when act is not installed (a failure under `GITPRIO_TEST_REQUIRE_TOOLS`).
    async fn start() -> Option<Scenario> {
        let act = tool(&["act"])?;
        let (server, github) = FakeGitHub::start().await;
        Some(Scenario {
            env: TestEnv::new(),
            github,
            act,
            api: server.uri(),
            downloads: release().downloads.clone(),
            _server: server,
        })
    }

    /// A pull request from a fork completing `login` and `docs`, whose token is read-only.
    fn fork_opened(&self) -> (String, Value) {
        self.github.state.lock().unwrap().read_only_token = Some(FORK_TOKEN.to_owned());
        let (base, head) = completing(&self.env);
        let opened = pull_request(&self.env, &base, &head, "opened", false, "mallory/shop");
        (head, opened)
    }

    /// Runs `workflow` (its text) for the event `name` with payload `event`, in `workdir`.
    fn run(&self, workdir: &str, workflow: &str, name: &str, event: &Value, token: &str) -> Output {
        let release = release();
        let workflows = self.env.path("workflows");
        std::fs::create_dir_all(&workflows).unwrap();
        let workflow_path = workflows.join(format!("{name}.yml"));
        std::fs::write(&workflow_path, workflow).unwrap();
        let event_path = self.env.path(&format!("{name}-event.json"));
        std::fs::write(&event_path, event.to_string()).unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/act");
        let local = |uses: &str, dir: &Path| format!("{uses}={}", dir.display());
        let mut command = Command::new(&self.act);
        command
            .env_clear()
            .envs(self.env.environment())
            .env("GITPRIO_NOW", "2026-11-01T12:00:00Z")
            .current_dir(self.env.path(workdir))
            .arg(name)
            .arg("--workflows")
            .arg(&workflow_path)
            .arg("--eventpath")
            .arg(&event_path)
            .args(["--platform", "ubuntu-latest=-self-hosted"])
            .arg("--action-cache-path")
            .arg(self.env.path("act-cache"))
            .arg("--action-offline-mode")
            .args(["--secret", &format!("GITHUB_TOKEN={token}")])
            .args(["--env", &format!("GITHUB_API_URL={}", self.api)])
            .args(["--env", &format!("GITHUB_REPOSITORY={REPOSITORY}")])
            .args([
                "--env",
                &format!("GITPRIO_DOWNLOAD_URL=file://{}", self.downloads.display()),
            ])
            .args([
                "--env",
                &format!(
                    "GITPRIO_TEST_ORIGIN={}",
                    self.env.path("remote.git").display()
                ),
            ])
            .args([
                "--env",
                &format!(
                    "GITPRIO_TEST_ARTIFACTS={}",
                    self.env.path("artifacts").display()
                ),
            ])
            .args([
                "--local-repository",
                &local(&format!("gitprio/gitprio@{}", doc_tag()), &release.action),
            ])
            .args([
                "--local-repository",
                &local("actions/checkout@v4", &fixtures.join("checkout")),
            ])
            .args([
                "--local-repository",
                &local(
                    "actions/upload-artifact@v4",
                    &fixtures.join("upload-artifact"),
                ),
            ])
            .args([
                "--local-repository",
                &local(
                    "actions/download-artifact@v4",
                    &fixtures.join("download-artifact"),
                ),
            ]);
        let output = command.output().unwrap();
        let root = self.env.root.path().display().to_string();
        let normalize = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace(&root, "$ROOT");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: normalize(&output.stdout),
            stderr: normalize(&output.stderr),
        }
    }
}

/// The payload of a `pull_request` event, from `action::event`, with the head in `head_repository`.
fn pull_request(
    env: &TestEnv,
    base: &str,
    head: &str,
    action: &str,
    merged: bool,
    head_repository: &str,
) -> Value {
    let path = event(env, base, head, action, merged);
    let mut payload: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    payload["pull_request"]["head"]["repo"]["full_name"] = json!(head_repository);
    payload
}

/// The repository with `login` and `docs` completed on branch `fix`, pushed; returns (base, head).
fn completing(env: &TestEnv) -> (String, String) {
    let base = setup(env);
    let head = complete_two_tasks(env);
    record_usage(env);
    env.git("pr", &["push", "--quiet", "origin", "fix"]);
    (base, head)
}

#[tokio::test]
async fn the_simple_workflow_keeps_one_comment_across_pushes_and_its_outputs_are_read() {
    let Some(scenario) = Scenario::start().await else {
        return;
    };
    let (env, github) = (&scenario.env, &scenario.github);
    let (base, head) = completing(env);
    let foreign = github.add_comment("octocat", &format!("Quoting the bot:\n{MARKER}\nold"));
    // A rate limit on the way, waited out as GitHub asks.
    github.fail_with(
        &format!("GET /repos/{REPOSITORY}/issues/{NUMBER}/comments"),
        429,
        json!({"message": "Too Many Requests"}),
        &[("retry-after", "1")],
    );
    let workflow = doc_workflow("gitprio.yml");
    let opened = pull_request(env, &base, &head, "opened", false, REPOSITORY);
    let output = scenario.run("pr", workflow, "pull_request", &opened, TOKEN);
    assert_eq!(output.code, 0, "{output}");
    assert!(
        output
            .stdout
            .contains("GitHub answered 429 to `list the comments`; trying again in 1.0s (Retry-After: 1; 1 of 4)"),
        "{output}"
    );
    // The install step: the release asset, its sha256 checked against SHA256SUMS.
    let installed = format!(
        "gitprio-install: installed gitprio {} ({}), sha256 ",
        doc_tag(),
        target()
    );
    for expected in [
        installed.as_str(),
        "pull request #7 completes 2 tasks: docs, login",
        "created the summary comment 1002",
        // The later step of the workflow reads all four outputs.
        "completed [\"docs\",\"login\"]: 191000 tokens, 2.9080 USD, 0.00003664921465968586 value points per token",
    ] {
        assert!(output.stdout.contains(expected), "{expected}\n{output}");
    }
    let comments = github.comments();
    assert_eq!(comments.len(), 2, "{output}");
    assert_eq!(comments[1].1, BOT);
    assert!(comments[1].2.starts_with(MARKER));

    // A push: the same comment is updated, the other user's is left as it was.
    env.write(
        "pr",
        &[("docs/api.md", "# API\n\nPOST /login\nPOST /logout\n")],
    );
    env.git("pr", &["commit", "--quiet", "--all", "--message", "Logout"]);
    env.git("pr", &["push", "--quiet", "origin", "fix"]);
    let pushed = env.git("pr", &["rev-parse", "HEAD"]).trim().to_owned();
    let synchronize = pull_request(env, &base, &pushed, "synchronize", false, REPOSITORY);
    let output = scenario.run("pr", workflow, "pull_request", &synchronize, TOKEN);
    assert_eq!(output.code, 0, "{output}");
    assert!(
        output.stdout.contains("updated the summary comment 1002"),
        "{output}"
    );
    github.assert_updated_in_place(&comments, foreign, &pushed);

    // The same head again (a re-run): the comment is current, nothing is written.
    let writes = |log: &[String]| log.iter().filter(|line| !line.starts_with("GET")).count();
    let before = writes(&github.log());
    let output = scenario.run("pr", workflow, "pull_request", &synchronize, TOKEN);
    assert_eq!(output.code, 0, "{output}");
    assert!(
        output
            .stdout
            .contains("the summary comment 1002 is up to date"),
        "{output}"
    );
    assert_eq!(writes(&github.log()), before, "{:?}", github.log());
}

#[tokio::test]
async fn a_fork_with_a_read_only_token_gets_the_step_summary_and_a_warning() {
    let Some(scenario) = Scenario::start().await else {
        return;
    };
    let (_, opened) = scenario.fork_opened();
    let workflow = doc_workflow("gitprio.yml");
    let output = scenario.run("pr", workflow, "pull_request", &opened, FORK_TOKEN);
    assert_eq!(output.code, 0, "{output}");
    assert!(
        output.stdout.contains(
            "::warning title=gitprio::no comment was posted: the token may not comment on the pull request (GitHub said: Resource not accessible by integration)"
        ) && output
            .stdout
            .contains("(this pull request comes from a fork: its token is read-only)"),
        "{output}"
    );
    // act shows what the step wrote to its step summary.
    assert!(
        output.stdout.contains(
            "Summary - <!-- gitprio:summary -->\n## gitprio: this pull request completes 2 tasks"
        ),
        "{output}"
    );
    assert!(
        output.stdout.contains("> [!NOTE]\n> no comment was posted"),
        "{output}"
    );
    assert!(scenario.github.comments().is_empty());
}

#[tokio::test]
async fn the_fork_safe_pair_computes_on_pull_request_and_posts_on_workflow_run() {
    let Some(scenario) = Scenario::start().await else {
        return;
    };
    let (env, github) = (&scenario.env, &scenario.github);
    let (head, opened) = scenario.fork_opened();
    let workflow = doc_workflow("gitprio.yml: runs the pull request's code, read-only");
    let computed = scenario.run("pr", workflow, "pull_request", &opened, FORK_TOKEN);
    assert_eq!(computed.code, 0, "{computed}");
    assert!(
        github.log().is_empty(),
        "`comment: false` asks nothing of the API: {:?}",
        github.log()
    );
    let handover: Value = serde_json::from_str(
        &std::fs::read_to_string(env.path("artifacts/gitprio-summary/pull-request.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(handover["head_sha"], json!(head));

    // The trusted half: the default branch's workflow, with a write token, no checkout.
    env.git(".", &["clone", "--quiet", "remote.git", "trusted"]);
    github.state.lock().unwrap().pull_head = Some(head.clone());
    let completed = json!({
        "action": "completed",
        "workflow_run": {"id": 4242, "name": "gitprio", "event": "pull_request", "head_sha": head},
        "repository": {"full_name": REPOSITORY}
    });
    let workflow = doc_workflow("gitprio-post.yml: trusted, never checks out the pull request");
    let posted = scenario.run("trusted", workflow, "workflow_run", &completed, TOKEN);
    assert_eq!(posted.code, 0, "{posted}");
    assert!(
        posted.stdout.contains("created the summary comment 1001"),
        "{posted}"
    );
    let comments = github.comments();
    assert_eq!(comments.len(), 1);
    assert_eq!(
        comments[0].2,
        std::fs::read_to_string(env.path("artifacts/gitprio-summary/summary.md")).unwrap()
    );
    let log = github.log();
    assert!(
        log.iter()
            .any(|line| line.starts_with(&format!("GET /repos/{REPOSITORY}/pulls/{NUMBER}"))),
        "{log:?}"
    );

    // A newer push meanwhile: this older summary is not posted over the newer one's.
    github.state.lock().unwrap().pull_head = Some("f".repeat(40));
    let late = scenario.run("trusted", workflow, "workflow_run", &completed, TOKEN);
    assert_eq!(late.code, 0, "{late}");
    assert!(
        late.stdout.contains(&format!(
            "pull request #7 has moved on to {} since this summary",
            "f".repeat(40)
        )),
        "{late}"
    );
    assert_eq!(github.comments(), comments);
}

#[tokio::test]
async fn closing_the_pull_request_settles_its_leases() {
    let Some(scenario) = Scenario::start().await else {
        return;
    };
    let env = &scenario.env;
    let (base, head) = completing(env);
    submitted_lease(env, "login");
    submitted_lease(env, "docs");
    let workflow = doc_workflow("gitprio.yml");
    let closed = pull_request(env, &base, &head, "closed", false, REPOSITORY);
    let output = scenario.run("pr", workflow, "pull_request", &closed, TOKEN);
    assert_eq!(output.code, 0, "{output}");
    assert_eq!(
        remote_lease(env, "login").as_deref(),
        Some(
            "gitprio lease: release login by alice (generation 2, attempt 2): pull request #7 was closed without merging"
        ),
        "{output}"
    );
    assert!(output.stdout.contains("released docs"), "{output}");
    // Only the `leases` job ran: the summary job is for open pull requests.
    assert!(!output.stdout.contains("[gitprio/summary]"), "{output}");

    let merged = pull_request(env, &base, &head, "closed", true, REPOSITORY);
    let output = scenario.run("pr", workflow, "pull_request", &merged, TOKEN);
    assert_eq!(output.code, 0, "{output}");
    assert_eq!(remote_lease(env, "login"), None, "{output}");
    assert_eq!(remote_lease(env, "docs"), None, "{output}");
    assert!(
        output
            .stdout
            .contains("deleted the leases of the tasks now done: docs, login"),
        "{output}"
    );
}

#[tokio::test]
async fn task_edits_with_errors_are_annotated_and_fail_unless_fail_on_invalid_is_false() {
    let Some(scenario) = Scenario::start().await else {
        return;
    };
    let env = &scenario.env;
    let base = setup(env);
    let head = break_a_task(env);
    let opened = pull_request(env, &base, &head, "opened", false, REPOSITORY);
    let workflow = doc_workflow("gitprio.yml");
    let output = scenario.run("pr", workflow, "pull_request", &opened, TOKEN);
    assert_ne!(output.code, 0, "{output}");
    assert!(
        output
            .stdout
            .contains("::error file=.tasks/cache.md,line=3,col="),
        "{output}"
    );
    assert!(output.stderr.contains("Job 'summary' failed"), "{output}");

    let lenient = workflow.replace(
        "        id: gitprio\n",
        "        id: gitprio\n        with:\n          fail-on-invalid: false\n",
    );
    assert_ne!(lenient, workflow);
    let output = scenario.run("pr", &lenient, "pull_request", &opened, TOKEN);
    assert_eq!(output.code, 0, "{output}");
    assert!(
        output
            .stdout
            .contains("::error file=.tasks/cache.md,line=3,col="),
        "{output}"
    );
}

#[tokio::test]
async fn a_release_whose_sha256_does_not_match_is_never_run() {
    let Some(mut scenario) = Scenario::start().await else {
        return;
    };
    let env = &scenario.env;
    let (base, head) = completing(env);
    let tampered = env.path("tampered");
    let tag_dir = tampered.join(doc_tag());
    std::fs::create_dir_all(&tag_dir).unwrap();
    let asset = format!("gitprio-{}-{}.tar.gz", doc_tag(), target());
    std::fs::copy(
        release().downloads.join(doc_tag()).join(&asset),
        tag_dir.join(&asset),
    )
    .unwrap();
    std::fs::write(
        tag_dir.join("SHA256SUMS"),
        format!("{}  {asset}\n", "0".repeat(64)),
    )
    .unwrap();
    scenario.downloads = tampered;
    let opened = pull_request(&scenario.env, &base, &head, "opened", false, REPOSITORY);
    let output = scenario.run(
        "pr",
        doc_workflow("gitprio.yml"),
        "pull_request",
        &opened,
        TOKEN,
    );
    assert_ne!(output.code, 0, "{output}");
    assert!(
        output.stdout.contains(&format!(
            "::error title=gitprio install::sha256 mismatch for {asset}: expected {}",
            "0".repeat(64)
        )),
        "{output}"
    );
    assert!(!output.stdout.contains("completes 2 tasks"), "{output}");
    assert!(
        scenario.github.log().is_empty(),
        "{:?}",
        scenario.github.log()
    );
}
