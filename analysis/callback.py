"""A Hydra callback: when a multirun ends, write the sweep's analysis into ``SWEEP_DIR/analysis/``.

Wired in ``conf/config.yaml``::

    hydra:
      callbacks:
        analysis:
          _target_: analysis.callback.AnalysisCallback

``analysis.auto=false`` on the command line turns it off.  It never fails the sweep: an error in the
analysis is logged as a warning and the runs stand as they are.  Imports are lazy, so the callback costs
nothing to single runs and to ``--cfg job``.
"""
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("analysis")


class AnalysisCallback(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not OmegaConf.select(config, "analysis.auto", default=True):
            return
        sweep_dir = None
        try:
            sweep_dir = Path(OmegaConf.select(config, "hydra.sweep.dir"))
            from analysis.cli import analyse, default_out_dir
            out = default_out_dir([sweep_dir])
            analyse([sweep_dir], out)
            log.info("analysis of the sweep: %s", out / "report.html")
            print(f"analysis: {out / 'report.md'} and {out / 'report.html'}")
        except Exception as error:  # the sweep's results matter more than its report
            log.warning("could not analyse the sweep %s (%s: %s); run `python -m analysis %s` to retry",
                        sweep_dir, type(error).__name__, error, sweep_dir)
