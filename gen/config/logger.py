"""The ``logger`` list group: which experiment trackers (gen.tracking) mirror a run, and their keys.

Trackers are views of metrics.json and never change what a run computes, so the group is left out of
the run id (gen.sweeps.run_id.NOT_IN_ID).  Their libraries are the optional ``loggers`` extra: a chosen
tracker whose package is missing is a config error before any work, naming the extra.
"""
import importlib.util
from dataclasses import dataclass

from gen.config.base import ConfigError, register_list_option, spec

EXTRA = "loggers"  # pyproject.toml's optional-dependencies key


class _NeedsPackage:
    PACKAGE: str = ""

    @classmethod
    def check(cls, choice: str) -> None:
        # find_spec looks for the package without importing it: the check stays as cheap as the others
        if importlib.util.find_spec(cls.PACKAGE) is None:
            raise ConfigError("logger", choice.partition("=")[2],
                              f"needs the '{EXTRA}' extra ({cls.PACKAGE} is not installed): "
                              f"pip install -e \".[{EXTRA}]\"")


@register_list_option("logger", "tensorboard")
@dataclass
class TensorBoardConfig(_NeedsPackage):
    PACKAGE = "tensorboard"
    folder: str = spec(folder_name=True)  # below the run folder


@register_list_option("logger", "mlflow")
@dataclass
class MlflowConfig(_NeedsPackage):
    PACKAGE = "mlflow"
    tracking_uri: str      # a path (a local SQLite store) or any MLflow tracking URI
    experiment: str | None  # None: the sweep's folder name


@register_list_option("logger", "wandb")
@dataclass
class WandbConfig(_NeedsPackage):
    PACKAGE = "wandb"
    mode: str = spec(choices=["offline", "online", "disabled"])
    project: str | None
    group: str | None
    entity: str | None


@register_list_option("logger", "comet")
@dataclass
class CometConfig(_NeedsPackage):
    PACKAGE = "comet_ml"
    project: str | None    # None: the sweep's folder name
    workspace: str | None
    folder: str = spec(folder_name=True)  # below the run folder: the offline archives


@register_list_option("logger", "csv")
@dataclass
class CsvConfig:
    file: str = spec(folder_name=True)  # a plain file name in the run folder
