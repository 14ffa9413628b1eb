#!/usr/bin/env python3
"""Queue benchmark: `gitprio next` and `gitprio list --json` on generated queues.

Generates repositories with N task files (via `git fast-import`), then times the
median wall time, in interleaved rounds so that a change in machine load hits every
command alike, of:
  - baseline: `git ls-tree -r HEAD .tasks` piped into `git cat-file --batch`
    (just reading every task blob once, no parsing)
  - `gitprio next`, warm (the parse cache filled by an earlier run)
  - `gitprio list --json`, warm
  - with --compare, `gitprio next` of a second binary (say, the previous release)
and prints figures and ratios to the baseline measured in the same run. Also times
the cold `gitprio next` (no parse cache: every task file is read and parsed).

A --compare binary must keep its parse cache in another file than --bin (a different
cache format version does): both are run in turn, and would otherwise each find the
other's cache and rebuild it on every run.

Usage: python3 benches/queue.py [--bin target/release/gitprio] [--sizes 1000,10000,100000]
                                [--runs 15] [--compare OTHER_BIN] [--repos DIR] [--markdown]
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TYPES = ["bug", "feature", "refactor", "test", "docs", "deps", "spike", "chore"]
BASELINE = "git ls-tree -r --format='%(objectname)' HEAD .tasks | git cat-file --batch > /dev/null"


def task_file(index, rng, count):
    deps = ""
    if index > 10 and rng.random() < 0.3:
        deps = "depends_on: [t%06d]\n" % rng.randrange(0, index)
    status = rng.choices(["open", "done", "blocked", "dropped"], [70, 20, 5, 5])[0]
    return (
        "---\n"
        f"title: Generated task {index} of {count}\n"
        f"priority: p{rng.randrange(0, 5)}\n"
        f"status: {status}\n"
        f"type: {rng.choice(TYPES)}\n"
        f"feature: area-{rng.randrange(0, 40)}\n"
        f"value: {rng.randrange(1, 9)}\n"
        f"{deps}"
        f"labels: [generated, batch-{index % 17}]\n"
        f"owns: [\"src/area{rng.randrange(0, 40)}/**\"]\n"
        "acceptance: [cargo test]\n"
        f"created: 2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}\n"
        "---\n"
        f"# Task {index}\n\nDo the thing described in [the guide](../docs/guide.md#section-{index % 9}).\n"
    ).encode()


def make_repo(path, count):
    rng = random.Random(count)
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main", path], check=True)
    stream = bytearray(b"commit refs/heads/main\ncommitter Bench <bench@example.com> 1700000000 +0000\ndata 6\nqueue\n")
    for index in range(count):
        content = task_file(index, rng, count)
        stream += b"M 100644 inline .tasks/t%06d.md\ndata %d\n" % (index, len(content)) + content + b"\n"
    config = b"types: [bug, feature, refactor, test, docs, deps, spike, chore]\n"
    stream += b"M 100644 inline .tasks/config.yaml\ndata %d\n" % len(config) + config + b"\n"
    subprocess.run(["git", "fast-import", "--quiet"], input=bytes(stream), cwd=path, check=True)
    subprocess.run(["git", "checkout", "--quiet", "main"], cwd=path, check=True)


def run_once(command, cwd, shell=False):
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = (time.perf_counter() - start) * 1000
    if result.returncode not in (0, 3):
        sys.exit(f"command failed ({result.returncode}): {command}")
    return elapsed


def clear_cache(repo):
    shutil.rmtree(os.path.join(repo, ".git", "gitprio", "cache"), ignore_errors=True)


def measure(repo, binary, compare, runs):
    """Returns median milliseconds per command, timed in interleaved rounds."""
    commands = {
        "baseline": (BASELINE, True),
        "next": ([binary, "next"], False),
        "list": ([binary, "list", "--json"], False),
    }
    if compare:
        commands["compare"] = ([compare, "next"], False)
    clear_cache(repo)
    cold = run_once([binary, "next"], repo)
    if compare:
        run_once([compare, "next"], repo)
    for command, shell in commands.values():
        run_once(command, repo, shell)
    samples = {name: [] for name in commands}
    for _ in range(runs):
        for name, (command, shell) in commands.items():
            samples[name].append(run_once(command, repo, shell))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    medians["cold"] = cold
    return medians


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/release/gitprio")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--compare", help="a second gitprio binary whose warm `next` is timed alongside")
    parser.add_argument("--repos", help="keep the generated repositories here and reuse them")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    binary = os.path.abspath(args.bin)
    compare = os.path.abspath(args.compare) if args.compare else None
    env_note = f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}"
    columns = ["tasks", "baseline", "next cold", "next", "list --json", "next/base", "list/base", "next µs/task"]
    if compare:
        columns += ["compare next", "compare/next"]
    print(f"# gitprio queue benchmark ({env_note}), median of {args.runs} interleaved warm runs, ms")
    if args.markdown:
        print("| " + " | ".join(columns) + " |")
        print("|" + "|".join("---:" for _ in columns) + "|")
    else:
        print(" ".join(f"{column:>12}" for column in columns))
    with tempfile.TemporaryDirectory(prefix="gitprio-bench-") as scratch:
        root = os.path.abspath(args.repos) if args.repos else scratch
        os.makedirs(root, exist_ok=True)
        for size in [int(size) for size in args.sizes.split(",")]:
            repo = os.path.join(root, f"q{size}")
            if not os.path.isdir(os.path.join(repo, ".git")):
                make_repo(repo, size)
            result = measure(repo, binary, compare, args.runs)
            base = result["baseline"]
            cells = [
                f"{size}",
                f"{base:.1f}",
                f"{result['cold']:.1f}",
                f"{result['next']:.1f}",
                f"{result['list']:.1f}",
                f"{result['next'] / base:.2f}x",
                f"{result['list'] / base:.2f}x",
                f"{result['next'] * 1000 / size:.2f}",
            ]
            if compare:
                cells += [f"{result['compare']:.1f}", f"{result['compare'] / result['next']:.2f}x"]
            if args.markdown:
                print("| " + " | ".join(cells) + " |")
            else:
                print(" ".join(f"{cell:>12}" for cell in cells))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
