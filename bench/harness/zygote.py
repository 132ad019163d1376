"""Fresh benchmark processes in milliseconds: a worker parent (worker.py) that forks a child per request.

    with Zygote(python, env, label="A") as zygote:      # imports torch once (seconds)
        child = zygote.fork()                             # a fresh process (milliseconds)
        reply = child.request({"cmd": "prepare", ...}, timeout_s=600)
        child.close()

The parent runs worker.py under `python` with `env`, so it imports that environment's zhisuan.
Each child talks JSON lines over a Unix socket in a private temporary folder. A child that dies,
hangs past its timeout or answers with an error raises WorkerError, which names the side (label),
the request and the last lines of the worker's error output.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER_FILE = Path(__file__).with_name("worker.py")
START_TIMEOUT_S = 300.0  # importing torch on a busy 2-core host can take half a minute
CONNECT_TIMEOUT_S = 60.0
STDERR_TAIL = 2000


class WorkerError(RuntimeError):
    """A worker process failed: why, in one line, and the tail of its error output."""


class Zygote:
    def __init__(self, python: str | None = None, env: dict | None = None, *, label: str = "worker",
                 cwd: str | None = None):  # fmt: skip
        self.label = label
        self.folder = tempfile.TemporaryDirectory(prefix="zhisuan-worker-")
        self.stderr_path = Path(self.folder.name) / "stderr.log"
        self.children = 0
        command = [python or sys.executable, str(WORKER_FILE)]
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env, cwd=cwd,
                text=True, start_new_session=True,
            )  # fmt: skip
        try:
            self.info = self._read_reply(START_TIMEOUT_S, "starting")
        except BaseException:
            self.close()
            raise

    def _read_reply(self, timeout_s: float, doing: str) -> dict:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            state = "timed out" if not ready else f"exited with {self.process.poll()}"
            raise WorkerError(f"{self.label} worker {state} while {doing}{self.stderr_tail()}")
        return json.loads(line)

    def stderr_tail(self) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace").strip()
        except OSError:
            return ""
        return f":\n{text[-STDERR_TAIL:]}" if text else ""

    def fork(self) -> Child:
        """A fresh child process, connected."""
        self.children += 1
        address = str(Path(self.folder.name) / f"child-{self.children}.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(address)
            listener.listen(1)
            listener.settimeout(CONNECT_TIMEOUT_S)
            self.process.stdin.write(json.dumps({"fork": address}) + "\n")
            self.process.stdin.flush()
            pid = self._read_reply(CONNECT_TIMEOUT_S, "forking")["pid"]
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                _kill(pid)
                raise WorkerError(f"{self.label} child {pid} never connected{self.stderr_tail()}") from None
        return Child(self, pid, connection)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process.stdout.close()
        self.folder.cleanup()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Child:
    """One forked child: a request, its reply; closing it ends the process."""

    def __init__(self, zygote: Zygote, pid: int, connection: socket.socket):
        self.zygote, self.pid, self.connection = zygote, pid, connection
        self.stream = connection.makefile("rwb")

    def request(self, message: dict, timeout_s: float) -> dict:
        self.send(message)
        return self.receive(timeout_s)

    def send(self, message: dict) -> None:
        """Send a request without waiting (two children can then work at once); receive() its reply."""
        self.pending = message.get("cmd", "request")
        try:
            self.stream.write(json.dumps(message).encode() + b"\n")
            self.stream.flush()
        except OSError:
            raise WorkerError(
                f"{self.zygote.label} worker {self.pid} is gone{self.zygote.stderr_tail()}"
            ) from None

    def receive(self, timeout_s: float) -> dict:
        what = self.pending
        self.connection.settimeout(timeout_s)
        try:
            line = self.stream.readline()
        except TimeoutError:
            self.kill()
            raise WorkerError(
                f"{self.zygote.label} worker {self.pid} did not answer {what!r} within {timeout_s:.0f} s"
            ) from None
        except OSError:
            line = b""
        if not line:
            raise WorkerError(
                f"{self.zygote.label} worker {self.pid} died during {what!r}{self.zygote.stderr_tail()}"
            )
        reply = json.loads(line)
        if "error" in reply:
            detail = reply.get("traceback", "").strip().splitlines()[-8:]
            raise WorkerError(
                f"{self.zygote.label} worker: {what}: {reply['error']}" + "".join(f"\n  {d}" for d in detail)
            )
        return reply

    def kill(self) -> None:
        _kill(self.pid)
        self.close()

    def close(self) -> None:
        """Tell the child to exit and wait (briefly) until it has: its memory is free for the next one."""
        try:
            self.connection.settimeout(10.0)
            self.stream.write(b'{"cmd": "exit"}\n')
            self.stream.flush()
            self.stream.readline()  # end of file once the child is gone
        except OSError:
            pass
        for closable in (self.stream, self.connection):
            with contextlib.suppress(OSError):
                closable.close()


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
