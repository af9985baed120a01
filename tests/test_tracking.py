"""Experiment trackers (issue 18): each read back with its own library's reader, against metrics.json.

TensorBoard through its EventAccumulator (scalars, and the hparams plugin's session info), MLflow through
MlflowClient (search_runs by experiment, params, get_metric_history), wandb through its offline run's
.wandb log (tests/wandb_records.py), csv through pandas; for a two-run sweep, a resumed run and a lockstep
group.  A tracker that raises must leave the run and its metrics.json as without trackers."""
import logging
import sys
from pathlib import Path

import pandas as pd
import pytest

from gen.config import ConfigError, validate
from gen.run import train, train_group
from gen.sweeps import ensemble
from gen.sweeps.run_id import run_id
from gen.sweeps.sweep_name import sweep_name
from gen.training import loop
from tests import wandb_records
from tests.helpers import LAUNCH, REPO, TINY, compose_config, launch, read_metrics, train_and_read

ALL = "logger=[tensorboard,mlflow,wandb,csv]"


def trackers(tmp_path: Path) -> list[str]:
    return [ALL, f"logger.mlflow.tracking_uri={tmp_path / 'mlflow.db'}", "logger.wandb.mode=offline"]


def steps_and(metrics: dict, key: str) -> list[tuple[int, float]]:
    return [(row["step"], row[key]) for row in metrics["history"]]


def assert_same_curve(logged: list[tuple[int, float]], recorded: list[tuple[int, float]], what: str) -> None:
    """The same steps, each once, and the same values (TensorBoard keeps float32)."""
    assert [step for step, _ in logged] == [step for step, _ in recorded], what
    assert [value for _, value in logged] == pytest.approx([value for _, value in recorded], rel=1e-6), what


# ---- each tracker's own reader -------------------------------------------------------------------
def tensorboard_of(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    hparams = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    return scalars, hparams


def mlflow_runs(tmp_path: Path, experiment: str) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}"
    runs = client.search_runs([found.experiment_id])
    return {run.info.run_name: (client, run) for run in runs}


def mlflow_history(client, run, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))


def wandb_of(run_dir: Path) -> tuple[list, dict, list]:
    """(history rows of every offline attempt of the run, the last attempt's summary, the run records)."""
    logs = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert logs, f"no wandb offline run in {run_dir}"
    rows = [row for log in logs for row in wandb_records.history(log)]
    return rows, wandb_records.summary(logs[-1]), [wandb_records.run_info(log) for log in logs]


def check_every_tracker(run_dir: Path, tmp_path: Path, experiment: str) -> None:
    """Each tracker holds the run's history once per step, its final values and its config."""
    metrics = read_metrics(run_dir / "metrics.json")
    rid, steps = metrics["run_id"], [row["step"] for row in metrics["history"]]
    final = metrics["final"]

    scalars, hparams = tensorboard_of(run_dir)
    for key in ("train_loss", "test_acc", "lr"):
        assert_same_curve(scalars[key], steps_and(metrics, key), f"tensorboard {key}")
    assert scalars["final.test_acc"][-1][1] == pytest.approx(final["test_acc"])
    assert scalars["measures.margin"][-1][1] == pytest.approx(metrics["measures"]["margin"])
    assert hparams["seed"] == metrics["seed"] and hparams["optimizer.lr"] == pytest.approx(metrics["config"]["optimizer"]["lr"])

    client, run = mlflow_runs(tmp_path, experiment)[rid]
    assert run.data.params["seed"] == str(metrics["seed"]) and run.data.tags["gen.run_id"] == rid
    assert "logger.mlflow.tracking_uri" not in run.data.params  # how to log is not what ran
    for key in ("train_loss", "test_acc"):
        assert_same_curve(mlflow_history(client, run, key), steps_and(metrics, key), f"mlflow {key}")
    assert run.data.metrics["final.test_acc"] == pytest.approx(final["test_acc"])
    assert run.info.status == "FINISHED" and run.data.tags["gen.status"] == metrics["status"]
    assert "metrics.json" in [a.path for a in client.list_artifacts(run.info.run_id)]
    assert run.info.artifact_uri.startswith((tmp_path / "mlflow-artifacts").as_uri())  # beside the store

    rows, summary, infos = wandb_of(run_dir)
    # every step once, across attempts
    assert_same_curve([(step, row["train_loss"]) for step, row in rows], steps_and(metrics, "train_loss"), "wandb")
    assert summary["final.test_acc"] == pytest.approx(final["test_acc"]) and summary["status"] == metrics["status"]
    assert all(info.run_id == rid and info.project == experiment and info.run_group == experiment for info in infos)

    csv = pd.read_csv(run_dir / "history.csv")
    assert list(csv["step"]) == steps
    assert list(csv["test_loss"]) == pytest.approx([row["test_loss"] for row in metrics["history"]])


def comet_of(run_dir: Path) -> list[tuple[dict, list[dict]]]:
    """Each offline archive of the run (the first, then resumed-1, ...), opened with comet_ml's own unzip and
    checked against its own schemas (as ``comet upload`` checks them): (experiment.json, messages)."""
    import json

    from comet_ml import schemas
    from comet_ml.offline import unzip_offline_archive

    validators = {"metric_msg": schemas.get_metric_msg_validator(), "log_other": schemas.get_log_other_msg_validator(),
                  "parameter_msg": schemas.get_parameter_msg_validator()}
    archives = sorted((run_dir / "comet").glob("*.zip")) + sorted((run_dir / "comet").glob("resumed-*/*.zip"))
    assert archives, f"no comet archive in {run_dir}"
    out = []
    for archive in archives:
        folder = Path(unzip_offline_archive(str(archive)))
        experiment = json.loads((folder / "experiment.json").read_text())
        schemas.get_experiment_file_validator().validate(experiment)
        messages = [json.loads(line) for line in (folder / "messages.json").read_text().splitlines()]
        for message in messages:
            if message["type"] in validators:
                validators[message["type"]].validate(message["payload"])
        out.append((experiment, messages))
    return out


def skip_without_comet() -> None:
    """Without importing it: the tracker sets comet_ml's environment (no Sentry reports) before its import."""
    import importlib.util

    if importlib.util.find_spec("comet_ml") is None:
        pytest.skip("comet_ml: the loggers extra")


def comet_metrics(messages: list[dict], key: str) -> list[tuple[int, float]]:
    return [(m["payload"]["metric"]["step"], m["payload"]["metric"]["metricValue"]) for m in messages
            if m["type"] == "metric_msg" and m["payload"]["metric"]["metricName"] == key]


@pytest.mark.slow
def test_comet_keeps_each_run_offline_as_one_experiment_read_back_with_comets_reader(tmp_path):
    skip_without_comet()
    from gen.tracking.comet import experiment_key

    proc = launch(["-m", *TINY, "trainer.max_epochs=3", "seed=0,1", "logger=comet", "name=pair", "analysis.auto=false"],
                  tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "logger=" not in proc.stderr and "COMET INFO" not in proc.stderr + proc.stdout  # quiet, no warning
    runs = sorted((tmp_path / "outputs/sweeps/pair").glob("*/metrics.json"))
    assert len(runs) == 2
    for path in runs:
        metrics = read_metrics(path)
        ((experiment, messages),) = comet_of(path.parent)
        assert experiment["offline_id"] == experiment_key(path.parent) and experiment["project_name"] == "pair"
        assert_same_curve(comet_metrics(messages, "train_loss"), steps_and(metrics, "train_loss"), "comet")
        assert_same_curve(comet_metrics(messages, "test_acc"), steps_and(metrics, "test_acc"), "comet")
        assert comet_metrics(messages, "final.test_acc")[-1][1] == pytest.approx(metrics["final"]["test_acc"])
        assert comet_metrics(messages, "measures.margin")[-1][1] == pytest.approx(metrics["measures"]["margin"])
        others = {m["payload"]["key"]: m["payload"]["value"] for m in messages if m["type"] == "log_other"}
        assert others["Name"] == others["gen.run_id"] == metrics["run_id"] and others["gen.status"] == "completed"
        params = {m["payload"]["param"]["paramName"]: m["payload"]["param"]["paramValue"] for m in messages
                  if m["type"] == "parameter_msg" and m["payload"]["param"]["source"] == "manual"}
        assert params["seed"] == metrics["seed"] and params["model.hidden_units"] == 16



def test_a_resumed_run_continues_its_comet_experiment_in_an_archive_of_its_own(tmp_path, monkeypatch):
    skip_without_comet()
    overrides = [*TINY, "trainer.max_epochs=6", "trainer.checkpoint_every=2", "logger=comet"]
    run_dir = tmp_path / "resumed" / "run"
    check = loop.Trainer.check_divergence

    def crash_at_epoch_3(self, last=False):
        if self.record.epoch == 3:
            raise RuntimeError("killed")
        return check(self, last)

    monkeypatch.setattr(loop.Trainer, "check_divergence", crash_at_epoch_3)
    with pytest.raises(RuntimeError, match="killed"):
        train(compose_config(overrides), run_dir)
    monkeypatch.setattr(loop.Trainer, "check_divergence", check)
    train(compose_config(overrides), run_dir)

    metrics = read_metrics(run_dir / "metrics.json")
    (first, first_messages), (again, again_messages) = comet_of(run_dir)
    assert first["offline_id"] == again["offline_id"]  # one experiment, continued on upload
    logged = comet_metrics(first_messages, "train_loss") + comet_metrics(again_messages, "train_loss")
    assert_same_curve(logged, steps_and(metrics, "train_loss"), "comet across attempts")
    statuses = [m["payload"]["value"] for m in first_messages + again_messages
                if m["type"] == "log_other" and m["payload"]["key"] == "gen.status"]
    assert statuses == ["failed", "completed"]


# ---- the three ways runs reach trackers ------------------------------------------------------------
@pytest.mark.slow
def test_a_two_run_sweep_in_every_tracker(tmp_path):
    proc = launch(["-m", *TINY, "trainer.max_epochs=3", "seed=0,1", *trackers(tmp_path), "name=pair",
                   "analysis.auto=false"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "logger=" not in proc.stderr  # no tracker warned
    runs = sorted((tmp_path / "outputs/sweeps/pair").glob("*/metrics.json"))
    assert len(runs) == 2
    for path in runs:
        check_every_tracker(path.parent, tmp_path, "pair")
    assert len(mlflow_runs(tmp_path, "pair")) == 2


@pytest.mark.slow
def test_a_resumed_run_continues_its_tracker_runs_without_repeating_a_step(tmp_path, monkeypatch):
    overrides = [*TINY, "trainer.max_epochs=6", "trainer.checkpoint_every=2", *trackers(tmp_path)]
    run_dir = tmp_path / "resumed" / "run"
    check = loop.Trainer.check_divergence

    def crash_at_epoch_3(self, last=False):  # after epoch 3's row is logged, past the epoch-2 checkpoint
        if self.record.epoch == 3:
            raise RuntimeError("killed")
        return check(self, last)

    monkeypatch.setattr(loop.Trainer, "check_divergence", crash_at_epoch_3)
    with pytest.raises(RuntimeError, match="killed"):
        train(compose_config(overrides), run_dir)
    assert (run_dir / "checkpoint.pt").exists()
    monkeypatch.setattr(loop.Trainer, "check_divergence", check)
    train(compose_config(overrides), run_dir)  # resumes at epoch 2 and recomputes epoch 3's row

    metrics = read_metrics(run_dir / "metrics.json")
    assert metrics["status"] == "completed" and [r["epoch"] for r in metrics["history"]] == list(range(7))
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 2  # two attempts, one wandb run id
    check_every_tracker(run_dir, tmp_path, "resumed")
    assert len(mlflow_runs(tmp_path, "resumed")) == 1  # the MLflow run found by its tag and continued


@pytest.mark.slow
def test_a_run_stopped_by_sigterm_resumes_into_the_same_tracker_runs(tmp_path):
    """Real processes, a real signal: the interrupted attempt closes its tracker runs (MLflow: KILLED), the
    relaunch continues them (MLflow found by its tag, wandb by its id, TensorBoard purged past the last
    logged step) and every step is logged once."""
    import signal

    from tests.test_resume import start, wait_for

    run_dir = tmp_path / "sigterm" / "run"
    args = ["model.hidden_units=64", "dataset.train_size=600", "trainer.batch_size=4", "trainer.max_epochs=12",
            "trainer.checkpoint_every=1", "trainer.progress=false", *trackers(tmp_path), f"hydra.run.dir={run_dir}"]
    proc = start(args, tmp_path)
    wait_for(run_dir / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0 and "Interrupted" in output, output
    assert not (run_dir / "metrics.json").exists()
    (client, run), = mlflow_runs(tmp_path, "sigterm").values()
    assert run.info.status == "KILLED"
    again = launch(args, tmp_path)
    assert again.returncode == 0 and "resuming" in again.stdout + again.stderr, again.stderr
    assert "logger=" not in again.stdout + again.stderr  # no tracker warned
    check_every_tracker(run_dir, tmp_path, "sigterm")
    assert len(mlflow_runs(tmp_path, "sigterm")) == 1


def test_a_rerun_replaces_the_earlier_attempt_in_tensorboard_and_wandb(tmp_path):
    overrides = [*TINY, *trackers(tmp_path)]
    run_dir = tmp_path / "rerun" / "run"
    train(compose_config(overrides), run_dir)
    train(compose_config([*overrides, "rerun=true"]), run_dir)
    metrics = read_metrics(run_dir / "metrics.json")
    scalars, _ = tensorboard_of(run_dir)
    assert_same_curve(scalars["train_loss"], steps_and(metrics, "train_loss"), "tensorboard")
    rows, _, _ = wandb_of(run_dir)
    assert [step for step, _ in rows] == [row["step"] for row in metrics["history"]]
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1


def test_lockstep_members_each_log_as_their_own_run(tmp_path):
    overrides = [*TINY, "trainer.max_epochs=3", "trainer.ensemble=2", *trackers(tmp_path)]
    group = [ensemble.Member(compose_config([*overrides, f"seed={s}"]), tmp_path / "group" / str(s),
                             (f"seed={s}",), None) for s in (0, 1)]
    train_group(group)  # trains both in lockstep
    for member in group:
        metrics = read_metrics(member.run_dir / "metrics.json")
        assert any("lockstep" in note for note in metrics["notes"])
        check_every_tracker(member.run_dir, tmp_path, "group")
    assert len(mlflow_runs(tmp_path, "group")) == 2


# ---- failures never reach the run ---------------------------------------------------------------
def test_a_tracker_that_raises_warns_once_and_the_run_and_its_record_go_on(tmp_path, monkeypatch, caplog):
    from mlflow.tracking import MlflowClient
    from torch.utils.tensorboard import SummaryWriter
    import wandb.sdk.wandb_run

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SummaryWriter, "add_scalar", full_disk)
    monkeypatch.setattr(MlflowClient, "log_batch", full_disk)
    monkeypatch.setattr(wandb.sdk.wandb_run.Run, "log", full_disk)
    overrides = [*TINY, "trainer.max_epochs=3"]
    with caplog.at_level(logging.WARNING, logger="gen"):
        train(compose_config([*overrides, *trackers(tmp_path)]), tmp_path / "tracked")
    train(compose_config(overrides), tmp_path / "plain")
    tracked, plain = (read_metrics(tmp_path / name / "metrics.json") for name in ("tracked", "plain"))
    no_seconds = lambda m: [{k: v for k, v in row.items() if k != "seconds"} for row in m["history"]]
    assert tracked["status"] == "completed" and tracked["run_id"] == plain["run_id"]
    assert no_seconds(tracked) == no_seconds(plain) and tracked["measures"] == plain["measures"]
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("logger=")]
    assert sorted(line.split()[0] for line in warned) == ["logger=mlflow", "logger=tensorboard", "logger=wandb"]
    assert all("No space left on device" in line and "\n" not in line for line in warned)
    assert (tmp_path / "tracked" / "history.csv").exists()  # the tracker that did not fail still wrote


def test_a_bad_tracking_uri_is_a_warning_not_a_failure(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="gen"):
        metrics = train_and_read(compose_config([*TINY, "logger=mlflow", "logger.mlflow.tracking_uri=nosuch://x"]),
                                 tmp_path / "run")
    assert metrics["status"] == "completed"
    assert any(r.getMessage().startswith("logger=mlflow failed at start") for r in caplog.records)


# ---- config -------------------------------------------------------------------------------------
def test_a_missing_tracker_package_is_one_config_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # importlib.util.find_spec then finds no wandb
    with pytest.raises(ConfigError, match=r"^invalid config: logger=wandb: needs the 'loggers' extra \(wandb is not "
                                          r"installed\): pip install -e \"\.\[loggers\]\"$"):
        validate(compose_config(["logger=[csv,wandb]"]))


def test_launch_refuses_a_missing_tracker_package_with_exit_2_before_any_folder(tmp_path):
    code = (f"import runpy, sys; sys.path.insert(0, {str(REPO)!r}); sys.modules['mlflow'] = None; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code, str(LAUNCH), *TINY, "logger=[tensorboard,mlflow]"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: invalid config: logger=mlflow: needs the 'loggers' extra"), line
    assert not (tmp_path / "outputs" / "runs").exists() or not any((tmp_path / "outputs" / "runs").iterdir())


@pytest.mark.parametrize("overrides, allowed", [
    (["logger=wandb", "logger.wandb.mode=sometimes"], "one of ['offline', 'online', 'disabled']"),
    (["+logger.neptune.x=1"], "not a logger; choose among ['comet', 'csv', 'mlflow', 'tensorboard', 'wandb']"),
])
def test_bad_tracker_keys_are_config_errors(overrides, allowed):
    with pytest.raises(ConfigError, match=allowed.replace("[", r"\[").replace("]", r"\]")):
        validate(compose_config(overrides))


def test_every_tracker_key_refuses_a_wrong_type_a_bad_range_and_empty_values():
    """tests/test_schema_walk.py's mutations, over the logger group's schemas (a list group, not in GROUPS)."""
    from omegaconf import OmegaConf, open_dict

    from gen.config.base import LIST_GROUPS
    from tests.test_schema_walk import fields_of, mutations

    holes, tried = [], 0
    for name, schema in LIST_GROUPS["logger"].items():
        base = compose_config([f"logger={name}"])
        for key, annotation, limits, optional in fields_of(schema):
            dotted = f"logger.{name}.{key}"
            for what, value in mutations(dotted, annotation, limits, optional).items():
                tried += 1
                cfg = base.copy()
                with open_dict(cfg):
                    OmegaConf.update(cfg, dotted, value, merge=False)
                try:
                    validate(cfg)
                except ConfigError as error:
                    if "\n" in str(error) or dotted not in str(error):
                        holes.append(f"{dotted}={value!r} ({what}): {error}")
                    continue
                holes.append(f"{dotted}={value!r} ({what}): accepted")
    assert tried >= 20 and not holes, "\n".join(holes)


def test_trackers_change_neither_run_ids_nor_sweep_names():
    assert run_id(compose_config([ALL])) == run_id(compose_config([]))
    assert sweep_name(None, ["seed=0,1", ALL]) == sweep_name(None, ["seed=0,1"])


# ---- the sweep's progress line (sequential and parallel launchers) ----------------------------------
def progress_lines(proc) -> list[str]:
    return [line[line.index("sweep: "):] for line in (proc.stdout + proc.stderr).splitlines()
            if "sweep: " in line and "runs finished" in line]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["sequential", "parallel"])
def test_a_sweep_says_after_each_run_how_far_it_is(launcher, tmp_path):
    from tests.helpers import plant_unwritable_weights

    args = ["-m", *TINY, "seed=0,1,2", "name=p", "analysis.auto=false", f"hydra/launcher={launcher}"]
    plant_unwritable_weights(tmp_path / "outputs/sweeps/p", [*TINY, "seed=2"])  # seed 2 fails
    first = launch(args, tmp_path)
    assert first.returncode == 1, first.stderr
    lines = progress_lines(first)
    assert len(lines) == 3, first.stdout + first.stderr
    assert lines[-1].startswith("sweep: 3/3 runs finished (2 trained, 1 failed, 0 skipped), in ")
    assert all(" left" in line or "unknown" in line for line in lines[:-1])
    again = launch(args, tmp_path)  # the two results are skipped, the failed run fails again
    assert progress_lines(again)[-1].startswith("sweep: 3/3 runs finished (0 trained, 1 failed, 2 skipped)")


def test_the_estimate_is_time_per_run_that_worked_times_runs_left(tmp_path, monkeypatch):
    from gen.sweeps import sweep_progress

    now = [100.0]
    progress = sweep_progress.SweepProgress([tmp_path / str(i) for i in range(5)], clock=lambda: now[0])
    outcomes = iter(["skipped", "trained", "failed", "trained", "skipped"])
    monkeypatch.setattr(progress, "outcome", lambda run_dir, here=None: next(outcomes))
    assert progress.finished(tmp_path / "0").endswith("(0 trained, 0 failed, 1 skipped), time left unknown "
                                                      "until a run has trained")
    now[0] = 160.0
    assert progress.finished(tmp_path / "1").endswith("(1 trained, 0 failed, 1 skipped), about 3m00s left")
    now[0] = 220.0
    assert progress.finished(tmp_path / "2").endswith("about 2m00s left")  # 60 s per run that worked, 2 left
    progress.finished(tmp_path / "3")
    now[0] = 4000.0
    assert progress.finished(tmp_path / "4") == "sweep: 5/5 runs finished (2 trained, 1 failed, 2 skipped), in 1h05m"
