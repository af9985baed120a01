"""``hydra/launcher=local_gpus``: the joblib launcher with one job per GPU at a time.

The launcher runs ``n_jobs`` worker processes (``${local_gpus_workers:}``: one per visible GPU, or
half the CPU cores when there is none).  joblib reuses its workers and does not tell a job which
worker it is in, so each worker pins itself when its first job starts (``pin_worker``): it takes
an exclusive lock on a free GPU's lock file and sets ``CUDA_VISIBLE_DEVICES`` to that GPU before
anything initialises CUDA there.  The pin holds for the worker's life (the lock goes with the
process), so two workers never share a GPU — also across sweeps on the same machine, whose
workers wait for a free GPU.  On CPU each worker gets its share of the cores as torch threads.
"""
import fcntl
import logging
import os
import tempfile
from pathlib import Path


log = logging.getLogger("gen")
LOCK_DIR = Path(tempfile.gettempdir()) / f"gen-local-gpus-{os.getuid()}"
_pinned: dict = {}  # this worker's pin: {"gpu": id, "lock": open file} or {"threads": n}


def visible_gpus() -> list[str]:
    """The GPU ids this process may use (respecting CUDA_VISIBLE_DEVICES), without initialising CUDA."""
    import torch

    count = torch.cuda.device_count()  # NVML: no CUDA context, so the worker can still be pinned
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]


def worker_count() -> int:
    """One worker per GPU; without GPUs, half the cores (each worker runs torch on two threads)."""
    gpus = visible_gpus()
    return len(gpus) if gpus else max(1, (os.cpu_count() or 1) // 2)


def pin_worker(n_workers: int) -> None:
    """Give this worker process its own GPU (or its share of CPU threads), once."""
    if _pinned:
        return
    gpus = visible_gpus()
    if not gpus:
        import torch

        threads = max(1, (os.cpu_count() or 1) // max(1, n_workers))
        torch.set_num_threads(threads)
        _pinned["threads"] = threads
        return
    gpu, lock = _lock_a_gpu(gpus)
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    _pinned.update(gpu=gpu, lock=lock)
    log.info("worker %d pinned to GPU %s", os.getpid(), gpu)


def _lock_a_gpu(gpus: list[str]):
    """An exclusive lock on a free GPU's lock file; if every GPU is taken, wait for one."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    for gpu in gpus:
        lock = open(LOCK_DIR / f"gpu-{gpu}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return gpu, lock
        except BlockingIOError:
            lock.close()
    gpu = gpus[os.getpid() % len(gpus)]
    log.info("worker %d waits for GPU %s (every GPU has a worker)", os.getpid(), gpu)
    lock = open(LOCK_DIR / f"gpu-{gpu}.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return gpu, lock

