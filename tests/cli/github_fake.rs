//! A stand-in for GitHub's REST API on 127.0.0.1, the way the Action uses it: the issue
//! comments of one pull request (paged, created, updated, deleted), `GET /user`, the pull
//! request itself; it records every request, fails on demand (with headers, for rate
//! limits) and refuses writes to a read-only token, as GitHub does for forks.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

pub const REPOSITORY: &str = "acme/shop";
pub const NUMBER: u64 = 7;
pub const MARKER: &str = "<!-- gitprio:summary -->";
pub const BOT: &str = "github-actions[bot]";

/// A stateful fake of GitHub's issue comment API: pages, creates, updates, deletes, fails on demand.
#[derive(Clone)]
pub struct FakeGitHub {
    pub state: Arc<Mutex<State>>,
}

/// A failure answered once to the first request whose "METHOD path?query" starts with `request`.
pub struct Failure {
    pub request: String,
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

pub struct State {
    pub base: String,
    /// `Some(login)`: `GET /user` answers it; `None`: 403, as for the Actions token.
    pub user: Option<String>,
    pub page_size: usize,
    pub comments: Vec<Value>,
    pub next_id: u64,
    pub failures: Vec<Failure>,
    /// A token that may read but not write (a fork's `GITHUB_TOKEN`).
    pub read_only_token: Option<String>,
    /// The head commit `GET /repos/{REPOSITORY}/pulls/{NUMBER}` answers; 404 when unset.
    pub pull_head: Option<String>,
    /// The pull requests `GET /repos/{REPOSITORY}/pulls?head=acme:BRANCH&state=all` lists.
    pub pulls: Vec<Value>,
    /// "METHOD path?query", and the token (`Bearer ...`) of each request.
    pub log: Vec<String>,
    pub tokens: Vec<String>,
}

impl FakeGitHub {
    pub async fn start() -> (MockServer, FakeGitHub) {
        let server = MockServer::start().await;
        let fake = FakeGitHub {
            state: Arc::new(Mutex::new(State {
                base: server.uri(),
                user: None,
                page_size: 100,
                comments: Vec::new(),
                next_id: 1_000,
                failures: Vec::new(),
                read_only_token: None,
                pull_head: None,
                pulls: Vec::new(),
                log: Vec::new(),
                tokens: Vec::new(),
            })),
        };
        Mock::given(any())
            .respond_with(fake.clone())
            .mount(&server)
            .await;
        (server, fake)
    }

    pub fn add_comment(&self, login: &str, body: &str) -> u64 {
        let mut state = self.state.lock().unwrap();
        state.next_id += 1;
        let id = state.next_id;
        let comment = comment_json(id, login, body);
        state.comments.push(comment);
        id
    }

    /// Adds a pull request from `branch`: `open`, `merged` or `closed` (unmerged), opened at `created_at`.
    pub fn add_pull(&self, number: u64, branch: &str, state: &str, created_at: &str) {
        let mut pull = pull_json(number, "0123456789abcdef0123456789abcdef01234567", branch);
        pull["state"] = json!(if state == "open" { "open" } else { "closed" });
        pull["created_at"] = json!(created_at);
        if state == "merged" {
            pull["merged_at"] = json!(created_at);
        }
        self.state.lock().unwrap().pulls.push(pull);
    }

    pub fn fail(&self, request: &str, status: u16, body: Value) {
        self.fail_with(request, status, body, &[]);
    }

    pub fn fail_with(&self, request: &str, status: u16, body: Value, headers: &[(&str, &str)]) {
        self.state.lock().unwrap().failures.push(Failure {
            request: request.to_owned(),
            status,
            body,
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        });
    }

    pub fn comments(&self) -> Vec<(u64, String, String)> {
        self.state
            .lock()
            .unwrap()
            .comments
            .iter()
            .map(|comment| {
                (
                    comment["id"].as_u64().unwrap(),
                    comment["user"]["login"].as_str().unwrap().to_owned(),
                    comment["body"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// Asserts that a push updated the summary comment (1002) in place for commit `head`:
    /// it was created once, and the other user's comment `foreign` (first in `before`) was
    /// neither changed nor asked for.
    pub fn assert_updated_in_place(
        &self,
        before: &[(u64, String, String)],
        foreign: u64,
        head: &str,
    ) {
        let after = self.comments();
        assert_eq!(after.len(), 2, "exactly one summary comment: {after:?}");
        assert_eq!(after[0], before[0], "the other user's comment is untouched");
        assert_eq!(after[0].0, foreign);
        assert_eq!(after[1].0, 1002);
        assert!(after[1].2.contains(&head[..12]), "{}", after[1].2);
        let log = self.log();
        let comments = format!("/repos/{REPOSITORY}/issues/{NUMBER}/comments");
        assert!(
            log.iter()
                .any(|line| line
                    .starts_with(&format!("POST /repos/{REPOSITORY}/issues/comments/1002"))),
            "{log:?}"
        );
        assert_eq!(
            log.iter()
                .filter(|line| line.starts_with(&format!("POST {comments}")))
                .count(),
            1,
            "{log:?}"
        );
        assert!(
            !log.iter()
                .any(|line| line.contains(&format!("comments/{foreign}"))),
            "{log:?}"
        );
    }
}

/// A user as GitHub's REST API returns it (octocrab's `Author` needs every field).
pub fn user_json(login: &str) -> Value {
    let bot = login.ends_with("[bot]");
    json!({
        "login": login,
        "id": if bot { 41_898_282 } else { 583_231 },
        "node_id": if bot { "MDM6Qm90NDE4OTgyODI=" } else { "MDQ6VXNlcjU4MzIzMQ==" },
        "avatar_url": "https://avatars.githubusercontent.com/in/15368?v=4",
        "gravatar_id": "",
        "url": format!("https://api.github.com/users/{login}"),
        "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("https://api.github.com/users/{login}/followers"),
        "following_url": format!("https://api.github.com/users/{login}/following{{/other_user}}"),
        "gists_url": format!("https://api.github.com/users/{login}/gists{{/gist_id}}"),
        "starred_url": format!("https://api.github.com/users/{login}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("https://api.github.com/users/{login}/subscriptions"),
        "organizations_url": format!("https://api.github.com/users/{login}/orgs"),
        "repos_url": format!("https://api.github.com/users/{login}/repos"),
        "events_url": format!("https://api.github.com/users/{login}/events{{/privacy}}"),
        "received_events_url": format!("https://api.github.com/users/{login}/received_events"),
        "type": if bot { "Bot" } else { "User" },
        "user_view_type": "public",
        "site_admin": false
    })
}

pub fn comment_json(id: u64, login: &str, body: &str) -> Value {
    let bot = login.ends_with("[bot]");
    json!({
        "url": format!("https://api.github.com/repos/{REPOSITORY}/issues/comments/{id}"),
        "html_url": format!("https://github.com/{REPOSITORY}/pull/{NUMBER}#issuecomment-{id}"),
        "issue_url": format!("https://api.github.com/repos/{REPOSITORY}/issues/{NUMBER}"),
        "id": id,
        "node_id": format!("IC_kwDOKa{id}"),
        "user": user_json(login),
        "created_at": "2026-11-01T12:00:00Z",
        "updated_at": "2026-11-01T12:00:00Z",
        "author_association": if bot { "NONE" } else { "MEMBER" },
        "body": body,
        "reactions": {
            "url": format!("https://api.github.com/repos/{REPOSITORY}/issues/comments/{id}/reactions"),
            "total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "hooray": 0,
            "confused": 0, "heart": 0, "rocket": 0, "eyes": 0
        },
        "performed_via_github_app": if bot {
            json!({"id": 15368, "slug": "github-actions", "name": "GitHub Actions"})
        } else {
            Value::Null
        }
    })
}

/// A pull request as `GET /repos/{owner}/{repo}/pulls/{number}` returns it (the fields octocrab requires).
pub fn pull_json(number: u64, head: &str, head_ref: &str) -> Value {
    let repo = json!({"id": 1, "name": "shop", "full_name": REPOSITORY,
        "url": format!("https://api.github.com/repos/{REPOSITORY}")});
    json!({
        "url": format!("https://api.github.com/repos/{REPOSITORY}/pulls/{number}"),
        "id": 1_000_000 + number,
        "node_id": format!("PR_kwDOKa{number}"),
        "html_url": format!("https://github.com/{REPOSITORY}/pull/{number}"),
        "number": number,
        "state": "open",
        "locked": false,
        "title": "Fix the login",
        "user": user_json("alice"),
        "head": {"label": format!("acme:{head_ref}"), "ref": head_ref, "sha": head, "repo": repo.clone()},
        "base": {"label": "acme:main", "ref": "main", "sha": "0000000000000000000000000000000000000000", "repo": repo}
    })
}

pub fn error_body(message: &str, documentation: &str) -> Value {
    json!({"message": message, "documentation_url": documentation, "status": "403"})
}

impl Respond for FakeGitHub {
    #[expect(
        clippy::too_many_lines,
        reason = "the fake's routes, one match arm per GitHub API endpoint"
    )]
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.state.lock().unwrap();
        let path = request.url.path().to_owned();
        let query = request.url.query().unwrap_or_default().to_owned();
        let request_line = format!("{} {path}?{query}", request.method);
        let token = request
            .headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        state.log.push(request_line.clone());
        state.tokens.push(token.clone());
        if let Some(index) = state
            .failures
            .iter()
            .position(|failure| request_line.starts_with(failure.request.as_str()))
        {
            let failure = state.failures.remove(index);
            let mut response = ResponseTemplate::new(failure.status).set_body_json(failure.body);
            for (name, value) in &failure.headers {
                response = response.insert_header(name.as_str(), value.as_str());
            }
            return response;
        }
        let method = request.method.as_str();
        if method != "GET"
            && state
                .read_only_token
                .as_ref()
                .is_some_and(|read_only| token == format!("Bearer {read_only}"))
        {
            return ResponseTemplate::new(403).set_body_json(error_body(
                "Resource not accessible by integration",
                "https://docs.github.com/rest/issues/comments#create-an-issue-comment",
            ));
        }
        let comments_path = format!("/repos/{REPOSITORY}/issues/{NUMBER}/comments");
        let comment_prefix = format!("/repos/{REPOSITORY}/issues/comments/");
        if method == "GET" && path == "/user" {
            return match &state.user {
                Some(login) => ResponseTemplate::new(200).set_body_json(user_json(login)),
                None => ResponseTemplate::new(403).set_body_json(error_body(
                    "Resource not accessible by integration",
                    "https://docs.github.com/rest/users/users#get-the-authenticated-user",
                )),
            };
        }
        if method == "GET" && path == format!("/repos/{REPOSITORY}/pulls/{NUMBER}") {
            return match &state.pull_head {
                Some(head) => {
                    ResponseTemplate::new(200).set_body_json(pull_json(NUMBER, head, "fix"))
                }
                None => ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})),
            };
        }
        if method == "GET" && path == format!("/repos/{REPOSITORY}/pulls") {
            let head = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("head="))
                .map(|head| head.replace("%3A", ":").replace("%2F", "/"))
                .unwrap_or_default();
            let all = query.split('&').any(|pair| pair == "state=all");
            let items: Vec<Value> = state
                .pulls
                .iter()
                .filter(|pull| pull["head"]["label"] == head.as_str())
                .filter(|pull| all || pull["state"] == "open")
                .cloned()
                .collect();
            return ResponseTemplate::new(200).set_body_json(Value::Array(items));
        }
        if method == "GET" && path == comments_path {
            let page: usize = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("page="))
                .map_or(1, |page| page.parse().unwrap());
            let pages = state.comments.len().div_ceil(state.page_size).max(1);
            let items: Vec<Value> = state
                .comments
                .iter()
                .skip((page - 1) * state.page_size)
                .take(state.page_size)
                .cloned()
                .collect();
            let link = |page: usize, rel: &str| {
                format!(
                    "<{}{comments_path}?per_page=100&page={page}>; rel=\"{rel}\"",
                    state.base
                )
            };
            let mut links = Vec::new();
            if page < pages {
                links.push(link(page + 1, "next"));
                links.push(link(pages, "last"));
            }
            if page > 1 {
                links.push(link(page - 1, "prev"));
                links.push(link(1, "first"));
            }
            let mut response = ResponseTemplate::new(200).set_body_json(Value::Array(items));
            if !links.is_empty() {
                response = response.insert_header("link", links.join(", ").as_str());
            }
            return response;
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        if method == "POST" && path == comments_path {
            state.next_id += 1;
            let id = state.next_id;
            let comment = comment_json(id, BOT, body["body"].as_str().unwrap());
            state.comments.push(comment.clone());
            return ResponseTemplate::new(201).set_body_json(comment);
        }
        if let Some(id) = path
            .strip_prefix(&comment_prefix)
            .and_then(|id| id.parse::<u64>().ok())
        {
            let Some(index) = state
                .comments
                .iter()
                .position(|comment| comment["id"] == id)
            else {
                return ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"}));
            };
            // GitHub documents PATCH; octocrab's `update_comment` sends POST, which GitHub takes too.
            if method == "PATCH" || method == "POST" {
                state.comments[index]["body"] = body["body"].clone();
                state.comments[index]["updated_at"] = json!("2026-11-01T12:05:00Z");
                return ResponseTemplate::new(200).set_body_json(state.comments[index].clone());
            }
            if method == "DELETE" {
                state.comments.remove(index);
                return ResponseTemplate::new(204);
            }
        }
        ResponseTemplate::new(500)
            .set_body_json(json!({"message": format!("unexpected {request_line}")}))
    }
}
