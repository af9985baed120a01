"""Which runs of a sweep train together under ``trainer.ensemble=K`` (gen.training.lockstep trains them).

A launcher (``parallel``, ``sequential``, ``slurm``, ``submitit_local``) composes every job of a sweep and
asks :func:`units` how to cut it: each lockstep group is one unit of work, every other run another.  The
launcher runs a unit's jobs in one process, one after another through Hydra
(hydra_plugins/gen_launchers/jobs.run_unit): the first member's job trains the group
(gen.run.train_group) and writes every member's metrics.json; the other members' jobs (their ``.hydra/``
folder, callbacks) hand back the result it trained for them (gen.cli.lockstep_tasks).

Runs group when their configs differ at most in ``seed``, ``corruption`` and ``optimizer.lr``:
then they have one model shape, one data shape and one step count per epoch.  A run that already
has a result (without ``rerun``) is left to its own job; runs with checkpoints group like the others,
and the leader keeps those that stand at its own step (gen.run), so a preempted group resumes together.
"""
import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, open_dict, read_write

from gen import record
from gen.sweeps.run_id import identity, run_id, without

VARYING = ("seed", "corruption", "optimizer.lr")  # what may differ inside a lockstep group


@dataclass(frozen=True)
class Member:
    """One run of a lockstep group: its config, folder, and what its metrics.json records of Hydra."""
    cfg: DictConfig
    run_dir: Path
    overrides: tuple[str, ...]
    experiment: str | None

    @classmethod
    def from_sweep_config(cls, sweep_config: DictConfig) -> "Member":
        hydra = sweep_config.hydra
        run_dir = run_dir_of(sweep_config)
        cfg = copy.deepcopy(sweep_config)
        with read_write(cfg), open_dict(cfg):
            del cfg["hydra"]  # as Hydra hands a job its config
        return cls(cfg, run_dir, tuple(hydra.overrides.task), hydra.runtime.choices.get("experiment"))


def run_dir_of(sweep_config: DictConfig) -> Path:
    """A job's run folder, absolute, from its config as a launcher composed it."""
    hydra = sweep_config.hydra
    return _absolute(os.path.join(str(hydra.sweep.dir), str(hydra.sweep.subdir)))


def plan(members: list[Member]) -> list[list[Member]]:
    """Groups of 2 to ``trainer.ensemble`` members, in sweep order, of runs that can share a lockstep."""
    by_shape: dict[str, list[Member]] = {}
    seen: set[Path] = set()
    for member in members:
        if member.cfg.trainer.ensemble < 2 or member.run_dir in seen or not _needs_training(member):
            continue
        seen.add(member.run_dir)
        by_shape.setdefault(shape_key(member.cfg), []).append(member)
    groups = []
    for same in by_shape.values():
        size = same[0].cfg.trainer.ensemble
        groups += [same[i:i + size] for i in range(0, len(same), size) if len(same[i:i + size]) > 1]
    return groups


def shape_key(cfg: DictConfig) -> str:
    """The config without the keys a lockstep group may vary (and with the group size)."""
    content = identity(cfg)
    for path in VARYING:
        content = without(content, path)
    content["trainer"]["ensemble"] = cfg.trainer.ensemble
    return json.dumps(content, sort_keys=True, default=str)


def _needs_training(member: Member) -> bool:
    return member.cfg.rerun or not record.has_result(member.run_dir, run_id(member.cfg))


def units(members: list[Member]) -> list[list[int]]:
    """The sweep as units of work, as indices into ``members``: every lockstep group of :func:`plan`
    (where its first member stands) and every other run alone.  A launcher runs a unit in one process."""
    position = {member.run_dir: i for i, member in enumerate(members)}
    group_of = {member.run_dir: group for group in plan(members) for member in group}
    out, placed = [], set()
    for i, member in enumerate(members):
        if i in placed:
            continue
        group = group_of.get(member.run_dir)
        unit = [position[m.run_dir] for m in group] if group else [i]
        placed.update(unit)
        out.append(unit)
    return out


def _absolute(path) -> Path:
    return Path(os.path.abspath(path))
