//! gitprio reads git's messages, so it works the same when the user's git speaks another language.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Output, TestEnv};
use crate::leases::remote_with_clones;
use crate::usage::SPEND;

const T0: &str = "2026-11-02T09:00:00Z";

/// The C.UTF-8 locale data glibc ships (Debian names it `C.utf8`).
const C_UTF8: [&str; 2] = ["/usr/lib/locale/C.utf8", "/usr/lib/locale/C.UTF-8"];

/// The environment of a user whose git speaks German, or `None` when this machine has no
/// translated git (a failure under `GITPRIO_TEST_REQUIRE_TOOLS`).
///
/// A fresh Debian has git's German messages but no German locale, so the locale is made
/// here: `de_DE.UTF-8` under `LOCPATH`, a link to the C.UTF-8 data. Its name is what makes
/// gettext look for German. The first `git` on `PATH` is one that translates: a git built
/// without gettext ignores the locale.
fn german(env: &TestEnv) -> Option<Vec<(&'static str, OsString)>> {
    let locales = env.path("locales");
    std::fs::create_dir_all(&locales).unwrap();
    if let Some(data) = C_UTF8.iter().map(Path::new).find(|data| data.is_dir()) {
        std::os::unix::fs::symlink(data, locales.join("de_DE.UTF-8")).unwrap();
    }
    let mut german = vec![
        ("LOCPATH", locales.into_os_string()),
        ("LANG", "de_DE.UTF-8".into()),
        ("LC_ALL", "de_DE.UTF-8".into()),
        ("LANGUAGE", "de".into()),
    ];
    let path = std::env::var_os("PATH").unwrap_or_default();
    let candidates = std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]);
    let Some(directory) = candidates
        .filter(|directory| directory.join("git").is_file())
        .find(|directory| translates(env, &directory.join("git"), &german))
    else {
        assert!(
            std::env::var_os("GITPRIO_TEST_REQUIRE_TOOLS").is_none(),
            "no git on PATH or in /usr/bin speaks German in a de_DE.UTF-8 locale made from C.UTF-8 (Debian's git does), and GITPRIO_TEST_REQUIRE_TOOLS is set"
        );
        eprintln!("note: skipped a check that needs a git with translations");
        return None;
    };
    let mut directories = vec![directory];
    directories.extend(std::env::split_paths(&path));
    german.push(("PATH", std::env::join_paths(directories).unwrap()));
    Some(german)
}

/// Returns whether `git` says something else in the `german` environment than in the C locale.
fn translates(env: &TestEnv, git: &Path, german: &[(&'static str, OsString)]) -> bool {
    let outside_any_repository = |locale: &[(&'static str, OsString)]| {
        let mut command = Command::new(git);
        command
            .env_clear()
            .envs(env.environment())
            .env("GIT_CEILING_DIRECTORIES", env.root.path())
            .envs(locale.iter().cloned())
            .current_dir(env.path("home"))
            .args(["rev-parse", "--git-dir"]);
        command.output().map(|output| output.stderr).ok()
    };
    let english = outside_any_repository(&[("LC_ALL", "C".into())]);
    english.is_some() && outside_any_repository(german) != english
}

fn task(title: &str, value: u32) -> String {
    format!("---\ntitle: {title}\ntype: feature\nvalue: {value}\n---\nDo {title}.\n")
}

#[test]
fn leases_and_usage_work_when_git_speaks_german() {
    let env = TestEnv::new();
    let Some(german) = german(&env) else {
        return;
    };
    let files = [("login", "Login", 8), ("spare", "Spare", 2)]
        .map(|(id, title, value)| (format!(".tasks/{id}.md"), task(title, value)));
    remote_with_clones(&env, &files, &["a", "b", "reader"]);
    let in_german = |dir: &str, agent: &str, args: &[&str]| -> Output {
        let mut command = env.command(dir, args);
        command
            .envs(german.iter().cloned())
            .env("GITPRIO_AGENT", agent)
            .env("GITPRIO_NOW", T0);
        env.normalized(&command.output().unwrap())
    };
    let claim = in_german("a", "alice", &["claim", "--json"]);
    assert_eq!(claim.code, 0, "{claim}");
    assert_eq!(claim.json()["task"]["id"], "login", "{claim}");
    // The first usage of a task fetches its ledger ref, which nobody wrote yet.
    let record = in_german("a", "alice", &SPEND);
    assert_eq!(record.code, 0, "{record}");
    assert!(!record.stderr.contains("kept"), "{record}");
    let show = env.run("reader", &["usage", "show", "login", "--json"]);
    assert_eq!(show.json()["runs"][0]["totals"]["output"], 1000, "{show}");
    // A lock file left on the remote is named from git's message.
    std::fs::write(env.path("remote.git/refs/gitprio/leases/spare.lock"), "").unwrap();
    let locked = in_german("b", "bob", &["claim"]);
    assert_eq!(locked.code, 1, "{locked}");
    assert!(
        locked.stderr.contains("spare.lock exists there"),
        "{locked}"
    );
}
