//! Claims at fleet scale: a lone agent's claim costs one push on a view it already has,
//! and a remote whose connections drop is retried, never taken for a lost race.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::common::Output;
use crate::common::TestEnv;
use crate::leases::{remote_with_clones, task};
use crate::servers::{GitDaemon, HttpGit, wake_and_join};

/// How long one read or write through the proxy may block.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A TCP proxy on 127.0.0.1 in front of a server, which closes the next connections it
/// is told to drop as soon as it accepts them (as a daemon at its connection limit does)
/// and passes the others through. Stops when dropped.
struct DroppingProxy {
    port: u16,
    to_drop: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    /// Milliseconds the proxy waits after each chunk it passes to the client.
    pause_millis: Arc<AtomicU64>,
    /// How many of the next pushes get no answer once they sent their update.
    to_mute: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl DroppingProxy {
    fn start(server_port: u16) -> DroppingProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let to_drop = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let pause_millis = Arc::new(AtomicU64::new(0));
        let to_mute = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = thread::spawn({
            let (to_drop, dropped, stop) = (to_drop.clone(), dropped.clone(), stop.clone());
            let (pause_millis, to_mute) = (pause_millis.clone(), to_mute.clone());
            move || {
                let mut connections = Vec::new();
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let drop_it = to_drop
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                            left.checked_sub(1)
                        })
                        .is_ok();
                    if drop_it {
                        dropped.fetch_add(1, Ordering::SeqCst);
                        let _ = stream.shutdown(Shutdown::Both);
                        continue;
                    }
                    let pause = Duration::from_millis(pause_millis.load(Ordering::SeqCst));
                    let to_mute = to_mute.clone();
                    connections.push(thread::spawn(move || {
                        forward(stream, server_port, pause, &to_mute);
                    }));
                }
                for connection in connections {
                    let _ = connection.join();
                }
            }
        });
        DroppingProxy {
            port,
            to_drop,
            dropped,
            pause_millis,
            to_mute,
            stop,
            accept: Some(accept),
        }
    }

    /// Makes the proxy pass the next push's update to the server and then nothing of the
    /// server's answer back: the push lands, and its agent never hears so.
    fn mute_next_push(&self) {
        self.to_mute.store(1, Ordering::SeqCst);
    }

    /// Makes the proxy pass the server's bytes to the next connections in chunks of at
    /// most 16 KiB, `pause` apart: a slow link that keeps moving.
    fn slow_down(&self, pause: Duration) {
        let millis = u64::try_from(pause.as_millis()).unwrap();
        self.pause_millis.store(millis, Ordering::SeqCst);
    }

    /// Makes the proxy close the next `count` connections unanswered.
    fn drop_next(&self, count: usize) {
        self.to_drop.store(count, Ordering::SeqCst);
    }

    /// How many connections the proxy has closed unanswered so far.
    fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for DroppingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        wake_and_join(self.port, &mut self.accept);
    }
}

/// Copies bytes both ways between `client` and the server until either side closes,
/// waiting `pause` after each chunk to the client; a push while `to_mute` is above
/// zero (which it counts down) gets nothing back after its update went through.
fn forward(client: TcpStream, server_port: u16, pause: Duration, to_mute: &AtomicUsize) {
    let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, server_port)) else {
        return;
    };
    for stream in [&client, &server] {
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    }
    let (Ok(client_reader), Ok(server_reader)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let muted = Arc::new(AtomicBool::new(false));
    let mute_this = Arc::new(AtomicBool::new(false));
    // The request (`git-receive-pack /remote.git`, one pkt-line that git may write in two
    // pieces) comes first; whether to mute is decided on it, once, for this connection.
    let mut first = [0u8; 4096];
    let mut request_length = usize::MAX;
    let deadline = Instant::now() + IO_TIMEOUT;
    while Instant::now() < deadline {
        let peeked = client.peek(&mut first).unwrap_or(0);
        request_length = std::str::from_utf8(&first[..peeked.min(4)])
            .ok()
            .and_then(|hex| usize::from_str_radix(hex, 16).ok())
            .unwrap_or(usize::MAX);
        if peeked >= request_length.min(first.len()) {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let request = &first[..request_length.min(first.len())];
    if request
        .windows(16)
        .any(|window| window == b"git-receive-pack")
        && to_mute
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    {
        mute_this.store(true, Ordering::SeqCst);
    }
    let upstream = thread::spawn({
        let (muted, mute_this) = (muted.clone(), mute_this.clone());
        move || copy_up(client_reader, server, request_length, &mute_this, &muted)
    });
    copy(server_reader, client, pause, &muted);
    let _ = upstream.join();
}

/// Copies the client's bytes to the server; with `mute_this`, sets `muted` before any
/// byte past the request's `request_length` (the push's update) goes through.
fn copy_up(
    mut from: TcpStream,
    mut to: TcpStream,
    request_length: usize,
    mute_this: &AtomicBool,
    muted: &AtomicBool,
) {
    let mut buffer = [0u8; 16 * 1024];
    let mut sent = 0;
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                sent += read;
                if sent > request_length && mute_this.load(Ordering::SeqCst) {
                    muted.store(true, Ordering::SeqCst);
                }
                if to.write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _: io::Result<()> = from.shutdown(Shutdown::Read);
}

/// Copies the server's bytes to the client, `pause` after each chunk, dropping them
/// (and the end of the stream) once `muted`.
fn copy(mut from: TcpStream, mut to: TcpStream, pause: Duration, muted: &AtomicBool) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(_) if muted.load(Ordering::SeqCst) => {}
            Ok(read) => {
                if to.write_all(&buffer[..read]).is_err() {
                    break;
                }
                thread::sleep(pause);
            }
        }
    }
    // A muted client hears nothing, not even the end: it waits as for a hung server.
    if !muted.load(Ordering::SeqCst) {
        let _ = to.shutdown(Shutdown::Write);
    }
    let _: io::Result<()> = from.shutdown(Shutdown::Read);
}

#[test]
fn dropped_connections_are_retried_and_never_lose_a_race() {
    let env = TestEnv::new();
    let files = vec![
        (".tasks/alpha.md".to_owned(), task("Alpha", 0, &[])),
        (".tasks/beta.md".to_owned(), task("Beta", 1, &[])),
    ];
    remote_with_clones(&env, &files, &[]);
    let daemon = GitDaemon::start(&env.path("."));
    let proxy = DroppingProxy::start(daemon.port());
    env.git(".", &["clone", "--quiet", &daemon.url("remote.git"), "a"]);
    env.git(
        "a",
        &["remote", "set-url", "origin", &proxy.url("remote.git")],
    );
    let agent = [
        ("GITPRIO_AGENT", "alice"),
        ("GITPRIO_NOW", "2026-11-01T12:00:00Z"),
    ];

    proxy.drop_next(3);
    let claim = env.run_with("a", &["claim", "--json"], &agent);
    assert_eq!(claim.code, 0, "{claim}");
    assert_eq!(claim.json()["task"]["id"], "alpha", "{claim}");
    assert_eq!(
        claim.json()["tries"],
        1,
        "a dropped connection counted as a race: {claim}"
    );
    assert_eq!(proxy.dropped(), 3);

    // The renewal is a push alone: its connection, and the `ls-remote` that asks whether
    // it landed, drop.
    proxy.drop_next(2);
    let heartbeat = env.run_with("a", &["heartbeat", "--json"], &agent);
    assert_eq!(heartbeat.code, 0, "{heartbeat}");
    assert_eq!(proxy.dropped(), 5);
    let record = env.git(
        "remote.git",
        &["log", "-1", "--format=%B", "refs/gitprio/leases/alpha"],
    );
    assert!(record.contains("\"event\": \"renew\""), "{record}");
    assert!(record.contains("\"generation\": 1,"), "{record}");
}

const T0: &str = "2026-11-01T12:00:00Z";

fn claim_as(env: &TestEnv, dir: &str, agent: &str) -> Output {
    env.run_with(
        dir,
        &["claim", "--json"],
        &[("GITPRIO_AGENT", agent), ("GITPRIO_NOW", T0)],
    )
}

fn claimed(output: &Output) -> (String, u64) {
    assert_eq!(output.code, 0, "claim failed: {output}");
    let json = output.json();
    (
        json["task"]["id"].as_str().unwrap().to_owned(),
        json["tries"].as_u64().unwrap(),
    )
}

/// The git services the HTTP server was asked for since request `since`.
fn services_since(http: &HttpGit, since: usize) -> Vec<String> {
    http.requests()[since..]
        .iter()
        .map(|request| {
            let service = request.path.rsplit('/').next().unwrap_or_default();
            format!("{} {service}?{}", request.method, request.query)
        })
        .collect()
}

#[test]
fn a_lone_claim_on_a_current_view_is_one_push_and_a_stale_view_is_refreshed() {
    let env = TestEnv::new();
    let files: Vec<(String, String)> = ["alpha", "beta", "gamma", "delta"]
        .iter()
        .enumerate()
        .map(|(rank, name)| {
            (
                format!(".tasks/{name}.md"),
                task(name, u8::try_from(rank).unwrap(), &[]),
            )
        })
        .collect();
    remote_with_clones(&env, &files, &[]);
    let http = HttpGit::start(&env.path("."));
    for clone in ["agent", "editor"] {
        env.git(".", &["clone", "--quiet", &http.url("remote.git"), clone]);
    }
    assert_eq!(
        claimed(&claim_as(&env, "agent", "alice")),
        ("alpha".to_owned(), 1)
    );

    let since = http.requests().len();
    assert_eq!(
        claimed(&claim_as(&env, "agent", "alice")),
        ("beta".to_owned(), 1)
    );
    assert_eq!(
        services_since(&http, since),
        [
            "GET refs?service=git-receive-pack",
            "POST git-receive-pack?"
        ],
        "a claim on a view refreshed within the TTL, with no other agent in it, is one push"
    );

    // Finished on the branch since this clone's view: the pinned push fails, the claim
    // refreshes and hands out the next task instead.
    let path = env.path("editor/.tasks/gamma.md");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("priority: 2\n", "priority: 2\nstatus: done\n"),
    )
    .unwrap();
    env.git("editor", &["commit", "--quiet", "-am", "gamma done"]);
    env.git("editor", &["push", "--quiet", "origin", "main"]);
    assert_eq!(
        claimed(&claim_as(&env, "agent", "alice")),
        ("delta".to_owned(), 2)
    );
    let gamma = env.git(
        "remote.git",
        &[
            "for-each-ref",
            "--format=%(refname)",
            "refs/gitprio/leases/gamma",
        ],
    );
    assert_eq!(gamma, "", "the finished task was claimed");
}

#[test]
fn lease_mirrors_are_packed_once_many_are_loose_and_still_read_whole() {
    let env = TestEnv::new();
    let prefilled: Vec<String> = (0..70).map(|index| format!("t{index:02}")).collect();
    let mut files: Vec<(String, String)> = prefilled
        .iter()
        .map(|id| (format!(".tasks/{id}.md"), task(id, 0, &[])))
        .collect();
    for id in ["free-a", "free-b"] {
        files.push((format!(".tasks/{id}.md"), task(id, 4, &[])));
    }
    remote_with_clones(&env, &files, &["a"]);
    // Finished a day ago by another agent: 70 submitted leases, no agent active now.
    let day_before = [
        ("GITPRIO_AGENT", "earlier"),
        ("GITPRIO_NOW", "2026-10-31T12:00:00Z"),
    ];
    assert_eq!(
        env.run_with("a", &["claim", "--json"], &day_before).json()["task"]["id"],
        "t00"
    );
    let done = env.run_with("a", &["done", "t00"], &day_before);
    assert_eq!(done.code, 0, "{done}");
    let message = env.git(
        "remote.git",
        &["log", "-1", "--format=%B", "refs/gitprio/leases/t00"],
    );
    let empty_tree = env.git(
        "remote.git",
        &["hash-object", "-t", "tree", "-w", "/dev/null"],
    );
    for id in &prefilled[1..] {
        let commit = env.git(
            "remote.git",
            &[
                "commit-tree",
                empty_tree.trim(),
                "-m",
                &message.replace("t00", id),
            ],
        );
        env.git(
            "remote.git",
            &[
                "update-ref",
                &format!("refs/gitprio/leases/{id}"),
                commit.trim(),
            ],
        );
    }

    env.git(".", &["clone", "--quiet", "remote.git", "b"]);
    for free in ["free-a", "free-b"] {
        assert_eq!(
            claimed(&claim_as(&env, "b", "bob")),
            (free.to_owned(), 1),
            "every submitted lease keeps its task back, read from packed mirrors"
        );
    }
    let loose = std::fs::read_dir(env.path("b/.git/refs/gitprio/remotes/origin/leases"))
        .map_or(0, Iterator::count);
    assert!(loose < 64, "{loose} lease mirrors left loose");
    let packed = std::fs::read_to_string(env.path("b/.git/packed-refs")).unwrap();
    assert!(
        packed.contains("refs/gitprio/remotes/origin/leases/t69"),
        "{packed}"
    );
    let status = env.run_with("b", &["status", "--json"], &[("GITPRIO_NOW", T0)]);
    assert_eq!(status.code, 0, "{status}");
    assert_eq!(
        status.json()["leases"].as_array().unwrap().len(),
        72,
        "{status}"
    );
}

fn run_as(env: &TestEnv, dir: &str, agent: &str, args: &[&str]) -> Output {
    let output = env.run_with(dir, args, &[("GITPRIO_AGENT", agent), ("GITPRIO_NOW", T0)]);
    assert_eq!(output.code, 0, "{args:?} as {agent}: {output}");
    output
}

/// The tasks of [`fleet_at_work`]: the first two best-ranked, in this order.
const FLEET_TASKS: [&str; 7] = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"];

/// Seven tasks on an HTTP remote; `alice` (clone `a`) has claimed and finished `alpha`,
/// and `bob` (clone `b`) holds `beta`, which alice's mirrors show: her view has another
/// agent at work.
fn fleet_at_work(env: &TestEnv, clones: &[&str]) -> HttpGit {
    let files: Vec<(String, String)> = FLEET_TASKS
        .iter()
        .enumerate()
        .map(|(rank, name)| {
            (
                format!(".tasks/{name}.md"),
                task(name, u8::try_from(rank.min(4)).unwrap(), &[]),
            )
        })
        .collect();
    remote_with_clones(env, &files, &[]);
    let http = HttpGit::start(&env.path("."));
    for clone in ["a", "b"].iter().chain(clones) {
        env.git(".", &["clone", "--quiet", &http.url("remote.git"), clone]);
    }
    assert_eq!(
        claimed(&claim_as(env, "a", "alice")),
        ("alpha".to_owned(), 1)
    );
    assert_eq!(claimed(&claim_as(env, "b", "bob")), ("beta".to_owned(), 1));
    run_as(env, "a", "alice", &["done", "alpha"]);
    run_as(env, "a", "alice", &["status"]);
    http
}

#[test]
fn a_claim_among_agents_at_work_fetches_only_the_leases_without_negotiating() {
    let env = TestEnv::new();
    let http = fleet_at_work(&env, &["c", "editor"]);
    // New since alice's view: carol's lease.
    let (carols, _) = claimed(&claim_as(&env, "c", "carol"));

    let since = http.requests().len();
    let (alices, tries) = claimed(&claim_as(&env, "a", "alice"));
    assert_eq!(tries, 1, "alice lost a race");
    assert_ne!(alices, carols);
    assert_eq!(
        services_since(&http, since),
        [
            "GET refs?service=git-upload-pack",
            "POST git-upload-pack?",
            "GET refs?service=git-receive-pack",
            "POST git-receive-pack?"
        ],
        "one fetch of the leases (the listing the server sends unasked, then the new objects at once, no \"have\" round) and one push"
    );

    // Finished on the branch since alice's last full refresh: her push, pinned to the
    // branch tip she knows, fails; the claim fetches the branch and takes another task.
    run_as(&env, "a", "alice", &["done", &alices]);
    let next = run_as(&env, "a", "alice", &["next", "--json"]);
    let finished = next.json()["task"]["id"].as_str().unwrap().to_owned();
    let path = env.path(&format!("editor/.tasks/{finished}.md"));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("---\nDo ", "status: done\n---\nDo ")).unwrap();
    env.git(
        "editor",
        &["commit", "--quiet", "-am", "finished on the branch"],
    );
    env.git("editor", &["push", "--quiet", "origin", "main"]);
    let (after, tries) = claimed(&claim_as(&env, "a", "alice"));
    assert_eq!(tries, 2, "the pinned push and the one after the refresh");
    assert_ne!(after, finished);
    let lease = env.git(
        "remote.git",
        &[
            "for-each-ref",
            "--format=%(refname)",
            &format!("refs/gitprio/leases/{finished}"),
        ],
    );
    assert_eq!(lease, "", "the task finished on the branch was claimed");
}

#[test]
fn a_dropped_connection_of_the_lease_fetch_is_retried_and_never_loses_a_race() {
    let env = TestEnv::new();
    let _http = fleet_at_work(&env, &[]);
    let daemon = GitDaemon::start(&env.path("."));
    let proxy = DroppingProxy::start(daemon.port());
    env.git(
        "a",
        &["remote", "set-url", "origin", &proxy.url("remote.git")],
    );

    // Alice's view shows bob at work: her claim first fetches the leases, whose first
    // two connections drop.
    proxy.drop_next(2);
    assert_eq!(
        claimed(&claim_as(&env, "a", "alice")),
        ("gamma".to_owned(), 1),
        "a dropped connection counted as a race, or the claim gave up"
    );
    assert_eq!(proxy.dropped(), 2);
}

/// A TCP listener on 127.0.0.1 that accepts every connection and never says a word, as a
/// remote whose server hangs does. Stops when dropped.
pub struct SilentRemote {
    port: u16,
    stop: Arc<AtomicBool>,
    /// The connections it accepted (and holds) so far.
    accepted: Arc<AtomicUsize>,
    accept: Option<JoinHandle<()>>,
}

impl SilentRemote {
    pub fn start() -> SilentRemote {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let accept = thread::spawn({
            let stop = stop.clone();
            let accepted = accepted.clone();
            move || {
                let mut held = Vec::new();
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    held.extend(stream.ok());
                    accepted.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        SilentRemote {
            port,
            stop,
            accepted,
            accept: Some(accept),
        }
    }

    pub fn url(&self) -> String {
        format!("git://127.0.0.1:{}/remote.git", self.port)
    }

    /// How many connections it has accepted (each one left hanging).
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for SilentRemote {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        wake_and_join(self.port, &mut self.accept);
    }
}

/// A queue of tasks with `titles`, in priority order, whose config sets `remote_timeout`
/// to `timeout`.
fn timing_out_after(timeout: &str, titles: &[&str]) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = titles
        .iter()
        .zip(0..)
        .map(|(title, priority)| {
            (
                format!(".tasks/{}.md", title.to_lowercase()),
                task(title, priority, &[]),
            )
        })
        .collect();
    files.push((
        ".tasks/config.yaml".to_owned(),
        format!("remote_timeout: {timeout}\n"),
    ));
    files
}

/// Runs `gitprio` in `dir`, failing the test if it has not ended within 90 seconds.
fn run_bounded(env: &TestEnv, dir: &str, args: &[&str]) -> Output {
    let mut command = env.command(dir, args);
    command.env("GITPRIO_AGENT", "alice").env("GITPRIO_NOW", T0);
    let child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let running = crate::common::Running(Some(child));
    env.normalized(&running.finish_within(Duration::from_secs(90)))
}

#[test]
fn a_remote_that_never_answers_is_given_up_on_as_unreachable() {
    let env = TestEnv::new();
    remote_with_clones(&env, &timing_out_after("1s", &["Alpha"]), &["a"]);
    let silent = SilentRemote::start();
    env.git("a", &["remote", "set-url", "origin", &silent.url()]);

    let claim = run_bounded(&env, "a", &["claim"]);
    crate::assert_output!(claim);
    // A clone that never fetched the leases answers from the branch it has, and says so.
    let next = run_bounded(&env, "a", &["next"]);
    crate::assert_output!(next);
}

#[test]
fn a_slow_fetch_that_keeps_moving_outlives_the_remote_timeout() {
    let env = TestEnv::new();
    // 3 s: the server's pack-objects is silent before the first byte of the pack, and a
    // loaded machine can make that longer than 1 s (the fetch is then given up on as stalled).
    remote_with_clones(&env, &timing_out_after("3s", &["Alpha"]), &["a"]);
    // 160 files of 8 KiB that do not compress: a pack of about 1.3 MB, which the proxy
    // passes on 16 KiB every 100 ms, over about 8 s, well past the remote timeout.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut noise = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state.to_le_bytes()
    };
    std::fs::create_dir_all(env.path("seed/data")).unwrap();
    for index in 0..160 {
        let bytes: Vec<u8> = (0..1024).flat_map(|_| noise()).collect();
        std::fs::write(env.path(&format!("seed/data/{index}.bin")), bytes).unwrap();
    }
    env.git("seed", &["add", "data"]);
    env.git("seed", &["commit", "--quiet", "-m", "data"]);
    env.git("seed", &["push", "--quiet", "../remote.git", "main"]);
    let daemon = GitDaemon::start(&env.path("."));
    let proxy = DroppingProxy::start(daemon.port());
    proxy.slow_down(Duration::from_millis(100));
    env.git(
        "a",
        &["remote", "set-url", "origin", &proxy.url("remote.git")],
    );

    let claim = run_bounded(&env, "a", &["claim", "--json"]);
    assert_eq!(claim.code, 0, "{claim}");
    assert_eq!(claim.json()["task"]["id"], "alpha", "{claim}");
    assert_eq!(
        env.git("a", &["rev-parse", "refs/remotes/origin/main"]),
        env.git("remote.git", &["rev-parse", "main"]),
        "the slow fetch of the branch did not land"
    );
}

#[test]
fn a_push_that_lands_and_is_never_answered_is_a_won_claim_not_a_race() {
    let env = TestEnv::new();
    // The unanswered push waits out the timeout; the others must not (see above).
    remote_with_clones(&env, &timing_out_after("3s", &["Alpha", "Beta"]), &["a"]);
    let daemon = GitDaemon::start(&env.path("."));
    let proxy = DroppingProxy::start(daemon.port());
    env.git(
        "a",
        &["remote", "set-url", "origin", &proxy.url("remote.git")],
    );

    proxy.mute_next_push();
    let claim = run_bounded(&env, "a", &["claim", "--json"]);
    assert_eq!(claim.code, 0, "{claim}");
    assert_eq!(claim.json()["task"]["id"], "alpha", "{claim}");
    assert_eq!(
        claim.json()["tries"],
        1,
        "an unanswered push counted as a race: {claim}"
    );
    assert_eq!(proxy.to_mute.load(Ordering::SeqCst), 0, "no push was muted");
    let record = env.git(
        "remote.git",
        &["log", "--format=%B", "refs/gitprio/leases/alpha"],
    );
    assert_eq!(
        record.matches("\"event\": \"claim\"").count(),
        1,
        "{record}"
    );
    assert!(record.contains("\"agent\": \"alice\""), "{record}");
}

/// Sibling fetches in one clone (the slots of `gitprio run`) take a lease mirror's lock in
/// turn, each a new lock file held for the length of a fetch: a claim waits for the lock,
/// as git does for 3 s, rather than failing after git's default 100 ms and a few retries
/// of its own (review11 item 10).
#[test]
fn a_claim_waits_for_a_mirror_lock_sibling_fetches_take_in_turn() {
    let env = TestEnv::new();
    let files = vec![
        (".tasks/t1.md".to_owned(), task("Task one", 1, &[])),
        (".tasks/t2.md".to_owned(), task("Task two", 2, &[])),
    ];
    remote_with_clones(&env, &files, &["a", "b"]);
    assert_eq!(claimed(&claim_as(&env, "a", "alice")).0, "t1");
    // Bob's next fetch of the leases writes his mirror of t1 for the first time.
    let lock = env.path("b/.git/refs/gitprio/remotes/origin/leases/t1.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let taken = Arc::new(AtomicUsize::new(0));
    let siblings = thread::spawn({
        let (lock, taken) = (lock.clone(), taken.clone());
        move || {
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until {
                // Only a lock of its own is let go: one the claim's git took is its own.
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&lock)
                {
                    Ok(_) => {
                        taken.fetch_add(1, Ordering::SeqCst);
                        thread::sleep(Duration::from_millis(30));
                        std::fs::remove_file(&lock).unwrap();
                    }
                    Err(_) => thread::sleep(Duration::from_millis(1)),
                }
            }
        }
    });
    while taken.load(Ordering::SeqCst) == 0 {
        thread::sleep(Duration::from_millis(1));
    }
    let claim = claim_as(&env, "b", "bob");
    siblings.join().unwrap();
    assert_eq!(claimed(&claim).0, "t2", "{claim}");
    assert!(!lock.exists());
}
