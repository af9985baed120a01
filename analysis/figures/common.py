"""The pieces every study's figure module uses: the data a figure draws from, and how it says no."""
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


class Skip(Exception):
    """A figure that the sweep's data cannot support; the message says what is missing."""


@dataclass
class Context:
    runs: pd.DataFrame      # completed runs, with style.with_derived_columns added
    history: pd.DataFrame   # run_id + history rows of those runs
    out_dir: Path           # figures are written here

    def path(self, name: str) -> Path:
        return self.out_dir / f"{name}.png"

    def need(self, *columns: str) -> None:
        missing = [c for c in columns if c not in self.runs or self.runs[c].isna().all()]
        if missing:
            raise Skip(f"no {', '.join(missing)} in the runs")

    def need_history(self, *columns: str) -> None:
        missing = [c for c in columns if c not in self.history or self.history[c].isna().all()]
        if missing:
            raise Skip(f"no {', '.join(missing)} in the runs' history")
