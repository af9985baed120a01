"""A fork server for the tests' launches of ``launch.py`` (and of ``python -m`` gen's commands): torch, torch._dynamo, Hydra and OmegaConf imported once
per pytest worker, and each launch a fork of that process.

``python launch.py`` spends about 3.5 s of CPU importing torch and torch._dynamo before it does anything of its own,
and the tests launch it a few hundred times.  The server (``python tests/launch_server.py SOCKET``) imports those
third-party packages, then forks a child per request; the child takes the launch's working directory, environment,
umask, standard output and error (the caller's pipes, passed over the socket), sets ``sys.argv`` and runs launch.py
(or the module) as ``__main__``, and ends as an interpreter ends (atexit handlers, non-daemon threads joined) with
its exit status.  gen itself is not pre-imported: its import-time effects (resolvers, OpenMP's wait policy) happen in each
child, as in a fresh interpreter.  Tests that check what a fresh interpreter imports, or that need a process of their
own (signals, a second user), start ``python`` themselves.

Protocol, one connection per launch: the caller sends a JSON request (4-byte length first) with its two pipes'
write ends; the server answers a line with the child's pid, and a line with its exit status once it ends.
"""
import importlib
import json
import os
import runpy
import select
import socket
import struct
import sys

PRELOAD = ("torch", "torch._dynamo", "hydra", "hydra.core.utils", "omegaconf")


def serve(path: str) -> None:
    for module in PRELOAD:
        importlib.import_module(module)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    print("ready", flush=True)
    parent = os.getppid()
    children: dict[int, socket.socket] = {}
    while os.getppid() == parent:  # the pytest worker that started it is alive
        readable, _, _ = select.select([listener], [], [], 0.05)
        if readable:
            connection, _ = listener.accept()
            request, fds = _receive(connection)
            pid = os.fork()
            if pid == 0:
                listener.close()
                connection.close()
                _run_launch(request, fds)  # raises SystemExit: the child ends as an interpreter does
            for fd in fds:
                os.close(fd)
            connection.sendall(f"{pid}\n".encode())
            children[pid] = connection
        _reap(children)


def _receive(connection: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(connection, 1 << 16, 2)
    (length,) = struct.unpack("!I", data[:4])
    data = data[4:]
    while len(data) < length:
        data += connection.recv(length - len(data))
    return json.loads(data), fds


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        connection = children.pop(pid, None)
        if connection is not None:
            connection.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
            connection.close()


def _run_launch(request: dict, fds: list[int]) -> None:
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    for fd in fds:
        os.close(fd)
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    command = request["command"]
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    if command[0] == "-m":  # as `python -m MODULE ARGS` or `python SCRIPT ARGS`, with the caller's PYTHONPATH
        sys.path[:1] = [os.getcwd(), *extra]
        sys.argv = [command[1], *command[2:]]  # runpy puts the module's file first
        runpy.run_module(command[1], run_name="__main__", alter_sys=True)
    else:
        sys.path[:1] = [os.path.dirname(os.path.abspath(command[0])), *extra]
        sys.argv = list(command)
        runpy.run_path(command[0], run_name="__main__")
    sys.exit(0)


if __name__ == "__main__":
    serve(sys.argv[1])
