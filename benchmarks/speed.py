"""The speed benchmark: our training path against the textbook loop and the bare-tensor limit.

    python benchmarks/speed.py              # the full benchmark (a few minutes on 2 CPU cores)
    python benchmarks/speed.py --quick      # smaller data and fewer jobs: a smoke test (~1 minute)
    python benchmarks/speed.py --only train,measures --out /tmp/speed.json

Sections (all baselines are measured in the same run, on the same data and model):

1. ``train``: one epoch of ``fc`` (H=64 and H=1024) on MNIST-format data (60,000 random images
   written as real IDX files, read through torchvision's MNIST class) three ways: OUR path
   (``gen.data.load_data`` + ``gen.training.loop.Trainer``, built as ``gen.run`` builds them), the TEXTBOOK
   loop (torchvision dataset + ToTensor/Normalize + DataLoader, batch 64, shuffled) and a BARE loop
   over batches sliced from a pre-shuffled tensor (the practical limit). Same epoch, shuffle, batch 64.
2. ``ensemble``: one epoch of 8 runs (seeds 0-7) of ``fc`` (H=64, 256, 1024) on 10,000 of those
   images, trained one after another on our path (one thread each) and in lockstep
   (``trainer.ensemble=8``, on every core and on one), with each one's effective GFLOP/s beside the
   machine's measured float32 matrix-multiply rate (1024×784 @ 784×1024) on the same threads.
3. ``multirun``: ``python launch.py -m seed=0..19`` of tiny jobs on digits in a subprocess, one after
   another (``hydra/launcher=sequential``); the per-job overhead is the gap between consecutive jobs'
   ``metrics.json`` writes minus their training.  The digits' split is on disk first, as for every sweep
   after a user's first (gen.data.digits).  Then the launchers: a 10-run sweep (``seed=0..9``) of small
   runs, start-up included, three ways in a row: the default launcher (``parallel``: one worker per core,
   one torch thread each), ``hydra/launcher=sequential`` (one run at a time on one thread) and
   ``sequential`` with ``GEN_CPU_THREADS`` = every core (one run at a time on all of them); the ratios to
   ``sequential``.  Two sizes: ``tiny`` (digits, 300 images, H = 32, 2 epochs: the sweep is nearly all
   start-up) and ``small`` (5,000 MNIST-format images, H = 64, 8 epochs: a second or two each on one core).
4. ``collect``: ``analysis.collect.collect`` over 10,000 generated ``metrics.json`` files.
5. ``measures``: the ``default`` and ``all`` measure sets on fc H=1024 trained for three epochs (it
   fits the images), as a fraction of one training epoch, with every measure's seconds, on one thread
   (as a run computes them: GEN_CPU_THREADS) and on every core (a shared intermediate result, such as a σ
   search or the Gauss-Newton diagonal, counts for the first measure that needs it).
6. ``augment``: one epoch of a small conv net (``alexnet_small`` with 16 and 32 channels) and of ``fc``
   H=64 on 10,000 of those images with ``augment=crop_flip`` and without (gen.data.augment), interleaved;
   the ratio of their epoch times (the goal for the conv net: at most 1.15).
7. ``cuda``: with a GPU, sections 1, 2 and 6 on CUDA (section 1 in fp32 and bf16 AMP); skipped otherwise.
8. ``startup``: ``python launch.py`` with each kind of config error (seconds until its one line; goal
   ≤ 1.5 s), and a one-epoch run on the MNIST-format data, whose wall time less its training steps
   bounds the overhead before the first step from above (goal ≤ 3 s), beside torch's own floor (a
   process that imports torch and builds one optimizer).

Every figure goes to a JSON file (``benchmarks/results/<host>-<date>.json`` unless ``--out``).
Other processes sharing the cores make single figures noisy; the ratios are taken within one run,
and ``--repeats`` keeps the best of several epochs.
"""
import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import gen  # noqa: E402,F401  (before torch: gen sets OpenMP's wait policy, gen/__init__.py)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from tests.fake_datasets import write_idx  # noqa: E402  (the IDX writer the tests use)

SECTIONS = ("train", "ensemble", "multirun", "collect", "measures", "augment", "cuda", "startup", "remeasure")
AUGMENT_TRAIN_SIZE = 10_000
AUGMENT_MODELS = {"alexnet_small 16/32": ["model=alexnet_small", "model.channels=[16,32]", "model.hidden=[128,64]"],
                  "fc H=64": ["model.hidden_units=64"]}
ENSEMBLE_MEMBERS = 8
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081   # S1's textbook normalisation
PROTOTYPE_SHARE = 0.2  # of an image's pixels, drawn from its class's prototype: fc H=1024 fits 99% in 3 epochs
DEFAULT_THREADS = torch.get_num_threads()  # before gen.training.loop sets its own


# ---- data ----------------------------------------------------------------------------------------
def write_mnist_files(root: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    """MNIST IDX files in ROOT/MNIST/raw/: random images in which a fifth of the pixels, on average,
    come from a random prototype of the image's class, so that a network fits them as it fits real
    data. Only the format matters to the training sections, but the measure section needs a network
    that fits its data: at chance accuracy the flatness searches have no drop to find."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    prototypes = rng.integers(0, 256, size=(10, 28, 28), dtype=np.uint8)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10)[rng.permutation(n)].astype(np.uint8)
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        from_prototype = rng.random((n, 28, 28)) < PROTOTYPE_SHARE
        images[from_prototype] = prototypes[labels][from_prototype]
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose, initialize_config_dir

    from gen.sweeps import resolvers

    resolvers.register()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def mnist_overrides(root: Path, hidden: int, extra: list[str] = ()) -> list[str]:
    return ["dataset=mnist", f"dataset.root={root}", "dataset.normalize=true",
            f"dataset.mean=[{MNIST_MEAN}]", f"dataset.std=[{MNIST_STD}]", f"model.hidden_units={hidden}",
            "trainer.max_epochs=1", "trainer.progress=false", "trainer.device=cpu", "measure=none", "optimizer=sgd",
            *extra]  # a later override of the same key wins (trainer.device=cuda, measure=...)


# ---- the three training loops -----------------------------------------------------------------------
def build_ours(cfg, data=None):
    """Data, model, optimizer and Trainer exactly as a run builds them (gen.run.build_run)."""
    from gen.run import build_run

    setup = build_run(cfg, data=data)
    return setup.trainer, setup.init_state


def time_ours(trainer, sync) -> float:
    """Seconds for one epoch of our loop (what fit() trains per epoch; its evaluation excluded)."""
    sync()
    start = time.perf_counter()
    trainer.train_epoch()
    sync()
    seconds = time.perf_counter() - start
    trainer.epoch_perm = None  # the next call starts a new epoch, as Trainer.end_epoch would
    return seconds


def fc_model(hidden: int) -> torch.nn.Module:
    from gen.models.fc import FullyConnected
    torch.manual_seed(0)
    return FullyConnected((1, 28, 28), 10, hidden)


def time_textbook(root: Path, hidden: int, lr: float, limit: int | None, threads: int) -> tuple[float, int]:
    """S1's textbook epoch: per-sample PIL → ToTensor → Normalize, DataLoader(batch 64, shuffle)."""
    with _threads(threads):
        return _textbook_epoch(root, hidden, lr, limit)


def _textbook_epoch(root: Path, hidden: int, lr: float, limit: int | None) -> tuple[float, int]:
    import torchvision
    from torchvision import transforms

    dataset = torchvision.datasets.MNIST(str(root), train=True, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True)
    model = fc_model(hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    seen, start = 0, time.perf_counter()
    for x, y in loader:
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        seen += len(x)
        if limit is not None and seen >= limit:
            break
    return time.perf_counter() - start, seen


def time_bare(x: torch.Tensor, y: torch.Tensor, hidden: int, lr: float, sync, bf16: bool = False) -> float:
    """The practical limit: one gather per epoch, then contiguous 64-sample slices, nothing else
    (under bf16 autocast when ours uses it)."""
    model = fc_model(hidden).to(x.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    autocast = (lambda: torch.autocast(x.device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    sync()
    start = time.perf_counter()
    perm = torch.randperm(len(x), device=x.device)
    xs, ys = x[perm], y[perm]
    for i in range(0, len(xs), 64):
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            out = model(xs[i:i + 64])
        F.cross_entropy(out.float(), ys[i:i + 64]).backward()
        optimizer.step()
    sync()
    return time.perf_counter() - start


def bench_training(root: Path, hiddens: list[int], repeats: int, textbook_limit: int | None,
                   device: torch.device, extra: list[str] = ()) -> dict:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out = {}
    for hidden in hiddens:
        cfg = compose(mnist_overrides(root, hidden, extra))
        trainer, _ = build_ours(cfg)
        x, y = trainer.data.x_train, trainer.data.y_train
        n = len(x)
        lr = cfg.optimizer.lr
        ours, bare = [], []
        for _ in range(repeats):  # interleaved, so contention from other processes hits both alike
            ours.append(n / time_ours(trainer, sync))
            bare.append(n / time_bare(x, y, hidden, lr, sync, cfg.trainer.precision == "bf16"))
        row = {"samples": n, "ours_samples_per_s": max(ours), "bare_samples_per_s": max(bare),
               "ours_all": ours, "bare_all": bare, "ours_over_bare": max(ours) / max(bare)}
        if device.type == "cpu":
            # The textbook loop twice: with our thread setting (the fair comparison of the loops), and
            # with torch's default threads, as a textbook script runs (on a shared machine: much slower).
            seconds, seen = time_textbook(root, hidden, lr, textbook_limit, torch.get_num_threads())
            row.update(textbook_samples_per_s=seen / seconds, textbook_samples=seen,
                       ours_over_textbook=max(ours) / (seen / seconds))
            seconds, seen = time_textbook(root, hidden, lr, min(textbook_limit or 20_000, 20_000), DEFAULT_THREADS)
            row.update(textbook_default_threads=DEFAULT_THREADS, textbook_default_threads_samples_per_s=seen / seconds,
                       ours_over_textbook_default_threads=max(ours) / (seen / seconds))
        out[f"fc_h{hidden}"] = row
        print_row(f"fc H={hidden}", row)
    return out


def print_row(label: str, row: dict) -> None:
    text = f"  {label:<10} ours {row['ours_samples_per_s']:>9,.0f}/s  bare {row['bare_samples_per_s']:>9,.0f}/s" \
           f"  ours/bare {row['ours_over_bare']:.2f}"
    if "textbook_samples_per_s" in row:
        text += (f"\n  {'':<10} textbook {row['textbook_samples_per_s']:>7,.0f}/s (same threads): "
                 f"ours/textbook {row['ours_over_textbook']:.1f}x;  textbook "
                 f"{row['textbook_default_threads_samples_per_s']:>7,.0f}/s "
                 f"({row['textbook_default_threads']} threads, "
                 f"torch's default): ours/textbook {row['ours_over_textbook_default_threads']:.1f}x")
    print(text, flush=True)


# ---- lockstep ensembles ------------------------------------------------------------------------------------
def bench_ensemble(root: Path, members: int, hiddens: list[int], train_size: int, repeats: int,
                   device: torch.device) -> dict:
    """One epoch of ``members`` runs (seeds 0..K-1) trained one after another (each on its own
    threads: one on CPU), and trained in lockstep (trainer.ensemble=K, gen.training.lockstep) on the
    group's threads (every core, gen.training.loop.cpu_threads) and, for reference, on one; samples/s
    counts every member's samples.  On CPU each configuration's effective GFLOP/s (forward and
    backward: 6 × weights × samples) stands beside the machine's own float32 matrix-multiply rate on the
    same threads, measured in the same run, so the distance to that limit is on record."""
    from gen.training.lockstep import Lockstep
    from gen.training.loop import cpu_threads

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    alone_threads = cpu_threads(1) or torch.get_num_threads()  # GEN_CPU_THREADS=0: as the process has it
    group_threads = cpu_threads(members) or torch.get_num_threads()
    out = {"members": members, "train_size": train_size}
    matmul: dict[str, list[float]] = {str(t): [] for t in sorted({1, group_threads})}  # interleaved with the epochs
    for hidden in hiddens:
        cfgs = [compose(mnist_overrides(root, hidden, [f"seed={seed}", f"dataset.train_size={train_size}",
                                                       f"trainer.device={device.type}"])) for seed in range(members)]
        alone = [build_ours(cfgs[0])[0]]
        alone += [build_ours(cfg, data=alone[0].data)[0] for cfg in cfgs[1:]]
        # two groups, one trained on the group's threads and one on a single thread: a group trains in one
        # part per thread (gen.training.lockstep) and rebuilds its parts when the thread count changes
        groups = {}
        for threads in sorted({group_threads, 1} if device.type == "cpu" else {group_threads}):
            members_together = [build_ours(cfg, data=alone[0].data)[0] for cfg in cfgs]
            groups[threads] = (Lockstep(members_together, cfgs[0]), members_together)
        samples = members * len(alone[0].data.x_train)
        flop = 6 * sum(p.numel() for p in alone[0].model.parameters()) * samples

        def lockstep_epoch(threads: int, groups=groups, samples=samples) -> float:  # bound now: the loop
            together, members_together = groups[threads]                            # rebinds these names
            with _threads(threads):
                sync()
                start = time.perf_counter()
                together.train_epoch(members_together)
                sync()
                seconds = time.perf_counter() - start
            for trainer in members_together:
                trainer.epoch_perm = None
            return samples / seconds

        def alone_epochs(alone=alone, samples=samples) -> float:
            with _threads(alone_threads):
                return samples / sum(time_ours(trainer, sync) for trainer in alone)

        rates = {"alone": [], "lockstep": [], "lockstep_1_thread": []}
        loads = []
        for _ in range(repeats):  # interleaved, as in bench_training
            loads.append(os.getloadavg()[0])
            if device.type == "cpu":
                for threads, measured in matmul.items():
                    measured.append(matmul_gflops(int(threads)))
            rates["alone"].append(alone_epochs())
            rates["lockstep"].append(lockstep_epoch(group_threads))
            if device.type == "cpu" and group_threads != 1:
                rates["lockstep_1_thread"].append(lockstep_epoch(1))
        row = {f"{k}_samples_per_s": max(v) for k, v in rates.items() if v}
        row.update({f"{k}_all": v for k, v in rates.items() if v})
        row.update(lockstep_over_alone=row["lockstep_samples_per_s"] / row["alone_samples_per_s"],
                   flop_per_epoch=flop, load_avg=loads)
        text = (f"  fc H={hidden:<5} {members} runs one after another {row['alone_samples_per_s']:>8,.0f}/s  "
                f"in lockstep {row['lockstep_samples_per_s']:>8,.0f}/s  "
                f"lockstep/alone {row['lockstep_over_alone']:.2f}")
        if rates["lockstep_1_thread"]:
            row["lockstep_1_thread_over_alone"] = row["lockstep_1_thread_samples_per_s"] / row["alone_samples_per_s"]
            text += f" (on one thread {row['lockstep_1_thread_over_alone']:.2f})"
        if device.type == "cpu":
            row["gflops"] = {k[:-len("_samples_per_s")]: v * flop / samples / 1e9
                             for k, v in row.items() if k.endswith("_samples_per_s")}
            text += "\n  " + " " * 10 + "effective GFLOP/s: " + ", ".join(
                f"{k} {v:.1f}" for k, v in row["gflops"].items()) + f"  (load average {max(loads):.1f})"
        out[f"fc_h{hidden}"] = row
        print(text, flush=True)
    if device.type == "cpu":  # the best of every measurement in the section: the machine's limit
        out.update(alone_threads=alone_threads, lockstep_threads=group_threads,
                   matmul_gflops={t: max(v) for t, v in matmul.items()}, matmul_gflops_all=matmul)
        print("  float32 matrix multiply (1024x784 @ 784x1024), best of the section: "
              + ", ".join(f"{r:.1f} GFLOP/s on {t} thread(s)" for t, r in out["matmul_gflops"].items()), flush=True)
    return out


def matmul_gflops(threads: int, repeats: int = 30) -> float:
    """The machine's float32 matrix-multiply rate on ``threads`` threads: 1024×784 @ 784×1024, best of
    ``repeats`` (the limit a training step's products could reach; measured between the epochs, as
    other processes' load comes and goes)."""
    a, b = torch.randn(1024, 784), torch.randn(784, 1024)
    best = float("inf")
    with _threads(threads):
        a @ b
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    return 2 * 1024 * 784 * 1024 / best / 1e9


# ---- data augmentation --------------------------------------------------------------------------------
def bench_augment(root: Path, train_size: int, repeats: int, device: torch.device) -> dict:
    """One epoch with ``augment=crop_flip`` against one without, per model of :data:`AUGMENT_MODELS`, on
    the same data; ``augmented_over_plain`` is the ratio of their best epoch times."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    base = [o for o in mnist_overrides(root, 0, [f"dataset.train_size={train_size}", f"trainer.device={device.type}"])
            if not o.startswith("model.hidden_units=")]
    out = {"train_size": train_size}
    for label, model in AUGMENT_MODELS.items():
        plain, _ = build_ours(compose(base + model))
        augmented, _ = build_ours(compose(base + model + ["augment=crop_flip"]), data=plain.data)
        plain_s, augmented_s = [], []
        for _ in range(repeats):  # interleaved, so contention from other processes hits both alike
            plain_s.append(time_ours(plain, sync))
            augmented_s.append(time_ours(augmented, sync))
        row = {"plain_epoch_s": min(plain_s), "augmented_epoch_s": min(augmented_s), "plain_all": plain_s,
               "augmented_all": augmented_s, "augmented_over_plain": min(augmented_s) / min(plain_s)}
        out[label] = row
        print(f"  {label:<20} plain {row['plain_epoch_s']:.3f} s/epoch  crop_flip {row['augmented_epoch_s']:.3f} "
              f"s/epoch  crop_flip/plain {row['augmented_over_plain']:.3f}", flush=True)
    return out


# ---- data cache ----------------------------------------------------------------------------------------
def bench_data_load(root: Path) -> dict:
    """load_data cold (decode IDX + write the disk cache), from disk (a new process), and in process."""
    from gen.data import cache, load_data

    cfg = compose(mnist_overrides(root, 64))
    shutil.rmtree(root / ".gen_cache", ignore_errors=True)
    cache.clear_memory()
    timings = {}
    for label in ("cold_s", "disk_s", "memory_s"):
        if label == "disk_s":
            cache.clear_memory()
        start = time.perf_counter()
        load_data(cfg.dataset, cfg.corruption, "cpu")
        timings[label] = time.perf_counter() - start
    print(f"  load_data: cold {timings['cold_s']:.2f}s, disk cache {timings['disk_s']:.2f}s, "
          f"in-process {timings['memory_s']:.3f}s", flush=True)
    return timings


# ---- a sequential multirun ---------------------------------------------------------------------------
def bench_multirun(jobs: int, workdir: Path) -> dict:
    from gen.data import digits

    dataset = compose([]).dataset
    digits.split(dataset.test_fraction, dataset.data_seed)  # the first digits run ever pays scikit-learn's import
    sweep = workdir / "sweep"
    args = [sys.executable, str(REPO / "launch.py"), "-m", "hydra/launcher=sequential", f"seed=range(0,{jobs})",
            "trainer.max_epochs=1",
            "trainer.progress=false", "model.hidden_units=16", "measure=none", "trainer.save_weights=false",
            "analysis.auto=false", f"hydra.sweep.dir={sweep}"]
    start = time.time()
    proc = subprocess.run(args, cwd=workdir, capture_output=True, text=True)
    wall = time.time() - start
    if proc.returncode != 0:
        raise RuntimeError(f"multirun failed: {proc.stderr[-2000:]}")
    records = []
    for path in sweep.rglob("metrics.json"):
        m = json.loads(path.read_text())
        records.append((path.stat().st_mtime, m["timing"]["train_s"], m["timing"]["total_s"]))
    records.sort()
    gaps = [b[0] - a[0] for a, b in zip(records, records[1:])]
    overheads = [gap - rec[1] for gap, rec in zip(gaps, records[1:])]    # everything but the epochs
    first = records[0][0] - start - records[0][1]
    out = {"jobs": len(records), "wall_s": wall, "first_job_overhead_s": first,
           "per_job_s_after_first": float(np.median(gaps)),
           "per_job_overhead_s_after_first": float(np.median(overheads)),
           "per_job_overhead_all": overheads, "per_job_train_s": float(np.median([r[1] for r in records]))}
    print(f"  {len(records)} jobs in {wall:.1f}s: first job overhead {first:.2f}s (imports, Hydra, data); after it "
          f"{out['per_job_s_after_first']:.3f}s/job of which overhead {out['per_job_overhead_s_after_first']:.3f}s "
          f"(training {out['per_job_train_s']:.3f}s)", flush=True)
    return out, sweep


# ---- the launchers: a sweep in parallel against one run at a time -----------------------------------------
LAUNCHER_RUNS = 10
LAUNCHER_SWEEPS = {  # the runs of each sweep; every run measures the default set, as a user's would
    "tiny": lambda root: ["model.hidden_units=32", "dataset.train_size=300", "trainer.max_epochs=2"],
    "small": lambda root: [*mnist_overrides(root, 64), "dataset.train_size=5000", "trainer.max_epochs=8",
                           "measure=default"],
}


def bench_launchers(root: Path, workdir: Path) -> dict:
    """Each sweep of LAUNCHER_SWEEPS under the three launch modes, one after another, wall time from the
    command to its exit; the ratios to ``sequential`` are taken within this one run."""
    from gen.data import load_data

    cores = len(os.sched_getaffinity(0))
    modes = {"parallel": ([], {}), "sequential": (["hydra/launcher=sequential"], {}),
             f"sequential, {cores} threads": (["hydra/launcher=sequential"], {"GEN_CPU_THREADS": str(cores)})}
    out = {"runs": LAUNCHER_RUNS, "cores": cores}
    for size, overrides in LAUNCHER_SWEEPS.items():
        cfg = compose(overrides(root))
        load_data(cfg.dataset, cfg.corruption, "cpu")  # the data's disk cache, as after a user's first sweep
        rows = {}
        for mode, (launcher, env) in modes.items():
            sweep = workdir / f"launchers-{size}-{mode.split(',')[0]}-{len(rows)}"
            args = [sys.executable, str(REPO / "launch.py"), "-m", f"seed=range(0,{LAUNCHER_RUNS})",
                    *overrides(root), *launcher, "analysis.auto=false", f"hydra.sweep.dir={sweep}"]
            load = os.getloadavg()[0]
            start = time.time()
            with _env(**env):
                proc = subprocess.run(args, cwd=workdir, capture_output=True, text=True)
            wall = time.time() - start
            if proc.returncode != 0:
                raise RuntimeError(f"{mode} sweep failed: {proc.stderr[-2000:]}")
            train_s = [json.loads(p.read_text())["timing"]["train_s"] for p in sweep.rglob("metrics.json")]
            rows[mode] = {"wall_s": wall, "load_avg_before": load, "median_train_s": float(np.median(train_s))}
        base = rows["sequential"]["wall_s"]
        for mode, row in rows.items():
            row["ratio_to_sequential"] = row["wall_s"] / base
            print(f"  {size:5s} {LAUNCHER_RUNS} runs, {mode:22s} {row['wall_s']:6.1f}s  "
                  f"{row['ratio_to_sequential']:.2f}× sequential (a run trains {row['median_train_s']:.2f}s; "
                  f"load average {row['load_avg_before']:.1f} before)", flush=True)
        out[size] = rows
    return out


# ---- analysis collect --------------------------------------------------------------------------------
def bench_collect(template: dict, runs: int, workdir: Path) -> dict:
    root = workdir / "collect"
    rng = random.Random(0)
    for i in range(runs):
        m = json.loads(json.dumps(template))
        m["run_id"] = f"r{i:06d}"
        m["seed"] = m["config"]["seed"] = i
        m["final"]["test_acc"] = rng.random()
        folder = root / m["run_id"]
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(m))
    from analysis.collect import collect

    start = time.perf_counter()
    collection = collect([root])
    seconds = time.perf_counter() - start
    assert len(collection.runs) == runs, len(collection.runs)
    print(f"  collect {runs:,} runs: {seconds:.2f}s ({len(collection.history):,} history rows)", flush=True)
    return {"runs": runs, "seconds": seconds, "history_rows": len(collection.history)}


# ---- measures ---------------------------------------------------------------------------------------
MEASURE_EPOCHS = 3  # fc H=1024 first fits the images to about 99% train accuracy


def bench_measures(root: Path, sets: list[str], hidden: int, budget_s: int) -> dict:
    cfg = compose(mnist_overrides(root, hidden))
    trainer, init_state = build_ours(cfg)
    trainer.evaluate_row()
    epoch_s = min(time_ours(trainer, lambda: None) for _ in range(MEASURE_EPOCHS))
    row = trainer.evaluate_row()
    out = {"hidden_units": hidden, "epoch_s": epoch_s, "epochs": MEASURE_EPOCHS, "train_acc": row["train_acc"]}
    print(f"  trained {MEASURE_EPOCHS} epochs: train accuracy {row['train_acc']:.3f}", flush=True)
    for name in sets:
        measure_cfg = compose(mnist_overrides(root, hidden, [f"measure={name}"])).measure
        for threads in sorted({1, DEFAULT_THREADS}):  # a run's one thread (GEN_CPU_THREADS), and every core
            label = name if threads == 1 else f"{name} on {threads} threads"
            with _threads(threads):
                out[label] = _measure_set(measure_cfg, trainer, init_state, budget_s, epoch_s, label)
    return out


def _measure_set(measure_cfg, trainer, init_state, budget_s: int, epoch_s: float, label: str) -> dict:
    from gen.measures import compute_measures

    try:
        with _time_limit(budget_s):
            result = compute_measures(measure_cfg, trainer.model, init_state, trainer.data, trainer.record)
    except TimeoutError:
        print(f"  measure={label}: not finished after {budget_s}s (> {budget_s / epoch_s:.0f} epochs)", flush=True)
        return {"seconds": None, "timed_out_after_s": budget_s, "fraction_of_epoch": f"> {budget_s / epoch_s:.0f}"}
    slowest = sorted(result.seconds.items(), key=lambda kv: -kv[1])[:5]
    print(f"  measure={label}: {result.total_seconds:.2f}s = {result.total_seconds / epoch_s:.1%} of an epoch "
          f"({epoch_s:.2f}s); slowest {', '.join(f'{k} {v:.2f}s' for k, v in slowest)}", flush=True)
    return {"seconds": result.total_seconds, "fraction_of_epoch": result.total_seconds / epoch_s,
            "slowest": dict(slowest), "measures": len(result.values), "per_measure_s": result.seconds,
            "values": result.values, "notes": result.notes}


@contextlib.contextmanager
def _time_limit(seconds: int):
    """Raise TimeoutError in the main thread after ``seconds`` (the slow sets run for hours)."""
    def expire(signum, frame):
        raise TimeoutError
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ---- main -------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 images, 5 jobs, 1,000 runs: a smoke test")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    parser.add_argument("--repeats", type=int, default=3, help="epochs of ours and bare per width (best kept)")
    parser.add_argument("--ensemble-hiddens", default="64,256,1024", help="the ensemble section's widths H")
    parser.add_argument("--measure-sets", default="default,all")
    parser.add_argument("--measure-budget", type=int, default=300, help="seconds before a measure set is cut off")
    parser.add_argument("--out", type=Path, help="the JSON file (default benchmarks/results/<host>-<date>.json)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    sections = [s for s in args.only.split(",") if s]
    n_train, jobs, runs = (10_000, 5, 1_000) if args.quick else (60_000, 20, 10_000)
    results = {"host": socket.gethostname(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "quick": args.quick, "torch": torch.__version__, "threads": torch.get_num_threads(),
               "cpus": os.cpu_count(), "python": platform.python_version(),
               "load_avg_at_start": os.getloadavg()}
    print(f"speed benchmark on {results['host']}: torch {torch.__version__}, {results['threads']} threads, "
          f"load average {results['load_avg_at_start'][0]:.1f}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="gen-speed-"))
    try:
        root = workdir / "data"
        write_mnist_files(root, n_train, 10_000)
        with _env(GEN_CACHE_DIR=str(workdir / "cache")):
            run_sections(sections, args, results, root, workdir, jobs, runs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["load_avg_at_end"] = os.getloadavg()
    stamp = datetime.now().strftime('%Y%m%d-%H%M')
    out = args.out or REPO / "benchmarks" / "results" / f"{results['host']}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return results


def run_sections(sections, args, results, root, workdir, jobs, runs) -> None:
    if "train" in sections:
        print("data loading:", flush=True)
        results["data_load"] = bench_data_load(root)
        print("one training epoch on CPU (samples/s, best of repeats):", flush=True)
        limit = 10_000 if args.quick else None
        results["train"] = bench_training(root, [64, 1024], args.repeats, limit, torch.device("cpu"))
    template = None
    if "multirun" in sections or "collect" in sections:
        print(f"sequential multirun of {jobs} tiny jobs on digits:", flush=True)
        results["multirun"], sweep = bench_multirun(jobs, workdir)
        template = json.loads(next(sweep.rglob("metrics.json")).read_text())
    if "multirun" in sections:
        print(f"a {LAUNCHER_RUNS}-run sweep, start-up included: the default launcher (parallel) against one run at "
              f"a time (sequential), on one thread and on every core:", flush=True)
        results["multirun"]["launchers"] = bench_launchers(root, workdir)
    if "collect" in sections:
        print("analysis collect:", flush=True)
        results["collect"] = bench_collect(template, runs, workdir)
    if "ensemble" in sections:
        print(f"trainer.ensemble={ENSEMBLE_MEMBERS}: one epoch of {ENSEMBLE_MEMBERS} runs on 10,000 images, CPU:",
              flush=True)
        hiddens = [int(h) for h in args.ensemble_hiddens.split(",")]
        results["ensemble"] = bench_ensemble(root, ENSEMBLE_MEMBERS, hiddens, 10_000, args.repeats, torch.device("cpu"))
    if "measures" in sections:
        print("measure sets on a trained fc H=1024:", flush=True)
        results["measures"] = bench_measures(root, args.measure_sets.split(","), 1024, args.measure_budget)
    if "augment" in sections:
        print(f"augment=crop_flip: one epoch on {AUGMENT_TRAIN_SIZE:,} images, CPU:", flush=True)
        results["augment"] = bench_augment(root, AUGMENT_TRAIN_SIZE, args.repeats, torch.device("cpu"))
    if "cuda" in sections:
        results["cuda"] = bench_cuda(root, args.repeats)
    if "startup" in sections:
        print("start-up of python launch.py (seconds):", flush=True)
        results["startup"] = bench_startup(root, workdir, args.repeats)
    if "remeasure" in sections:
        print("measuring a trained sweep: the quickstart's 10 runs trained with measure=default, then "
              "python -m gen.measure measure=norms:", flush=True)
        results["remeasure"] = bench_remeasure(workdir)


# ---- measuring a trained sweep ---------------------------------------------------------------------
def bench_remeasure(workdir: Path) -> dict:
    """What adding measure=norms to the trained quickstart costs (gen.measure: no training) next to training it."""
    sweep = workdir / "quickstart"
    train_args = [sys.executable, str(REPO / "launch.py"), "-m", "experiment=quickstart", "measure=default",
                  "analysis.auto=false", f"hydra.sweep.dir={sweep}"]
    start = time.time()
    proc = subprocess.run(train_args, cwd=workdir, capture_output=True, text=True)
    train_wall = time.time() - start
    if proc.returncode != 0:
        raise RuntimeError(f"training the quickstart failed: {proc.stderr[-2000:]}")
    before = {p.parent: json.loads(p.read_text()) for p in sweep.rglob("metrics.json")}
    weights = {p: p.stat().st_mtime_ns for p in sweep.glob("*/model.pt")}
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "gen.measure", str(sweep), "measure=norms", "analysis.auto=false"],
                          cwd=workdir, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    measure_wall = time.time() - start
    if proc.returncode != 0:
        raise RuntimeError(f"gen.measure failed: {proc.stderr[-2000:]}")
    after = {run: json.loads((run / "metrics.json").read_text()) for run in before}
    assert {p: p.stat().st_mtime_ns for p in weights} == weights, "gen.measure touched the weights"
    assert all(after[r]["history"] == before[r]["history"] for r in before), "gen.measure touched the history"
    added = {run: [n for n in after[run]["measures"] if n not in before[run]["measures"]] for run in before}
    measure_s = [sum(after[r]["measured"][n]["seconds"] for n in added[r]) for r in before]
    out = {"runs": len(before), "train_wall_s": train_wall,
           "train_s_sum": sum(m["timing"]["train_s"] for m in before.values()),
           "train_total_s_sum": sum(m["timing"]["total_s"] for m in before.values()),
           "remeasure_wall_s": measure_wall, "measures_added_per_run": max(len(v) for v in added.values()),
           "remeasure_measure_s_sum": sum(measure_s), "remeasure_measure_s_per_run": measure_s,
           "train_s_per_run": [before[r]["timing"]["train_s"] for r in before]}
    print(f"  training {len(before)} runs: {train_wall:.1f}s wall (training itself {out['train_s_sum']:.1f}s); "
          f"measure=norms added afterwards: {measure_wall:.1f}s wall, of which the {out['measures_added_per_run']} "
          f"new measures' own {out['remeasure_measure_s_sum']:.1f}s; no training step", flush=True)
    return out


# ---- start-up ------------------------------------------------------------------------------------
CONFIG_ERRORS = {  # each must exit 2 with one line
    "type": ["trainer.max_epochs=ten"],
    "range": ["corruption=labels", "corruption.prob=1.5"],
    "unknown key": ["trainer.max_epoch=10"],
    "unknown option": ["model=resnet19"],
    "key of another option": ["corruption.prob=0.5"],
    "unknown measure": ["measure.names=[no_such_measure]"],
    "multirun, bad value": ["-m", "seed=0,1", "optimizer.lr=-1"],
}


def bench_startup(root: Path, workdir: Path, repeats: int) -> dict:
    out = {"config_error_s": {}}
    for name, args in CONFIG_ERRORS.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, str(REPO / "launch.py"), *args], cwd=workdir, capture_output=True,
                                  text=True)
            times.append(time.perf_counter() - start)
            if proc.returncode != 2:
                raise RuntimeError(f"{args}: exit {proc.returncode}, not 2: {proc.stderr[-500:]}")
        out["config_error_s"][name] = min(times)
        print(f"  config error ({name}): {min(times):.2f}s  {proc.stderr.strip().splitlines()[-1][:90]}", flush=True)
    overheads = []
    for i in range(repeats):
        run_dir = workdir / f"startup-run-{i}"
        args = [*mnist_overrides(root, 64, ["trainer.max_epochs=1", "measure=none", "trainer.save_weights=false",
                                            "dataset.train_size=1000"]), f"hydra.run.dir={run_dir}"]
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(REPO / "launch.py"), *args], cwd=workdir, capture_output=True,
                              text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"the start-up run failed: {proc.stderr[-1000:]}")
        overheads.append(wall - json.loads((run_dir / "metrics.json").read_text())["timing"]["train_s"])
    out["run_overhead_s"] = min(overheads)
    # the floor any torch training script pays: importing torch, and the torch._dynamo import its
    # optimizers trigger on first use (building one here; every Optimizer.step imports it too, and calls
    # torch._dynamo.graph_break(), so no training run avoids it)
    floor = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch; torch.optim.SGD([torch.zeros(1, requires_grad=True)], "
                                              "lr=0.1)"], check=True)
        floor.append(time.perf_counter() - start)
    out["torch_floor_s"] = min(floor)
    print(f"  a one-epoch run, all but its training steps: {min(overheads):.2f}s, of which torch's own floor "
          f"(import + first optimizer) {min(floor):.2f}s: gen's overhead {min(overheads) - min(floor):.2f}s",
          flush=True)
    return out


def bench_cuda(root: Path, repeats: int) -> dict:
    if not torch.cuda.is_available():
        print("cuda: skipped (no GPU)", flush=True)
        return {"skipped": "no CUDA device"}
    print(f"one training epoch on {torch.cuda.get_device_name()} (fp32, then bf16 autocast):", flush=True)
    out = {"device": torch.cuda.get_device_name()}
    for precision in ("32", "bf16"):
        out[precision] = bench_training(root, [64, 1024], repeats, None, torch.device("cuda"),
                                        [f"trainer.precision={precision}", "trainer.device=cuda"])
    print(f"trainer.ensemble={ENSEMBLE_MEMBERS} on the GPU:", flush=True)
    out["ensemble"] = bench_ensemble(root, ENSEMBLE_MEMBERS, [64, 1024], 60_000, repeats, torch.device("cuda"))
    print("augment=crop_flip on the GPU, 60,000 images:", flush=True)
    out["augment"] = bench_augment(root, 60_000, repeats, torch.device("cuda"))
    return out


@contextlib.contextmanager
def _threads(threads: int):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _env(**values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


if __name__ == "__main__":
    main()
