"""What the parallel launcher's fork server imports before it forks any worker (its preload list, in
hydra_plugins/gen_launchers/parallel_launcher.py): gen's training code and torch._dynamo, which every torch
optimizer imports when it is built (2-3 s, the most of a small run's first job), once for all workers.

And the server's own end: it leaves the moment the launching process is gone, without tearing down what it
imported.  The server holds the launch's output pipes (its workers write there), so a caller that reads them
waited for it: about 1 s of teardown with torch after every sweep, and 3 s after a sweep stopped by bad input
while the server still imported.  Its workers end through multiprocessing's own ``os._exit``."""
import atexit
import os
import sys
import threading
import time


def _is_the_server() -> bool:
    return sys.argv[:1] == ["-c"] and "multiprocessing.forkserver" in sys.modules  # how multiprocessing runs it


def _leave_with_the_launch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.05)
    os._exit(0)


if _is_the_server():  # before the imports below: a launch stopped by bad input does not wait for them
    threading.Thread(target=_leave_with_the_launch, args=(os.getppid(),), daemon=True).start()
    atexit.register(os._exit, 0)  # the launch ended normally: no teardown either

import torch._dynamo  # noqa: E402,F401

import gen.cli  # noqa: E402,F401
import gen.run  # noqa: E402,F401
