//! A hermetic test environment: temporary HOME, no user or system git config, fixed dates.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A temporary directory holding repositories, and the environment every command runs with.
pub struct TestEnv {
    pub root: TempDir,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let root = tempfile::Builder::new()
            .prefix("gitprio-test-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(root.path().join("home")).unwrap();
        TestEnv { root }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    /// The whole environment every command runs with.
    pub fn environment(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("PATH", std::env::var_os("PATH").unwrap_or_default()),
            ("HOME", self.path("home").into_os_string()),
            ("GIT_CONFIG_GLOBAL", "/dev/null".into()),
            ("GIT_CONFIG_NOSYSTEM", "1".into()),
            ("GIT_AUTHOR_NAME", "Test Author".into()),
            ("GIT_AUTHOR_EMAIL", "author@example.com".into()),
            ("GIT_AUTHOR_DATE", "2026-11-01T12:00:00Z".into()),
            ("GIT_COMMITTER_NAME", "Test Committer".into()),
            ("GIT_COMMITTER_EMAIL", "committer@example.com".into()),
            ("GIT_COMMITTER_DATE", "2026-11-01T12:00:00Z".into()),
            ("NO_COLOR", "1".into()),
        ]
    }

    fn configure(&self, command: &mut Command) {
        command.env_clear().envs(self.environment());
    }

    /// Returns `gitprio` ready to start in `dir` with `args`, in this environment.
    pub fn command(&self, dir: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gitprio"));
        self.configure(&mut command);
        command.current_dir(self.path(dir)).args(args);
        command
    }

    /// Starts `gitprio` in `dir` with `args` without waiting, stdin empty, its output piped.
    pub fn spawn(&self, dir: &str, args: &[&str]) -> Child {
        self.command(dir, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Runs `git` in `dir` and panics if it fails.
    pub fn git(&self, dir: &str, args: &[&str]) -> String {
        let mut command = Command::new("git");
        self.configure(&mut command);
        let output = command
            .current_dir(self.path(dir))
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Writes `files` (path, content) under `dir`, creating directories.
    pub fn write(&self, dir: &str, files: &[(&str, &str)]) {
        for (path, content) in files {
            let target = self.path(dir).join(path);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(target, content).unwrap();
        }
    }

    /// Creates repository `dir` holding `files`, committed on `main`.
    pub fn repo(&self, dir: &str, files: &[(&str, &str)]) {
        std::fs::create_dir_all(self.path(dir)).unwrap();
        self.git(dir, &["init", "--quiet", "--initial-branch=main"]);
        self.write(dir, files);
        self.git(dir, &["add", "--all"]);
        self.git(
            dir,
            &["commit", "--quiet", "--allow-empty", "--message", "tasks"],
        );
    }

    /// Creates repository `dir` from `tasks.example/`.
    pub fn example_repo(&self, dir: &str) {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks.example");
        let mut files = Vec::new();
        collect(&example, &example, &mut files);
        let borrowed: Vec<(&str, &str)> = files
            .iter()
            .map(|(path, content)| (path.as_str(), content.as_str()))
            .collect();
        self.repo(dir, &borrowed);
    }

    /// Runs `gitprio` in `dir` and returns its whole output, normalized for snapshots.
    pub fn run(&self, dir: &str, args: &[&str]) -> Output {
        self.run_with(dir, args, &[])
    }

    /// Runs `gitprio` in `dir` with extra environment variables.
    pub fn run_with(&self, dir: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gitprio"));
        self.configure(&mut command);
        command.current_dir(self.path(dir)).args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        self.normalized(&command.output().unwrap())
    }

    /// Runs `gitprio` in `dir` like [`TestEnv::run_with`], its files limited to 128 blocks
    /// (`ulimit -f`: 64 or 128 KiB): a write past that kills it mid-write (`SIGXFSZ`), as a
    /// crash or a full disk would stop it.
    pub fn run_with_file_limit(&self, dir: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new("sh");
        self.configure(&mut command);
        command
            .current_dir(self.path(dir))
            .args(["-c", "ulimit -f 128 && exec \"$@\"", "sh"])
            .arg(env!("CARGO_BIN_EXE_gitprio"))
            .args(args)
            .envs(env.iter().copied());
        self.normalized(&command.output().unwrap())
    }

    /// Returns a finished process's output with this environment's root written `$ROOT`.
    pub fn normalized(&self, output: &std::process::Output) -> Output {
        let root = self.root.path().display().to_string();
        let normalize = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace(&root, "$ROOT");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: normalize(&output.stdout),
            stderr: normalize(&output.stderr),
        }
    }
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            files.push((relative, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

/// A finished command: exit code, stdout and stderr, shown together in snapshots.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}): {}", self.stdout))
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = format!("exit: {}\n", self.code);
        write!(text, "--- stdout\n{}", self.stdout)?;
        write!(text, "--- stderr\n{}", self.stderr)?;
        f.write_str(&text)
    }
}

/// Asserts a whole command output against a snapshot, hiding commit ids.
#[macro_export]
macro_rules! assert_output {
    ($output:expr) => {
        insta::with_settings!({ filters => vec![(r"\b[0-9a-f]{12}\b", "[COMMIT]"), (r"\b[0-9a-f]{40}\b", "[OID]")] }, {
            insta::assert_snapshot!($output.to_string());
        });
    };
}

/// Finds an external program a test needs, or decides that the test is skipped.
///
/// Panics when it is missing and `GITPRIO_TEST_REQUIRE_TOOLS` is set (as in CI).
pub fn tool(candidates: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = candidates.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("GITPRIO_TEST_REQUIRE_TOOLS").is_none(),
            "none of {candidates:?} is installed, and GITPRIO_TEST_REQUIRE_TOOLS is set"
        );
        eprintln!("note: skipped a check that needs one of {candidates:?} (not installed)");
    }
    found
}

/// Waits until `check` holds, for at most `limit` (generous: a loaded machine is slow, and
/// a test waits on what it needs to have happened, never on a fixed sleep).
pub fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGINT (Ctrl-C) to `child`.
pub fn interrupt(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Writes an executable script `bin/<name>`; returns its path.
pub fn script(env: &TestEnv, name: &str, body: &str) -> String {
    let path = env.path(&format!("bin/{name}"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// A `gitprio run` started in the background, killed when the test ends, however it ends.
pub struct Running(pub Option<Child>);

impl Running {
    /// Waits for the run to end by itself, for at most 60 seconds.
    pub fn finish(self) -> std::process::Output {
        self.finish_within(Duration::from_secs(60))
    }

    /// Waits for the run to end by itself, for at most `limit`. Its output is read while it
    /// runs: a run that fills a pipe nobody reads (64 KiB) would block and never end.
    pub fn finish_within(mut self, limit: Duration) -> std::process::Output {
        let child = self.0.take().unwrap();
        let pid = child.id().to_string();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(child.wait_with_output()));
        if let Ok(output) = finished.recv_timeout(limit) {
            return output.unwrap();
        }
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        panic!(
            "the run did not end within {limit:?}: {:?}",
            finished.recv_timeout(Duration::from_secs(30))
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
