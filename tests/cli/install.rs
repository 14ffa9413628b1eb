//! `scripts/install.sh`, the one-line install, run from a release-shaped directory through `file://`.

use std::path::Path;
use std::process::Command;

use crate::assert_output;
use crate::common::{Output, TestEnv, tool};

const TAG: &str = "v0.1.0";

/// Lays out `releases/` as GitHub serves a release: `latest/download/<asset>` and
/// `download/<tag>/<asset>`, with this build's binary packed as the release job packs it.
/// Returns the target the script picks on this machine.
fn release_dir(env: &TestEnv) -> Option<String> {
    tool(&["curl"])?;
    let sha256sum = tool(&["sha256sum"])?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh");
    let target = run_sh(env, &format!("sh {} --print-target", script.display()), &[]);
    assert_eq!(target.code, 0, "{target}");
    let target = target.stdout.trim().to_owned();
    let name = format!("gitprio-{TAG}-{target}");
    let stage = env.path(&format!("stage/{name}"));
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_gitprio"), stage.join("gitprio")).unwrap();
    for dir in [
        "releases/latest/download",
        &format!("releases/download/{TAG}"),
    ] {
        let download = env.path(dir);
        std::fs::create_dir_all(&download).unwrap();
        let archive = format!("{name}.tar.gz");
        let packed = Command::new("tar")
            .arg("-C")
            .arg(env.path("stage"))
            .args(["-czf"])
            .arg(download.join(&archive))
            .arg(&name)
            .status()
            .unwrap();
        assert!(packed.success());
        let sums = Command::new(&sha256sum)
            .current_dir(&download)
            .arg(&archive)
            .output()
            .unwrap();
        assert!(sums.status.success());
        // Another platform's archive, which the script must pass over.
        let other =
            "0".repeat(64) + &format!("  gitprio-{TAG}-riscv64gc-unknown-linux-gnu.tar.gz\n");
        let list = other + &String::from_utf8(sums.stdout).unwrap();
        std::fs::write(download.join("SHA256SUMS"), list).unwrap();
        std::fs::copy(&script, download.join("install.sh")).unwrap();
    }
    Some(target)
}

/// Runs `command` with `sh -c` in the test environment, from its root.
fn run_sh(env: &TestEnv, command: &str, extra: &[(&str, String)]) -> Output {
    let output = Command::new("sh")
        .env_clear()
        .envs(env.environment())
        .envs(extra.iter().map(|(key, value)| (*key, value.as_str())))
        .current_dir(env.path(""))
        .args(["-c", command])
        .output()
        .unwrap();
    env.normalized(&output)
}

/// Hides what differs between machines and builds: the target and sha256 sums.
fn portable(output: Output, target: &str) -> Output {
    let hide = |text: String| {
        let text = text.replace(target, "[TARGET]");
        let mut shown = String::new();
        let mut run = String::new();
        for character in text.chars().chain(std::iter::once(' ')) {
            if character.is_ascii_hexdigit() {
                run.push(character);
                continue;
            }
            shown.push_str(if run.len() == 64 { "[SHA256]" } else { &run });
            run.clear();
            shown.push(character);
        }
        shown.pop();
        shown
    };
    Output {
        code: output.code,
        stdout: hide(output.stdout),
        stderr: hide(output.stderr),
    }
}

fn base(env: &TestEnv) -> (&'static str, String) {
    (
        "GITPRIO_DOWNLOAD_URL",
        format!("file://{}", env.path("releases").display()),
    )
}

#[test]
fn the_one_line_install_puts_a_checked_binary_in_local_bin() {
    let env = TestEnv::new();
    let Some(target) = release_dir(&env) else {
        return;
    };
    // The README's line, with the release's address pointed at the directory.
    let line = format!(
        "curl -fsSL file://{}/releases/latest/download/install.sh | sh",
        env.path("").display()
    );
    let output = run_sh(&env, &line, &[base(&env)]);
    let installed = env.path("home/.local/bin/gitprio");
    let version = Command::new(&installed).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout), "gitprio 0.1.0\n");
    assert_output!(portable(output, &target));
}

#[test]
fn install_takes_a_directory_and_a_version_and_refuses_a_tampered_archive() {
    let env = TestEnv::new();
    let Some(target) = release_dir(&env) else {
        return;
    };
    let script = env.path(&format!("releases/download/{TAG}/install.sh"));
    let to = format!(
        "sh {} --to {} --version {TAG}",
        script.display(),
        env.path("tools/bin").display()
    );
    let output = run_sh(&env, &to, &[base(&env)]);
    assert_eq!(output.code, 0, "{output}");
    assert!(env.path("tools/bin/gitprio").is_file(), "{output}");

    let archive = env.path(&format!(
        "releases/latest/download/gitprio-{TAG}-{target}.tar.gz"
    ));
    let mut bytes = std::fs::read(&archive).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&archive, bytes).unwrap();
    let tampered = format!(
        "sh {} --to {}",
        script.display(),
        env.path("elsewhere").display()
    );
    let output = run_sh(&env, &tampered, &[base(&env)]);
    assert!(!env.path("elsewhere/gitprio").exists(), "{output}");
    assert_output!(portable(output, &target));

    let missing = run_sh(
        &env,
        &format!("sh {} --version v9.9.9", script.display()),
        &[base(&env)],
    );
    assert_eq!(missing.code, 1, "{missing}");
    assert!(
        missing.stderr.contains("cannot download the checksum list"),
        "{missing}"
    );
}
