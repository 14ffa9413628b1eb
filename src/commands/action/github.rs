//! The GitHub REST API: the Action's sticky comment per pull request, kept up to date, and
//! the pull requests `gitprio run --open-pr` opens.
//!
//! The comment is found by its hidden [`MARKER`], paging through every comment of
//! the pull request, and only among those written by the token's own user, so a
//! comment someone else wrote (or quoted) with the marker is never touched. Requests
//! that hit a rate limit, a server error or a broken connection are retried with
//! exponential backoff, [`MAX_TRIES`] times at most.

use std::future::Future;
use std::time::Duration;

use octocrab::{Octocrab, Page};
use serde::Deserialize;
use serde_json::json;

use super::summary::MARKER;

/// Tries of one request, the first included.
pub const MAX_TRIES: u32 = 4;

/// The wait before the first retry; it doubles for each next one.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The login the Actions token (`GITHUB_TOKEN`) comments as. `GET /user` is refused
/// to that token ("Resource not accessible by integration"), so it cannot be asked.
pub const ACTIONS_BOT: &str = "github-actions[bot]";

/// How to reach the API.
#[derive(Clone, Debug)]
pub struct ApiSettings {
    /// `GITHUB_API_URL`: `https://api.github.com`, or a GitHub Enterprise Server's `https://host/api/v3`.
    pub api_url: String,
    pub token: String,
    pub owner: String,
    pub repo: String,
    /// The login whose comments are gitprio's; asked with `GET /user` when not given.
    pub author: Option<String>,
}

/// What happened to the comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommentOutcome {
    Created {
        id: u64,
    },
    Updated {
        id: u64,
    },
    Unchanged {
        id: u64,
    },
    /// The pull request completes no task: stale comments were deleted (possibly none).
    Deleted {
        count: usize,
    },
}

/// Why the API could not be used.
#[derive(Debug)]
pub enum ApiError {
    /// The token may not write comments: a fork's read-only token, or a missing permission.
    Forbidden {
        message: String,
    },
    Other(anyhow::Error),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Forbidden { message } => write!(
                f,
                "the token may not comment on the pull request (GitHub said: {message}); give the job `permissions: pull-requests: write`. Pull requests from forks only get a read-only token: see the fork-safe workflow in docs/github-action.md"
            ),
            ApiError::Other(error) => write!(f, "{error:#}"),
        }
    }
}

/// The part of an issue comment gitprio reads.
#[derive(Clone, Debug, Deserialize)]
struct IssueComment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    user: Option<User>,
}

#[derive(Clone, Debug, Deserialize)]
struct User {
    login: String,
}

/// A pull request gitprio opened (or found open).
#[derive(Clone, Debug, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub html_url: String,
}

#[derive(Debug, Deserialize)]
struct PullRequestHead {
    head: HeadCommit,
}

#[derive(Debug, Deserialize)]
struct HeadCommit {
    sha: String,
}

/// A connection to the REST API for one repository.
pub struct GitHub {
    client: Octocrab,
    settings: ApiSettings,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("api_url", &self.settings.api_url)
            .field("owner", &self.settings.owner)
            .field("repo", &self.settings.repo)
            .finish_non_exhaustive()
    }
}

impl GitHub {
    pub fn new(settings: ApiSettings) -> anyhow::Result<GitHub> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // The client's middleware spawns tasks: it must be built inside the runtime.
        let client = runtime.block_on(async {
            Octocrab::builder()
                .base_uri(settings.api_url.as_str())
                .map_err(|error| {
                    anyhow::anyhow!(
                        "GITHUB_API_URL `{}` is not a URL: {error}",
                        settings.api_url
                    )
                })?
                .personal_token(settings.token.clone())
                .set_connect_timeout(Some(Duration::from_secs(10)))
                .set_read_timeout(Some(Duration::from_secs(60)))
                .build()
                .map_err(|error| anyhow::anyhow!("cannot set up the GitHub client: {error}"))
        })?;
        Ok(GitHub {
            client,
            settings,
            runtime,
        })
    }

    /// Creates, updates or (with no body) deletes gitprio's comment on pull request `number`.
    pub fn sync_comment(
        &self,
        number: u64,
        body: Option<&str>,
    ) -> Result<CommentOutcome, ApiError> {
        self.runtime.block_on(self.sync_comment_async(number, body))
    }

    /// Returns the head commit of pull request `number`, as GitHub has it now.
    pub fn pull_request_head(&self, number: u64) -> Result<String, ApiError> {
        let route = format!(
            "/repos/{}/{}/pulls/{number}",
            self.settings.owner, self.settings.repo
        );
        self.runtime.block_on(async {
            let pull: PullRequestHead = retry("read the pull request", || {
                self.client.get(&route, None::<&()>)
            })
            .await?;
            Ok(pull.head.sha)
        })
    }

    /// Opens a pull request from branch `head` into `base`, or returns the one already open
    /// for `head` (a task retried after its branch was pushed).
    pub fn open_pull_request(
        &self,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<PullRequest, ApiError> {
        let route = format!(
            "/repos/{}/{}/pulls",
            self.settings.owner, self.settings.repo
        );
        let payload = json!({ "title": title, "head": head, "base": base, "body": body });
        self.runtime.block_on(async {
            let created = retry("open the pull request", || {
                self.client.post(&route, Some(&payload))
            })
            .await;
            match created {
                Ok(pull) => Ok(pull),
                Err(error) => {
                    // GitHub refuses a second pull request for one branch (422): find the first.
                    let query = [
                        ("head", format!("{}:{head}", self.settings.owner)),
                        ("state", "open".to_owned()),
                    ];
                    let open: Vec<PullRequest> = retry("list the pull requests", || {
                        self.client.get(&route, Some(&query))
                    })
                    .await
                    .unwrap_or_default();
                    open.into_iter().next().ok_or(error)
                }
            }
        })
    }

    async fn sync_comment_async(
        &self,
        number: u64,
        body: Option<&str>,
    ) -> Result<CommentOutcome, ApiError> {
        let author = match &self.settings.author {
            Some(author) => author.clone(),
            None => self.login().await?,
        };
        let ours: Vec<IssueComment> = self
            .comments(number)
            .await?
            .into_iter()
            .filter(|comment| {
                comment
                    .user
                    .as_ref()
                    .is_some_and(|user| user.login.eq_ignore_ascii_case(&author))
                    && comment
                        .body
                        .as_deref()
                        .is_some_and(|text| text.contains(MARKER))
            })
            .collect();
        let Some(body) = body else {
            for comment in &ours {
                self.delete(comment.id).await?;
            }
            return Ok(CommentOutcome::Deleted { count: ours.len() });
        };
        let Some((first, extra)) = ours.split_first() else {
            let route = format!(
                "/repos/{}/{}/issues/{number}/comments",
                self.settings.owner, self.settings.repo
            );
            let payload = json!({ "body": body });
            let created: IssueComment = retry("create the comment", || {
                self.client.post(&route, Some(&payload))
            })
            .await?;
            return Ok(CommentOutcome::Created { id: created.id });
        };
        // Two runs that raced may each have created one: keep the oldest.
        for comment in extra {
            self.delete(comment.id).await?;
        }
        if first.body.as_deref() == Some(body) {
            return Ok(CommentOutcome::Unchanged { id: first.id });
        }
        let route = format!(
            "/repos/{}/{}/issues/comments/{}",
            self.settings.owner, self.settings.repo, first.id
        );
        let payload = json!({ "body": body });
        let updated: IssueComment = retry("update the comment", || {
            self.client.patch(&route, Some(&payload))
        })
        .await?;
        Ok(CommentOutcome::Updated { id: updated.id })
    }

    /// Returns the login of the token's user, or [`ACTIONS_BOT`] for the Actions token.
    async fn login(&self) -> Result<String, ApiError> {
        match retry("read the token's user", || {
            self.client.get::<User, _, ()>("/user", None)
        })
        .await
        {
            Ok(user) => Ok(user.login),
            // An installation token may not read `/user`; the Actions token is one.
            Err(ApiError::Forbidden { .. }) => Ok(ACTIONS_BOT.to_owned()),
            Err(error) => Err(error),
        }
    }

    /// Returns every comment of the pull request, following the `Link: rel="next"` pages.
    async fn comments(&self, number: u64) -> Result<Vec<IssueComment>, ApiError> {
        let route = format!(
            "/repos/{}/{}/issues/{number}/comments",
            self.settings.owner, self.settings.repo
        );
        let mut page: Page<IssueComment> = retry("list the comments", || {
            self.client.get(&route, Some(&[("per_page", 100)]))
        })
        .await?;
        let mut comments = page.take_items();
        while let Some(next) = page.next.clone() {
            let next = Some(next);
            page = retry("list the comments", || self.client.get_page(&next))
                .await?
                .ok_or_else(|| ApiError::Other(anyhow::anyhow!("a comment page vanished")))?;
            comments.extend(page.take_items());
        }
        Ok(comments)
    }

    async fn delete(&self, id: u64) -> Result<(), ApiError> {
        let route = format!(
            "/repos/{}/{}/issues/comments/{id}",
            self.settings.owner, self.settings.repo
        );
        retry("delete the comment", || async {
            let response = self.client._delete(route.as_str(), None::<&()>).await?;
            octocrab::map_github_error(response).await.map(drop)
        })
        .await
    }
}

/// Whether a failed request is worth another try, and the GitHub status and message.
fn classify(error: &octocrab::Error) -> (bool, Option<u16>, String) {
    match error {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code.as_u16();
            let message = source.message.clone();
            let rate_limited = status == 429
                || (status == 403 && message.to_ascii_lowercase().contains("rate limit"));
            (
                rate_limited || source.status_code.is_server_error(),
                Some(status),
                message,
            )
        }
        octocrab::Error::Hyper { .. } | octocrab::Error::Service { .. } => {
            (true, None, error.to_string())
        }
        other => (false, None, other.to_string()),
    }
}

/// Runs `call` until it succeeds, fails for good, or [`MAX_TRIES`] tries were made.
async fn retry<T, F, Fut>(what: &str, mut call: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = octocrab::Result<T>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut tries = 0;
    loop {
        tries += 1;
        let error = match call().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let (retryable, status, message) = classify(&error);
        if retryable && tries < MAX_TRIES {
            eprintln!(
                "info: GitHub answered {} to `{what}`; trying again in {}ms ({tries} of {MAX_TRIES})",
                status.map_or_else(|| "nothing".to_owned(), |status| status.to_string()),
                backoff.as_millis()
            );
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            continue;
        }
        return Err(match status {
            Some(403) if !retryable => ApiError::Forbidden { message },
            Some(status) => ApiError::Other(anyhow::anyhow!(
                "cannot {what}: GitHub answered {status}: {message}{}",
                if retryable {
                    format!(" (after {tries} tries)")
                } else {
                    String::new()
                }
            )),
            None => ApiError::Other(anyhow::anyhow!(
                "cannot {what}: {message} (after {tries} tries)"
            )),
        });
    }
}
