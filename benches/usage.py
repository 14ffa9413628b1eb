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
  - gitprio: the real command, `gitprio usage import --task bench` in a repository whose
    task `bench` was claimed before the corpus began, so every record is appended to that
    run in the git ledger (the import state, ledger ref and stores are reset before each run);
  - gitprio, plain: `gitprio usage import` as a user runs it, with no run claiming the
    records, so every one goes to the unattributed store (reset before each run too);
with each process's peak RSS (sampled VmHWM), and prints both tools' token totals next to the
truth (gitprio's read back with `gitprio usage show`, and the unattributed store's token
count), then the incremental cases: an unchanged re-import, and a re-import after one
request was appended to one log.

Usage: python3 benches/usage.py [--size-mb 1024] [--runs 3] [--keep DIR] [--markdown]
Exits non-zero when gitprio's totals differ from the truth (with --task, or the tokens the
plain import kept), or ccusage's do (except with
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


def ensure_ccusage(prefix):
    binary = os.path.join(prefix, "node_modules", ".bin", "ccusage")
    if not os.path.exists(binary):
        print(f"installing ccusage@{CCUSAGE_VERSION} into {prefix}", file=sys.stderr)
        subprocess.run(["npm", "install", "--silent", "--prefix", prefix, f"ccusage@{CCUSAGE_VERSION}"], check=True)
    # ccusage 20 is a Rust binary behind a Node launcher: time and measure the binary
    # itself (the launcher adds Node's start-up, and wait4 would see only its memory).
    scope = os.path.join(prefix, "node_modules", "@ccusage")
    for package in sorted(os.listdir(scope)) if os.path.isdir(scope) else []:
        native = os.path.join(scope, package, "bin", "ccusage")
        if os.path.isfile(native) and os.access(native, os.X_OK):
            return native
    return binary


def ensure_gitprio(path):
    if path:
        return os.path.abspath(path)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    subprocess.run(["cargo", "build", "--quiet", "--release", "--bin", "gitprio"], cwd=REPO, check=True)
    return os.path.join(target, "release", "gitprio")


LAST_CPU = [0.0]  # CPU seconds (user + system) of the last measured command and its children


def run_measured(command, env=None, cwd=None):
    """Runs `command`; returns (wall seconds, stdout, peak RSS in MiB of that process alone).

    The peak is the kernel's VmHWM of the process, read every 2 ms until it exits: wait4's
    ru_maxrss would also count the memory of this Python process forked before the exec.
    Its CPU time (children included) is left in LAST_CPU: on a loaded machine a short
    command's wall time is mostly waiting for a core.
    """
    import resource
    import threading
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = [], []
    readers = [threading.Thread(target=lambda: out.append(process.stdout.read())),
               threading.Thread(target=lambda: err.append(process.stderr.read()))]
    for reader in readers:
        reader.start()
    peak_kib = 0
    status_path = f"/proc/{process.pid}/status"
    while process.poll() is None:
        try:
            with open(status_path) as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
                        break
        except OSError:
            pass
        time.sleep(0.002)
    elapsed = time.perf_counter() - start
    for reader in readers:
        reader.join()
    if process.returncode != 0:
        sys.exit(f"command failed ({process.returncode}): {' '.join(command)}\n{b''.join(err).decode()[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, b"".join(out), peak_kib / 1024


BENCH_TASK = "bench"
CLAIMED_AT = "2026-03-31T00:00:00Z"  # before the corpus's first request
IMPORTED_AT = "2027-01-01T00:00:00Z"  # after its last


def bench_repo(scratch, gitprio, home):
    """A repository whose one task `bench` is claimed (local leases) before the corpus began."""
    repo = os.path.join(scratch, "repo")
    os.makedirs(os.path.join(repo, ".tasks"))
    with open(os.path.join(repo, ".tasks", f"{BENCH_TASK}.md"), "w") as file:
        file.write("---\ntitle: Import benchmark\ntype: bug\nvalue: 3\n---\nThe run every imported record goes to.\n")
    git_env = {"PATH": os.environ.get("PATH", ""), "HOME": home, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
               "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
               "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    for command in (["git", "init", "--quiet", "--initial-branch=main"], ["git", "add", "."], ["git", "commit", "--quiet", "-m", "bench"]):
        subprocess.run(command, cwd=repo, env=git_env, check=True)
    env = dict(git_env, GITPRIO_AGENT="bench", GITPRIO_NOW=CLAIMED_AT, NO_COLOR="1")
    subprocess.run([gitprio, "claim", "--local", "--json"], cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)
    return repo, dict(env, GITPRIO_NOW=IMPORTED_AT)


def reset_import(repo, env):
    """Forgets every import: state, ledger ref and its index, the unattributed store, and
    the objects the import wrote (else the next import finds its chunks' blobs already
    written and skips compressing and writing them, which a first import never does)."""
    for name in ["usage-import.json", "usage-index", "usage-unattributed", "usage-outbox"]:
        path = os.path.join(repo, ".git", "gitprio", name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    subprocess.run(["git", "update-ref", "-d", f"refs/gitprio/usage/{BENCH_TASK}"], cwd=repo, env=env, check=False)
    subprocess.run(["git", "prune", "--expire=now"], cwd=repo, env=env, check=True)


def append_one_request(corpus, seed):
    """Appends exactly one request (one assistant line) to one session file; returns the
    file and its size before, to cut it back to afterwards."""
    rng = random.Random(seed)
    corpus.rng = rng
    files = []
    for directory, _, names in os.walk(os.path.join(corpus.root, "projects")):
        files.extend(os.path.join(directory, name) for name in names if name.endswith(".jsonl") and "subagents" not in directory)
    files.sort()
    path = rng.choice(files)
    size = os.path.getsize(path)
    usage = {"input_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 52000, "output_tokens": 900}
    session = {"id": corpus.uuid(), "cwd": "/home/dev/code/appended", "version": "2.1.27", "branch": "main"}
    line = corpus.assistant(session, corpus.ident("msg_01", 22), corpus.ident("req_011C", 20), MODELS[0], corpus.block("text"), usage, False)
    with open(path, "ab") as file:
        file.write((json.dumps(line, separators=(",", ":")) + "\n").encode())
    return path, size


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024, help="corpus size (default 1024)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per tool (median)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--keep", help="generate the corpus here and keep it (reused when it exists)")
    parser.add_argument("--ccusage-prefix", default=os.path.join(REPO, "target", "bench-tools", "ccusage"))
    parser.add_argument("--bin", help="a built gitprio binary (default: cargo build --release)")
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
        repo, gitprio_env = bench_repo(scratch, gitprio, home)
        # The CLI command a user runs: read the logs, give every record to the task's run
        # (`--task`: the corpus's directories are no worktree of this repository) and
        # append them to the ledger in git.
        import_command = [gitprio, "usage", "import", "--local", "--task", BENCH_TASK, "--json", projects]
        # The same logs as a user imports them, with no run claiming them: every record
        # goes to the unattributed store.
        unattributed_command = [gitprio, "usage", "import", "--local", "--json", projects]
        cat = ["sh", "-c", f"find '{projects}' -name '*.jsonl' -exec cat {{}} + > /dev/null"]
        # The --task import runs last in each round: its ledger is read back below.
        commands = {
            "floor": (cat, None, None),
            "ccusage": ([ccusage, "daily", "--json", "--offline"], env, None),
            "unattributed": (unattributed_command, gitprio_env, repo),
            "gitprio": (import_command, gitprio_env, repo),
        }
        for name, (command, command_env, cwd) in commands.items():
            if name in ("gitprio", "unattributed"):
                reset_import(repo, gitprio_env)
            run_measured(command, command_env, cwd)
        samples = {name: [] for name in commands}
        rss = {name: [] for name in commands}
        outputs = {}
        for _ in range(args.runs):
            for name, (command, command_env, cwd) in commands.items():
                if name in ("gitprio", "unattributed"):
                    reset_import(repo, gitprio_env)
                elapsed, stdout, peak = run_measured(command, command_env, cwd)
                samples[name].append(elapsed)
                rss[name].append(peak)
                outputs[name] = stdout
        medians = {name: statistics.median(values) for name, values in samples.items()}
        peaks = {name: max(values) for name, values in rss.items()}
        cc = json.loads(outputs["ccusage"])["totals"]
        summary = json.loads(outputs["gitprio"])
        report = summary["report"]
        _, shown, _ = run_measured([gitprio, "usage", "show", BENCH_TASK, "--local", "--offline", "--json"], gitprio_env, repo)
        gp = json.loads(shown)["runs"][0]["totals"]
        ccusage_totals = {"input": cc["inputTokens"], "output": cc["outputTokens"], "cache_creation": cc["cacheCreationTokens"], "cache_read": cc["cacheReadTokens"]}
        gitprio_totals = {"input": gp["input"], "output": gp["output"], "cache_creation": gp["cache_write_5m"] + gp["cache_write_1h"], "cache_read": gp["cache_read"]}

        plain = json.loads(outputs["unattributed"])
        kept, kept_tokens = plain["unattributed_kept"], plain["unattributed_kept_tokens"]
        kept_agree = kept == plain["report"]["records"] and kept_tokens == sum(truth.values())

        # Incremental: the state of the last full import is in place. Each case is timed
        # --runs times (a new request appended before each appended-request run); medians.
        unchanged_runs = []
        for _ in range(args.runs):
            seconds, stdout, peak = run_measured(import_command, gitprio_env, repo)
            unchanged_runs.append((seconds, LAST_CPU[0], peak))
        unchanged = json.loads(stdout)["report"]
        appended_runs = []
        sizes = {}
        for run in range(args.runs):
            grown, grown_size = append_one_request(corpus, args.seed + 1 + run)
            sizes.setdefault(grown, grown_size)
            seconds, stdout, peak = run_measured(import_command, gitprio_env, repo)
            appended_runs.append((seconds, LAST_CPU[0], peak))
            appended = json.loads(stdout)
        for grown, grown_size in sizes.items():
            os.truncate(grown, grown_size)  # the corpus is as generated again (its truth holds)
        unchanged_seconds, unchanged_cpu = (statistics.median(column) for column in list(zip(*unchanged_runs))[:2])
        unchanged_rss = max(peak for _, _, peak in unchanged_runs)
        appended_seconds, appended_cpu = (statistics.median(column) for column in list(zip(*appended_runs))[:2])
        appended_rss = max(peak for _, _, peak in appended_runs)

        mib = size / 1024 / 1024
        agree = gitprio_totals == truth and kept_agree and (args.gateway_copies or ccusage_totals == truth)
        print(f"# usage import benchmark: {files} files, {mib:.0f} MiB, {lines} lines; {os.cpu_count()} cores; median of {args.runs} warm runs")
        if generate_seconds:
            print(f"generated in {generate_seconds:.1f} s")
        print(f"{'':>16} {'input':>14} {'output':>14} {'cache create':>16} {'cache read':>18}")
        for name, totals in [("truth", truth), ("ccusage", ccusage_totals), ("gitprio", gitprio_totals)]:
            print(f"{name:>16} {totals['input']:>14} {totals['output']:>14} {totals['cache_creation']:>16} {totals['cache_read']:>18}")
        print(f"gitprio = truth: {'yes' if gitprio_totals == truth else 'NO'}; ccusage = truth: {'yes' if ccusage_totals == truth else 'no'};"
              f" plain import kept {kept} records, {kept_tokens} tokens = truth: {'yes' if kept_agree else 'NO'}")
        print(f"gitprio: {report['records']} requests, {report['duplicates']} copies dropped, {report['malformed_lines']} malformed lines skipped")
        labels = [("floor", "cat > /dev/null"), ("ccusage", "ccusage daily --json --offline"), ("gitprio", "gitprio usage import --task"),
                  ("unattributed", "gitprio usage import (no run)")]
        for name, label in labels:
            print(f"{label:>32}: {medians[name]:7.3f} s  {mib / medians[name]:7.0f} MiB/s  {medians[name] / medians['floor']:5.2f}x floor  peak RSS {peaks[name]:6.0f} MiB")
        for name, label in labels[2:]:
            print(f"{label} / ccusage: time {medians[name] / medians['ccusage']:.3f}x, peak RSS {peaks[name] / peaks['ccusage']:.2f}x")
        print(f"medians of {args.runs}: unchanged re-import: {unchanged_seconds * 1000:.0f} ms, {unchanged_cpu * 1000:.0f} ms CPU ({unchanged['bytes_read']} bytes read, peak RSS {unchanged_rss:.0f} MiB);"
              f" one appended request: {appended_seconds * 1000:.0f} ms, {appended_cpu * 1000:.0f} ms CPU ({appended['report']['bytes_read']} bytes read,"
              f" {sum(appended['recorded'].values())} record added, peak RSS {appended_rss:.0f} MiB)")
        if args.markdown:
            print()
            print(f"| | input | output | cache create | cache read | time (median of {args.runs}) | time / ccusage | MiB/s | peak RSS | RSS / ccusage |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            print(f"| truth (generator) | {truth['input']} | {truth['output']} | {truth['cache_creation']} | {truth['cache_read']} | | | | | |")

            def row(label, totals, name):
                tokens = [str(totals[key]) for key in ("input", "output", "cache_creation", "cache_read")] if totals else [""] * 4
                ratio = lambda value: "" if name == "floor" else f"{value:.3f}x"
                rss_cell = "" if name == "floor" else f"{peaks[name]:.0f} MiB"
                cells = tokens + [f"{medians[name]:.3f} s", ratio(medians[name] / medians["ccusage"]), f"{mib / medians[name]:.0f}",
                                  rss_cell, ratio(peaks[name] / peaks["ccusage"])]
                print(f"| {label} | {' | '.join(cells)} |")

            row(f"ccusage {CCUSAGE_VERSION} `daily --json --offline`", ccusage_totals, "ccusage")
            row("`gitprio usage import --task bench` (one run's ledger)", gitprio_totals, "gitprio")
            row(f"`gitprio usage import` (no run: unattributed store, {kept_tokens} tokens kept)", None, "unattributed")
            row("`cat` (floor)", None, "floor")
        if not agree:
            sys.exit(1)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
