//! The README is a tutorial that this test runs: its quick start cannot drift from the binary.

use std::path::Path;
use std::process::Command;

use crate::assert_output;
use crate::common::TestEnv;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// Returns the README's shell blocks marked for this test (```` ```sh tutorial ````), in order.
fn tutorial_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match &mut current {
            None if line.trim_end() == "```sh tutorial" => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    assert!(current.is_none(), "a tutorial block is never closed");
    blocks
}

#[test]
fn the_quick_start_runs_verbatim_in_a_clone_of_a_bare_remote() {
    let env = TestEnv::new();
    let blocks = tutorial_blocks(&readme());
    let script = blocks.concat();
    for step in [
        "gitprio init",
        "gitprio check",
        "git commit",
        "gitprio next",
        "gitprio claim",
        "gitprio context",
        "gitprio heartbeat",
        "gitprio done",
        "gitprio report",
    ] {
        assert!(script.contains(step), "the quick start lacks `{step}`");
    }
    std::fs::create_dir_all(env.path("remote.git")).unwrap();
    env.git(
        "remote.git",
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    );
    env.repo("seed", &[("README.md", "# My project\n")]);
    env.git("seed", &["push", "--quiet", "../remote.git", "main"]);
    env.git(".", &["clone", "--quiet", "remote.git", "my-project"]);

    let binaries = Path::new(env!("CARGO_BIN_EXE_gitprio")).parent().unwrap();
    let mut path = std::ffi::OsString::from(binaries);
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    // One stream, each command echoed before its output, stopping at the first failure.
    let output = Command::new("sh")
        .env_clear()
        .envs(env.environment())
        .env("PATH", path)
        .env("GITPRIO_AGENT", "agent-1")
        .env("GITPRIO_NOW", "2026-11-01T12:00:00Z")
        .current_dir(env.path(""))
        .args(["-c", &format!("exec 2>&1\nset -ex\n{script}")])
        .output()
        .unwrap();
    let output = env.normalized(&output);
    assert_eq!(output.code, 0, "the README's quick start failed:\n{output}");
    assert_output!(output);
}

#[test]
fn the_readme_opens_with_the_demo_the_tests_and_the_install_line() {
    let readme = readme();
    assert!(
        readme.starts_with("# gitprio\n\n```sh\ncargo run --release -- demo "),
        "the README's first block is not the demo"
    );
    let ci =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run")).unwrap();
    let test_command = "cargo test --workspace";
    assert!(
        readme.contains(&format!("\n{test_command} "))
            && ci.contains(&format!("\n{test_command}\n"))
    );
    let install =
        "curl -fsSL https://github.com/gitprio/gitprio/releases/latest/download/install.sh | sh";
    assert!(
        readme.contains(install),
        "the README lacks the install line"
    );
    let release = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/workflows/release.yml"),
    )
    .unwrap();
    assert!(
        release.contains("scripts/install.sh"),
        "the release does not publish the install script the README points at"
    );
}
