"""``logger=mlflow``: one MLflow run per gen run, in the experiment named after the sweep, run name and
tag ``gen.run_id`` = the run id; params = the flattened resolved config; the history's metrics at their
steps; the final metrics and measures; metrics.json as an artifact.  A resumed run finds its MLflow run
by the tag and continues it.  MlflowClient, not mlflow's module-level API: lockstep members are several
active runs in one process, which the module-level "active run" cannot hold."""
import time
from pathlib import Path
from urllib.parse import urlparse

from gen.tracking.base import Tracker, final_values, hyperparameters, scalars

RUN_ID_TAG = "gen.run_id"
MAX_PARAM_LENGTH = 6000  # MLflow refuses longer param values
BATCH = 100              # MLflow's limit of params per log_batch
ARTIFACTS = ("metrics.json", "history.csv", "*.png", "*.pdf")
ARTIFACT_FOLDER = "mlflow-artifacts"  # beside a local store's database


def tracking_uri(uri: str) -> str:
    """A plain path (the default outputs/mlflow.db) as a SQLite store at its absolute path (MLflow's file
    store is in maintenance mode and refuses to start without MLFLOW_ALLOW_FILE_STORE); a URI as given."""
    return f"sqlite:///{Path(uri).resolve()}" if not urlparse(uri).scheme else uri


def artifact_root(uri: str) -> str | None:
    """Where a local store's experiments keep their artifacts: beside the database (MLflow would use
    ./mlruns of whatever folder the run started in); for a URI, None: the store decides."""
    return None if urlparse(uri).scheme else (Path(uri).resolve().parent / ARTIFACT_FOLDER).as_uri()


class Mlflow(Tracker):
    name = "mlflow"

    def start(self, run_id: str, config: dict, resumed: bool) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = client = MlflowClient(tracking_uri=tracking_uri(self.options["tracking_uri"]))
        experiment = self._experiment(self.options["experiment"] or self.sweep)
        found = client.search_runs([experiment], filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'",
                                   order_by=["attributes.start_time DESC"], max_results=1) if resumed else []
        if found:
            self.run = found[0].info.run_id
            client.update_run(self.run, status="RUNNING")
            return
        self.run = client.create_run(experiment, run_name=run_id, tags={RUN_ID_TAG: run_id}).info.run_id
        params = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in hyperparameters(config).items()]
        for i in range(0, len(params), BATCH):
            client.log_batch(self.run, params=params[i:i + BATCH])

    def _experiment(self, name: str) -> str:
        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        root = artifact_root(self.options["tracking_uri"])
        try:
            return self.client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)
        except Exception:  # another job of the sweep created it meanwhile
            existing = self.client.get_experiment_by_name(name)
            if existing is None:
                raise
            return existing.experiment_id

    def log_row(self, row: dict, step: int) -> None:
        self._log(scalars(row), step)

    def end(self, metrics: dict) -> None:
        self._log(final_values(metrics), metrics["final"]["steps"])
        self.client.set_tag(self.run, "gen.status", metrics["status"])
        for pattern in ARTIFACTS:
            for path in sorted(self.run_dir.glob(pattern)):
                self.client.log_artifact(self.run, str(path))
        self.client.set_terminated(self.run, "FINISHED")

    def close(self, outcome: str) -> None:
        self.client.set_terminated(self.run, "KILLED" if outcome == "interrupted" else "FAILED")

    def _log(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(k, v, stamp, step) for k, v in values.items()]
        for i in range(0, len(metrics), BATCH * 10):  # MLflow takes up to 1000 metrics per batch
            self.client.log_batch(self.run, metrics=metrics[i:i + BATCH * 10])
