"""``logger=comet``: one Comet experiment per gen run, offline: an archive in RUN_DIR/<folder>/ (name = the
experiment key) that ``comet upload RUN_DIR/comet/*.zip`` sends later, so no run waits on a network or needs
an API key.  Project = the sweep's folder name unless set; experiment name and ``gen.run_id`` = the run id;
parameters = the flattened config.  The key is derived from the run folder, so a resumed run continues the
same experiment: its attempt goes to an archive of its own (RUN_DIR/comet/resumed-N/), which uploads as an
addition to the first; a fresh start (``rerun=true``) replaces the earlier archives."""
import hashlib
import inspect
import os

from gen.tracking.base import Tracker, final_values, hyperparameters, scalars
from gen.tracking.session import remove_folder

# Comet's automatic logging reads stdout, argv, git, the environment and the hardware: none of it is gen's record.
QUIET = dict(auto_output_logging=False, auto_metric_logging=False, auto_param_logging=False, log_env_details=False,
             log_git_metadata=False, log_git_patch=False, log_env_gpu=False, log_env_host=False, log_env_cpu=False,
             log_env_network=False, log_env_disk=False, log_code=False, parse_args=False, log_graph=False,
             auto_histogram_weight_logging=False, auto_histogram_gradient_logging=False,
             auto_histogram_activation_logging=False, display_summary_level=0)


def experiment_key(run_dir) -> str:
    """Comet's key (32-50 letters and digits): the same for every attempt of the run in this folder."""
    return hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()


class Comet(Tracker):
    name = "comet"

    def start(self, run_id: str, config: dict, resumed: bool) -> None:
        # before its import: no error reports sent to Comet's Sentry (a network call from an offline run), and
        # its console lines ("to upload, run ...", auto-logging advice for what gen turns off) kept out of the run's log
        os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
        os.environ.setdefault("COMET_LOGGING_CONSOLE", "ERROR")
        import comet_ml

        folder = self.run_dir / self.options["folder"]
        key = experiment_key(self.run_dir)
        common = dict(project_name=self.options["project"] or self.sweep, workspace=self.options["workspace"],
                      experiment_key=key, **QUIET)
        if resumed and (folder / f"{key}.zip").exists():
            attempt = folder / f"resumed-{len(list(folder.glob('resumed-*'))) + 1}"
            self.experiment = _make(comet_ml.ExistingOfflineExperiment, offline_directory=str(attempt), **common)
            self.experiment.set_name(run_id)
        else:
            remove_folder(folder)
            self.experiment = _make(comet_ml.OfflineExperiment, offline_directory=str(folder), **common)
            self.experiment.set_name(run_id)
            self.experiment.log_parameters(hyperparameters(config))
            self.experiment.log_other("gen.run_id", run_id)

    def log_row(self, row: dict, step: int) -> None:
        self.experiment.log_metrics(scalars(row), step=step)

    def end(self, metrics: dict) -> None:
        self.experiment.log_metrics(final_values(metrics), step=metrics["final"]["steps"])
        self.experiment.log_other("gen.status", metrics["status"])
        self.experiment.end()

    def close(self, outcome: str) -> None:
        self.experiment.log_other("gen.status", outcome)
        self.experiment.end()


def _make(cls, **options):
    """``cls(**options)`` less the options this class of this comet_ml release does not take."""
    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in options.items() if k in accepted})
