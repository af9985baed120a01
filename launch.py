"""The one entry point: compose the config with Hydra, then hand it to gen.

    python launch.py                                       # one run with the defaults
    python launch.py -m model.hidden_units=8,32 seed=0,1   # a sweep
    python launch.py -m experiment=quickstart              # a study preset
"""
import sys

import hydra
from omegaconf import DictConfig

from gen.cli import exit_without_teardown, run_job, run_with_clear_errors
from gen.outcome import RunOutcome


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> RunOutcome:
    return run_job(cfg)  # the run's outcome, which gen's sweeper reads; a failed run of a multirun is one (gen/cli.py)


if __name__ == "__main__":
    exit_without_teardown(run_with_clear_errors(main, sys.argv[1:]))
