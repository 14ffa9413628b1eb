//! Bundles built from real commits: order, sections, dedup, budget, determinism and link safety.

use std::cell::RefCell;
use std::io::Write as _;
use std::process::{Command, Stdio};

use gix::ObjectId;

use super::*;
use crate::config::TokenCount;
use crate::git::Repository;

/// A repository with one commit made of `files` (path, bytes) and `symlinks` (path, target).
struct Fixture {
    _directory: tempfile::TempDir,
    repo: Repository,
    commit: ObjectId,
}

impl Fixture {
    fn new(files: &[(&str, &[u8])], symlinks: &[(&str, &str)]) -> Fixture {
        let directory = tempfile::tempdir().unwrap();
        let git = |args: &[&str], input: Option<&[u8]>| {
            let mut child = Command::new("git")
                .current_dir(directory.path())
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.unwrap_or_default())
                .unwrap();
            assert!(child.wait().unwrap().success(), "git {args:?} failed");
        };
        git(&["init", "--quiet", "--initial-branch=main"], None);
        let mut stream =
            b"commit refs/heads/main\ncommitter T <t@example.com> 1700000000 +0000\ndata 2\nx\n"
                .to_vec();
        let entries = files
            .iter()
            .map(|(path, bytes)| ("100644", *path, *bytes))
            .chain(
                symlinks
                    .iter()
                    .map(|(path, target)| ("120000", *path, target.as_bytes())),
            );
        for (mode, path, bytes) in entries {
            stream.extend_from_slice(
                format!("M {mode} inline {path}\ndata {}\n", bytes.len()).as_bytes(),
            );
            stream.extend_from_slice(bytes);
            stream.push(b'\n');
        }
        git(&["fast-import", "--quiet"], Some(&stream));
        let repo = Repository::discover(directory.path()).unwrap();
        let commit = repo.reference_commit("refs/heads/main").unwrap().unwrap();
        Fixture {
            _directory: directory,
            repo,
            commit,
        }
    }

    fn files(&self) -> CommitFiles<'_> {
        CommitFiles::new(&self.repo, self.commit)
    }

    fn task(&self, path: &str) -> Task {
        let bytes = self.files().read(path).unwrap();
        parse_task(path, &bytes).task.unwrap()
    }

    fn bundle(&self, config: &Config, task: &str, options: Options) -> Bundle {
        build(&self.files(), config, &self.task(task), options).unwrap()
    }
}

fn config(context: &[&str]) -> Config {
    Config {
        context: context.iter().map(|entry| (*entry).to_owned()).collect(),
        ..Config::default()
    }
}

const EVERYTHING: Options = Options {
    depth: 1,
    budget: None,
};

fn labels(bundle: &Bundle) -> Vec<String> {
    bundle
        .parts
        .iter()
        .map(|part| format!("{:?} {} d{}", part.origin, part.label(), part.depth))
        .collect()
}

fn notes(bundle: &Bundle) -> Vec<String> {
    bundle.notes.iter().map(ToString::to_string).collect()
}

const API: &str = "# API\n\nIntro.\n\n## Errors\n\nShape: see [sessions](architecture.md#sessions).\n\n### Codes\n\n`429` too many.\n\n## Invoices\n\nCents.\n";
const ARCHITECTURE: &str = "# Architecture\n\n## Sessions\n\nCookies; errors in [the API](api.md#errors).\n\n## Rate limiting\n\nFixed window; see [ADR 3](adr/0003-window.md) and [RFC 6585](https://www.rfc-editor.org/rfc/rfc6585).\n";
const ADR: &str =
    "# ADR 3: fixed window\n\nChosen over a token bucket, see [the code](../../src/limit.rs).\n";
const CONVENTIONS: &str = "# Conventions\n\nErrors follow [the API](docs/api.md#errors).\n";
const TASK: &str = "---\ntitle: Rate-limit logins\npriority: p0\ntype: bug\nowns: [src/limit.rs]\ncontext:\n  - docs/architecture.md#rate-limiting\n  - docs/api.md#errors\nacceptance: [cargo test]\nbudget: 200k\n---\nCount failures as in [Rate limiting](../docs/architecture.md#rate-limiting),\nanswer with [the error shape](../docs/api.md#errors), and mind [invoices](../docs/api.md#invoices).\n";

fn example() -> Fixture {
    Fixture::new(
        &[
            ("CONVENTIONS.md", CONVENTIONS.as_bytes()),
            ("docs/api.md", API.as_bytes()),
            ("docs/architecture.md", ARCHITECTURE.as_bytes()),
            ("docs/adr/0003-window.md", ADR.as_bytes()),
            ("src/limit.rs", b"pub fn limit() {}\n"),
            (".tasks/limit.md", TASK.as_bytes()),
            (".tasks/config.yaml", b"context:\n  - CONVENTIONS.md\n"),
        ],
        &[],
    )
}

#[test]
fn project_context_comes_first_then_task_documents_then_the_task() {
    let fixture = example();
    let bundle = fixture.bundle(&config(&["CONVENTIONS.md"]), ".tasks/limit.md", EVERYTHING);
    assert_eq!(
        labels(&bundle),
        [
            "Project CONVENTIONS.md d0",
            "Project docs/api.md#errors d1",
            "TaskContext docs/architecture.md#rate-limiting d0",
            "TaskBody docs/api.md#invoices d0",
            "TaskContext docs/adr/0003-window.md d1",
            "Task .tasks/limit.md d0",
        ]
    );
    let errors = &bundle.parts[1];
    assert_eq!(
        errors.content,
        "## Errors\n\nShape: see [sessions](architecture.md#sessions).\n\n### Codes\n\n`429` too many.\n"
    );
    // The task names `docs/api.md#errors` twice; the project context has it already.
    let mentions: Vec<&str> = errors
        .mentions
        .iter()
        .map(|mention| mention.at.as_str())
        .collect();
    assert_eq!(
        mentions,
        [
            "CONVENTIONS.md:3:15",
            ".tasks/limit.md:8:5",
            ".tasks/limit.md:13:13"
        ]
    );
    assert_eq!(
        bundle.external,
        [External {
            url: "https://www.rfc-editor.org/rfc/rfc6585".to_owned(),
            at: "docs/architecture.md:9:51".to_owned(),
        }]
    );
    assert!(bundle.notes.is_empty(), "{:?}", notes(&bundle));
    let task = bundle.parts.last().unwrap();
    assert!(
        task.content
            .starts_with("# Task `limit`: Rate-limit logins\n")
    );
    assert!(
        task.content
            .contains("- owns (the only files this task may change):\n  - `src/limit.rs`\n")
    );
    assert!(
        task.content
            .ends_with("mind [invoices](../docs/api.md#invoices).\n")
    );
    assert_eq!(
        bundle.tokens,
        bundle.parts.iter().map(|part| part.tokens).sum::<u64>()
    );
}

#[test]
fn links_resolve_relative_to_the_file_that_holds_them() {
    let fixture = example();
    let bundle = fixture.bundle(
        &Config::default(),
        ".tasks/limit.md",
        Options {
            depth: 2,
            budget: None,
        },
    );
    // `adr/0003-window.md` from docs/, then `../../src/limit.rs` from docs/adr/.
    let labels = labels(&bundle);
    assert!(
        labels.contains(&"TaskContext docs/adr/0003-window.md d1".to_owned()),
        "{labels:?}"
    );
    assert!(
        labels.contains(&"TaskContext src/limit.rs d2".to_owned()),
        "{labels:?}"
    );
    assert!(
        labels.contains(&"TaskContext docs/architecture.md#sessions d1".to_owned()),
        "{labels:?}"
    );
}

#[test]
fn a_document_linked_twice_or_inside_an_included_file_appears_once() {
    let task = "---\ntitle: t\ncontext: [docs/api.md#codes, docs/api.md#errors, docs/api.md]\n---\n[again](../docs/api.md) and [errors](../docs/api.md#errors) and [codes](../docs/api.md#codes)\n";
    let fixture = Fixture::new(
        &[
            ("docs/api.md", API.as_bytes()),
            (".tasks/t.md", task.as_bytes()),
        ],
        &[],
    );
    let bundle = fixture.bundle(
        &Config::default(),
        ".tasks/t.md",
        Options {
            depth: 0,
            budget: None,
        },
    );
    assert_eq!(
        labels(&bundle),
        ["TaskContext docs/api.md d0", "Task .tasks/t.md d0"]
    );
    let whole = &bundle.parts[0];
    assert_eq!(whole.content, API);
    let links: Vec<&str> = whole
        .mentions
        .iter()
        .map(|mention| mention.link.as_str())
        .collect();
    assert_eq!(
        links,
        [
            "docs/api.md",
            "../docs/api.md",
            "docs/api.md#codes",
            "../docs/api.md#codes",
            "docs/api.md#errors",
            "../docs/api.md#errors",
        ]
    );
    assert_eq!(bundle.tokens, whole.tokens + bundle.parts[1].tokens);
}

#[test]
fn a_nested_section_folds_into_its_enclosing_section() {
    let task = "---\ntitle: t\ncontext: [docs/api.md#codes, docs/api.md#errors]\n---\n";
    let fixture = Fixture::new(
        &[
            ("docs/api.md", API.as_bytes()),
            (".tasks/t.md", task.as_bytes()),
        ],
        &[],
    );
    let bundle = fixture.bundle(
        &Config::default(),
        ".tasks/t.md",
        Options {
            depth: 0,
            budget: None,
        },
    );
    assert_eq!(
        labels(&bundle),
        ["TaskContext docs/api.md#errors d0", "Task .tasks/t.md d0"]
    );
    assert_eq!(bundle.parts[0].mentions.len(), 2);
}

#[test]
fn over_budget_the_deepest_links_go_first_then_body_links_never_the_task() {
    let fixture = example();
    let config = config(&["CONVENTIONS.md"]);
    let full = fixture.bundle(&config, ".tasks/limit.md", EVERYTHING);
    let token_of = |label: &str| {
        full.parts
            .iter()
            .find(|part| part.label() == label)
            .unwrap_or_else(|| panic!("no {label}"))
            .tokens
    };
    let adr = token_of("docs/adr/0003-window.md");
    let invoices = token_of("docs/api.md#invoices");
    let dropped_labels = |bundle: &Bundle| -> Vec<String> {
        bundle
            .dropped
            .iter()
            .map(|dropped| match &dropped.section {
                Some(section) => format!("{}#{section}", dropped.path),
                None => dropped.path.clone(),
            })
            .collect()
    };

    let budget = |tokens: u64| Options {
        depth: 1,
        budget: Some(tokens),
    };
    let just_fits = fixture.bundle(&config, ".tasks/limit.md", budget(full.tokens));
    assert!(just_fits.dropped.is_empty());

    let one_less = fixture.bundle(&config, ".tasks/limit.md", budget(full.tokens - 1));
    assert_eq!(dropped_labels(&one_less), ["docs/adr/0003-window.md"]);
    assert_eq!(one_less.tokens, full.tokens - adr);
    assert_eq!(one_less.dropped[0].bytes, u64::try_from(ADR.len()).unwrap());

    // The ADR (depth 1), then the body link. The project's `docs/api.md#errors` is linked at
    // depth 1 from CONVENTIONS.md, but the task names it itself, so it ranks as the task's own.
    let tighter = fixture.bundle(&config, ".tasks/limit.md", budget(full.tokens - adr - 1));
    assert_eq!(
        dropped_labels(&tighter),
        ["docs/api.md#invoices", "docs/adr/0003-window.md"]
    );
    assert_eq!(tighter.tokens, full.tokens - adr - invoices);

    let nothing = fixture.bundle(&config, ".tasks/limit.md", budget(1));
    assert_eq!(labels(&nothing), ["Task .tasks/limit.md d0"]);
    assert_eq!(nothing.dropped.len(), 5);
    assert!(nothing.tokens > 1, "the task stays even over the budget");
    let markdown = nothing.to_markdown(&tail());
    assert!(
        markdown.contains("Left out to stay within the context budget of 1 tokens"),
        "{markdown}"
    );
    assert!(
        markdown.contains(&format!(
            "- `docs/adr/0003-window.md` ({} bytes, ~{adr} tokens)",
            ADR.len()
        )),
        "{markdown}"
    );
}

#[test]
fn dropping_a_whole_file_brings_back_the_sections_it_covered() {
    let task =
        "---\ntitle: t\ncontext: [docs/api.md#invoices]\n---\nAll of [the API](../docs/api.md).\n";
    let fixture = Fixture::new(
        &[
            ("docs/api.md", API.as_bytes()),
            (".tasks/t.md", task.as_bytes()),
        ],
        &[],
    );
    let options = |budget| Options { depth: 0, budget };
    let full = fixture.bundle(&Config::default(), ".tasks/t.md", options(None));
    assert_eq!(
        labels(&full),
        ["TaskBody docs/api.md d0", "Task .tasks/t.md d0"]
    );
    let trimmed = fixture.bundle(
        &Config::default(),
        ".tasks/t.md",
        options(Some(full.tokens - 1)),
    );
    assert_eq!(
        labels(&trimmed),
        ["TaskContext docs/api.md#invoices d0", "Task .tasks/t.md d0"]
    );
    assert_eq!(trimmed.dropped.len(), 1);
    assert_eq!(trimmed.dropped[0].path, "docs/api.md");
}

fn tail() -> Tail<'static> {
    Tail {
        source: "refs/heads/main (0123456789ab)".to_owned(),
        lease: None,
        commands: Vec::new(),
    }
}

#[test]
fn the_same_inputs_give_the_same_bytes() {
    let fixture = example();
    let config = config(&["CONVENTIONS.md"]);
    let first = fixture.bundle(&config, ".tasks/limit.md", EVERYTHING);
    let second = example().bundle(&config, ".tasks/limit.md", EVERYTHING);
    assert_eq!(first, second);
    assert_eq!(first.to_markdown(&tail()), second.to_markdown(&tail()));
    assert_eq!(
        serde_json::to_string(&first).unwrap(),
        serde_json::to_string(&second).unwrap()
    );
}

#[test]
fn two_tasks_share_the_project_prefix() {
    let other = "---\ntitle: Invoices\ncontext: docs/api.md#invoices\n---\nFix [rounding](../docs/api.md#invoices).\n";
    let fixture = Fixture::new(
        &[
            ("CONVENTIONS.md", CONVENTIONS.as_bytes()),
            ("docs/api.md", API.as_bytes()),
            ("docs/architecture.md", ARCHITECTURE.as_bytes()),
            ("docs/adr/0003-window.md", ADR.as_bytes()),
            (".tasks/limit.md", TASK.as_bytes()),
            (".tasks/other.md", other.as_bytes()),
        ],
        &[],
    );
    let config = config(&["CONVENTIONS.md"]);
    let first = fixture
        .bundle(&config, ".tasks/limit.md", EVERYTHING)
        .to_markdown(&tail());
    let second = fixture
        .bundle(&config, ".tasks/other.md", EVERYTHING)
        .to_markdown(&tail());
    let shared = first
        .bytes()
        .zip(second.bytes())
        .take_while(|(left, right)| left == right)
        .count();
    let project_end = first.find("# Task context").unwrap();
    assert!(
        shared > project_end,
        "shared {shared} bytes, project context ends at {project_end}"
    );
    assert_eq!(&first[..project_end], &second[..project_end]);
}

#[test]
fn link_cycles_end() {
    let fixture = Fixture::new(
        &[
            (
                "a.md",
                b"# A\n[b](b.md) and [self](#a) and [c](sub/c.md#c)\n",
            ),
            ("b.md", b"# B\n[a](a.md#a)\n"),
            ("sub/c.md", b"# C\n[a](../a.md) [b](../b.md#b)\n"),
            (".tasks/t.md", b"---\ntitle: t\ncontext: a.md\n---\n"),
        ],
        &[],
    );
    let bundle = fixture.bundle(
        &Config::default(),
        ".tasks/t.md",
        Options {
            depth: 50,
            budget: None,
        },
    );
    assert_eq!(
        labels(&bundle),
        [
            "TaskContext a.md d0",
            "TaskContext b.md d1",
            "TaskContext sub/c.md#c d1",
            "Task .tasks/t.md d0"
        ]
    );
}

/// Records every path read, to show that refused links read nothing.
struct Spy<'a> {
    inner: CommitFiles<'a>,
    reads: RefCell<Vec<String>>,
}

impl Files for Spy<'_> {
    fn kind(&self, path: &str) -> Result<Option<EntryKind>, ContextError> {
        self.inner.kind(path)
    }
    fn size(&self, path: &str) -> Result<u64, ContextError> {
        self.inner.size(path)
    }
    fn read(&self, path: &str) -> Result<Vec<u8>, ContextError> {
        self.reads.borrow_mut().push(path.to_owned());
        self.inner.read(path)
    }
    fn list(&self, path: &str) -> Result<Vec<(String, EntryKind)>, ContextError> {
        self.inner.list(path)
    }
}

#[test]
fn unsafe_links_are_refused_with_a_located_warning_and_never_read() {
    let body = "\
[passwd](../../etc/passwd)
[rooted](/../etc/passwd)
[url](file:///etc/passwd)
[drive](C:/Windows/win.ini)
[git](../.git/config)
[encoded](%2e%2e/%2e%2e/etc/passwd)
[link out](../docs/passwd.md)
[link up](../docs/up.md)
[dir out](../docs/outside/secret.md)
[into git](../docs/git-link/config)
[loop](../docs/loop-a.md)
";
    let task = format!("---\ntitle: t\ncontext: [../secrets.md, /etc/passwd]\n---\n{body}");
    let fixture = Fixture::new(
        &[(".tasks/t.md", task.as_bytes()), ("docs/ok.md", b"# ok\n")],
        &[
            ("docs/passwd.md", "/etc/passwd"),
            ("docs/up.md", "../../outside.md"),
            ("docs/outside", "../.."),
            ("docs/git-link", "../.git"),
            ("docs/loop-a.md", "loop-b.md"),
            ("docs/loop-b.md", "loop-a.md"),
        ],
    );
    let spy = Spy {
        inner: fixture.files(),
        reads: RefCell::new(Vec::new()),
    };
    let bundle = build(
        &spy,
        &Config::default(),
        &fixture.task(".tasks/t.md"),
        EVERYTHING,
    )
    .unwrap();
    assert_eq!(labels(&bundle), ["Task .tasks/t.md d0"]);
    assert!(
        bundle
            .notes
            .iter()
            .all(|note| note.kind == NoteKind::Refused),
        "{:?}",
        notes(&bundle)
    );
    assert_eq!(
        notes(&bundle),
        [
            ".tasks/t.md:3:11: link `../secrets.md` leaves the repository; refused",
            ".tasks/t.md:3:26: link `/etc/passwd` is an absolute path, outside the repository; refused",
            ".tasks/t.md:5:1: link `../../etc/passwd` leaves the repository; refused",
            ".tasks/t.md:6:1: link `/../etc/passwd` leaves the repository; refused",
            ".tasks/t.md:7:1: link `file:///etc/passwd` is an absolute path, outside the repository; refused",
            ".tasks/t.md:8:1: link `C:/Windows/win.ini` is an absolute path, outside the repository; refused",
            ".tasks/t.md:9:1: link `../.git/config` points into `.git/`, git's internals; refused",
            ".tasks/t.md:10:1: link `%2e%2e/%2e%2e/etc/passwd` leaves the repository; refused",
            ".tasks/t.md:11:1: link `../docs/passwd.md` goes through symlink `docs/passwd.md` -> `/etc/passwd`, which points outside the repository; refused",
            ".tasks/t.md:12:1: link `../docs/up.md` goes through symlink `docs/up.md` -> `../../outside.md`, which points outside the repository; refused",
            ".tasks/t.md:13:1: link `../docs/outside/secret.md` goes through symlink `docs/outside` -> `../..`, which points outside the repository; refused",
            ".tasks/t.md:14:1: link `../docs/git-link/config` goes through symlink `docs/git-link` -> `../.git`, which points into `.git/`; refused",
            ".tasks/t.md:15:1: link `../docs/loop-a.md` goes through more than 16 symlinks (a symlink cycle?); refused",
        ]
    );
    // Only the task file and symlink blobs (their target paths) were read.
    let reads = spy.reads.borrow();
    assert!(
        reads
            .iter()
            .all(|path| path == ".tasks/t.md" || path.starts_with("docs/")),
        "{reads:?}"
    );
    assert!(!reads.iter().any(|path| path == "docs/ok.md"));
}

#[test]
fn symlinks_inside_the_repository_are_followed() {
    let fixture = Fixture::new(
        &[
            ("docs/real/guide.md", b"# Guide\n## Setup\nrun it\n"),
            (".tasks/t.md", b"---\ntitle: t\ncontext: [docs/latest.md#setup, docs/current/guide.md, docs/alias]\n---\n"),
        ],
        &[
            ("docs/latest.md", "real/guide.md"),
            ("docs/current", "real"),
            ("docs/alias", "./real/"),
        ],
    );
    let bundle = fixture.bundle(&Config::default(), ".tasks/t.md", EVERYTHING);
    assert_eq!(
        labels(&bundle),
        [
            "TaskContext docs/real/guide.md d0",
            "TaskContext docs/real/ d0",
            "Task .tasks/t.md d0"
        ]
    );
    assert_eq!(bundle.parts[1].content, "docs/real/guide.md (24 bytes)\n");
    assert!(bundle.notes.is_empty(), "{:?}", notes(&bundle));
}

#[test]
fn binary_oversize_and_invalid_utf8_files_are_skipped_with_a_note() {
    let huge = vec![b'a'; usize::try_from(MAX_DOCUMENT_BYTES).unwrap() + 1];
    let fixture = Fixture::new(
        &[
            ("logo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            ("huge.md", &huge),
            ("latin1.md", b"caf\xe9\n"),
            ("ok.md", b"fine\n"),
            (
                ".tasks/t.md",
                b"---\ntitle: t\ncontext: [logo.png, huge.md, latin1.md, ok.md]\n---\n",
            ),
        ],
        &[],
    );
    let bundle = fixture.bundle(&Config::default(), ".tasks/t.md", EVERYTHING);
    assert_eq!(
        labels(&bundle),
        ["TaskContext ok.md d0", "Task .tasks/t.md d0"]
    );
    assert!(
        bundle
            .notes
            .iter()
            .all(|note| note.kind == NoteKind::Skipped)
    );
    assert_eq!(
        notes(&bundle),
        [
            ".tasks/t.md:3:11: link `logo.png`: `logo.png` is a binary file; skipped",
            ".tasks/t.md:3:21: link `huge.md`: `huge.md` is 1048577 bytes, over the 1048576-byte limit for a context document; skipped",
            ".tasks/t.md:3:30: link `latin1.md`: `latin1.md` is not valid UTF-8; skipped",
        ]
    );
}

#[test]
fn missing_files_and_headings_are_located_warnings() {
    let fixture = Fixture::new(
        &[
            ("docs/api.md", API.as_bytes()),
            ("src/lib.rs", b"one\ntwo\nthree\n"),
            (
                ".tasks/t.md",
                b"---\ntitle: t\ncontext:\n  - docs/gone.md\n  - docs/api.md#errrors\n---\nSee [lines](../src/lib.rs#L2-L3), [far](../src/lib.rs#L9)\nand [billing](../docs/api.md#billing), [rooted](/etc/passwd), [api](/docs/api.md#invoices).\n",
            ),
        ],
        &[],
    );
    let bundle = fixture.bundle(&Config::default(), ".tasks/t.md", EVERYTHING);
    assert_eq!(
        labels(&bundle),
        [
            "TaskBody src/lib.rs#L2-L3 d0",
            "TaskBody docs/api.md#invoices d0",
            "Task .tasks/t.md d0"
        ]
    );
    assert_eq!(bundle.parts[0].content, "two\nthree\n");
    assert_eq!(
        notes(&bundle),
        [
            ".tasks/t.md:4:5: link `docs/gone.md`: `docs/gone.md` does not exist in the repository",
            ".tasks/t.md:5:5: link `docs/api.md#errrors`: `docs/api.md` has no heading `#errrors`; did you mean `#errors`?",
            ".tasks/t.md:7:35: link `../src/lib.rs#L9`: `src/lib.rs` is not markdown, so `#L9` can only be a line anchor like `#L10-L20`, and it is not one within the file",
            ".tasks/t.md:8:5: link `../docs/api.md#billing`: `docs/api.md` has no heading `#billing`",
            ".tasks/t.md:8:40: link `/etc/passwd`: `etc/passwd` does not exist in the repository",
        ]
    );
    let markdown = bundle.to_markdown(&tail());
    assert!(
        markdown.contains("Warnings:\n\n- .tasks/t.md:4:5: link `docs/gone.md`"),
        "{markdown}"
    );
}

#[test]
fn directories_are_listed_and_urls_listed_not_fetched() {
    let fixture = Fixture::new(
        &[
            ("src/auth/login.rs", b"fn login() {}\n"),
            ("src/auth/session/store.rs", b"fn store() {}\n"),
            (
                ".tasks/t.md",
                b"---\ntitle: t\ncontext: src/auth/\n---\nSee <https://example.com/spec> and [spec](https://example.com/spec) and [mail](mailto:ops@example.com).\n",
            ),
        ],
        &[("src/auth/current", "session")],
    );
    let bundle = fixture.bundle(&Config::default(), ".tasks/t.md", EVERYTHING);
    assert_eq!(bundle.parts[0].kind, PartKind::Listing);
    assert_eq!(
        bundle.parts[0].content,
        "src/auth/current (symlink)\nsrc/auth/login.rs (14 bytes)\nsrc/auth/session/store.rs (14 bytes)\n"
    );
    let urls: Vec<&str> = bundle
        .external
        .iter()
        .map(|external| external.url.as_str())
        .collect();
    assert_eq!(urls, ["https://example.com/spec", "mailto:ops@example.com"]);
    let markdown = bundle.to_markdown(&tail());
    assert!(
        markdown.contains("## src/auth/ (directory listing)\n\n```text\n"),
        "{markdown}"
    );
    assert!(
        markdown.contains("- <https://example.com/spec> (linked at .tasks/t.md:5:5)"),
        "{markdown}"
    );
}

#[test]
fn depth_zero_takes_only_the_documents_named_directly() {
    let fixture = example();
    let bundle = fixture.bundle(
        &config(&["CONVENTIONS.md"]),
        ".tasks/limit.md",
        Options {
            depth: 0,
            budget: None,
        },
    );
    assert_eq!(
        labels(&bundle),
        [
            "Project CONVENTIONS.md d0",
            "TaskContext docs/architecture.md#rate-limiting d0",
            "TaskContext docs/api.md#errors d0",
            "TaskBody docs/api.md#invoices d0",
            "Task .tasks/limit.md d0",
        ]
    );
}

#[test]
fn the_markdown_fences_documents_and_ends_with_the_lease() {
    let fixture = Fixture::new(
        &[
            (
                "docs/fenced.md",
                b"# Fenced\n\n```sh\nmake\n```\n\n````text\nnested\n````\n",
            ),
            (
                ".tasks/t.md",
                b"---\ntitle: Fence me\ncontext: docs/fenced.md\n---\nBody.\n",
            ),
            (".tasks/config.yaml", b"context_budget: 60k\n"),
        ],
        &[],
    );
    let config = Config {
        context_budget: Some(TokenCount(60_000)),
        ..Config::default()
    };
    let bundle = fixture.bundle(&config, ".tasks/t.md", Options::from_config(&config));
    assert_eq!(bundle.budget, Some(60_000));
    let tail = Tail {
        source: "refs/heads/main (0123456789ab)".to_owned(),
        lease: None,
        commands: vec![ReportCommand {
            command: "gitprio done t".to_owned(),
            purpose: "finish".to_owned(),
        }],
    };
    assert_eq!(
        bundle.to_markdown(&tail),
        "\
# Task context

Documents the task below links to.

## docs/fenced.md

`````markdown
# Fenced

```sh
make
```

````text
nested
````
`````

# Task `t`: Fence me

- file: `.tasks/t.md`
- priority p2, value 1
- context: `docs/fenced.md`

Body.

# Lease

- queue: refs/heads/main (0123456789ab)
- lease: none; claim a task before working on it

Report with exactly these commands:

- `gitprio done t`: finish
"
    );
}
