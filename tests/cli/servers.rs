//! Real git servers on 127.0.0.1 for tests that push to and fetch from remotes.
//!
//! [`GitDaemon`] runs `git daemon` (the `git://` protocol). [`HttpGit`] serves smart HTTP from a
//! small server inside the test process that runs `git http-backend` as a CGI program for each
//! request. Both listen on loopback only and stop by themselves: when dropped, and when the test
//! process dies.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::common::TestEnv;

/// How long a server may take to start listening.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one read or write on an HTTP connection may block.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one git command (server-side CGI or client in the tests) may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest request line or header line the HTTP server reads.
const MAX_LINE: u64 = 16 * 1024;
/// The largest request body the HTTP server accepts.
const MAX_BODY: usize = 512 * 1024 * 1024;

/// Gives server-side git an environment without user or system config.
fn server_env(command: &mut Command, home: &Path) {
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1");
}

/// The path of repository `name` in a URL: `name` itself when it ends in `.git`, else `name.git`.
fn repo_path(name: &str) -> String {
    let name = name.trim_start_matches('/');
    if Path::new(name)
        .extension()
        .is_some_and(|extension| extension == "git")
    {
        name.to_owned()
    } else {
        format!("{name}.git")
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("no free port on 127.0.0.1")
}

// --- git daemon -------------------------------------------------------------------------------

/// Runs `git daemon` with the given arguments and stops it when its own stdin closes: the test
/// keeps the write end of that pipe, so dropping the [`GitDaemon`] or the death of the test
/// process stops the daemon. The shell exits when the daemon does, with its status.
const DAEMON_WRAPPER: &str = r#"exec 3<&0
git daemon "$@" </dev/null 3<&- &
pid=$!
{ cat <&3 >/dev/null; kill "$pid" 2>/dev/null; } &
exec 3<&-
wait "$pid"
"#;

/// A `git daemon` serving every repository under a base path, push enabled.
#[derive(Debug)]
pub struct GitDaemon {
    port: u16,
    /// The `sh` wrapper around the daemon.
    child: Child,
    /// The write end of the wrapper's stdin: closing it stops the daemon.
    stdin: Option<ChildStdin>,
    /// The daemon's stdout and stderr.
    log: tempfile::NamedTempFile,
}

impl GitDaemon {
    /// Starts a daemon serving the repositories under `base_path` (which must exist) on a free
    /// port of 127.0.0.1, and waits until it accepts connections.
    pub fn start(base_path: &Path) -> GitDaemon {
        let base = base_path
            .canonicalize()
            .unwrap_or_else(|error| panic!("base path {}: {error}", base_path.display()));
        let mut failures = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let mut daemon = GitDaemon::spawn(&base, port);
            match daemon.wait_until_listening() {
                Ok(()) => return daemon,
                // Another process took the port between our probe and the daemon's bind.
                Err(log) => {
                    let _ = writeln!(failures, "--- port {port}:\n{log}");
                }
            }
        }
        panic!("git daemon did not start:\n{failures}");
    }

    fn spawn(base: &Path, port: u16) -> GitDaemon {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut base_path = OsString::from("--base-path=");
        base_path.push(base);
        let mut command = Command::new("sh");
        server_env(&mut command, base);
        command
            .arg("-c")
            .arg(DAEMON_WRAPPER)
            .arg("git-daemon-wrapper")
            .arg("--reuseaddr")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(base_path)
            .arg("--export-all")
            .arg("--enable=receive-pack")
            .arg("--informative-errors")
            .arg("--verbose")
            .arg(base)
            .stdin(Stdio::piped())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            // Its own process group, so a stop that times out can kill the daemon with it.
            .process_group(0);
        let mut child = command.spawn().expect("cannot run sh for git daemon");
        let stdin = child.stdin.take();
        GitDaemon {
            port,
            child,
            stdin,
            log,
        }
    }

    /// Waits until the daemon says it listens and accepts a connection; on failure stops it and
    /// returns its log.
    fn wait_until_listening(&mut self) -> Result<(), String> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}\n{}", self.log()));
            }
            // "Ready to rumble" comes after the bind, so a connection is then to the daemon.
            if self.log().contains("Ready to rumble")
                && TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                panic!(
                    "git daemon not listening on {address} after {STARTUP_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port the daemon listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of repository `repo` under the base path, e.g. `git://127.0.0.1:PORT/origin.git`
    /// for `origin` or `origin.git`.
    pub fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{}", self.port, repo_path(repo))
    }

    /// What the daemon has written to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    fn stop(&mut self) {
        // Closing the wrapper's stdin makes it kill the daemon, then the wrapper exits.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        // The wrapper's group holds the daemon and its serving children.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}

// --- smart HTTP -------------------------------------------------------------------------------

/// A smart-HTTP git server: `git http-backend` behind a small HTTP/1.1 server in this process.
/// Every request runs as user `test`, so pushes are allowed.
#[derive(Debug)]
pub struct HttpGit {
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<HttpRequest>>>,
    accept: Option<JoinHandle<()>>,
}

/// One request the HTTP server answered, for assertions on how the client talked to it.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Whether the body came with `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// The length of the (decoded) body.
    pub body_len: usize,
    pub status: u16,
}

impl HttpGit {
    /// Starts serving the repositories under `project_root` (which must exist) on a free port of
    /// 127.0.0.1. The server accepts connections as soon as this returns.
    pub fn start(project_root: &Path) -> HttpGit {
        let root = project_root
            .canonicalize()
            .unwrap_or_else(|error| panic!("project root {}: {error}", project_root.display()));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let accept = thread::Builder::new()
            .name(format!("http-git-{port}"))
            .spawn({
                let stop = Arc::clone(&stop);
                let requests = Arc::clone(&requests);
                move || accept_loop(&listener, &root, &stop, &requests)
            })
            .unwrap();
        HttpGit {
            port,
            stop,
            requests,
            accept: Some(accept),
        }
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of repository `repo` under the project root, e.g.
    /// `http://127.0.0.1:PORT/origin.git` for `origin` or `origin.git`.
    pub fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, repo_path(repo))
    }

    /// The requests answered so far, oldest first.
    pub fn requests(&self) -> Vec<HttpRequest> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for HttpGit {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        wake_and_join(self.port, &mut self.accept);
    }
}

/// Wakes the accept loop listening on `port` with a connection, so that it sees its stop
/// flag, waits for its connections and ends; then waits for it.
pub fn wake_and_join(port: u16, accept: &mut Option<JoinHandle<()>>) {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    if TcpStream::connect_timeout(&address, Duration::from_secs(5)).is_ok()
        && let Some(accept) = accept.take()
    {
        let _ = accept.join();
    }
}

fn accept_loop(
    listener: &TcpListener,
    root: &Path,
    stop: &AtomicBool,
    requests: &Arc<Mutex<Vec<HttpRequest>>>,
) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let (finished, running) = connections.into_iter().partition(JoinHandle::is_finished);
        connections = running;
        for connection in finished {
            let _ = connection.join();
        }
        let root = root.to_owned();
        let requests = Arc::clone(requests);
        connections.push(thread::spawn(move || {
            serve_connection(stream, &root, &requests);
        }));
    }
    // Every connection is bounded by read, write and command timeouts.
    for connection in connections {
        let _ = connection.join();
    }
}

/// A parsed HTTP request, body decoded.
struct Request {
    method: String,
    target: String,
    /// Header names in lower case.
    headers: Vec<(String, String)>,
    chunked: bool,
    body: Option<Vec<u8>>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

struct Response {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn text(status: u16, reason: &str, text: &str) -> Response {
        Response {
            status,
            reason: reason.to_owned(),
            headers: vec![("Content-Type".to_owned(), "text/plain".to_owned())],
            body: text.as_bytes().to_vec(),
        }
    }
}

/// Answers one request on `stream` and closes it.
fn serve_connection(stream: TcpStream, root: &Path, requests: &Mutex<Vec<HttpRequest>>) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let port = stream.local_addr().map_or(0, |address| address.port());
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let response = match read_request(&mut reader, &mut writer) {
        Ok(request) => {
            let response = run_backend(&request, root, port);
            let (path, query) = split_target(&request.target);
            requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(HttpRequest {
                    method: request.method.clone(),
                    path: path.to_owned(),
                    query: query.to_owned(),
                    chunked: request.chunked,
                    body_len: request.body.as_ref().map_or(0, Vec::len),
                    status: response.status,
                });
            response
        }
        Err(error) => Response::text(400, "Bad Request", &format!("{error}\n")),
    };
    let _ = write_response(&mut writer, &response);
    let _ = writer.shutdown(Shutdown::Write);
    // Read what the client may still send, so closing does not reset the connection before the
    // client has read the response.
    let _ = reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(1)));
    let _ = io::copy(&mut reader.take(MAX_BODY as u64), &mut io::sink());
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

/// Reads one line ending in LF (CRLF or LF), without its ending.
fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    reader.take(MAX_LINE).read_until(b'\n', &mut line)?;
    if line.pop() != Some(b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "line too long or connection closed",
        ));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| invalid("line is not UTF-8"))
}

fn read_request(reader: &mut impl BufRead, writer: &mut impl Write) -> io::Result<Request> {
    let request_line = read_line(reader)?;
    let mut parts = request_line.split_ascii_whitespace();
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("bad request line"));
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| invalid("bad header"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        if headers.len() > 100 {
            return Err(invalid("too many headers"));
        }
    }
    let mut request = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
        chunked: false,
        body: None,
    };
    if request
        .header("expect")
        .is_some_and(|value| value.eq_ignore_ascii_case("100-continue"))
    {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        writer.flush()?;
    }
    request.chunked = request
        .header("transfer-encoding")
        .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
    if request.chunked {
        request.body = Some(read_chunked(reader)?);
    } else if let Some(length) = request.header("content-length") {
        let length: usize = length.parse().map_err(|_| invalid("bad Content-Length"))?;
        if length > MAX_BODY {
            return Err(invalid("body too large"));
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        request.body = Some(body);
    }
    Ok(request)
}

/// Reads a `Transfer-Encoding: chunked` body, trailers included, and returns it decoded.
fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to an empty line.
            while !read_line(reader)?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(invalid("body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        if !read_line(reader)?.is_empty() {
            return Err(invalid("chunk not followed by CRLF"));
        }
    }
}

fn split_target(target: &str) -> (&str, &str) {
    target.split_once('?').unwrap_or((target, ""))
}

/// Runs `git http-backend` for `request` as a CGI program.
fn run_backend(request: &Request, root: &Path, port: u16) -> Response {
    let (path, query) = split_target(&request.target);
    let mut command = Command::new("git");
    server_env(&mut command, root);
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_SOFTWARE", "gitprio-tests")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("SERVER_NAME", "127.0.0.1")
        .env("SERVER_PORT", port.to_string())
        .env("REQUEST_METHOD", &request.method)
        .env("REQUEST_URI", &request.target)
        .env("SCRIPT_NAME", "")
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REMOTE_ADDR", "127.0.0.1")
        // http-backend refuses pushes from anonymous users.
        .env("REMOTE_USER", "test")
        .env("AUTH_TYPE", "Basic");
    if let Some(body) = &request.body {
        command.env("CONTENT_LENGTH", body.len().to_string());
    }
    for (name, value) in &request.headers {
        match name.as_str() {
            "content-type" => {
                command.env("CONTENT_TYPE", value);
            }
            // Handled here, the body is already decoded.
            "content-length" | "transfer-encoding" | "expect" | "connection" => {}
            // Git-Protocol (protocol v2), Content-Encoding (gzip bodies) and the rest.
            _ => {
                command.env(
                    format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_")),
                    value,
                );
            }
        }
    }
    let finished = match run_bounded(&mut command, request.body.clone(), COMMAND_TIMEOUT) {
        Ok(finished) => finished,
        Err(error) => {
            return Response::text(
                500,
                "Internal Server Error",
                &format!("cannot run git http-backend: {error}\n"),
            );
        }
    };
    let stderr = String::from_utf8_lossy(&finished.stderr).into_owned();
    match (finished.status, parse_cgi(&finished.stdout)) {
        (Some(_), Some(response)) => response,
        (status, _) => Response::text(
            500,
            "Internal Server Error",
            &format!("git http-backend failed ({status:?}): {stderr}\n"),
        ),
    }
}

/// Splits CGI output into a response: `Status:` gives the status, 200 without it.
fn parse_cgi(output: &[u8]) -> Option<Response> {
    let mut response = Response {
        status: 200,
        reason: "OK".to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
    };
    let mut rest = output;
    loop {
        let end = rest.iter().position(|&byte| byte == b'\n')?;
        let line = std::str::from_utf8(&rest[..end])
            .ok()?
            .trim_end_matches('\r');
        rest = &rest[end + 1..];
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let (code, reason) = value.split_once(' ').unwrap_or((value, ""));
            response.status = code.parse().ok()?;
            reason.clone_into(&mut response.reason);
        } else if !["content-length", "transfer-encoding", "connection"]
            .iter()
            .any(|hop| name.eq_ignore_ascii_case(hop))
        {
            response.headers.push((name.to_owned(), value.to_owned()));
        }
    }
    response.body = rest.to_vec();
    Some(response)
}

fn write_response(writer: &mut impl Write, response: &Response) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", response.status, response.reason);
    for (name, value) in &response.headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let _ = write!(
        head,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        response.body.len()
    );
    writer.write_all(head.as_bytes())?;
    writer.write_all(&response.body)?;
    writer.flush()
}

// --- bounded commands -------------------------------------------------------------------------

/// A command that ran to its end or was killed.
struct Finished {
    /// `None` when the command was killed after its timeout.
    status: Option<ExitStatus>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs `command` with `input` on stdin (none: `/dev/null`), killing it after `timeout`.
fn run_bounded(
    command: &mut Command,
    input: Option<Vec<u8>>,
    timeout: Duration,
) -> io::Result<Finished> {
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let writer = child.stdin.take().zip(input).map(|(mut stdin, input)| {
        thread::spawn(move || {
            // The command may exit without reading everything.
            let _ = stdin.write_all(&input);
        })
    });
    let stdout = child.stdout.take().map(read_all);
    let stderr = child.stderr.take().map(read_all);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let collect = |reader: Option<JoinHandle<Vec<u8>>>| {
        reader
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default()
    };
    Ok(Finished {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

fn read_all(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

// --- tests ------------------------------------------------------------------------------------

/// A git command run by the tests, which may have failed.
#[derive(Debug)]
struct GitRun {
    /// `None` when killed by a signal or after the timeout.
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `git` in `dir` with the environment of [`TestEnv::git`], bounded in time, without
/// panicking when it fails.
fn git_run(env: &TestEnv, dir: &str, args: &[&str]) -> GitRun {
    let mut command = Command::new("git");
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.path("home"))
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_AUTHOR_DATE", "2026-11-01T12:00:00Z")
        .env("GIT_COMMITTER_NAME", "Test Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.com")
        .env("GIT_COMMITTER_DATE", "2026-11-01T12:00:00Z")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("NO_COLOR", "1")
        .current_dir(env.path(dir))
        .args(args);
    let finished = run_bounded(&mut command, None, COMMAND_TIMEOUT).unwrap();
    GitRun {
        code: finished.status.and_then(|status| status.code()),
        stdout: String::from_utf8_lossy(&finished.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&finished.stderr).into_owned(),
    }
}

/// Runs `git` like [`git_run`] and panics unless it succeeds; returns its stdout.
fn git_ok(env: &TestEnv, dir: &str, args: &[&str]) -> String {
    let run = git_run(env, dir, args);
    assert_eq!(
        run.code,
        Some(0),
        "git {args:?} failed:\n{}{}",
        run.stdout,
        run.stderr
    );
    run.stdout
}

/// Clones `url` (an empty bare repository) and exercises pushes, a lease ref and a fetch.
fn exercise_remote(env: &TestEnv, url: &str, server_repo: &str) {
    git_ok(env, "", &["clone", "--quiet", url, "work"]);
    env.git("work", &["symbolic-ref", "HEAD", "refs/heads/main"]);
    env.write("work", &[("a.txt", "a\n")]);
    env.git("work", &["add", "--all"]);
    env.git("work", &["commit", "--quiet", "--message", "first"]);
    let first = env.git("work", &["rev-parse", "HEAD"]).trim().to_owned();
    git_ok(env, "work", &["push", "--quiet", "origin", "main"]);
    env.git(
        "work",
        &["commit", "--quiet", "--allow-empty", "--message", "second"],
    );
    let second = env.git("work", &["rev-parse", "HEAD"]).trim().to_owned();

    let lease = "--force-with-lease=refs/gitprio/leases/x:";
    let push = |oid: &str| {
        let refspec = format!("{oid}:refs/gitprio/leases/x");
        let args = ["push", "--porcelain", "--atomic", lease, "origin", &refspec];
        git_run(env, "work", &args)
    };
    let won = push(&first);
    assert_eq!(won.code, Some(0), "{won:?}");
    assert!(
        won.stdout
            .lines()
            .any(|line| line.starts_with("*\t") && line.contains(":refs/gitprio/leases/x\t")),
        "{won:?}"
    );
    let lost = push(&second);
    assert!(lost.code.is_some_and(|code| code != 0), "{lost:?}");
    assert!(
        lost.stdout
            .lines()
            .any(|line| line.starts_with("!\t") && line.contains(":refs/gitprio/leases/x\t")),
        "{lost:?}"
    );

    let listed = git_ok(env, "work", &["ls-remote", "origin", "refs/gitprio/*"]);
    assert_eq!(listed, format!("{first}\trefs/gitprio/leases/x\n"));
    let heads = git_ok(env, "work", &["ls-remote", "--heads", "origin"]);
    assert_eq!(heads, format!("{first}\trefs/heads/main\n"));

    git_ok(
        env,
        "work",
        &[
            "fetch",
            "--quiet",
            "origin",
            "+refs/gitprio/*:refs/gitprio/remote/*",
        ],
    );
    let fetched = env.git("work", &["rev-parse", "refs/gitprio/remote/leases/x"]);
    assert_eq!(fetched.trim(), first);
    let stored = env.git(server_repo, &["rev-parse", "refs/gitprio/leases/x"]);
    assert_eq!(stored.trim(), first);
}

/// `len` bytes that do not compress.
fn random_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        bytes.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

#[test]
fn http_parsing_decodes_chunks_answers_expect_and_reads_cgi_status() {
    let raw = b"POST /r.git/git-receive-pack?x=1 HTTP/1.1\r\nHost: h\r\n\
        Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: t\r\n\r\n";
    let mut written = Vec::new();
    let request = read_request(&mut &raw[..], &mut written).unwrap();
    assert_eq!(written, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(request.method, "POST");
    assert_eq!(
        split_target(&request.target),
        ("/r.git/git-receive-pack", "x=1")
    );
    assert_eq!(request.header("host"), Some("h"));
    assert!(request.chunked);
    assert_eq!(request.body.as_deref(), Some(&b"hello world"[..]));

    let response =
        parse_cgi(b"Status: 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden").unwrap();
    assert_eq!(
        (response.status, response.reason.as_str()),
        (403, "Forbidden")
    );
    assert!(response.headers.is_empty());
    assert_eq!(response.body, b"forbidden");
    let response = parse_cgi(b"Content-Type: text/plain\n\nok").unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"ok");
    assert!(parse_cgi(b"no headers").is_none());
}

#[test]
fn git_daemon_serves_pushes_leases_and_fetches() {
    let env = TestEnv::new();
    env.git(
        "",
        &[
            "init",
            "--quiet",
            "--bare",
            "--initial-branch=main",
            "srv/origin.git",
        ],
    );
    let daemon = GitDaemon::start(&env.path("srv"));
    assert_eq!(
        daemon.url("origin"),
        format!("git://127.0.0.1:{}/origin.git", daemon.port())
    );
    exercise_remote(&env, &daemon.url("origin.git"), "srv/origin.git");
}

#[test]
fn http_git_serves_pushes_leases_and_fetches() {
    let env = TestEnv::new();
    env.git(
        "",
        &[
            "init",
            "--quiet",
            "--bare",
            "--initial-branch=main",
            "srv/origin.git",
        ],
    );
    let server = HttpGit::start(&env.path("srv"));
    assert_eq!(
        server.url("origin"),
        format!("http://127.0.0.1:{}/origin.git", server.port())
    );
    exercise_remote(&env, &server.url("origin"), "srv/origin.git");
    let requests = server.requests();
    assert!(
        requests.iter().any(|request| request.method == "POST"
            && request.path == "/origin.git/git-receive-pack"
            && request.status == 200),
        "{requests:#?}"
    );
    assert!(
        requests.iter().any(|request| request.method == "GET"
            && request.path == "/origin.git/info/refs"
            && request.query == "service=git-receive-pack"
            && request.status == 200),
        "{requests:#?}"
    );
}

#[test]
fn http_git_takes_a_large_chunked_push() {
    let env = TestEnv::new();
    env.git(
        "",
        &[
            "init",
            "--quiet",
            "--bare",
            "--initial-branch=main",
            "srv/big.git",
        ],
    );
    let server = HttpGit::start(&env.path("srv"));
    git_ok(&env, "", &["clone", "--quiet", &server.url("big"), "work"]);
    env.git("work", &["symbolic-ref", "HEAD", "refs/heads/main"]);
    let size = 2 * 1024 * 1024;
    std::fs::write(env.path("work/blob.bin"), random_bytes(size)).unwrap();
    env.git("work", &["add", "--all"]);
    env.git("work", &["commit", "--quiet", "--message", "big"]);
    git_ok(&env, "work", &["push", "--quiet", "origin", "main"]);

    let requests = server.requests();
    assert!(
        requests.iter().any(|request| request.chunked
            && request.path == "/big.git/git-receive-pack"
            && request.body_len > size
            && request.status == 200),
        "no large chunked push: {requests:#?}"
    );
    let head = env.git("work", &["rev-parse", "HEAD"]);
    assert_eq!(env.git("srv/big.git", &["rev-parse", "main"]), head);
    let stored = env.git("srv/big.git", &["cat-file", "-s", "main:blob.bin"]);
    assert_eq!(stored.trim(), size.to_string());

    // And back: a large response body.
    git_ok(&env, "", &["clone", "--quiet", &server.url("big"), "copy"]);
    assert_eq!(
        std::fs::read(env.path("copy/blob.bin")).unwrap(),
        std::fs::read(env.path("work/blob.bin")).unwrap()
    );
}

#[test]
fn servers_stop_when_dropped() {
    let env = TestEnv::new();
    env.git(
        "",
        &[
            "init",
            "--quiet",
            "--bare",
            "--initial-branch=main",
            "srv/origin.git",
        ],
    );
    let daemon = GitDaemon::start(&env.path("srv"));
    let server = HttpGit::start(&env.path("srv"));
    let ports = [daemon.port(), server.port()];
    drop(daemon);
    drop(server);
    for port in ports {
        assert!(
            !accepts_within(port, Duration::from_secs(2)),
            "port {port} still accepts connections"
        );
    }
}

/// Whether something keeps accepting connections on a loopback port for all of `patience`.
/// A connection the kernel made from the port to itself (TCP self-connect, possible when the
/// port is in the ephemeral range) does not count.
fn accepts_within(port: u16, patience: Duration) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + patience;
    loop {
        let accepted = TcpStream::connect_timeout(&address, Duration::from_secs(1))
            .is_ok_and(|stream| stream.local_addr().ok() != Some(address));
        if !accepted {
            return false;
        }
        if Instant::now() >= deadline {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
}
