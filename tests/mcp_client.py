#!/usr/bin/env python3
"""Drives `gitprio mcp` with the official MCP Python SDK, a client that gitprio did not write.

Usage: python3 tests/mcp_client.py target/debug/gitprio

Builds a throwaway bare remote and a clone holding two tasks, starts `gitprio mcp` in the
clone over stdio, then: initialize, list the tools (and check their size budget), claim,
heartbeat with progress (read back from the lease), complete (a failing acceptance command first), land the change, and claim again
until the queue is empty. Exits non-zero on the first surprise.
"""

import asyncio
import json
import os
import subprocess
import sys
import tempfile

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

EXPECTED_TOOLS = {"complete_task", "get_next_task", "heartbeat", "queue", "release_task", "report_usage"}
TOOL_BUDGET_TOKENS = 1500


def field(value, snake, camel):
    """Reads a result field by its name in SDK 2.x (snake_case) or 1.x (camelCase)."""
    return getattr(value, snake, None) if hasattr(value, snake) else getattr(value, camel, None)


def hermetic_env(root):
    return {
        "HOME": os.path.join(root, "home"),
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test Author",
        "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Committer",
        "GIT_COMMITTER_EMAIL": "committer@example.com",
        "NO_COLOR": "1",
    }


def git(env, cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **env}, check=True, capture_output=True)


def make_queue(root, env):
    """A bare `remote.git` with two tasks on `main`, and a clone of it; returns the clone."""
    os.makedirs(os.path.join(root, "home"))
    remote = os.path.join(root, "remote.git")
    seed = os.path.join(root, "seed")
    clone = os.path.join(root, "agent")
    git(env, root, "init", "--quiet", "--bare", "--initial-branch=main", remote)
    git(env, root, "init", "--quiet", "--initial-branch=main", seed)
    os.makedirs(os.path.join(seed, ".tasks"))
    tasks = {
        "alpha": "---\ntitle: Alpha\npriority: 0\nowns: [src/alpha.txt]\nacceptance: [test -f src/alpha.txt]\n---\nCreate src/alpha.txt.\n",
        "beta": "---\ntitle: Beta\npriority: 1\n---\nDo Beta.\n",
    }
    for name, text in tasks.items():
        with open(os.path.join(seed, ".tasks", f"{name}.md"), "w") as file:
            file.write(text)
    git(env, seed, "add", "--all")
    git(env, seed, "commit", "--quiet", "--message", "tasks")
    git(env, seed, "push", "--quiet", remote, "main")
    git(env, root, "clone", "--quiet", remote, clone)
    return clone


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAIL: {message}")


async def call(session, tool, arguments=None):
    """Calls `tool`; returns (is_error, structured content), checking that the text matches it."""
    result = await session.call_tool(tool, arguments or {})
    is_error = bool(field(result, "is_error", "isError"))
    structured = field(result, "structured_content", "structuredContent")
    check(structured is not None, f"{tool} returned no structured content: {result}")
    text = result.content[0].text
    if is_error:
        check(text == structured["message"], f"{tool}: the error text is not the message")
    else:
        check(json.loads(text) == structured, f"{tool}: the text is not the structured content")
    return is_error, structured


async def drive(binary, clone, env):
    server = StdioServerParameters(
        command=binary,
        args=["mcp"],
        env={**env, "GITPRIO_AGENT": "python-sdk", "GITPRIO_NOW": "2026-11-01T12:00:00Z"},
        cwd=clone,
    )
    with open(os.devnull, "w") as errlog:
        async with stdio_client(server, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                info = await session.initialize()
                check(field(info, "server_info", "serverInfo").name == "gitprio", "server name")
                check("get_next_task" in (info.instructions or ""), "instructions name the protocol")
                print("initialize: ok")

                tools = (await session.list_tools()).tools
                check({tool.name for tool in tools} == EXPECTED_TOOLS, f"tools: {[t.name for t in tools]}")
                size = len(json.dumps([tool.model_dump(by_alias=True, exclude_none=True, mode="json") for tool in tools]))
                check(size / 4 < TOOL_BUDGET_TOKENS, f"tool definitions cost {size / 4:.0f} tokens")
                print(f"list tools: {len(tools)} tools, about {size // 4} tokens")

                # Another agent holds every task: the reply must tell this one to stop, in words
                # and in the field an agent branches on, as the CLI's exit code 3 does.
                other = os.path.join(os.path.dirname(clone), "other")
                git(env, os.path.dirname(clone), "clone", "--quiet", "remote.git", other)
                as_other = {**os.environ, **env, "GITPRIO_AGENT": "other", "GITPRIO_NOW": "2026-11-01T12:00:00Z"}
                for _ in range(2):
                    subprocess.run([binary, "claim", "--json"], cwd=other, env=as_other, check=True, capture_output=True)
                is_error, held = await call(session, "get_next_task")
                check(
                    is_error and held["exit_status"] == "nothing_ready" and held["exit_code"] == 3,
                    f"all held: an error with the nothing_ready status: {held}",
                )
                check(held["task"] is None and held["reason"] == "all_held", f"all held: {held}")
                check(
                    "stop" in held["message"] and "gitprio " not in held["message"],
                    f"all held: the message tells the agent to stop, naming no CLI command: {held['message']}",
                )
                print(f"claim: all held ({held['message']})")
                for task in ("alpha", "beta"):
                    subprocess.run([binary, "release", task], cwd=other, env=as_other, check=True, capture_output=True)

                is_error, claimed = await call(session, "get_next_task")
                check(not is_error and claimed["task"] == "alpha", f"claim: {claimed}")
                check("Create src/alpha.txt." in claimed["context"], "the context holds the task")
                print(f"claim: {claimed['task']}, lease expires {claimed['lease']['expires_at']}")

                is_error, renewed = await call(session, "heartbeat", {"tokens": 1200, "cost_usd": 0.25})
                check(not is_error and renewed["task"] == "alpha", f"heartbeat: {renewed}")
                status = subprocess.run(
                    [binary, "status", "--json"], cwd=clone, env={**os.environ, **env}, check=True, capture_output=True
                )
                progress = json.loads(status.stdout)["leases"][0]["progress"]
                check(
                    progress is not None and progress["tokens"] == 1200 and progress["cost_usd"] == 0.25,
                    f"heartbeat progress on the lease: {progress}",
                )
                print(f"heartbeat: renewed until {renewed['expires_at']}, progress {progress['tokens']} tokens")

                is_error, failed = await call(session, "complete_task", {"summary": "too early"})
                check(is_error and failed["error"] == "acceptance_failed", f"complete before the work: {failed}")
                os.makedirs(os.path.join(clone, "src"))
                with open(os.path.join(clone, "src", "alpha.txt"), "w") as file:
                    file.write("alpha\n")
                is_error, completed = await call(
                    session,
                    "complete_task",
                    {"summary": "Created src/alpha.txt; acceptance passes.", "usage": {"model": "m", "input": 10, "output": 5}},
                )
                check(not is_error and completed["completed"], f"complete: {completed}")
                print(f"complete: {completed['task']} ({completed['tokens']} tokens recorded)")

                claims = ["alpha"]
                while True:
                    git(env, clone, "add", "--all")
                    git(env, clone, "commit", "--quiet", "--message", f"complete {claims[-1]}")
                    git(env, clone, "push", "--quiet", "origin", "main")
                    is_error, claimed = await call(session, "get_next_task")
                    if claimed["task"] is None:
                        check(not is_error and claimed["reason"] == "empty", f"queue empty: {claimed}")
                        check("stop" in claimed["message"], f"queue empty: the message says to stop: {claimed}")
                        print(f"claim: queue empty ({claimed['message']})")
                        break
                    check(not is_error, f"claim: {claimed}")
                    claims.append(claimed["task"])
                    is_error, completed = await call(session, "complete_task")
                    check(not is_error, f"complete: {completed}")
                    print(f"claim and complete: {claimed['task']}")
                check(claims == ["alpha", "beta"], f"claimed {claims}")

                is_error, refused = await call(session, "heartbeat")
                check(is_error, f"heartbeat with nothing held: {refused}")
                check(
                    "get_next_task" in refused["message"] and "gitprio " not in refused["message"],
                    f"a refusal names the tool to call, not a CLI command: {refused['message']}",
                )
                print(f"refusal: {refused['message']}")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="gitprio-mcp-") as root:
        env = hermetic_env(root)
        clone = make_queue(root, env)
        asyncio.run(drive(binary, clone, env))
    print("mcp_client: ok")


if __name__ == "__main__":
    main()
