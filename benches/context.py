#!/usr/bin/env python3
"""Context bundle benchmark: a task linking 20 documents (100 KB in all), and shared prefixes.

Generates a repository whose task `bench` names 10 documents in its `context:` list and links
10 more from its body (20 documents of about 5 KB), plus links to sections inside them (folded
into the whole files) and links between the documents (followed one level deep, all already
included), with CONVENTIONS.md as the project context. Then times, median of interleaved warm
runs (the parse cache filled by a first run):
  - baseline: `git cat-file --batch` reading the same 23 blobs (task, config, CONVENTIONS.md and
    the 20 documents), i.e. only reading the bytes the bundle is made of
  - `gitprio context bench`, `gitprio context bench --json`, `gitprio context bench --budget 10k`
and the library time alone (assembly from git objects plus markdown, no process start), from
`cargo run --release -p gitprio-core --example context_bundle`.

Then claims every ready task of tasks.example/ in turn (`gitprio claim --local`) and reports how
many bytes consecutive bundles share from the start: what a provider's prompt cache can reuse.

Usage: python3 benches/context.py [--bin target/release/gitprio] [--runs 30] [--markdown]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

DOCUMENTS = 20
WORDS = (
    "queue lease commit blob tree agent budget token prompt cache section heading window "
    "limit retry session invoice refund search index tokenizer schema format parser error"
).split()


def document(index):
    """A markdown document of about 5 KB: six sections, a code block, links to its neighbours."""
    lines = [f"# Guide {index:02d}: {WORDS[index % len(WORDS)]} handling", ""]
    for part in range(1, 7):
        lines += [f"## Part {part}", ""]
        words = [WORDS[(index * 7 + part * 3 + word) % len(WORDS)] for word in range(110)]
        for start in range(0, len(words), 14):
            lines.append(" ".join(words[start : start + 14]) + ".")
        lines.append("")
        if part == 3:
            lines += ["```rust", f"fn part_{index}_{part}() -> u32 {{", f"    {index * part}", "}", "```", ""]
    following = (index + 1) % DOCUMENTS
    previous = (index - 1) % DOCUMENTS
    lines += [
        f"See [the next guide](guide-{following:02d}.md#part-2) and [the previous one](guide-{previous:02d}.md).",
        "",
    ]
    return "\n".join(lines).encode()


def task():
    context = "".join(f"  - docs/guide-{index:02d}.md\n" for index in range(10))
    body = "".join(f"- [guide {index}](../docs/guide-{index:02d}.md)\n" for index in range(10, DOCUMENTS))
    body += "- [part 2 of guide 3](../docs/guide-03.md#part-2), already inside guide 3\n"
    return (
        "---\n"
        "title: Benchmark task linking twenty documents\n"
        "type: feature\n"
        "owns: [src/**]\n"
        f"context:\n{context}"
        "acceptance: [cargo test]\n"
        "---\n"
        "Read the guides:\n\n" + body
    ).encode()


CONVENTIONS = b"# Conventions\n\n" + b"Keep changes small; test every fix; follow the guides.\n" * 30
CONFIG = b"context: [CONVENTIONS.md]\n"


def make_repo(path):
    files = {f"docs/guide-{index:02d}.md": document(index) for index in range(DOCUMENTS)}
    files[".tasks/bench.md"] = task()
    files[".tasks/config.yaml"] = CONFIG
    files["CONVENTIONS.md"] = CONVENTIONS
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main", path], check=True)
    stream = bytearray(b"commit refs/heads/main\ncommitter Bench <bench@example.com> 1700000000 +0000\ndata 6\nbench\n")
    for name, content in files.items():
        stream += b"M 100644 inline %s\ndata %d\n" % (name.encode(), len(content)) + content + b"\n"
    subprocess.run(["git", "fast-import", "--quiet"], input=bytes(stream), cwd=path, check=True)
    subprocess.run(["git", "checkout", "--quiet", "main"], cwd=path, check=True)
    document_bytes = sum(len(content) for name, content in files.items() if name.startswith("docs/"))
    return list(files), document_bytes


def run_once(command, cwd, stdin=None):
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = (time.perf_counter() - start) * 1000
    if result.returncode != 0:
        sys.exit(f"command failed ({result.returncode}): {command}")
    return elapsed


def end_to_end(repo, binary, names, runs):
    batch = "".join(f"HEAD:{name}\n" for name in names).encode()
    commands = {
        "git cat-file --batch (baseline)": (["git", "cat-file", "--batch"], batch),
        "gitprio context bench": ([binary, "context", "bench"], None),
        "gitprio context bench --json": ([binary, "context", "bench", "--json"], None),
        "gitprio context bench --budget 10k": ([binary, "context", "bench", "--budget", "10k"], None),
    }
    for command, stdin in commands.values():
        run_once(command, repo, stdin)
    samples = {name: [] for name in commands}
    for _ in range(runs):
        for name, (command, stdin) in commands.items():
            samples[name].append(run_once(command, repo, stdin))
    return {name: statistics.median(values) for name, values in samples.items()}


def library(repo, root):
    output = subprocess.run(
        ["cargo", "run", "--release", "--quiet", "-p", "gitprio-core", "--example", "context_bundle", "--", repo, "bench", "--runs", "300"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output)


def shared_prefixes(binary, root, scratch):
    repo = os.path.join(scratch, "example")
    shutil.copytree(os.path.join(root, "tasks.example"), repo)
    environment = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@example.com", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@example.com")
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main"], cwd=repo, check=True)
    subprocess.run(["git", "add", "--all"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "--quiet", "--message", "example"], cwd=repo, check=True, env=environment)
    bundles = []
    while True:
        result = subprocess.run(
            [binary, "claim", "--local"],
            cwd=repo,
            capture_output=True,
            env=dict(environment, GITPRIO_AGENT="bench"),
        )
        if result.returncode == 3:
            break
        if result.returncode != 0:
            sys.exit(f"claim failed: {result.stderr.decode()}")
        bundles.append(result.stdout)
    rows = []
    for left, right in zip(bundles, bundles[1:]):
        shared = 0
        for a, b in zip(left, right):
            if a != b:
                break
            shared += 1
        rows.append((len(left), len(right), shared))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/release/gitprio")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = os.path.abspath(args.bin)
    with tempfile.TemporaryDirectory(prefix="gitprio-context-bench-") as scratch:
        repo = os.path.join(scratch, "bench")
        names, document_bytes = make_repo(repo)
        timings = end_to_end(repo, binary, names, args.runs)
        inside = library(repo, root)
        prefixes = shared_prefixes(binary, root, scratch)
    note = f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}"
    base = timings["git cat-file --batch (baseline)"]
    print(f"# gitprio context bundle benchmark ({note})\n")
    print(
        f"Task linking {DOCUMENTS} documents, {document_bytes / 1000:.1f} KB; bundle of "
        f"{inside['documents']} documents, {inside['document_bytes'] / 1000:.1f} KB, "
        f"~{inside['tokens']} tokens, {inside['markdown_bytes'] / 1000:.1f} KB of markdown.\n"
    )
    print(f"Library, build + render ({inside['runs']} runs): median {inside['median_us'] / 1000:.2f} ms, min {inside['min_us'] / 1000:.2f} ms\n")
    if args.markdown:
        print("| command | median ms | vs baseline |")
        print("|---|---:|---:|")
        for name, value in timings.items():
            print(f"| `{name}` | {value:.1f} | {value / base:.2f}x |")
    else:
        for name, value in timings.items():
            print(f"{name:>40} {value:8.1f} ms {value / base:6.2f}x")
    print(f"\nConsecutive claims of tasks.example ({len(prefixes) + 1} bundles):\n")
    if args.markdown:
        print("| bundle bytes | next bundle bytes | shared prefix bytes | share of the shorter |")
        print("|---:|---:|---:|---:|")
    for left, right, shared in prefixes:
        share = shared / min(left, right)
        if args.markdown:
            print(f"| {left} | {right} | {shared} | {share:.0%} |")
        else:
            print(f"{left:>8} {right:>8} shared {shared:>6} ({share:.0%})")


if __name__ == "__main__":
    main()
