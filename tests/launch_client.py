"""``python launch.py ARGS`` (or ``python -m MODULE ARGS``) as ``subprocess`` would run it, forked from this pytest
worker's fork server (tests/launch_server.py) when one can start, else in a fresh interpreter:
:func:`run_python` as ``subprocess.run(..., capture_output=True, text=True)``, :func:`start_python` as a
``subprocess.Popen`` with its output on pipes.  ``GEN_TEST_FRESH=1`` makes every one a fresh interpreter (to check
that the fork server changes nothing)."""
import atexit
import json
import os
import select
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER = Path(__file__).resolve().parent / "launch_server.py"
_server: dict = {}  # this process's fork server: {"process": Popen, "path": socket path}, or {"failed": True}


def run_python(command: list[str], cwd: Path, env: dict | None = None, timeout: float | None = None
               ) -> subprocess.CompletedProcess:
    """``python COMMAND`` to its end, its output captured; COMMAND is ``[SCRIPT, *ARGS]`` or
    ``["-m", MODULE, *ARGS]``."""
    proc = start_python(command, cwd, env)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def start_python(command: list[str], cwd: Path, env: dict | None = None, merge_stderr: bool = False):
    """``python COMMAND`` started with its output on pipes (standard error on the same one with ``merge_stderr``):
    a :class:`ForkedLaunch`, which behaves as a Popen for the tests' uses, or a Popen."""
    command = [str(part) for part in command]
    env = dict(os.environ if env is None else env)
    path = None if os.environ.get("GEN_TEST_FRESH") == "1" else _socket_path()
    if path is None:
        return subprocess.Popen([sys.executable, *command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE, text=True)
    return ForkedLaunch(path, command, cwd, env, merge_stderr)


class ForkedLaunch:
    """A launch forked by the fork server, with what the tests use of ``subprocess.Popen`` (text mode): ``pid``,
    ``stdout``/``stderr`` (None when merged), ``poll``, ``wait``, ``communicate``, ``send_signal``, ``kill``,
    ``returncode``.  The server is its parent; it reports the exit status on the launch's connection."""

    def __init__(self, path: str, command: list[str], cwd: Path, env: dict, merge_stderr: bool):
        self.args = [sys.executable, *command]
        self.returncode: int | None = None
        out_read, out_write = os.pipe()
        err_read, err_write = (out_read, out_write) if merge_stderr else os.pipe()
        umask = os.umask(0)
        os.umask(umask)
        request = json.dumps({"command": command, "cwd": str(cwd), "env": env, "umask": umask}).encode()
        self._connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._connection.connect(path)
        socket.send_fds(self._connection, [struct.pack("!I", len(request)) + request], [out_write, err_write])
        os.close(out_write)
        if not merge_stderr:
            os.close(err_write)
        self._lines = self._connection.makefile("r")
        self.pid = int(self._lines.readline())
        self.stdout = open(out_read, encoding="utf-8", errors="replace")
        self.stderr = None if merge_stderr else open(err_read, encoding="utf-8", errors="replace")

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._connection], [], [], 0)[0]:
            self._read_status()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._connection], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(self.args, timeout)
            self._read_status()
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str | None]:
        """Both outputs read to their end (every writer closed them), then the exit status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        files = [f for f in (self.stdout, self.stderr) if f is not None and not f.closed]
        chunks: dict[int, list[bytes]] = {f.fileno(): [] for f in files}
        with selectors.DefaultSelector() as selector:
            for f in files:
                selector.register(f.fileno(), selectors.EVENT_READ)
            while selector.get_map():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(self.args, timeout)
                for key, _ in selector.select(left):
                    data = os.read(key.fd, 1 << 16)
                    if data:
                        chunks[key.fd].append(data)
                    else:
                        selector.unregister(key.fd)
        texts = [b"".join(chunks[f.fileno()]).decode(errors="replace") if f.fileno() in chunks else None
                 for f in (self.stdout, self.stderr) if f is not None]
        for f in files:
            f.close()
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return texts[0], texts[1] if len(texts) > 1 else None

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _read_status(self) -> None:
        self.returncode = int(self._lines.readline())
        self._lines.close()
        self._connection.close()


def _socket_path() -> str | None:
    """This process's fork server, started on first use; None if it cannot start."""
    if "path" in _server or "failed" in _server:
        return _server.get("path")
    folder = tempfile.mkdtemp(prefix="gen-launch-")
    path = os.path.join(folder, "socket")
    process = subprocess.Popen([sys.executable, str(SERVER), path], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    if process.stdout.readline().strip() != "ready":
        process.kill()
        _server["failed"] = True
        return None
    _server.update(process=process, path=path)
    atexit.register(_stop, process, folder)
    return path


def _stop(process: subprocess.Popen, folder: str) -> None:
    process.kill()
    process.wait()
    shutil.rmtree(folder, ignore_errors=True)
