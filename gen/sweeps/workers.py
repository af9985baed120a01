"""The workers of ``hydra/launcher=parallel`` (gen's default launcher): how many, and each one's device.

The launcher runs ``n_jobs`` worker processes (``${parallel_workers:}``: one per visible GPU, or one per
CPU core this process may use when there is none).  Each worker pins itself once, when it starts
(``pin_worker``): on a GPU machine it takes an exclusive lock on a free GPU's lock file and sets
``CUDA_VISIBLE_DEVICES`` to that GPU before anything initialises CUDA there.  The pin holds for the
worker's life (the lock goes with the process), so two workers never share a GPU — also across sweeps
on the same machine, whose workers wait for a free GPU.  On CPU each worker gets its share of the cores
as torch threads (one each by default; a run's own setting, gen.training.loop.cpu_threads, has the last word).
"""
import fcntl
import glob
import logging
import os
import sys
import tempfile
from pathlib import Path


log = logging.getLogger("gen")
LOCK_DIR = Path(tempfile.gettempdir()) / f"gen-local-gpus-{os.getuid()}"
GPU_DRIVER_FILES = ("/dev/nvidiactl", "/dev/kfd")  # NVIDIA's and ROCm's: without either, torch sees no GPU
_pinned: dict = {}  # this worker's pin: {"gpu": id, "lock": open file} or {"threads": n}


def visible_gpus() -> list[str]:
    """The GPU ids this process may use (respecting CUDA_VISIBLE_DEVICES), without initialising CUDA.
    Without a GPU driver on the machine the answer is none, without importing torch (2-3 s): the process
    that launches a sweep on a CPU machine never needs torch."""
    if "torch" not in sys.modules and not any(glob.glob(path) for path in GPU_DRIVER_FILES):
        return []
    import torch

    count = torch.cuda.device_count()  # NVML: no CUDA context, so the worker can still be pinned
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]


def cpu_cores() -> int:
    """The cores this process may run on (its affinity: taskset, a SLURM allocation), else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def worker_count() -> int:
    """One worker per GPU; without GPUs, one per core (each trains on one torch thread)."""
    gpus = visible_gpus()
    return len(gpus) if gpus else cpu_cores()


def pin_worker(n_workers: int) -> None:
    """Give this worker process its own GPU (or its share of CPU threads), once."""
    if _pinned:
        return
    gpus = visible_gpus()
    if not gpus:
        import torch

        threads = max(1, cpu_cores() // max(1, n_workers))
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
