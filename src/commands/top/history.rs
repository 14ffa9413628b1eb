//! A task's lease history for the detail view, and the records this gitprio cannot read.
//!
//! A fleet that mixes versions writes records an older gitprio cannot parse (a newer event)
//! under ones it can: the detail view shows the ones it reads, and the live screen says
//! once which it left out and that upgrading gitprio would show them.

use std::collections::BTreeSet;

use anyhow::Context as _;
use gitprio_core::TaskId;
use gitprio_core::lease::{BadLease, LeaseRecord, LeaseStore, RecordError};

/// How many lease changes the detail view reads.
const HISTORY_DEPTH: &str = "40";

/// The lease records of one task, newest first, as last fetched.
#[derive(Debug, Default)]
pub struct History {
    pub records: Vec<LeaseRecord>,
    /// The commits among them this gitprio cannot read, newest first, with why.
    pub unreadable: Vec<(String, RecordError)>,
}

/// Reads the lease history of `id`, as last fetched.
pub fn read(store: &LeaseStore<'_>, id: &TaskId) -> anyhow::Result<History> {
    let reference = store.local_ref(id);
    if store.repo().reference_commit(&reference)?.is_none() {
        return Ok(History::default());
    }
    let output = store.repo().git(&[
        "log",
        "--first-parent",
        "-n",
        HISTORY_DEPTH,
        "--format=%H%n%B%x00",
        &reference,
    ])?;
    anyhow::ensure!(
        output.status.success(),
        "cannot read the history of `{reference}`: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let text = String::from_utf8(output.stdout).context("the lease history is not UTF-8")?;
    let mut history = History::default();
    for entry in text.split('\0') {
        let Some((oid, message)) = entry.trim_start().split_once('\n') else {
            continue;
        };
        match LeaseRecord::from_message(message) {
            Ok(record) => history.records.push(record),
            Err(error) => history.unreadable.push((oid.to_owned(), error)),
        }
    }
    Ok(history)
}

/// The lease records the live screen has warned about, so that reading them again (a
/// detail every time it is opened, the leases every refresh) does not repeat the warning.
#[derive(Debug, Default)]
pub struct Warned(BTreeSet<String>);

impl Warned {
    /// The warning about the records of `history` of `id` left out, unless it named every
    /// one of them before.
    pub fn about(&mut self, id: &TaskId, history: &History) -> Option<String> {
        let mut new = false;
        for (oid, _) in &history.unreadable {
            new |= self.0.insert(oid.clone());
        }
        let (oid, error) = history.unreadable.first().filter(|_| new)?;
        let count = history.unreadable.len();
        let advice = if history
            .unreadable
            .iter()
            .any(|(_, error)| error.from_newer_gitprio())
        {
            "upgrade gitprio to see them: a newer one may have written them"
        } else {
            "they are not lease records gitprio wrote"
        };
        Some(format!(
            "the lease history of `{id}` leaves out {count} record{} this gitprio cannot read (commit {oid}: {error}); {advice}",
            if count == 1 { "" } else { "s" }
        ))
    }
}

impl Warned {
    /// The warning about the first lease of `bad` (refs this gitprio cannot read) it has not
    /// named before, saying how many more there are; `None` when it named every one.
    pub fn about_leases(&mut self, bad: &[BadLease]) -> Option<String> {
        let new: Vec<&BadLease> = bad
            .iter()
            .filter(|lease| {
                let key = lease
                    .oid
                    .map_or_else(|| lease.reference.clone(), |oid| oid.to_string());
                self.0.insert(key)
            })
            .collect();
        let first = new.first()?;
        Some(match new.len() {
            1 => first.warning(),
            count => format!(
                "{} (and {} more: see `gitprio status`)",
                first.warning(),
                count - 1
            ),
        })
    }

    /// The warning about what of `.tasks/prices.yaml` it cannot read (those models are
    /// costed at their bundled prices), once per problem, saying how many more there are.
    pub fn about_prices(&mut self, problems: &[String]) -> Option<String> {
        let new: Vec<&String> = problems
            .iter()
            .filter(|problem| self.0.insert(format!("prices: {problem}")))
            .collect();
        let first = format!("{} {}", gitprio_core::workspace::PRICES_PATH, new.first()?);
        Some(match new.len() {
            1 => first,
            count => format!("{first} (and {} more)", count - 1),
        })
    }
}

#[cfg(test)]
mod tests {
    use gitprio_core::git::Repository;
    use gitprio_core::lease::{LeaseStore, Mode};

    use super::*;

    /// A lease record of `only` as its commit message, with `event` (one this gitprio may
    /// not know) and `generation`.
    fn message(event: &str, generation: u64) -> String {
        format!(
            "gitprio lease: {event} only by alice (generation {generation}, attempt 1)\n\n{}\n",
            serde_json::json!({
                "task": "only", "state": "held", "event": event, "generation": generation,
                "attempt": 1, "failures": 0,
                "holder": {"agent": "alice", "host": "box", "pid": 7},
                "task_blob": null, "base_commit": null,
                "acquired_at": "2026-11-01T12:00:00Z", "renewed_at": "2026-11-01T12:00:00Z",
                "expires_at": "2026-11-01T12:30:00Z", "ttl_seconds": 1800,
                "nonce": format!("n{generation}"),
            })
        )
    }

    fn git(directory: &std::path::Path, args: &[&str]) -> String {
        let output = std::process::Command::new("git")
            .arg("-C")
            .arg(directory)
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    #[test]
    fn a_record_it_cannot_read_is_left_out_and_warned_about_once() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path();
        git(path, &["init", "--quiet"]);
        let tree = git(path, &["mktree"]);
        let mut parent: Option<String> = None;
        let mut oids = Vec::new();
        // A claim, then a newer gitprio's checkpoint, then its renewal on top.
        for (event, generation) in [("claim", 1), ("checkpoint", 1), ("renew", 1)] {
            let text = message(event, generation);
            let mut args = vec!["commit-tree", tree.as_str(), "-m", text.as_str()];
            if let Some(parent) = &parent {
                args.extend(["-p", parent.as_str()]);
            }
            let oid = git(path, &args);
            oids.push(oid.clone());
            parent = Some(oid);
        }
        git(path, &["update-ref", "refs/gitprio/leases/only", &oids[2]]);
        let repo = Repository::discover(path).unwrap();
        let store = LeaseStore::new(&repo, Mode::Local);
        let id = TaskId::new("only").unwrap();

        let history = read(&store, &id).unwrap();
        let events: Vec<String> = history
            .records
            .iter()
            .map(|record| format!("{:?}", record.event))
            .collect();
        assert_eq!(events, ["Renew", "Claim"]);
        assert_eq!(history.unreadable.len(), 1);
        assert_eq!(history.unreadable[0].0, oids[1]);

        let mut warned = Warned::default();
        let warning = warned.about(&id, &history).expect("a warning");
        assert!(
            warning.starts_with(&format!(
                "the lease history of `only` leaves out 1 record this gitprio cannot read (commit {}: lease record is in a form this gitprio does not know: unknown variant `checkpoint`",
                oids[1]
            )),
            "{warning}"
        );
        assert!(
            warning.ends_with("; upgrade gitprio to see them: a newer one may have written them"),
            "{warning}"
        );
        // Opened again: the same records, no second warning.
        let again = read(&store, &id).unwrap();
        assert_eq!(warned.about(&id, &again), None);
        assert_eq!(warned.about(&id, &History::default()), None);
    }

    #[test]
    fn the_live_screen_names_leases_it_cannot_read_once() {
        let bad = |name: &str| BadLease {
            reference: format!("refs/gitprio/leases/{name}"),
            oid: None,
            problem: "lease record is in a form this gitprio does not know".to_owned(),
            from_newer_gitprio: true,
            advice: gitprio_core::lease::UPGRADE.to_owned(),
        };
        let mut warned = Warned::default();
        let warning = warned.about_leases(&[bad("a"), bad("b")]).unwrap();
        assert!(
            warning.starts_with("lease ref `refs/gitprio/leases/a` is unreadable")
                && warning.contains("upgrade gitprio")
                && warning.ends_with("(and 1 more: see `gitprio status`)"),
            "{warning}"
        );
        assert_eq!(warned.about_leases(&[bad("a"), bad("b")]), None);
        let third = warned.about_leases(&[bad("a"), bad("c")]).unwrap();
        assert!(
            third.starts_with("lease ref `refs/gitprio/leases/c`"),
            "{third}"
        );
    }
}
