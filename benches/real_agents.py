#!/usr/bin/env python3
"""The real agent CLIs under `gitprio run`, against the tests' scripted model server.

Usage:
    .ci/run (or: npm install --prefix .ci/node @anthropic-ai/claude-code@2.1.328 \
        @openai/codex@0.169.0 @google/gemini-cli@0.61.0)
    python3 benches/real_agents.py [--tasks 9] [--markdown]

Runs the ignored test `real_agents::bench_real_agents` of the `cli` test binary (debug
build; the scripted server lives in the tests, so the CLIs talk to the very server the
tests check them against). For each of Claude Code, Codex CLI and Gemini CLI, --tasks
tasks are worked on by `gitprio run --parallel 3`: a third edit a file and complete, a
third loop (a tool call per request, every request answered after 0.7 s) until their
6,000-token budget stops them, a third end in an API error. Every answer of the server
carries usage numbers of its own, and the server keeps what it sent per session.

Columns:
  - completed / over budget: attempts that completed, and that were stopped over budget.
  - server tokens / requests: what the server sent, all tasks together.
  - ledger tokens / requests: what gitprio's usage ledger holds after the run.
  - exact tasks: tasks whose ledger usage equals the server's in every bucket (input,
    output, cache write 5m / 1h, cache read, reasoning, requests).
  - after import: ledger tokens after `gitprio usage import` of the CLIs' own logs.
  - overshoot: the largest excess of a stopped task over its budget, in requests of it.
  - seconds: wall time of the run.
"""

import argparse
import json
import os
import subprocess
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=9)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    env = dict(os.environ, GITPRIO_BENCH_TASKS=str(args.tasks))
    load = os.getloadavg()[0]
    output = subprocess.run(
        ["cargo", "test", "--quiet", "--test", "cli", "real_agents::bench_real_agents",
         "--", "--ignored", "--nocapture", "--test-threads", "1"],
        env=env, capture_output=True, text=True, check=False,
    )
    rows = [json.loads(line[len("BENCH "):]) for line in output.stdout.splitlines()
            if line.startswith("BENCH ")]
    if output.returncode != 0 or not rows:
        sys.stderr.write(output.stdout + output.stderr)
        sys.exit(1)
    header = ["cli", "tasks", "completed", "over budget", "server tokens", "ledger tokens",
              "server requests", "ledger requests", "exact tasks", "after import",
              "overshoot", "seconds"]
    table = [[row["cli"], row["tasks"], row["completed"], row["stopped_over_budget"],
              f"{row['server_tokens']:,}", f"{row['ledger_tokens']:,}",
              row["server_requests"], row["ledger_requests"],
              f"{row['exact_tasks']}/{row['tasks']}", f"{row['after_import_tokens']:,}",
              f"{row['overshoot_requests_max']:.2f} req", f"{row['seconds']:.1f}"]
             for row in rows]
    print(f"load average at the start: {load:.1f}")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for line in table:
            print("| " + " | ".join(str(cell) for cell in line) + " |")
    else:
        widths = [max(len(str(cell)) for cell in column) for column in zip(header, *table)]
        for line in [header] + table:
            print("  ".join(str(cell).rjust(width) for cell, width in zip(line, widths)))


if __name__ == "__main__":
    main()
