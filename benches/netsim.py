"""Network pieces for benches/leases.py: a smart-HTTP git server and a latency-injecting
TCP proxy, both on 127.0.0.1, both stdlib only, both stopped by `close()` (and bounded by
timeouts, so a stuck client cannot keep them alive).

LatencyProxy(target_port, rtt_ms) listens on a free port of 127.0.0.1 and forwards every
connection to 127.0.0.1:target_port, holding each chunk of bytes, in either direction,
for rtt_ms / 2 before writing it on (bytes keep their order; bandwidth is not limited). A
new connection first waits rtt_ms, as a TCP handshake costs one round trip. So a command
that makes C connections and waits for T answers pays about (C + T) * rtt_ms more
than on loopback, as it would across a network with that round-trip time.

It counts the *turns*: each time the server answers after the client spoke (a chunk
toward the client after one toward the server), the client has waited one round trip
for it. `counters()` returns connections and turns so far; a caller takes the difference
around one command to get that command's round trips (connections + turns).

GitHttpServer(root) serves `git http-backend` as CGI for every repository under root
(HTTP/1.1 with keep-alive, request bodies by Content-Length or chunked, push allowed as
user `bench`), like lighttpd or Apache in front of git on a forge.
"""

import asyncio
import http.server
import os
import socket
import subprocess
import threading
import time

IO_TIMEOUT = 60


class LatencyProxy:
    def __init__(self, target_port, rtt_ms, log=None):
        self.target_port = target_port
        # With `log`, a list: one (opened, closed, turns) per connection, in `time.time()` seconds,
        # to tell which command made which connection.
        self.log = log
        self.delay = rtt_ms / 2000.0
        self.rtt = rtt_ms / 1000.0
        self.lock = threading.Lock()
        self.connections = 0
        self.turns = 0
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        if not started.wait(10):
            raise RuntimeError("latency proxy did not start")

    def _run(self, started):
        asyncio.set_event_loop(self.loop)
        # Connections cut by close() end in cancellations: nothing to report.
        self.loop.set_exception_handler(lambda loop, context: None)

        async def start():
            self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=1 << 20, backlog=512)
            self.port = self.server.sockets[0].getsockname()[1]
            started.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()
        self.server.close()
        self.loop.run_until_complete(self.server.wait_closed())
        self.loop.close()

    def counters(self):
        with self.lock:
            return self.connections, self.turns

    async def _serve(self, client_reader, client_writer):
        with self.lock:
            self.connections += 1
        opened = time.time()
        try:
            await asyncio.sleep(self.rtt)
            server_reader, server_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.target_port, limit=1 << 20), IO_TIMEOUT
            )
        except (OSError, asyncio.TimeoutError):
            client_writer.close()
            return
        state = {"last": None, "turns": 0}
        await asyncio.gather(
            self._pipe(client_reader, server_writer, "up", state),
            self._pipe(server_reader, client_writer, "down", state),
            return_exceptions=True,
        )
        if self.log is not None:
            with self.lock:
                self.log.append((opened, time.time(), state["turns"]))

    async def _pipe(self, reader, writer, direction, state):
        queue = asyncio.Queue()

        async def deliver():
            while True:
                due, data = await queue.get()
                wait = due - self.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    break
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

        delivery = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await asyncio.wait_for(reader.read(1 << 16), IO_TIMEOUT)
                if not data:
                    break
                if direction == "down" and state["last"] == "up":
                    with self.lock:
                        self.turns += 1
                    state["turns"] += 1
                state["last"] = direction
                queue.put_nowait((self.loop.time() + self.delay, data))
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            queue.put_nowait((self.loop.time() + self.delay, None))
            try:
                await asyncio.wait_for(delivery, IO_TIMEOUT)
            except (OSError, asyncio.TimeoutError):
                pass
            try:
                writer.close()
            except OSError:
                pass

    def close(self):
        async def cancel_all():
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IO_TIMEOUT

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._backend(b"")

    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._backend(bytes(body))

    def _backend(self, body):
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": self.server.root,
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_PROJECT_ROOT": self.server.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_USER": "bench",
            "AUTH_TYPE": "Basic",
            "CONTENT_LENGTH": str(len(body)),
        }
        if self.headers.get("Content-Type"):
            env["CONTENT_TYPE"] = self.headers["Content-Type"]
        for name in ("Git-Protocol", "Content-Encoding"):
            if self.headers.get(name):
                env["HTTP_" + name.upper().replace("-", "_")] = self.headers[name]
        try:
            result = subprocess.run(
                ["git", "http-backend"], input=body, env=env, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, timeout=IO_TIMEOUT,
            )
            head, _, content = result.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, content = result.stdout.partition(b"\n\n")
        except subprocess.TimeoutExpired:
            head, content = b"Status: 504 Timeout", b""
        status = 200
        headers = []
        for line in head.decode(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name and name.lower() not in ("content-length", "connection", "transfer-encoding"):
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)


class GitHttpServer:
    def __init__(self, root):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 512
        self.server.root = os.path.abspath(root)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def wait_listening(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")
