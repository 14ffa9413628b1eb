//! The GitHub REST API: the Action's sticky comment per pull request, kept up to date, and
//! the pull requests `gitprio run --open-pr` opens.
//!
//! The comment is found by its hidden [`MARKER`], paging through every comment of
//! the pull request, and only among those written by the token's own user, so a
//! comment someone else wrote (or quoted) with the marker is never touched. Every call
//! goes through octocrab's typed API. Failed requests are retried [`MAX_TRIES`] times at
//! most: after a rate limit as long as GitHub asks (`Retry-After`, `x-ratelimit-reset`,
//! a minute at least for a secondary limit), after a server error or a broken
//! connection with exponential backoff; the waits of one request add up to at most
//! the total the caller allows ([`DEFAULT_MAX_WAIT`] unless set).

use std::future::Future;
use std::time::{Duration, SystemTime};

use gitprio_core::usage::report::{PullRequestFacts, PullRequestState};
use octocrab::models::CommentId;
use octocrab::models::issues::Comment;
use octocrab::{Octocrab, Page, params};

/// The hidden marker that identifies gitprio's comment among a pull request's comments.
pub const MARKER: &str = "<!-- gitprio:summary -->";

/// Tries of one request, the first included.
pub const MAX_TRIES: u32 = 4;

/// The wait before the first retry after a server error; it doubles for each next one.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// GitHub's minimum wait after a secondary rate limit that names no time ("wait for at
/// least one minute before retrying"); it doubles if the limit is hit again.
const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// The longest all the waits for one request add up to, unless the caller sets another.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(300);

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

/// A pull request gitprio opened (or found open).
#[derive(Clone, Debug)]
pub struct PullRequest {
    pub number: u64,
    pub html_url: String,
}

impl From<octocrab::models::pulls::PullRequest> for PullRequest {
    fn from(pull: octocrab::models::pulls::PullRequest) -> PullRequest {
        PullRequest {
            number: pull.number,
            html_url: pull
                .html_url
                .map_or_else(String::new, |url| url.to_string()),
        }
    }
}

/// A connection to the REST API for one repository.
pub struct GitHub {
    client: Octocrab,
    settings: ApiSettings,
    max_wait: Duration,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("api_url", &self.settings.api_url)
            .field("owner", &self.settings.owner)
            .field("repo", &self.settings.repo)
            .field("max_wait", &self.max_wait)
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
            max_wait: DEFAULT_MAX_WAIT,
            runtime,
        })
    }

    /// Caps the waits for one request, rate limits and backoff together, at `max_wait`.
    #[must_use]
    pub fn with_max_wait(mut self, max_wait: Duration) -> GitHub {
        self.max_wait = max_wait;
        self
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
        let pulls = self.client.pulls(&self.settings.owner, &self.settings.repo);
        self.runtime.block_on(async {
            let pull = self
                .retry("read the pull request", || pulls.get(number))
                .await?;
            Ok(pull.head.sha)
        })
    }

    /// Returns every pull request (open or closed) from branch `head` of this repository.
    pub fn pull_requests_from(&self, head: &str) -> Result<Vec<PullRequestFacts>, ApiError> {
        let pulls = self.client.pulls(&self.settings.owner, &self.settings.repo);
        self.runtime.block_on(async {
            let page = self
                .retry("list the pull requests", || {
                    pulls
                        .list()
                        .head(format!("{}:{head}", self.settings.owner))
                        .state(params::State::All)
                        .per_page(100)
                        .send()
                })
                .await?;
            Ok(page
                .items
                .into_iter()
                .map(|pull| PullRequestFacts {
                    number: pull.number,
                    url: pull
                        .html_url
                        .map_or_else(String::new, |url| url.to_string()),
                    state: if pull.merged_at.is_some() {
                        PullRequestState::Merged
                    } else if pull.state == Some(octocrab::models::IssueState::Closed) {
                        PullRequestState::ClosedUnmerged
                    } else {
                        PullRequestState::Open
                    },
                    created_at: pull
                        .created_at
                        .and_then(|at| jiff::Timestamp::from_second(at.timestamp()).ok()),
                })
                .collect())
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
        let pulls = self.client.pulls(&self.settings.owner, &self.settings.repo);
        self.runtime.block_on(async {
            let created = self
                .retry("open the pull request", || {
                    pulls.create(title, head, base).body(body).send()
                })
                .await;
            match created {
                Ok(pull) => Ok(pull.into()),
                Err(error) => {
                    // GitHub refuses a second pull request for one branch (422): find the first.
                    let open = self
                        .retry("list the pull requests", || {
                            pulls
                                .list()
                                .head(format!("{}:{head}", self.settings.owner))
                                .state(params::State::Open)
                                .send()
                        })
                        .await
                        .map(|mut page| page.take_items())
                        .unwrap_or_default();
                    open.into_iter().next().map(PullRequest::from).ok_or(error)
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
        let ours: Vec<Comment> = self
            .comments(number)
            .await?
            .into_iter()
            .filter(|comment| {
                comment.user.login.eq_ignore_ascii_case(&author)
                    && comment
                        .body
                        .as_deref()
                        .is_some_and(|text| text.contains(MARKER))
            })
            .collect();
        let issues = self
            .client
            .issues(&self.settings.owner, &self.settings.repo);
        let Some(body) = body else {
            for comment in &ours {
                self.delete(comment.id).await?;
            }
            return Ok(CommentOutcome::Deleted { count: ours.len() });
        };
        let Some((first, extra)) = ours.split_first() else {
            let created = self
                .retry("create the comment", || issues.create_comment(number, body))
                .await?;
            return Ok(CommentOutcome::Created {
                id: created.id.into_inner(),
            });
        };
        // Two runs that raced may each have created one: keep the oldest.
        for comment in extra {
            self.delete(comment.id).await?;
        }
        if first.body.as_deref() == Some(body) {
            return Ok(CommentOutcome::Unchanged {
                id: first.id.into_inner(),
            });
        }
        let updated = self
            .retry("update the comment", || {
                issues.update_comment(first.id, body)
            })
            .await?;
        Ok(CommentOutcome::Updated {
            id: updated.id.into_inner(),
        })
    }

    /// Returns the login of the token's user, or [`ACTIONS_BOT`] for the Actions token.
    async fn login(&self) -> Result<String, ApiError> {
        let current = self.client.current();
        match self.retry("read the token's user", || current.user()).await {
            Ok(user) => Ok(user.login),
            // An installation token may not read `/user`; the Actions token is one.
            Err(ApiError::Forbidden { .. }) => Ok(ACTIONS_BOT.to_owned()),
            Err(error) => Err(error),
        }
    }

    /// Returns every comment of the pull request, following the `Link: rel="next"` pages.
    async fn comments(&self, number: u64) -> Result<Vec<Comment>, ApiError> {
        let issues = self
            .client
            .issues(&self.settings.owner, &self.settings.repo);
        let mut page: Page<Comment> = self
            .retry("list the comments", || {
                issues.list_comments(number).per_page(100).send()
            })
            .await?;
        let mut comments = page.take_items();
        // Page by page rather than `all_pages`, so that each page gets its own retries.
        while let Some(next) = page.next.clone() {
            let next = Some(next);
            page = self
                .retry("list the comments", || self.client.get_page(&next))
                .await?
                .ok_or_else(|| ApiError::Other(anyhow::anyhow!("a comment page vanished")))?;
            comments.extend(page.take_items());
        }
        Ok(comments)
    }

    async fn delete(&self, id: CommentId) -> Result<(), ApiError> {
        let issues = self
            .client
            .issues(&self.settings.owner, &self.settings.repo);
        self.retry("delete the comment", || issues.delete_comment(id))
            .await
    }

    /// Runs `call` until it succeeds, fails for good, [`MAX_TRIES`] tries were made, or
    /// GitHub asks for a wait longer than what is left of `max_wait`.
    async fn retry<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = octocrab::Result<T>>,
    {
        let mut backoff = Backoff::default();
        let mut waited = Duration::ZERO;
        let mut tries = 0;
        loop {
            tries += 1;
            let error = match call().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let failure = Failure::of(&error);
            let Some(retry) = backoff.next(&failure, SystemTime::now()) else {
                return Err(failure.into_error(what, None));
            };
            if tries >= MAX_TRIES {
                return Err(failure.into_error(what, Some(format!("after {tries} tries"))));
            }
            let left = self.max_wait.saturating_sub(waited);
            if retry.wait > left {
                let asks = if failure.rate_limited() {
                    "GitHub asks to wait"
                } else {
                    "the next try is"
                };
                let note = format!(
                    "{asks} {} ({}), more than the {} left of the {} the retries may wait in all",
                    seconds(retry.wait),
                    retry.reason,
                    seconds(left),
                    seconds(self.max_wait)
                );
                return Err(failure.into_error(what, Some(note)));
            }
            eprintln!(
                "info: GitHub answered {} to `{what}`; trying again in {} ({}; {tries} of {MAX_TRIES})",
                failure
                    .status
                    .map_or_else(|| "nothing".to_owned(), |status| status.to_string()),
                seconds(retry.wait),
                retry.reason,
            );
            tokio::time::sleep(retry.wait).await;
            waited += retry.wait;
        }
    }
}

/// Formats a wait in seconds, with tenths below ten seconds.
fn seconds(wait: Duration) -> String {
    if wait < Duration::from_secs(10) {
        format!("{:.1}s", wait.as_secs_f64())
    } else {
        format!("{}s", wait.as_secs())
    }
}

/// What a failed request said, as far as retrying goes.
#[derive(Debug, Default)]
struct Failure {
    /// The HTTP status; `None` when no answer came (a broken connection, a timeout).
    status: Option<u16>,
    message: String,
    /// `Retry-After`, in seconds.
    retry_after: Option<u64>,
    /// `x-ratelimit-remaining`.
    remaining: Option<u64>,
    /// `x-ratelimit-reset`, in seconds since the epoch.
    reset: Option<u64>,
    /// Whether an error without an answer (a connection, a timeout) is worth another try.
    transient: bool,
}

impl Failure {
    fn of(error: &octocrab::Error) -> Failure {
        match error {
            octocrab::Error::GitHub { source, .. } => {
                let header = |name: &str| {
                    source
                        .headers
                        .as_ref()
                        .and_then(|headers| headers.get(name))
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| value.trim().parse::<u64>().ok())
                };
                Failure {
                    status: Some(source.status_code.as_u16()),
                    message: source.message.clone(),
                    retry_after: header("retry-after"),
                    remaining: header("x-ratelimit-remaining"),
                    reset: header("x-ratelimit-reset").or(source.rate_limit_reset),
                    transient: false,
                }
            }
            octocrab::Error::Hyper { .. } | octocrab::Error::Service { .. } => Failure {
                message: error.to_string(),
                transient: true,
                ..Failure::default()
            },
            other => Failure {
                message: other.to_string(),
                ..Failure::default()
            },
        }
    }

    /// Returns whether GitHub refused the request for its rate limits (primary or secondary).
    fn rate_limited(&self) -> bool {
        match self.status {
            Some(429) => true,
            Some(403) => {
                self.remaining == Some(0)
                    || self.retry_after.is_some()
                    || self.message.to_ascii_lowercase().contains("rate limit")
            }
            _ => false,
        }
    }

    fn into_error(self, what: &str, note: Option<String>) -> ApiError {
        let note = note.map(|note| format!(" ({note})")).unwrap_or_default();
        match self.status {
            Some(403) if !self.rate_limited() => ApiError::Forbidden {
                message: self.message,
            },
            Some(status) => ApiError::Other(anyhow::anyhow!(
                "cannot {what}: GitHub answered {status}: {}{note}",
                self.message
            )),
            None => ApiError::Other(anyhow::anyhow!("cannot {what}: {}{note}", self.message)),
        }
    }
}

/// The next wait, and why.
#[derive(Debug, PartialEq, Eq)]
struct Retry {
    wait: Duration,
    reason: String,
}

/// The waits between the tries of one request.
#[derive(Debug)]
struct Backoff {
    server_error: Duration,
    secondary_limit: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            server_error: FIRST_BACKOFF,
            secondary_limit: SECONDARY_LIMIT_WAIT,
        }
    }
}

impl Backoff {
    /// Returns how long to wait before trying again after `failure`, or `None` when
    /// another try cannot help. GitHub's rules: `Retry-After` first; with
    /// `x-ratelimit-remaining: 0`, until `x-ratelimit-reset`; any other rate limit is a
    /// secondary one, a minute at least and doubling.
    fn next(&mut self, failure: &Failure, now: SystemTime) -> Option<Retry> {
        if failure.rate_limited() {
            if let Some(after) = failure.retry_after {
                return Some(Retry {
                    wait: Duration::from_secs(after),
                    reason: format!("Retry-After: {after}"),
                });
            }
            if failure.remaining == Some(0)
                && let Some(reset) = failure.reset
            {
                let reset_at = SystemTime::UNIX_EPOCH + Duration::from_secs(reset);
                let wait = reset_at.duration_since(now).unwrap_or_default();
                let at = jiff::Timestamp::from_second(i64::try_from(reset).unwrap_or(i64::MAX))
                    .map_or_else(|_| reset.to_string(), |at| at.to_string());
                return Some(Retry {
                    wait,
                    reason: format!("the rate limit resets at {at}"),
                });
            }
            let wait = self.secondary_limit;
            self.secondary_limit *= 2;
            return Some(Retry {
                wait,
                reason: "a secondary rate limit".to_owned(),
            });
        }
        let server_error = failure.status.is_some_and(|status| status >= 500);
        if server_error || failure.transient {
            let wait = self.server_error;
            self.server_error *= 2;
            return Some(Retry {
                wait,
                reason: "backing off".to_owned(),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, message: &str) -> Failure {
        Failure {
            status: Some(status),
            message: message.to_owned(),
            ..Failure::default()
        }
    }

    fn waits(failure: &Failure, count: usize, now: SystemTime) -> Vec<Option<Duration>> {
        let mut backoff = Backoff::default();
        (0..count)
            .map(|_| backoff.next(failure, now).map(|retry| retry.wait))
            .collect()
    }

    const NOW: u64 = 1_790_000_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    #[test]
    fn retry_after_is_obeyed_for_429_and_403() {
        for status in [429, 403] {
            let limited = Failure {
                retry_after: Some(3),
                ..failure(status, "You have exceeded a secondary rate limit")
            };
            assert_eq!(
                waits(&limited, 2, now()),
                vec![Some(Duration::from_secs(3)); 2]
            );
        }
    }

    #[test]
    fn an_exhausted_primary_limit_waits_until_its_reset() {
        let exhausted = Failure {
            remaining: Some(0),
            reset: Some(NOW + 42),
            ..failure(403, "API rate limit exceeded for installation ID 1.")
        };
        let mut backoff = Backoff::default();
        let retry = backoff.next(&exhausted, now()).unwrap();
        assert_eq!(retry.wait, Duration::from_secs(42));
        assert_eq!(
            retry.reason,
            "the rate limit resets at 2026-09-21T14:14:02Z"
        );
        // A reset already past: try again at once.
        let past = Failure {
            reset: Some(NOW - 5),
            ..exhausted
        };
        assert_eq!(waits(&past, 1, now()), vec![Some(Duration::ZERO)]);
    }

    #[test]
    fn a_secondary_limit_without_headers_waits_a_minute_then_longer() {
        let secondary = failure(
            403,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        );
        assert_eq!(
            waits(&secondary, 3, now()),
            vec![
                Some(Duration::from_secs(60)),
                Some(Duration::from_secs(120)),
                Some(Duration::from_secs(240))
            ]
        );
        assert_eq!(
            waits(&failure(429, "Too Many Requests"), 1, now()),
            vec![Some(Duration::from_secs(60))]
        );
    }

    #[test]
    fn server_errors_back_off_exponentially_and_other_errors_are_final() {
        assert_eq!(
            waits(&failure(502, "Server Error"), 3, now()),
            vec![
                Some(Duration::from_millis(500)),
                Some(Duration::from_secs(1)),
                Some(Duration::from_secs(2))
            ]
        );
        let forbidden = failure(403, "Resource not accessible by integration");
        assert_eq!(waits(&forbidden, 1, now()), vec![None]);
        assert!(matches!(
            forbidden.into_error("create the comment", None),
            ApiError::Forbidden { .. }
        ));
        assert_eq!(
            waits(&failure(422, "Validation Failed"), 1, now()),
            vec![None]
        );
    }
}
