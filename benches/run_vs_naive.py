#!/usr/bin/env python3
"""The run loop against a naive agent loop: what does `gitprio run` save?

Usage:
    cargo build --release
    python3 benches/run_vs_naive.py [--bin target/release/gitprio] [--agents 8]
                                    [--tasks 100] [--seed 7] [--max-iterations 150]
                                    [--impossible 0.1 --impossible 0]

Needs only python3 (stdlib), git and the gitprio binary. Everything happens in a
temporary directory with its own HOME, GIT_CONFIG_GLOBAL=/dev/null and
GIT_CONFIG_NOSYSTEM=1.

One simulated agent, two loops around it. The agent is a model of an agent CLI run on
one task, the same in both loops, decided by a seeded hash so that both loops meet the
same luck:
  - each task has a cost per attempt, uniform in [20k, 60k] tokens (the same for every
    attempt at that task);
  - 90% of the tasks are solvable: an attempt succeeds with probability 0.8, and a failed
    attempt reports a failure worded differently each time (a different failing test);
  - a share of them (--impossible, default: one scenario with 10%, one with none) are
    impossible without a human: every attempt fails with the same error.

(a) The naive loop: --agents agents, each `for i in 1..--max-iterations` (the Ralph
    loop's `--max-iterations`): read the task files, take the first task whose status is
    open (nobody marks work in progress), work on it, on success set `status: done`
    (if nobody did meanwhile); on failure the next iteration tries again. When no task is
    open the agent is still invoked: it rereads the backlog and the repository to decide
    that there is nothing to do, for 8k tokens. Simulated in this script as discrete
    events (an attempt takes time proportional to its tokens).

(b) `gitprio run`: a real repository with --tasks task files, and --agents `gitprio run
    --local` processes started together in it (each its own agent name), whose agent
    command is a small Python script playing the same agent model: it sleeps a little,
    writes its tokens to $GITPRIO_USAGE_FILE and exits 0 or 1 with its error on stderr.
    Leases keep agents off each other's tasks; a failed attempt goes back to the queue;
    the runaway guard parks a task that fails twice the same way; `max_attempts: 3`
    parks the rest; each process stops when `claim` exits 3. The numbers are read back
    from the usage ledger (`gitprio report --json --by run`).

Columns:
  - completed:         tasks done at the end.
  - attempts:          agent invocations on a task.
  - duplicated tokens: tokens spent on a task that another agent also worked on at the
                       same time or had already completed (the naive loop's "redo task 1").
  - retry tokens:      tokens of attempts after a task's first failed one (the same task
                       again), impossible tasks included.
  - empty-queue tokens: tokens of agent invocations with nothing left to do.
  - tokens/completed:  all tokens / completed tasks: what one finished task really cost.
"""

import argparse
import hashlib
import heapq
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EMPTY_ITERATION_TOKENS = 8_000
SUCCESS_RATE = 0.8
WORDS = ["parser", "cache", "router", "schema", "client", "worker", "ledger", "index",
         "session", "billing", "search", "upload"]


def unit(seed, *parts):
    """A deterministic number in [0, 1) for `parts`."""
    digest = hashlib.sha256(":".join(str(part) for part in (seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def task_cost(seed, task):
    return 20_000 + int(unit(seed, "cost", task) * 40_000)


def impossible(seed, task, share):
    return unit(seed, "impossible", task) < share


def attempt_succeeds(seed, task, attempt, share):
    if impossible(seed, task, share):
        return False
    return unit(seed, "success", task, attempt) < SUCCESS_RATE


def task_names(count):
    return [f"t{index:03d}" for index in range(count)]


def naive(args):
    """Discrete-event simulation of the naive loop."""
    tasks = task_names(args.tasks)
    done = set()
    attempts_on = {task: 0 for task in tasks}
    failed_once = set()
    working = {}  # task -> number of agents on it now
    totals = dict(attempts=0, tokens=0, duplicated=0, retry=0, empty=0)
    events = [(0.0, agent, 0) for agent in range(args.agents)]  # (time, agent, iteration)
    heapq.heapify(events)
    finishing = []  # (time, agent, task, tokens, started_while_busy)
    while events or finishing:
        # Next thing to happen: an agent starting an iteration, or an attempt ending.
        if finishing and (not events or finishing[0][0] <= events[0][0]):
            at, agent, task, tokens, overlapped, iteration = heapq.heappop(finishing)
            working[task] -= 1
            attempts_on[task] += 1
            success = attempt_succeeds(args.seed, task, attempts_on[task], args.impossible)
            if task in done or overlapped:
                totals["duplicated"] += tokens
            if success:
                done.add(task)
            else:
                failed_once.add(task)
            if iteration + 1 < args.max_iterations:
                heapq.heappush(events, (at, agent, iteration + 1))
            continue
        at, agent, iteration = heapq.heappop(events)
        open_tasks = [task for task in tasks if task not in done]
        if not open_tasks:
            totals["empty"] += EMPTY_ITERATION_TOKENS
            totals["tokens"] += EMPTY_ITERATION_TOKENS
            if iteration + 1 < args.max_iterations:
                heapq.heappush(events, (at + 0.5, agent, iteration + 1))
            continue
        task = open_tasks[0]
        tokens = task_cost(args.seed, task)
        overlapped = working.get(task, 0) > 0
        working[task] = working.get(task, 0) + 1
        totals["attempts"] += 1
        totals["tokens"] += tokens
        if task in failed_once:
            totals["retry"] += tokens
        heapq.heappush(finishing, (at + tokens / 10_000, agent, task, tokens, overlapped, iteration))
    totals["completed"] = len(done)
    return totals


AGENT = r'''#!/usr/bin/env python3
import hashlib, json, os, sys, time
sys.stdin.read()
SEED = int(os.environ["BENCH_SEED"])
task = os.environ["GITPRIO_TASK"]
state = os.path.join(os.environ["BENCH_STATE"], task)
attempt = 1 + (len(open(state).read().splitlines()) if os.path.exists(state) else 0)
with open(state, "a") as log:
    log.write(f"{attempt}\n")
''' + "\n".join(
    [
        "WORDS = " + repr(WORDS),
        "SUCCESS_RATE = " + repr(SUCCESS_RATE),
        "IMPOSSIBLE_SHARE = float(os.environ['BENCH_IMPOSSIBLE'])",
    ]
) + r'''
def unit(*parts):
    digest = hashlib.sha256(":".join(str(part) for part in (SEED, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
tokens = 20_000 + int(unit("cost", task) * 40_000)
impossible = unit("impossible", task) < IMPOSSIBLE_SHARE
success = not impossible and unit("success", task, attempt) < SUCCESS_RATE
time.sleep(tokens / 2_000_000)
with open(os.environ["GITPRIO_USAGE_FILE"], "a") as usage:
    usage.write(json.dumps({"model": "claude-sonnet-4-5", "input": tokens * 9 // 10,
                            "output": tokens // 10, "key": f"attempt-{attempt}"}) + "\n")
if success:
    print(f"Fixed {task}.")
    sys.exit(0)
if impossible:
    print(f"error: test {task}::contract fails: the spec contradicts the API", file=sys.stderr)
else:
    word = WORDS[int(unit("word", task, attempt) * len(WORDS))]
    print(f"error: test {task}::{word} fails", file=sys.stderr)
sys.exit(1)
'''


def run_loop(args, root):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(root / "home"),
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
        "NO_COLOR": "1",
        "BENCH_SEED": str(args.seed),
        "BENCH_STATE": str(root / "state"),
        "BENCH_IMPOSSIBLE": str(args.impossible),
    }
    (root / "home").mkdir()
    (root / "state").mkdir()
    repo = root / "repo"
    (repo / ".tasks").mkdir(parents=True)
    (repo / ".tasks" / "config.yaml").write_text("max_attempts: 3\n")
    for index, task in enumerate(task_names(args.tasks)):
        (repo / ".tasks" / f"{task}.md").write_text(
            f"---\ntitle: Task {task}\npriority: {index * 5 // args.tasks}\n"
            f"created: 2026-01-01\n---\nDo {task}.\n")
    agent = root / "agent.py"
    agent.write_text(AGENT)
    agent.chmod(0o755)
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "queue"]):
        subprocess.run(["git", *command], cwd=repo, env=env, check=True)
    started = time.monotonic()
    processes = [
        subprocess.Popen(
            [args.bin, "run", "--local", "--json", "--agent-name", f"agent-{number}",
             "--", str(agent)],
            cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for number in range(1, args.agents + 1)
    ]
    outputs = [process.communicate() for process in processes]
    wall = time.monotonic() - started
    for process, (stdout, stderr) in zip(processes, outputs):
        if process.returncode != 0:
            sys.exit(f"gitprio run failed ({process.returncode}):\n{stdout}\n{stderr}")
    report = subprocess.run(
        [args.bin, "report", "--json", "--by", "run", "--local"],
        cwd=repo, env=env, check=True, capture_output=True, text=True)
    runs = sorted(json.loads(report.stdout)["runs"], key=lambda run: (run["task"], run["run"]))
    totals = dict(attempts=len(runs), tokens=0, duplicated=0, retry=0, empty=0)
    completed = {}
    failed_once = set()
    claims_per_task = {}
    for run in runs:
        task = run["task"]
        totals["tokens"] += run["tokens"]
        if task in completed:
            totals["duplicated"] += run["tokens"]
        if task in failed_once:
            totals["retry"] += run["tokens"]
        if run["outcome"] == "completed":
            completed[task] = completed.get(task, 0) + 1
        else:
            failed_once.add(task)
        claims_per_task[task] = claims_per_task.get(task, 0) + 1
    # Overlapping work on one task would show as two runs of one generation: leases forbid it.
    double = sum(count - 1 for count in completed.values() if count > 1)
    totals["completed"] = len(completed)
    totals["double_completions"] = double
    totals["parked"] = sum(1 for run in runs if run["outcome"] == "parked")
    totals["wall_s"] = wall
    status = subprocess.run([args.bin, "status", "--json", "--local", "--offline"],
                            cwd=repo, env=env, check=True, capture_output=True, text=True)
    totals["parked_errors"] = [(lease["task"], lease["failures"], lease["last_error"])
                               for lease in json.loads(status.stdout)["leases"]
                               if lease["state"] == "parked"]
    return totals


def fmt(count):
    if count >= 1_000_000:
        return f"{count / 1_000_000:.2f}M"
    if count >= 1_000:
        return f"{count / 1_000:.0f}k"
    return str(count)


def scenario(args, impossible_share):
    args.impossible = impossible_share
    impossible_count = sum(1 for task in task_names(args.tasks)
                           if impossible(args.seed, task, impossible_share))
    naive_totals = naive(args)
    with tempfile.TemporaryDirectory(prefix="gitprio-bench-run-") as directory:
        run_totals = run_loop(args, Path(directory))
    print(f"\n**{impossible_count} of {args.tasks} tasks impossible without a human**\n")
    print("| loop | completed | attempts | duplicated tokens | retry tokens | empty-queue tokens "
          "| total tokens | tokens/completed |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, totals in (("naive loop", naive_totals), ("gitprio run", run_totals)):
        per = totals["tokens"] / totals["completed"] if totals["completed"] else float("inf")
        print(f"| {name} | {totals['completed']} | {totals['attempts']} | "
              f"{fmt(totals['duplicated'])} | {fmt(totals['retry'])} | {fmt(totals['empty'])} | "
              f"{fmt(totals['tokens'])} | {fmt(round(per))} |")
    naive_per = naive_totals["tokens"] / max(naive_totals["completed"], 1)
    run_per = run_totals["tokens"] / max(run_totals["completed"], 1)
    runaway = sum(1 for _, failures, _ in run_totals["parked_errors"] if failures < 3)
    print(f"\ngitprio run: {len(run_totals['parked_errors'])} tasks parked for a human "
          f"({runaway} by the runaway guard after two identical failures, the rest at "
          f"`max_attempts: 3`), {run_totals['double_completions']} tasks completed twice, "
          f"{run_totals['wall_s']:.1f}s wall time for the real binary; "
          f"{naive_per / run_per:.1f}x fewer tokens per completed task than the naive loop.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", default="target/release/gitprio")
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-iterations", type=int, default=150)
    parser.add_argument("--impossible", type=float, action="append",
                        help="share of impossible tasks, one scenario each (default: 0.1 and 0)")
    args = parser.parse_args()
    args.bin = str(Path(args.bin).resolve())
    shares = args.impossible or [0.10, 0.0]
    print("## Run loop vs naive loop\n")
    print(f"{args.agents} agents on a {args.tasks}-task queue; an attempt costs 20k-60k tokens "
          f"(fixed per task) and succeeds with probability {SUCCESS_RATE} on a solvable task; "
          f"the naive loop runs {args.max_iterations} iterations per agent and spends "
          f"{fmt(EMPTY_ITERATION_TOKENS)} tokens on an iteration that finds nothing to do. "
          f"Seed {args.seed}; `python3 benches/run_vs_naive.py`.")
    for share in shares:
        scenario(args, share)
if __name__ == "__main__":
    main()
