#!/usr/bin/env python3
"""`gitprio done` over a network round trip: wall time, round trips and git processes.

Usage:
    python3 benches/done.py --bin NEW [--bin-before OLD] [--rtt 50] [--runs 5] [--warmup 1]

For each binary and each transport (git:// from `git daemon`, smart HTTP from
benches/netsim.py), a bare remote served on 127.0.0.1 behind netsim's LatencyProxy (every
connection and every answer costs --rtt ms), one clone, and per round: `gitprio claim`
and `gitprio usage record` (untimed), then `gitprio done` timed, with the round trips the
proxy counted for it (connections + turns) and the git processes that talked to the
remote (`GIT_TRACE`: fetch, push, ls-remote). Prints medians. Needs python3 (stdlib) and
git; everything runs in a temporary directory with its own HOME and no user git config.
"""

import argparse
import json
import os
import re
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import leases  # noqa: E402
import netsim  # noqa: E402

TRANSFER = re.compile(r"built-in: git (fetch|push|ls-remote) ")


def rounds(args, binary, root, env, proxy, url, label):
    repo = leases.clone(url(label), os.path.join(root, label), env)
    agent_env = dict(env, GITPRIO_AGENT=label)
    samples = {"ms": [], "round trips": [], "git processes": []}
    trace = os.path.join(root, label + ".trace")
    for index in range(args.warmup + args.runs):
        claim = leases.run([binary, "claim", "--json"], repo, agent_env)
        task = json.loads(claim.stdout)["task"]["id"]
        leases.run([binary, "usage", "record", "--model", "m", "--output", "10", task], repo, agent_env)
        if os.path.exists(trace):
            os.remove(trace)
        before = proxy.counters()
        ms, result = leases.timed([binary, "done", task], repo, dict(agent_env, GIT_TRACE=trace))
        after = proxy.counters()
        if result.returncode != 0:
            sys.exit(f"{label}: done failed: {result.stderr.decode(errors='replace')}")
        if index >= args.warmup:
            with open(trace, encoding="utf-8", errors="replace") as file:
                processes = sum(1 for line in file if TRANSFER.search(line))
            samples["ms"].append(ms)
            samples["round trips"].append(after[0] - before[0] + after[1] - before[1])
            samples["git processes"].append(processes)
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True)
    parser.add_argument("--bin-before")
    parser.add_argument("--rtt", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    builds = [("after", os.path.abspath(args.bin))]
    if args.bin_before:
        builds.append(("before", os.path.abspath(args.bin_before)))
    with tempfile.TemporaryDirectory(prefix="gitprio-done-bench-") as root:
        home = os.path.join(root, "home")
        os.makedirs(home)
        env = leases.base_env(home)
        serve = os.path.join(root, "serve")
        os.makedirs(serve)
        daemon, daemon_port = leases.start_daemon(serve, env)
        http = netsim.GitHttpServer(serve)
        print(f"# gitprio done over a {args.rtt} ms round trip, {args.runs} runs after {args.warmup} warm-up, "
              f"load {os.getloadavg()[0]:.2f} at start; medians")
        print("| transport | build | done ms | round trips | git processes |")
        print("| --- | --- | --- | --- | --- |")
        try:
            for transport, scheme, port in (("git://", "git", daemon_port), ("http", "http", http.port)):
                for build, binary in builds:
                    proxy = netsim.LatencyProxy(port, args.rtt)
                    try:
                        label = f"done-{scheme}-{build}"
                        leases.make_remote(serve, label, args.warmup + args.runs, env)
                        url = lambda name, port=proxy.port, scheme=scheme: f"{scheme}://127.0.0.1:{port}/{name}.git"  # noqa: E731
                        samples = rounds(args, binary, root, env, proxy, url, label)
                    finally:
                        proxy.close()
                    print(
                        f"| {transport} | {build} | {statistics.median(samples['ms']):.0f} "
                        f"| {statistics.median(samples['round trips']):.0f} "
                        f"| {statistics.median(samples['git processes']):.0f} |"
                    )
        finally:
            http.close()
            leases.stop_daemon(daemon)
        print(f"# load {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
