//! The webhook event that started the workflow (`GITHUB_EVENT_PATH`): which pull request, which commits.
//!
//! Only the few fields gitprio needs are read, each optional, so a payload from a
//! GitHub Enterprise Server that lacks a newer field still parses; the rest of the
//! (large) payload is ignored.

use anyhow::{Context as _, anyhow};
use serde::Deserialize;

/// A pull request event (`pull_request` or `pull_request_target`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    /// `opened`, `synchronize`, `reopened`, `closed`, ...
    pub action: String,
    /// Whether a `closed` pull request was merged.
    pub merged: bool,
    pub base_sha: String,
    pub head_sha: String,
    /// The base repository, `owner/name`: where the comment goes.
    pub repository: String,
    /// The repository the head branch lives in; another one for a fork.
    pub head_repository: Option<String>,
}

impl PullRequest {
    /// Returns whether the pull request was closed without being merged.
    pub fn closed_unmerged(&self) -> bool {
        self.action == "closed" && !self.merged
    }

    /// Returns whether the pull request was just merged.
    pub fn merged(&self) -> bool {
        self.action == "closed" && self.merged
    }

    /// Returns whether the head branch lives in another repository (a fork).
    pub fn is_from_fork(&self) -> bool {
        self.head_repository
            .as_ref()
            .is_some_and(|head| !head.eq_ignore_ascii_case(&self.repository))
    }
}

/// What started the workflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    PullRequest(PullRequest),
    /// A `workflow_run` event: the second half of the fork-safe setup posts from it.
    WorkflowRun {
        head_sha: String,
    },
    /// Any other event (`push`, `schedule`, ...): there is no pull request to summarize.
    Other,
}

#[derive(Debug, Deserialize)]
struct Payload {
    action: Option<String>,
    number: Option<u64>,
    pull_request: Option<PullRequestPayload>,
    repository: Option<RepositoryPayload>,
    workflow_run: Option<WorkflowRunPayload>,
}

#[derive(Debug, Deserialize)]
struct PullRequestPayload {
    number: Option<u64>,
    #[serde(default)]
    merged: Option<bool>,
    base: BranchPayload,
    head: BranchPayload,
}

#[derive(Debug, Deserialize)]
struct BranchPayload {
    sha: String,
    repo: Option<RepositoryPayload>,
}

#[derive(Debug, Deserialize)]
struct RepositoryPayload {
    full_name: String,
}

#[derive(Debug, Deserialize)]
struct WorkflowRunPayload {
    head_sha: String,
}

/// Parses an event payload; `repository` (`GITHUB_REPOSITORY`) is used when the payload names none.
pub fn parse(text: &str, repository: Option<&str>) -> anyhow::Result<Event> {
    let payload: Payload = serde_json::from_str(text).context("the event is not valid JSON")?;
    if let Some(pull_request) = payload.pull_request {
        let number = payload
            .number
            .or(pull_request.number)
            .ok_or_else(|| anyhow!("the pull request event has no `number`"))?;
        let repository = payload
            .repository
            .map(|repository| repository.full_name)
            .or_else(|| pull_request.base.repo.map(|repo| repo.full_name))
            .or_else(|| repository.map(str::to_owned))
            .ok_or_else(|| {
                anyhow!("the event names no repository and GITHUB_REPOSITORY is not set")
            })?;
        return Ok(Event::PullRequest(PullRequest {
            number,
            action: payload.action.unwrap_or_default(),
            merged: pull_request.merged.unwrap_or(false),
            base_sha: pull_request.base.sha,
            head_sha: pull_request.head.sha,
            repository,
            head_repository: pull_request.head.repo.map(|repo| repo.full_name),
        }));
    }
    if let Some(run) = payload.workflow_run {
        return Ok(Event::WorkflowRun {
            head_sha: run.head_sha,
        });
    }
    Ok(Event::Other)
}

/// Splits `owner/name`.
pub fn split_repository(full_name: &str) -> anyhow::Result<(&str, &str)> {
    full_name
        .split_once('/')
        .filter(|(owner, name)| !owner.is_empty() && !name.is_empty() && !name.contains('/'))
        .ok_or_else(|| anyhow!("`{full_name}` is not a repository name like `owner/name`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_request_event_gives_number_commits_and_repositories() {
        let text = r#"{
            "action": "closed",
            "number": 42,
            "pull_request": {
                "number": 42,
                "merged": true,
                "base": {"ref": "main", "sha": "aaa", "repo": {"full_name": "acme/shop"}},
                "head": {"ref": "fix", "sha": "bbb", "repo": {"full_name": "fork/shop"}}
            },
            "repository": {"full_name": "acme/shop"}
        }"#;
        let Event::PullRequest(pull_request) = parse(text, None).unwrap() else {
            panic!("not a pull request");
        };
        assert_eq!(pull_request.number, 42);
        assert!(pull_request.merged());
        assert!(!pull_request.closed_unmerged());
        assert!(pull_request.is_from_fork());
        assert_eq!(
            (
                pull_request.base_sha.as_str(),
                pull_request.head_sha.as_str()
            ),
            ("aaa", "bbb")
        );
    }

    #[test]
    fn other_events_and_bad_payloads() {
        assert_eq!(
            parse(r#"{"workflow_run": {"head_sha": "ccc"}}"#, None).unwrap(),
            Event::WorkflowRun {
                head_sha: "ccc".to_owned()
            }
        );
        assert_eq!(
            parse(r#"{"ref": "refs/heads/main"}"#, None).unwrap(),
            Event::Other
        );
        assert!(parse("not json", None).is_err());
        let no_repository =
            r#"{"number": 1, "pull_request": {"base": {"sha": "a"}, "head": {"sha": "b"}}}"#;
        assert!(parse(no_repository, None).is_err());
        let Event::PullRequest(pull_request) = parse(no_repository, Some("acme/shop")).unwrap()
        else {
            panic!("not a pull request");
        };
        assert_eq!(pull_request.repository, "acme/shop");
        assert_eq!(split_repository("acme/shop").unwrap(), ("acme", "shop"));
        assert!(split_repository("acme").is_err());
        assert!(split_repository("a/b/c").is_err());
    }
}
