#!/usr/bin/env python3
"""Usage import benchmark: gitprio's log importer against ccusage on one Claude Code corpus.

Generates a realistic Claude Code log corpus (hundreds of session files, ~1 GB by default)
under a temporary CLAUDE_CONFIG_DIR, with the duplication patterns real logs have:
  - one API response written as 1-4 lines (one per content block), the earlier ones
    either intermediate snapshots (output_tokens 1-2) or identical copies;
  - subagent transcripts (`<session>/subagents/agent-*.jsonl`, isSidechain) and their
    progress copies in the parent transcript;
  - `/btw` sidechain replays of parent messages under new request ids;
  - resumed sessions whose new file starts with a copy of the old session's history;
  - gateway sessions without request ids, synthetic messages, truncated lines.
The generator knows every request's final usage, so it prints the true deduplicated totals.

Then it times (median of --runs warm runs, page cache filled first):
  - floor: `cat` of every log file to /dev/null (just reading the bytes);
  - ccusage 20.0.24: `ccusage daily --json --offline` (installed with npm when missing);
  - gitprio: the `usage_import` example of gitprio-core (`cargo run --release -p
    gitprio-core --example usage_import -- <dir>`), which imports and deduplicates;
and prints both tools' token totals next to the truth, then the incremental case: a
second import after some logs grew, with the import state of the first.

Usage: python3 benches/usage.py [--size-mb 1024] [--runs 3] [--keep DIR] [--markdown]
Exits non-zero when gitprio's totals differ from the truth, or ccusage's do (except with
--gateway-copies, whose extra copies ccusage 20.0.24 counts more than once: see the flag).
"""

import argparse
import json
import os
import random
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time

CCUSAGE_VERSION = "20.0.24"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ["claude-sonnet-4-5-20250929", "claude-opus-4-6", "claude-sonnet-4-6"]
SUBAGENT_MODEL = "claude-haiku-4-5-20251001"
VERSIONS = ["2.0.76", "2.1.3", "2.1.12", "2.1.27"]
WORDS = (
    "the parser reads each line and keeps the largest copy of a streamed message so that "
    "totals match what the api billed while subagents replay history under new request ids "
    "fn main let mut self impl struct return Some None Ok Err match async await cargo test"
).split()


class Corpus:
    """Writes session files and remembers the final usage of every distinct request."""

    def __init__(self, root, seed, gateway_copies=False):
        self.root = root
        self.gateway_copies = gateway_copies
        self.rng = random.Random(seed)
        self.truth = {}
        self.bytes = 0
        self.files = 0
        self.lines = 0
        self.clock = 1775001600  # 2026-04-01T00:00:00Z
        self.texts = [self.text(size) for size in [200, 800, 2000, 6000, 15000, 40000] for _ in range(12)]
        self.sessions = []  # (project, session id, lines, has request ids) of sessions small enough to resume

    def text(self, size):
        words = []
        length = 0
        while length < size:
            word = self.rng.choice(WORDS)
            words.append(word)
            length += len(word) + 1
        return " ".join(words)

    def blob(self, scale=1.0):
        index = min(len(self.texts) - 1, int(self.rng.lognormvariate(3.0, 0.9) * scale))
        return self.texts[index % len(self.texts)]

    def ident(self, prefix, length):
        return prefix + "".join(self.rng.choices(string.ascii_letters + string.digits, k=length))

    def uuid(self):
        hexdigits = "%032x" % self.rng.getrandbits(128)
        return f"{hexdigits[:8]}-{hexdigits[8:12]}-{hexdigits[12:16]}-{hexdigits[16:20]}-{hexdigits[20:]}"

    def stamp(self):
        self.clock += self.rng.randint(1, 40)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.clock)) + ".%03dZ" % self.rng.randint(0, 999)

    def usage(self, context, model_version):
        """One request's final usage; newer versions split cache writes and tell the speed."""
        cache_write = self.rng.choice([0, 0, self.rng.randint(50, 4000), self.rng.randint(2000, 30000)])
        usage = {
            "input_tokens": self.rng.choice([1, 2, 3, 4, 6, 8, self.rng.randint(10, 900)]),
            "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": context,
        }
        if model_version >= "2.1":
            one_hour = cache_write if self.rng.random() < 0.3 else 0
            usage["cache_creation"] = {"ephemeral_5m_input_tokens": cache_write - one_hour, "ephemeral_1h_input_tokens": one_hour}
        usage["output_tokens"] = int(self.rng.lognormvariate(5.5, 1.1)) + 1
        usage["service_tier"] = "standard"
        if model_version >= "2.1.12":
            usage["speed"] = "fast" if self.rng.random() < 0.05 else "standard"
        return usage

    def record_truth(self, message_id, request_id, usage):
        creation = usage["cache_creation_input_tokens"]
        if "cache_creation" in usage:
            split = usage["cache_creation"]
            creation = split["ephemeral_5m_input_tokens"] + split["ephemeral_1h_input_tokens"]
        self.truth[(message_id, request_id)] = (
            usage["input_tokens"],
            usage["output_tokens"],
            creation,
            usage["cache_read_input_tokens"],
        )

    def assistant(self, session, message_id, request_id, model, block, usage, sidechain, agent=None, parent=None, stamp=None):
        line = {
            "parentUuid": parent,
            "isSidechain": sidechain,
            "userType": "external",
            "cwd": session["cwd"],
            "sessionId": session["id"],
            "version": session["version"],
            "gitBranch": session["branch"],
        }
        if agent:
            line["agentId"] = agent
        line["message"] = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [block],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        if request_id:
            line["requestId"] = request_id
        line["type"] = "assistant"
        line["uuid"] = self.uuid()
        line["timestamp"] = stamp or self.stamp()
        return line

    def block(self, kind):
        if kind == "thinking":
            return {"type": "thinking", "thinking": self.blob(0.6), "signature": self.ident("Eu", 300)}
        if kind == "tool_use":
            return {
                "type": "tool_use",
                "id": self.ident("toolu_01", 22),
                "name": self.rng.choice(["Read", "Edit", "Bash", "Grep", "Write"]),
                "input": {"file_path": "/home/dev/code/src/lib.rs", "content": self.blob(0.7)},
            }
        return {"type": "text", "text": self.blob(0.5)}

    def turn(self, session, out, context, sidechain=False, agent=None, model=None, request_ids=True):
        """Appends one user line and one assistant response (several lines); returns the new context."""
        rng = self.rng
        parent = self.uuid()
        if rng.random() < 0.3:
            content = self.text(rng.randint(40, 400))
        else:
            content = [{"tool_use_id": self.ident("toolu_01", 22), "type": "tool_result", "content": self.blob(1.3)}]
        out.append(json.dumps({
            "parentUuid": parent, "isSidechain": sidechain, "userType": "external", "cwd": session["cwd"],
            "sessionId": session["id"], "version": session["version"], "gitBranch": session["branch"],
            "type": "user", "message": {"role": "user", "content": content}, "uuid": self.uuid(),
            "timestamp": self.stamp(),
        }, separators=(",", ":")))
        model = model or session["model"]
        message_id = self.ident("msg_01", 22)
        request_id = self.ident("req_011C", 20) if request_ids else None
        usage = self.usage(context, session["version"])
        self.record_truth(message_id, request_id, usage)
        kinds = rng.choice([["text"], ["tool_use"], ["thinking", "text"], ["thinking", "tool_use"], ["text", "tool_use"], ["thinking", "text", "tool_use"], ["thinking", "text", "tool_use", "tool_use"]])
        identical = rng.random() < 0.3
        # ccusage 20.0.24 folds copies of a message without request id only when their
        # timestamps are equal too; --gateway-copies writes them at different times.
        stamp = None if request_ids or self.gateway_copies else self.stamp()
        for position, kind in enumerate(kinds):
            final = position == len(kinds) - 1
            copy = usage if final or identical else dict(usage, output_tokens=rng.choice([1, 2]))
            line = json.dumps(self.assistant(session, message_id, request_id, model, self.block(kind), copy, sidechain, agent, parent, stamp), separators=(",", ":"))
            if not final and rng.random() < 0.01:
                out.append(line[: line.index('"usage":{') + 30])  # a line cut short by a crash
            out.append(line)
        if request_ids and not sidechain and rng.random() < 0.03:
            replay = self.assistant(session, message_id, self.ident("req_011C", 20), model, self.block("text"), usage, True, None, parent)
            out.append(json.dumps(replay, separators=(",", ":")))
        if rng.random() < 0.15:
            out.append(json.dumps({
                "type": "file-history-snapshot", "messageId": self.uuid(),
                "snapshot": {"messageId": self.uuid(), "trackedFileBackups": {"src/lib.rs": {"backupFileName": self.ident("", 16), "version": 2}}, "timestamp": self.stamp()},
                "isSnapshotUpdate": False,
            }, separators=(",", ":")))
        if rng.random() < 0.01:
            synthetic = self.assistant(session, self.ident("msg_01", 22), None, "<synthetic>", {"type": "text", "text": "No response requested."}, {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}, sidechain, agent, parent)
            out.append(json.dumps(synthetic, separators=(",", ":")))
        return min(context + usage["output_tokens"] + rng.randint(200, 6000), 180000)

    def write(self, path, lines):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = ("\n".join(lines) + "\n").encode()
        with open(path, "wb") as file:
            file.write(data)
        self.bytes += len(data)
        self.files += 1
        self.lines += len(lines)

    def session(self, project, target_bytes):
        rng = self.rng
        session = {
            "id": self.uuid(),
            "cwd": f"/home/dev/code/{project}",
            "version": rng.choice(VERSIONS),
            "branch": rng.choice(["main", "main", "feat/usage", "fix/parser"]),
            "model": rng.choice(MODELS),
        }
        slug = "-home-dev-code-" + project
        request_ids = rng.random() > 0.05
        out = []
        resumed = None
        # ccusage 20.0.24 never folds copies of a message without request id across
        # sessions; only --gateway-copies resumes such sessions.
        resumable = [entry for entry in self.sessions if entry[3] or self.gateway_copies]
        if resumable and rng.random() < 0.12:
            candidates = [entry for entry in resumable if entry[0] == project] or resumable
            resumed = rng.choice(candidates)
            old_id = resumed[1]
            out.extend(line.replace(f'"sessionId":"{old_id}"', f'"sessionId":"{session["id"]}"') for line in resumed[2])
        out.insert(0, json.dumps({"type": "summary", "summary": self.text(60), "leafUuid": self.uuid()}, separators=(",", ":")))
        context = rng.randint(8000, 20000)
        size = sum(len(line) + 1 for line in out)
        subagents = []
        while size < target_bytes:
            before = len(out)
            context = self.turn(session, out, context, request_ids=request_ids)
            if request_ids and rng.random() < 0.012:
                agent = self.ident("a", 16)
                agent_lines = []
                agent_context = rng.randint(5000, 15000)
                for _ in range(rng.randint(3, 25)):
                    agent_context = self.turn(session, agent_lines, agent_context, sidechain=True, agent=agent, model=SUBAGENT_MODEL)
                subagents.append((agent, agent_lines))
                for line in agent_lines:
                    if '"type":"assistant"' in line and rng.random() < 0.2:
                        entry = json.loads(line)
                        out.append(json.dumps({
                            "parentUuid": self.uuid(), "isSidechain": False, "userType": "external", "cwd": session["cwd"],
                            "sessionId": session["id"], "version": session["version"], "gitBranch": session["branch"],
                            "type": "progress",
                            "data": {"type": "agent_progress", "agentId": agent, "message": {
                                "type": "assistant", "timestamp": entry["timestamp"], "requestId": entry.get("requestId"),
                                "isSidechain": True, "uuid": entry["uuid"], "message": entry["message"]}},
                            "toolUseID": self.ident("toolu_01", 22), "uuid": self.uuid(), "timestamp": self.stamp(),
                        }, separators=(",", ":")))
            size += sum(len(line) + 1 for line in out[before:])
        self.write(os.path.join(self.root, "projects", slug, session["id"] + ".jsonl"), out)
        for agent, lines in subagents:
            base = os.path.join(self.root, "projects", slug, session["id"], "subagents", f"agent-{agent}")
            self.write(base + ".jsonl", lines)
            with open(base + ".meta.json", "w") as meta:
                json.dump({"agentType": "general-purpose"}, meta)
        if size < 4_000_000 and not resumed:
            self.sessions.append((project, session["id"], out, request_ids))
            if len(self.sessions) > 60:
                self.sessions.pop(0)
        return session

    def generate(self, total_bytes):
        projects = [f"project-{index:02d}" for index in range(24)]
        big = [80_000_000, 40_000_000] if total_bytes >= 600_000_000 else []
        while self.bytes < total_bytes:
            target = big.pop() if big else min(int(self.rng.lognormvariate(13.8, 1.3)), 30_000_000)
            self.session(self.rng.choice(projects), max(target, 20_000))

    def totals(self):
        sums = [0, 0, 0, 0]
        for usage in self.truth.values():
            for index, value in enumerate(usage):
                sums[index] += value
        return dict(zip(["input", "output", "cache_creation", "cache_read"], sums))


def grow(corpus, fraction, seed):
    """Appends new turns to some session files, as agents still running would; returns bytes added."""
    rng = random.Random(seed)
    corpus.rng = rng
    files = []
    for directory, _, names in os.walk(os.path.join(corpus.root, "projects")):
        files.extend(os.path.join(directory, name) for name in names if name.endswith(".jsonl") and "subagents" not in directory)
    files.sort()
    added = 0
    for path in rng.sample(files, max(1, int(len(files) * fraction))):
        with open(path, "rb") as file:
            last = file.read().rsplit(b"\n", 2)[-2]
        entry = json.loads(last) if last.startswith(b"{") else {}
        session = {
            "id": entry.get("sessionId", corpus.uuid()), "cwd": entry.get("cwd", "/home/dev/code/x"),
            "version": entry.get("version", "2.1.27"), "branch": entry.get("gitBranch", "main"), "model": MODELS[0],
        }
        lines = []
        context = 30000
        for _ in range(rng.randint(2, 10)):
            context = corpus.turn(session, lines, context)
        data = ("\n".join(lines) + "\n").encode()
        with open(path, "ab") as file:
            file.write(data)
        added += len(data)
    return added


def ensure_ccusage(prefix):
    binary = os.path.join(prefix, "node_modules", ".bin", "ccusage")
    if not os.path.exists(binary):
        print(f"installing ccusage@{CCUSAGE_VERSION} into {prefix}", file=sys.stderr)
        subprocess.run(["npm", "install", "--silent", "--prefix", prefix, f"ccusage@{CCUSAGE_VERSION}"], check=True)
    return binary


def ensure_gitprio(path):
    if path:
        return os.path.abspath(path)
    subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "gitprio-core", "--example", "usage_import"], cwd=REPO, check=True)
    return os.path.join(REPO, "target", "release", "examples", "usage_import")


def timed(command, env=None):
    start = time.perf_counter()
    result = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"command failed ({result.returncode}): {' '.join(command)}\n{result.stderr.decode()[-2000:]}")
    return elapsed, result.stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024, help="corpus size (default 1024)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per tool (median)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--keep", help="generate the corpus here and keep it (reused when it exists)")
    parser.add_argument("--ccusage-prefix", default=os.path.join(REPO, "target", "bench-tools", "ccusage"))
    parser.add_argument("--bin", help="a built usage_import example (default: cargo build --release)")
    parser.add_argument("--grow-fraction", type=float, default=0.05, help="share of session files that grow before the incremental import")
    parser.add_argument("--gateway-copies", action="store_true",
                        help="also write copies of requestId-less messages at different times and in resumed sessions, which ccusage 20.0.24 counts more than once")
    parser.add_argument("--markdown", action="store_true", help="also print a markdown section")
    args = parser.parse_args()

    ccusage = ensure_ccusage(os.path.abspath(args.ccusage_prefix))
    gitprio = ensure_gitprio(args.bin)
    scratch = tempfile.mkdtemp(prefix="gitprio-usage-bench-")
    try:
        config = os.path.abspath(args.keep) if args.keep else os.path.join(scratch, "claude")
        truth_path = os.path.join(config, "truth.json")
        corpus = Corpus(config, args.seed, args.gateway_copies)
        if os.path.exists(truth_path):
            with open(truth_path) as file:
                saved = json.load(file)
            truth, files, size, lines = saved["truth"], saved["files"], saved["bytes"], saved["lines"]
            generate_seconds = 0.0
        else:
            start = time.perf_counter()
            corpus.generate(args.size_mb * 1024 * 1024)
            generate_seconds = time.perf_counter() - start
            truth, files, size, lines = corpus.totals(), corpus.files, corpus.bytes, corpus.lines
            with open(truth_path, "w") as file:
                json.dump({"truth": truth, "files": files, "bytes": size, "lines": lines}, file)
        home = os.path.join(scratch, "home")
        os.makedirs(home, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", ""), "HOME": home, "CLAUDE_CONFIG_DIR": config, "NO_COLOR": "1"}
        projects = os.path.join(config, "projects")
        cat = ["sh", "-c", f"find '{projects}' -name '*.jsonl' -exec cat {{}} + > /dev/null"]
        commands = {
            "floor": (cat, None),
            "ccusage": ([ccusage, "daily", "--json", "--offline"], env),
            "gitprio": ([gitprio, projects], None),
        }
        for command, command_env in commands.values():
            timed(command, command_env)
        samples = {name: [] for name in commands}
        outputs = {}
        for _ in range(args.runs):
            for name, (command, command_env) in commands.items():
                elapsed, stdout = timed(command, command_env)
                samples[name].append(elapsed)
                outputs[name] = stdout
        medians = {name: statistics.median(values) for name, values in samples.items()}
        cc = json.loads(outputs["ccusage"])["totals"]
        gp = json.loads(outputs["gitprio"])
        ccusage_totals = {"input": cc["inputTokens"], "output": cc["outputTokens"], "cache_creation": cc["cacheCreationTokens"], "cache_read": cc["cacheReadTokens"]}
        gitprio_totals = {key: gp["totals"][key] for key in ccusage_totals}
        report = gp["report"]

        state = os.path.join(scratch, "state.json")
        full_seconds, _ = timed([gitprio, "--state", state, projects])
        unchanged_seconds, stdout = timed([gitprio, "--state", state, projects])
        unchanged = json.loads(stdout)["report"]
        added = grow(corpus, args.grow_fraction, args.seed + 1)
        incremental_seconds, stdout = timed([gitprio, "--state", state, projects])
        incremental = json.loads(stdout)["report"]
        if args.keep:
            os.remove(truth_path)  # the corpus grew: regenerate next time

        mib = size / 1024 / 1024
        agree = gitprio_totals == truth and (args.gateway_copies or ccusage_totals == truth)
        print(f"# usage import benchmark: {files} files, {mib:.0f} MiB, {lines} lines; {os.cpu_count()} cores; median of {args.runs} warm runs")
        if generate_seconds:
            print(f"generated in {generate_seconds:.1f} s")
        print(f"{'':>16} {'input':>14} {'output':>14} {'cache create':>16} {'cache read':>18}")
        for name, totals in [("truth", truth), ("ccusage", ccusage_totals), ("gitprio", gitprio_totals)]:
            print(f"{name:>16} {totals['input']:>14} {totals['output']:>14} {totals['cache_creation']:>16} {totals['cache_read']:>18}")
        print(f"gitprio = truth: {'yes' if gitprio_totals == truth else 'NO'}; ccusage = truth: {'yes' if ccusage_totals == truth else 'no'}")
        print(f"gitprio: {report['records']} requests, {report['duplicates']} copies dropped, {report['malformed_lines']} malformed lines skipped")
        for name, label in [("floor", "cat > /dev/null"), ("ccusage", "ccusage daily --json --offline"), ("gitprio", "gitprio import")]:
            print(f"{label:>32}: {medians[name]:7.3f} s  {mib / medians[name]:7.0f} MiB/s  {medians[name] / medians['floor']:5.2f}x floor")
        print(f"gitprio / ccusage: {medians['gitprio'] / medians['ccusage']:.2f}x")
        print(f"incremental: full import with state {full_seconds:.3f} s; unchanged re-import {unchanged_seconds * 1000:.0f} ms ({unchanged['bytes_read']} bytes read);"
              f" after {added / 1024 / 1024:.1f} MiB appended to {incremental['files_read']} files: {incremental_seconds * 1000:.0f} ms ({incremental['bytes_read'] / 1024 / 1024:.1f} MiB read)")
        if args.markdown:
            print()
            print("| | input | output | cache create | cache read | time (median) | MiB/s |")
            print("|---|---:|---:|---:|---:|---:|---:|")
            print(f"| truth (generator) | {truth['input']} | {truth['output']} | {truth['cache_creation']} | {truth['cache_read']} | | |")
            print(f"| ccusage {CCUSAGE_VERSION} `daily --json --offline` | {ccusage_totals['input']} | {ccusage_totals['output']} | {ccusage_totals['cache_creation']} | {ccusage_totals['cache_read']} | {medians['ccusage']:.2f} s | {mib / medians['ccusage']:.0f} |")
            print(f"| gitprio import | {gitprio_totals['input']} | {gitprio_totals['output']} | {gitprio_totals['cache_creation']} | {gitprio_totals['cache_read']} | {medians['gitprio']:.2f} s | {mib / medians['gitprio']:.0f} |")
            print(f"| `cat` (floor) | | | | | {medians['floor']:.2f} s | {mib / medians['floor']:.0f} |")
        if not agree:
            sys.exit(1)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
