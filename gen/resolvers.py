"""gen's OmegaConf resolvers for conf/, registered on import (launch.py, gen.cli, the launchers' nodes).

- ``${sweep_name:NAME,OVERRIDES}``: a multirun's folder (gen.sweep_name).  Cached: Hydra copies the main
  process's resolver cache into each job's config, so every job finds the folder its sweep chose.
- ``${pick:KEY,{KEY: VALUE, ...},DEFAULT}``: the value a table gives KEY, else DEFAULT.  A preset that
  sweeps the models and gives one of them its own learning rate (S2's Inception:
  ``optimizer.lr: ${pick:${model.name},{inception_small:0.1},0.01}``) sweeps ``model=...`` itself, which
  the job lines show and the user can type, instead of an internal config group.
- ``${gen_help:SECTION}``: a section of ``python launch.py --help`` made from conf/ (gen.help).
"""
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gen.sweep_name import sweep_name


def pick(key: Any, table: DictConfig | dict, default: Any) -> Any:
    return table.get(key, default)


OmegaConf.register_new_resolver("sweep_name", sweep_name, use_cache=True, replace=True)
def gen_help(section: str) -> str:
    from gen import help  # lazily: only --help needs it

    return help.section(section)


OmegaConf.register_new_resolver("pick", pick, replace=True)
OmegaConf.register_new_resolver("gen_help", gen_help, replace=True)
