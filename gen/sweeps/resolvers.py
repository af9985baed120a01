"""The OmegaConf resolvers gen's configs use, registered in one call (:func:`register`) by whatever
composes or resolves a gen config: launch.py (through gen.cli), a job on a cluster node, the tests,
the benchmark.

- ``${run_id:}``: a run's folder (gen.sweeps.run_id), conf/config.yaml's ``hydra.run.dir`` and subdirs.
- ``${sweep_name:NAME,OVERRIDES}``: a multirun's folder (gen.sweeps.sweep_name).  Cached: Hydra copies
  the main process's resolver cache into each job's config, so every job finds the folder its sweep chose.
- ``${pick:KEY,{KEY: VALUE, ...},DEFAULT}``: the value a table gives KEY, else DEFAULT.  A preset that
  sweeps the models and gives one of them its own learning rate (S2's Inception:
  ``optimizer.lr: ${pick:${model.name},{inception_small:0.1},0.01}``) sweeps ``model=...`` itself, which
  the job lines show and the user can type, instead of an internal config group.
- ``${parallel_workers:}``: hydra/launcher=parallel's worker count (gen.sweeps.workers).
- ``${gen_help:SECTION}``: a section of ``python launch.py --help`` made from conf/ (gen.config.help).
"""
from typing import Any

from omegaconf import DictConfig, OmegaConf


def register() -> None:
    from gen.sweeps.workers import worker_count
    from gen.sweeps.run_id import run_id
    from gen.sweeps.sweep_name import sweep_name

    resolvers = {  # name: (function, cached)
        "run_id": (lambda *, _root_: run_id(_root_), False),
        "sweep_name": (sweep_name, True),
        "pick": (pick, False),
        "parallel_workers": (worker_count, False),
        "gen_help": (gen_help, False),
    }
    for name, (resolve, cached) in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolve, use_cache=cached)


def pick(key: Any, table: DictConfig | dict, default: Any) -> Any:
    return table.get(key, default)


def gen_help(section: str) -> str:
    from gen.config import help  # lazily: only --help needs it

    return help.section(section)
