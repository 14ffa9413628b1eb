#!/usr/bin/env python3
"""Lease benchmark: claim latency against a raw push, and claimers in contention.

Usage:
    cargo build --release
    python3 benches/leases.py [--bin target/release/gitprio] [--runs 20]
                              [--lease-refs 0,500] [--agents 1,4,16,32] [--tasks 500]
                              [--max-load 1.0] [--skip latency|contention|rtt ...]
                              [--rtts 50,150] [--rtt-agents 1,8,32] [--bin-before OLD]
                              [--rtt-tasks-per-agent 2] [--work-ms 0]

Needs only python3 (stdlib), git (with `git daemon`) and the release binary. Everything
happens in a temporary directory with its own HOME, GIT_CONFIG_GLOBAL=/dev/null and
GIT_CONFIG_NOSYSTEM=1, so the user's git configuration plays no part.

Before the latency part and before each K of the contention part, the script waits (up
to --load-retries times, --load-wait seconds apart) for the 1-minute load average to fall
to --max-load (then measures anyway, with a warning), and prints the load it measured
under, next to the number of cores, in the tables.

Part 1, latency (one agent, no contention). Two remotes: (a) a bare repository reached by
path (local transport), (b) the same kind of repository served by `git daemon` on
127.0.0.1 (git://, receive-pack enabled; the daemon is killed at the end). For each level
L of --lease-refs (column `leases`), a remote whose queue has L + --runs + --warmup tasks,
the first L of them already finished (one lease ref each in state `submitted`, as after L
claims and `gitprio done`s a day ago, before a `gitprio gc`; the record is copied from one
that this gitprio wrote, its times moved back a day, so no agent of theirs counts as
active). Every
claim looks at every lease ref, and git's fetch and push both cost more with more refs, so
L=0 is the best case and L=500 a queue in use. For each remote, a clone, and --runs
timed rounds (after --warmup untimed ones) of, in this order:
  - raw push:  `git push --porcelain --force-with-lease=<ref>: origin <oid>:<ref>` of one
               new ref (refs/bench/raw/<n>) to a fresh commit of the empty tree, made with
               `git commit-tree` beforehand (untimed). This is the floor for one
               compare-and-swap on the remote, and the target's yardstick.
  - raw fetch: a plain `git fetch` of the same refspecs `gitprio claim` refreshes (the
               queue branch and every refs/gitprio/leases/* ref; nothing new to bring),
               for comparison: what a claim would pay if it always fetched.
  - claim:     `gitprio claim --json`, which takes the next task (the previous claims are
               still held, so every claim is on a fresh task and creates a new lease ref):
               one look at the remote's refs (read from its files for the path remote,
               `ls-remote` over git://; nothing changed since the last round, so no fetch
               follows), reading the queue and the leases, one push.
  - heartbeat: `gitprio heartbeat <id> --json`: one push that moves an existing lease ref.
Each command's wall time is taken from the spawn to the exit of the process, in ms.
Columns: median and p90 (nearest rank) of each, and claim/push = median claim / median
raw push (target: <= 1.5x), claim/(fetch+push) = median claim / (median raw fetch +
median raw push), i.e. how a claim compares with a plain fetch followed by a push.

Part 2, contention. For each K in --agents: a fresh bare remote (by path) holding a queue
of --tasks tasks (`.tasks/tNNNN.md`, priority N%5), K clones of it, and K threads started
together, each looping `gitprio claim --json` (GITPRIO_AGENT=<clone name>) -> on exit 0
record the task id and the claim's `tries` (compare-and-swaps it pushed) -> `gitprio done
<id>`; on exit 3 (nothing ready) the agent stops. A claim that gives up after losing too
many races exits 1 with "gave up after losing N races"; it is counted as a failed claim,
its N pushes are counted, and the agent tries again. Columns:
  - load:         the 1-minute load average just before this K started.
  - wall s:       from the start of the threads to the last agent stopping.
  - claims/s:     successful claims / wall time.
  - pushes/claim: lease pushes made by claims (the `tries` of successful claims plus the
                  races lost by failed claims) / successful claims. Target: <= 1.5 at 32
                  agents. (`done` pushes once more per task; not counted.)
  - max tries:    the most pushes one successful claim needed (a claim gives up at 18);
                  a line under the table gives how many claims needed 1, 2, ... pushes.
  - p50/p90 ms:   latency of a successful `gitprio claim`, as its agent saw it.
  - failed:       claims that gave up on contention (exit 1) and were retried.
  - double:       claims of a task id already claimed (must be 0).
  - unclaimed:    tasks never claimed (must be 0).
  - submitted:    lease refs on the remote afterwards in state `submitted` at generation 1
                  (must be --tasks); the script also checks there are no other lease refs
                  and no `done` lost its lease (exit 4).
Part 3, round trips (`rtt`). The same claims over a network: `git daemon` and a smart-HTTP
server (benches/netsim.py: `git http-backend` as CGI, like a forge's web server), each behind
a latency-injecting TCP proxy on 127.0.0.1 (asyncio; it holds every chunk, each way, for
half of --rtts ms, and each new connection for a whole RTT, as a TCP handshake costs one).
For each transport, RTT and build (--bin, and --bin-before if given, measured in the same
run, against the same servers):
  - alone:  --rtt-runs rounds (after --warmup) of a raw push (as in part 1), then a timed
            `gitprio claim` and an untimed `gitprio done`, one agent. `push rt` and
            `claim rt` are the median round trips the proxy saw per command (connections
            plus answers waited for); `p50/push` = median claim / median raw push of the
            same transport, RTT and build (target: <= 1.1x).
  - K:      as part 2, K agents drain max(--rtt-min-tasks, --rtt-tasks-per-agent * K) tasks
            over the proxy, each working --work-ms (x0.5-1.5, at random) on a task between
            its claim and its `done` (0: at once, the harshest contention);
            `claim rt` here is round trips per claim (lost pushes included) and `done rt`
            those of the `gitprio done` after it (done goes through a second proxy, by
            git's `url.<base>.insteadOf` in its environment, so the two are counted
            apart); pushes/claim target <= 1.2 at 32 agents; the run fails on any double
            claim, unclaimed task or lost lease. stderr gives the pushes per claim of
            each agent's first claim and of the others.
  cpu:      the machine's busy CPU fraction (all cores, /proc/stat) over the row: near
            100% the machine, not the protocol, is the bottleneck of that row.
--rtt-transports git,http chooses the transports (one per quiet window, say).
The proxy and servers stop when the part ends (and are bounded by 60 s timeouts per read).
The script exits 1 if any double claim, unclaimed task, lost lease or unexpected error
shows up.
"""

import argparse
import calendar
import collections
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def base_env(home):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GIT_", "GITPRIO_"))
    }
    env.update(
        HOME=home,
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME="Bench",
        GIT_AUTHOR_EMAIL="bench@example.com",
        GIT_COMMITTER_NAME="Bench",
        GIT_COMMITTER_EMAIL="bench@example.com",
        LC_ALL="C",
    )
    return env


def run(command, cwd, env, check=True, input_bytes=None):
    result = subprocess.run(
        command, cwd=cwd, env=env, input=input_bytes, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    if check and result.returncode != 0:
        sys.exit(
            f"command failed ({result.returncode}): {' '.join(command)}\n"
            f"{result.stderr.decode(errors='replace')}"
        )
    return result


def timed(command, cwd, env):
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return (time.perf_counter() - start) * 1000, result


def task_id(index, width):
    return "t%0*d" % (width, index)


def make_remote(root, name, count, env, submitted=0, template=None):
    """A bare repository `<root>/<name>.git` whose `main` holds `count` task files.

    With `submitted`, the first `submitted` tasks also get a lease ref in state
    `submitted` (the lease record `template`, written by gitprio itself, with the task
    id replaced), as a queue that agents have been working on for a while has.
    """
    width = max(4, len(str(count)))
    work = os.path.join(root, name + "-src")
    bare = os.path.join(root, name + ".git")
    run(["git", "init", "--quiet", "--initial-branch=main", work], root, env)
    stream = bytearray(b"commit refs/heads/main\ncommitter Bench <bench@example.com> 1700000000 +0000\ndata 6\nqueue\n")
    for index in range(count):
        content = f"---\ntitle: task {index}\npriority: {index % 5}\n---\nbody\n".encode()
        path = ".tasks/%s.md" % task_id(index, width)
        stream += b"M 100644 inline %s\ndata %d\n" % (path.encode(), len(content)) + content + b"\n"
    for index in range(submitted):
        message = template.replace(TEMPLATE_ID, task_id(index, width)).encode()
        stream += (
            b"commit refs/gitprio/leases/%s\n" % task_id(index, width).encode()
            + b"committer gitprio <gitprio@localhost> 1700000000 +0000\n"
            + b"data %d\n" % len(message) + message + b"\n"
        )
    run(["git", "fast-import", "--quiet"], work, env, input_bytes=bytes(stream))
    run(["git", "init", "--quiet", "--bare", "--initial-branch=main", bare], root, env)
    run(["git", "push", "--quiet", bare, "main:main", "refs/gitprio/leases/*:refs/gitprio/leases/*"], work, env)
    shutil.rmtree(work)
    return bare


TEMPLATE_ID = "t0000"


def lease_template(binary, root, env):
    """The message of a submitted lease commit, as this gitprio writes it (task t0000)."""
    base = os.path.join(root, "template")
    os.makedirs(base)
    bare = make_remote(base, "remote", 1, env)
    repo = clone(bare, os.path.join(base, "agent"), env)
    agent_env = dict(env, GITPRIO_AGENT="bench-prefill")
    run([binary, "claim", "--json"], repo, agent_env)
    run([binary, "done", TEMPLATE_ID], repo, agent_env)
    commit = run(["git", "cat-file", "commit", f"refs/gitprio/leases/{TEMPLATE_ID}"], bare, env).stdout.decode()
    shutil.rmtree(base)
    message = commit.split("\n\n", 1)[1]
    if '"state": "submitted"' not in message:
        sys.exit(f"unexpected lease record after `gitprio done`:\n{message}")
    # Finished work of a day ago, as leases pile up until `gitprio gc`: not an agent
    # active within the TTL, which would make every claim refresh (its spread counts it).
    subject, body = message.split("\n\n", 1)
    record = json.loads(body)
    day = 86_400
    for key in ("acquired_at", "renewed_at", "expires_at"):
        stamp = time.strptime(record[key][:19], "%Y-%m-%dT%H:%M:%S")
        record[key] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(calendar.timegm(stamp) - day))
    return subject + "\n\n" + json.dumps(record, indent=2) + "\n"


def clone(url, dest, env):
    run(["git", "clone", "--quiet", url, dest], os.path.dirname(dest), env)
    return dest


def percentile(samples, fraction):
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


def cpu_times():
    """The machine's (busy, total) CPU time so far, in clock ticks, from /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def busy_between(before, after):
    """The fraction of the machine's CPU time (all cores) that was busy between two cpu_times()."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else float("nan")


def load1():
    with open("/proc/loadavg") as handle:
        return float(handle.read().split()[0])


def wait_for_quiet(args):
    for attempt in range(args.load_retries + 1):
        load = load1()
        if load <= args.max_load:
            return load
        if attempt < args.load_retries:
            print(
                f"# load {load:.2f} > {args.max_load}: waiting {args.load_wait}s "
                f"({attempt + 1}/{args.load_retries})",
                file=sys.stderr,
            )
            time.sleep(args.load_wait)
    print(f"# WARNING: machine still busy (load {load:.2f}); measuring anyway", file=sys.stderr)
    return load


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_daemon(base, env):
    port = free_port()
    daemon = subprocess.Popen(
        [
            "git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={port}",
            f"--base-path={base}", "--export-all", "--enable=receive-pack",
            # A forge serves more than git daemon's default of 32 connections at once.
            "--max-connections=256", base,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            sys.exit(f"git daemon exited with {daemon.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return daemon, port
        except OSError:
            time.sleep(0.05)
    daemon.kill()
    sys.exit("git daemon did not start listening")


def stop_daemon(daemon):
    daemon.terminate()
    try:
        daemon.wait(timeout=5)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()


def latency(args, binary, root, env, label, url):
    """Times raw push, raw fetch, claim and heartbeat against the remote at `url`."""
    repo = clone(url, os.path.join(root, f"lat-{label}"), env)
    agent_env = dict(env, GITPRIO_AGENT=f"lat-{label}")
    run(["git", "hash-object", "-t", "tree", "-w", "/dev/null"], repo, env)
    fetch = [
        "git", "fetch", "--quiet", "--no-tags", "--prune", "--no-write-fetch-head",
        "--no-recurse-submodules", "origin",
        "+refs/heads/main:refs/remotes/origin/main",
        "+refs/gitprio/leases/*:refs/gitprio/remotes/origin/leases/*",
    ]
    samples = collections.defaultdict(list)
    claimed = set()
    for round_index in range(args.warmup + args.runs):
        keep = round_index >= args.warmup
        ref = f"refs/bench/raw/{round_index}"
        oid = run(
            ["git", "commit-tree", EMPTY_TREE, "-m", f"raw push {label} {round_index} {time.time_ns()}"],
            repo, env,
        ).stdout.decode().strip()
        ms, result = timed(["git", "push", "--porcelain", f"--force-with-lease={ref}:", "origin", f"{oid}:{ref}"], repo, env)
        if result.returncode != 0:
            sys.exit(f"raw push failed: {result.stderr.decode(errors='replace')}")
        if keep:
            samples["push"].append(ms)
        ms, result = timed(fetch, repo, env)
        if result.returncode != 0:
            sys.exit(f"raw fetch failed: {result.stderr.decode(errors='replace')}")
        if keep:
            samples["fetch"].append(ms)
        ms, result = timed([binary, "claim", "--json"], repo, agent_env)
        if result.returncode != 0:
            sys.exit(f"claim failed ({result.returncode}): {result.stderr.decode(errors='replace')}")
        claim = json.loads(result.stdout)
        task = claim["task"]["id"]
        if task in claimed:
            sys.exit(f"latency: task {task} claimed twice by one agent")
        claimed.add(task)
        if claim["tries"] != 1:
            sys.exit(f"latency: a lone claim pushed {claim['tries']} times")
        if keep:
            samples["claim"].append(ms)
        ms, result = timed([binary, "heartbeat", task, "--json"], repo, agent_env)
        if result.returncode != 0:
            sys.exit(f"heartbeat failed ({result.returncode}): {result.stderr.decode(errors='replace')}")
        if keep:
            samples["heartbeat"].append(ms)
    return samples


def run_latency(args, binary, root, env):
    load = wait_for_quiet(args)
    count = args.warmup + args.runs
    levels = [int(value) for value in args.lease_refs.split(",")]
    template = lease_template(binary, root, env) if any(levels) else None
    serve = os.path.join(root, "serve")
    os.makedirs(serve)
    results = []
    daemon = None
    try:
        daemon, port = start_daemon(serve, env)
        for level in levels:
            name = f"lat{level}"
            make_remote(root, name, level + count, env, level, template)
            make_remote(serve, name, level + count, env, level, template)
            results.append(("path", level, latency(args, binary, root, env, f"path{level}", os.path.join(root, name + ".git"))))
            results.append(("git://", level, latency(args, binary, root, env, f"git{level}", f"git://127.0.0.1:{port}/{name}.git")))
    finally:
        if daemon is not None:
            stop_daemon(daemon)
    end_load = load1()
    print(
        f"# claim latency, one agent ({os.cpu_count()} cores, load {load:.2f} at start, {end_load:.2f} at end), "
        f"{args.runs} runs after {args.warmup} warm-up, ms: median / p90"
    )
    print(
        f"{'remote':<7} {'leases':>6} {'raw push':>15} {'raw fetch':>15} {'claim':>15} {'heartbeat':>15} "
        f"{'claim/push':>11} {'claim/(fetch+push)':>19}"
    )
    ok = True
    for remote, level, samples in results:
        cells = [
            f"{statistics.median(samples[key]):6.1f} / {percentile(samples[key], 0.9):6.1f}"
            for key in ("push", "fetch", "claim", "heartbeat")
        ]
        ratio = statistics.median(samples["claim"]) / statistics.median(samples["push"])
        floor = statistics.median(samples["claim"]) / (
            statistics.median(samples["fetch"]) + statistics.median(samples["push"])
        )
        print(
            f"{remote:<7} {level:>6} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15} {cells[3]:>15} "
            f"{ratio:>10.2f}x {floor:>18.2f}x"
        )
        ok = ok and ratio <= 1.5
    print(f"# target claim <= 1.5x raw push: {'met' if ok else 'NOT met'}")
    top = max(levels)
    if top:
        ratios = {
            (remote, level): statistics.median(samples["claim"]) / statistics.median(samples["push"])
            for remote, level, samples in results
        }
        for remote in ("path", "git://"):
            if (remote, 0) in ratios:
                print(
                    f"# {remote}: claim/push {ratios[(remote, top)]:.2f}x with {top} lease refs, "
                    f"{ratios[(remote, 0)]:.2f}x with none: target <= 1.3x with {top}: "
                    f"{'met' if ratios[(remote, top)] <= 1.3 else 'NOT met'}"
                )
    sys.stdout.flush()


RACES = re.compile(r"losing (\d+) races")


def agent_loop(binary, repo, env, start, record, errors, max_errors=20, work_ms=0, done_env=None):
    start.wait()
    rnd = random.Random(env["GITPRIO_AGENT"])
    failures = 0
    first = True
    while True:
        begin = time.perf_counter()
        result = subprocess.run([binary, "claim", "--json"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ms = (time.perf_counter() - begin) * 1000
        if result.returncode == 3:
            return
        if result.returncode != 0:
            stderr = result.stderr.decode(errors="replace").strip()
            races = RACES.search(stderr)
            if result.returncode == 1 and races:
                record("failed", int(races.group(1)), ms)
                continue
            errors.append(f"{env['GITPRIO_AGENT']}: claim exit {result.returncode}: {stderr}")
            failures += 1
            if failures >= max_errors:
                return
            continue
        claim = json.loads(result.stdout)
        task = claim["task"]["id"]
        record(task, claim["tries"], ms, first)
        first = False
        if work_ms:
            # The agent works on the task: half to one and a half times --work-ms.
            time.sleep(rnd.uniform(0.5, 1.5) * work_ms / 1000)
        done = subprocess.run(
            [binary, "done", task], cwd=repo, env=dict(env, **(done_env or {})), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        if done.returncode != 0:
            errors.append(
                f"{env['GITPRIO_AGENT']}: done {task} exit {done.returncode}: "
                f"{done.stderr.decode(errors='replace').strip()}"
            )
            if done.returncode == 4:
                record("lost", 0, 0)


def contention(args, binary, root, env, agents, tasks=None, serve=None, url=None, done_env=None):
    """K agents drain a fresh queue of `tasks` (default --tasks): the remote by path, or
    when `serve` and `url` are given, `<serve>/<name>.git` reached at `url(name)`; each
    `gitprio done` runs with `done_env` added to its environment."""
    tasks = tasks or args.tasks
    base = os.path.join(root, f"k{agents}-{time.time_ns()}")
    os.makedirs(base)
    name = os.path.basename(base)
    bare = make_remote(serve or base, name if serve else "remote", tasks, env)
    origin = url(name) if url else bare
    clones = [clone(origin, os.path.join(base, f"agent{index:02d}"), env) for index in range(agents)]
    lock = threading.Lock()
    claims = []
    failed = []
    lost = []
    errors = []

    firsts = []

    def record(task, tries, ms, first=False):
        with lock:
            if task == "failed":
                failed.append(tries)
            elif task == "lost":
                lost.append(1)
            else:
                claims.append((task, tries, ms))
                if first:
                    firsts.append(tries)

    start = threading.Barrier(agents + 1)
    threads = [
        threading.Thread(
            target=agent_loop,
            args=(binary, repo, dict(env, GITPRIO_AGENT=os.path.basename(repo)), start, record, errors),
            kwargs={"work_ms": args.work_ms, "done_env": done_env},
        )
        for repo in clones
    ]
    for thread in threads:
        thread.start()
    start.wait()
    begin = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - begin
    counts = collections.Counter(task for task, _, _ in claims)
    doubles = sum(count - 1 for count in counts.values() if count > 1)
    width = max(4, len(str(tasks)))
    missing = tasks - len({task for task in counts if re.fullmatch(r"t\d{%d}" % width, task)})
    # What the remote holds: one lease ref per task, each submitted.
    refs = run(
        ["git", "for-each-ref", "--format=%(objectname)", "refs/gitprio/leases/"], bare, env
    ).stdout.decode().split()
    messages = run(["git", "cat-file", "--batch"], bare, env, input_bytes="\n".join(refs).encode() + b"\n").stdout.decode()
    submitted = len(re.findall(r'"state": "submitted"', messages)) if refs else 0
    first_generation = len(re.findall(r'"generation": 1,', messages)) if refs else 0
    shutil.rmtree(base, ignore_errors=True)
    if serve:
        shutil.rmtree(bare, ignore_errors=True)
    return {
        "agents": agents,
        "tasks": tasks,
        "wall": wall,
        "claims": len(claims),
        "tries": sum(tries for _, tries, _ in claims),
        "failed": len(failed),
        "failed tries": sum(failed),
        "p50": statistics.median(ms for _, _, ms in claims) if claims else float("nan"),
        "p90": percentile([ms for _, _, ms in claims], 0.9) if claims else float("nan"),
        "doubles": doubles,
        "missing": missing,
        "lost": len(lost),
        "errors": errors,
        "refs": len(refs),
        "submitted": submitted,
        "generation 1": first_generation,
        "max tries": max((tries for _, tries, _ in claims), default=0),
        "tries list": [tries for _, tries, _ in claims],
        "first tries": sum(firsts),
        "firsts": len(firsts),
    }


def problems_of(result):
    """Whether a contention run went wrong: a double claim, a task never claimed, a lost
    lease, an error, or a remote that does not hold exactly one submitted generation-1
    lease per task."""
    tasks = result["tasks"]
    return bool(
        result["doubles"] + result["missing"] + result["lost"] or result["errors"]
        or result["refs"] != tasks or result["submitted"] != tasks or result["generation 1"] != tasks
    )


def rtt_latency(args, binary, root, env, proxy, url, label):
    """One agent alone over `proxy`: per round a raw push, then `gitprio claim` (timed,
    with the round trips each made), then an untimed `gitprio done`."""
    name = f"rtt-{label}"
    repo = clone(url(name), os.path.join(root, name), env)
    agent_env = dict(env, GITPRIO_AGENT=name)
    samples = collections.defaultdict(list)
    for round_index in range(args.warmup + args.rtt_runs):
        keep = round_index >= args.warmup
        ref = f"refs/bench/raw/{round_index}"
        oid = run(
            ["git", "commit-tree", EMPTY_TREE, "-m", f"raw push {label} {round_index} {time.time_ns()}"], repo, env
        ).stdout.decode().strip()
        for key, command in (
            ("push", ["git", "push", "--porcelain", f"--force-with-lease={ref}:", "origin", f"{oid}:{ref}"]),
            ("claim", [binary, "claim", "--json"]),
        ):
            before = proxy.counters()
            ms, result = timed(command, repo, agent_env)
            after = proxy.counters()
            if result.returncode != 0:
                sys.exit(f"{label}: {key} failed ({result.returncode}): {result.stderr.decode(errors='replace')}")
            if keep:
                samples[key].append(ms)
                samples[key + " rt"].append(after[0] - before[0] + after[1] - before[1])
            if key == "claim":
                claim = json.loads(result.stdout)
                if claim["tries"] != 1:
                    sys.exit(f"{label}: a lone claim pushed {claim['tries']} times")
                run([binary, "done", claim["task"]["id"]], repo, agent_env)
    return samples


def run_rtt(args, binary, root, env):
    """Part 3: claims over a latency-injecting proxy in front of git daemon and smart HTTP."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import netsim

    serve = os.path.join(root, "rtt-serve")
    os.makedirs(serve)
    daemon, daemon_port = start_daemon(serve, env)
    http = netsim.GitHttpServer(serve)
    rows = []
    load = wait_for_quiet(args)
    try:
        builds = [("after", binary)] + ([("before", os.path.abspath(args.bin_before))] if args.bin_before else [])
        transports = [("git://", daemon_port), ("http", http.port)]
        for transport, port in [entry for entry in transports if entry[0].rstrip(":/") in args.rtt_transports.split(",")]:
            scheme = "git" if transport == "git://" else "http"
            for rtt, (build, binary) in [
                (int(value), build) for value in args.rtts.split(",") for build in builds
            ]:
                proxy = netsim.LatencyProxy(port, rtt)
                # `gitprio done` goes through a proxy of its own (git's `url.<base>.insteadOf`
                # from the environment), so that `claim rt` counts the claims' round trips alone.
                done_proxy = netsim.LatencyProxy(port, rtt)
                done_env = {
                    "GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": f"url.{scheme}://127.0.0.1:{done_proxy.port}/.insteadOf",
                    "GIT_CONFIG_VALUE_0": f"{scheme}://127.0.0.1:{proxy.port}/",
                }
                try:
                    url = lambda name: f"{scheme}://127.0.0.1:{proxy.port}/{name}.git"  # noqa: E731
                    label = f"{scheme}{rtt}{build}"
                    make_remote(serve, f"rtt-{label}", args.warmup + args.rtt_runs, env)
                    cpu_before = cpu_times()
                    alone = rtt_latency(args, binary, root, env, proxy, url, label)
                    cpu = busy_between(cpu_before, cpu_times())
                    push = statistics.median(alone["push"])
                    claim = statistics.median(alone["claim"])
                    rows.append({
                        "transport": transport, "rtt": rtt, "build": build, "agents": "alone", "push": push,
                        "push rt": statistics.median(alone["push rt"]), "claim rt": statistics.median(alone["claim rt"]),
                        "p50": claim, "p90": percentile(alone["claim"], 0.9), "pushes": 1.0,
                        "claims/s": 1000 / claim, "ok": True, "cpu": cpu,
                    })
                    for agents in [int(value) for value in args.rtt_agents.split(",")]:
                        tasks = max(args.rtt_min_tasks, args.rtt_tasks_per_agent * agents)
                        before = proxy.counters()
                        done_before = done_proxy.counters()
                        cpu_before = cpu_times()
                        result = contention(args, binary, root, env, agents, tasks, serve, url, done_env)
                        cpu = busy_between(cpu_before, cpu_times())
                        after = proxy.counters()
                        done_after = done_proxy.counters()
                        later = max(1, result["claims"] - result["firsts"])
                        print(
                            f"#   {build} {transport} {rtt} ms K={agents}: {result['wall']:.1f}s (load {load1():.2f}); "
                            f"pushes per claim: {result['first tries'] / max(1, result['firsts']):.2f} for each "
                            f"agent's first, {(result['tries'] - result['first tries'] + result['failed tries']) / later:.2f} "
                            f"for the others",
                            file=sys.stderr,
                        )
                        claims = max(1, result["claims"])
                        rows.append({
                            "transport": transport, "rtt": rtt, "build": build, "agents": agents, "push": push,
                            "push rt": None,
                            "claim rt": (after[0] - before[0] + after[1] - before[1]) / claims,
                            "done rt": (done_after[0] - done_before[0] + done_after[1] - done_before[1]) / claims,
                            "p50": result["p50"], "p90": result["p90"],
                            "pushes": (result["tries"] + result["failed tries"]) / claims,
                            "claims/s": result["claims"] / result["wall"],
                            "ok": not problems_of(result), "result": result, "cpu": cpu,
                        })
                finally:
                    proxy.close()
                    done_proxy.close()
    finally:
        http.close()
        stop_daemon(daemon)
    print(
        f"# claims over a network round trip ({os.cpu_count()} cores, load {load:.2f} at start, {load1():.2f} at end): "
        f"proxy on 127.0.0.1 adding RTT per connection and per answer; `alone`: {args.rtt_runs} claims after "
        f"{args.warmup} warm-up, each after a raw push; K: K agents drain max({args.rtt_min_tasks}, "
        f"{args.rtt_tasks_per_agent}K) tasks, working {args.work_ms} ms (x0.5-1.5) on each"
    )
    print(
        f"{'remote':<7} {'rtt ms':>6} {'build':>6} {'agents':>6} {'push ms':>8} {'push rt':>7} {'claim rt':>8} {'done rt':>7} "
        f"{'p50 ms':>8} {'p90 ms':>8} {'p50/push':>8} {'pushes/claim':>12} {'claims/s':>8} {'double':>6} {'cpu':>4}"
    )
    ok = True
    for row in rows:
        push_rt = "" if row["push rt"] is None else f"{row['push rt']:.0f}"
        done_rt = f"{row['done rt']:.1f}" if "done rt" in row else ""
        doubles = row["result"]["doubles"] if "result" in row else 0
        print(
            f"{row['transport']:<7} {row['rtt']:>6} {row['build']:>6} {row['agents']:>6} {row['push']:>8.0f} {push_rt:>7} "
            f"{row['claim rt']:>8.1f} {done_rt:>7} {row['p50']:>8.0f} {row['p90']:>8.0f} {row['p50'] / row['push']:>7.2f}x "
            f"{row['pushes']:>12.2f} {row['claims/s']:>8.2f} {doubles:>6} {100 * row['cpu']:>3.0f}%"
        )
        if not row["ok"]:
            ok = False
            result = row["result"]
            print(
                f"#   {row['transport']} {row['rtt']} ms K={row['agents']}: {result['doubles']} double claims, "
                f"{result['missing']} never claimed, {result['lost']} lost at done, {len(result['errors'])} errors"
            )
            for error in result["errors"][:5]:
                print(f"#     {error}")
    print(f"# zero double claims and every task claimed and submitted once: {'met' if ok else 'NOT met'}")
    sys.stdout.flush()
    return ok


def run_contention(args, binary, root, env):
    results = []
    for agents in [int(value) for value in args.agents.split(",")]:
        # Each K waits for the machine (the last K's own agents included) to be quiet.
        load = wait_for_quiet(args)
        results.append(contention(args, binary, root, env, agents))
        results[-1]["load"] = load
        print(f"#   K={agents}: {results[-1]['wall']:.1f}s (load now {load1():.2f})", file=sys.stderr)
    print(
        f"# contention: {args.tasks} tasks, K agents claim+done until empty, remote by path "
        f"({os.cpu_count()} cores, 1-min load before each K in column `load`)"
    )
    print(
        f"{'agents':>6} {'load':>5} {'wall s':>7} {'claims/s':>9} {'pushes/claim':>13} {'max tries':>10} "
        f"{'p50 ms':>8} {'p90 ms':>8} {'failed':>7} {'double':>7} {'unclaimed':>10} {'submitted':>10}"
    )
    bad = False
    for result in results:
        pushes = (result["tries"] + result["failed tries"]) / max(1, result["claims"])
        problems = result["doubles"] + result["missing"] + result["lost"]
        print(
            f"{result['agents']:>6} {result['load']:>5.2f} {result['wall']:>7.1f} {result['claims'] / result['wall']:>9.1f} "
            f"{pushes:>13.2f} {result['max tries']:>10} {result['p50']:>8.0f} {result['p90']:>8.0f} "
            f"{result['failed']:>7} {result['doubles']:>7} {result['missing']:>10} {result['submitted']:>10}"
        )
        if problems_of(result):
            bad = True
            print(
                f"#   K={result['agents']}: {result['doubles']} double claims, {result['missing']} tasks never "
                f"claimed, {result['lost']} leases lost at done, {len(result['errors'])} errors, "
                f"{result['submitted']} of {result['refs']} lease refs submitted, "
                f"{result['generation 1']} at generation 1",
            )
            for error in result["errors"][:5]:
                print(f"#     {error}")
    for result in results:
        histogram = collections.Counter(result["tries list"])
        print(
            f"#   K={result['agents']} claims by tries: "
            + ", ".join(f"{tries}: {histogram[tries]}" for tries in sorted(histogram))
        )
    last = results[-1]
    pushes = (last["tries"] + last["failed tries"]) / max(1, last["claims"])
    print(
        f"# targets: zero double claims: {'met' if not bad else 'NOT met'}; "
        f"<= 1.5 pushes/claim at {last['agents']} agents: {'met' if pushes <= 1.5 else 'NOT met'} ({pushes:.2f})"
    )
    sys.stdout.flush()
    return not bad


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default="target/release/gitprio")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--agents", default="1,4,16,32")
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--lease-refs", default="0,500")
    parser.add_argument("--max-load", type=float, default=1.0)
    parser.add_argument("--load-wait", type=int, default=30)
    parser.add_argument("--load-retries", type=int, default=6)
    parser.add_argument("--skip", action="append", default=[], choices=["latency", "contention", "rtt"])
    parser.add_argument("--rtts", default="50,150", help="round-trip times the proxy adds, ms")
    parser.add_argument("--bin-before", help="a second gitprio binary to measure in the same rtt run")
    parser.add_argument("--rtt-agents", default="1,8,32")
    parser.add_argument("--rtt-transports", default="git,http", help="which of git (git://) and http to measure")
    parser.add_argument("--rtt-runs", type=int, default=8)
    parser.add_argument("--rtt-min-tasks", type=int, default=16)
    parser.add_argument("--rtt-tasks-per-agent", type=int, default=2)
    parser.add_argument(
        "--work-ms", type=int, default=0,
        help="how long each agent works on a task between claim and done (0: at once), ms",
    )
    args = parser.parse_args()
    binary = os.path.abspath(args.bin)
    if not os.access(binary, os.X_OK):
        sys.exit(f"no binary at {binary}: run `cargo build --release` first")
    version = subprocess.run(["git", "--version"], stdout=subprocess.PIPE).stdout.decode().strip()
    print(f"# gitprio lease benchmark: {binary}, {version}")
    ok = True
    with tempfile.TemporaryDirectory(prefix="gitprio-leases-") as root:
        home = os.path.join(root, "home")
        os.makedirs(home)
        env = base_env(home)
        if "latency" not in args.skip:
            run_latency(args, binary, root, env)
        if "contention" not in args.skip:
            ok = run_contention(args, binary, root, env)
        if "rtt" not in args.skip:
            ok = run_rtt(args, binary, root, env) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
