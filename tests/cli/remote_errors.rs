//! A remote whose connections drop: claims and renewals get through, and a dropped
//! connection is never a lost race.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::common::TestEnv;
use crate::leases::{remote_with_clones, task};
use crate::servers::{GitDaemon, wake_and_join};

/// How long one read or write through the proxy may block.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A TCP proxy on 127.0.0.1 in front of a server, which closes the next connections it
/// is told to drop as soon as it accepts them (as a daemon at its connection limit does)
/// and passes the others through. Stops when dropped.
struct DroppingProxy {
    port: u16,
    to_drop: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl DroppingProxy {
    fn start(server_port: u16) -> DroppingProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let to_drop = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = thread::spawn({
            let (to_drop, dropped, stop) = (to_drop.clone(), dropped.clone(), stop.clone());
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
                    connections.push(thread::spawn(move || forward(stream, server_port)));
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
            stop,
            accept: Some(accept),
        }
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

/// Copies bytes both ways between `client` and the server until either side closes.
fn forward(client: TcpStream, server_port: u16) {
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
    let upstream = thread::spawn(move || copy(client_reader, server));
    copy(server_reader, client);
    let _ = upstream.join();
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                if to.write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
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
