"""What the parallel launcher's fork server imports before it forks any worker (its preload list, in
hydra_plugins/gen_launchers/parallel_launcher.py): gen's training code and torch._dynamo, which every torch
optimizer imports when it is built (2-3 s, the most of a small run's first job), once for all workers.

And one thing for the server's own end: when the launching process exits, the server leaves at once instead of
tearing down the modules it imported (about 1 s with torch, during which it still held the sweep's output
pipes, so a caller reading them waited).  Its workers end through multiprocessing's own ``os._exit``."""
import atexit
import os
import sys

import torch._dynamo  # noqa: F401

import gen.cli  # noqa: F401
import gen.run  # noqa: F401

_SERVER_PID = os.getpid()


def _exit_at_once() -> None:
    if os.getpid() == _SERVER_PID and sys.argv[:1] == ["-c"]:  # the fork server (multiprocessing runs it by -c)
        os._exit(0)


atexit.register(_exit_at_once)
