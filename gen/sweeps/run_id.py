"""A run's id: a short hash of what determines its trained network, so a relaunched sweep maps each
job to the same folder.  Registered as the OmegaConf resolver ``${run_id:}`` used by ``hydra.run.dir``.

The id hashes the resolved config less the keys that say how to run (below) and less the ``measure``
group: which measures are computed on a trained network does not change the network, so a run trained
once is measured many times (gen.remeasure) in one folder.  The exception are measures that watch
training (per-step trajectory tracking, ``TRACKED_MEASURES``): when a set lists one, the training loop
runs a tracker and its history rows hold the tracked values, so those names stay in the id.

The same hash of the config a metrics.json records (:func:`run_id_of_record`) lets every reader check
that a record is the record of its own config.  :func:`legacy_run_id` is gen <= 0.5's rule (the whole
measure group in the id), kept for gen.migrate alone."""
import hashlib
import json
import re

from omegaconf import DictConfig, ListConfig, OmegaConf

from gen.config.measure import TRACKED_MEASURES

# Keys that say how to run, not what to compute: changing them must not move a run's folder.
NOT_IN_ID = ("hydra", "rerun", "name", "analysis", "logger",  # logger: trackers are views of metrics.json
             "measure_run")  # gen.measure's jobs: which trained run to measure
NOT_IN_ID_TRAINER = ("progress", "device", "checkpoint_every", "save_weights", "eval_batch_size", "ensemble",
                     "divergence", "save_epochs")  # save_epochs: extra weight files, the same training
# gen <= 0.5 (legacy ids only): measure parameters added after runs had ids: (new default, what the id hashes in its place;
# OMIT leaves the key out).  At that default they compute what the runs before them computed (the
# bracket tolerance: to within the flatness searches' own precision), so adding them moved no
# run's folder.
OMIT = object()
ADDED_MEASURE_PARAMS = {"convention": ("gen", OMIT), "conv_spectral": (None, "fft"),
                        "flatness_bracket_tolerance": (0.01, OMIT)}
# Measure parameters added once ``convention`` existed, each with the default at which it is left out of the id
# under every convention (the certified PAC-Bayes bound's: they change only the certified_* measures).
ADDED_MEASURE_PARAMS_ANY_CONVENTION = {
    "certified_steps": 200, "certified_lr": 1.0e-3, "certified_batch_size": 100, "certified_mc_draws": 10,
    "certified_delta": 0.025, "certified_delta_prime": 0.01, "certified_prior_c": 0.1, "certified_prior_b": 100,
    "certified_prior_variance_init": 2.5e-3}
# Dataset keys added after runs had ids, and the value that computes what the runs before them did.
ADDED_DATASET_KEYS = {"binary": "none"}
# Classes whose module moved after runs had ids (0.4.0's layout): the id hashes the path they had.
MOVED_TARGETS = {"gen.training.adashift.AdaShift": "gen.optim.AdaShift"}
# Config groups added after runs had ids, and the option that computes what the runs before them did:
# at that option the group is left out of the id, so adding it moved no run's folder.
ADDED_GROUPS = {"augment": "none"}
# Trainer keys added after runs had ids, and the value that computes what the runs before them did:
# at that value the key is left out of the id.
ADDED_TRAINER_KEYS = {"loss": "cross_entropy"}
RUN_ID_LENGTH = 12
_RUN_ID = re.compile(rf"[0-9a-f]{{{RUN_ID_LENGTH}}}")


def run_id(cfg: DictConfig) -> str:
    return _hash(identity(cfg))


def run_id_of_record(config: dict) -> str:
    """The id of the run whose resolved config (as metrics.json records it) is ``config``."""
    return _hash(_training_identity(_without_how_to_run({k: v for k, v in config.items() if k not in NOT_IN_ID})))


def legacy_run_id(config: dict | DictConfig) -> str:
    """The id gen <= 0.5 gave this config (its measure group hashed too): for gen.migrate alone."""
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    content = _without_how_to_run({k: v for k, v in config.items() if k not in NOT_IN_ID})
    measure = content.get("measure")
    if isinstance(measure, dict) and measure.get("modules") == []:  # added in 0.6: [] computes what runs before it did
        measure = {k: v for k, v in measure.items() if k != "modules"}
        content = {**content, "measure": measure}
    if isinstance(measure, dict) and isinstance(measure.get("params"), dict):
        content = {**content, "measure": {**measure, "params": _as_before_added_params(measure["params"])}}
    return _hash(content)


def tracked_names(measure: dict | None) -> list[str]:
    """The measures of a set that watch training (they keep it in the id), sorted."""
    names = (measure or {}).get("names") or []
    return sorted({name for name in names if name in TRACKED_MEASURES})


def looks_like_run_id(name: str) -> bool:
    return bool(_RUN_ID.fullmatch(name))


def identity(cfg: DictConfig) -> dict:
    """The resolved config without the keys that say how to run: what the id hashes."""
    content = {k: OmegaConf.to_container(cfg[k], resolve=True)
               if isinstance(cfg[k], (DictConfig, ListConfig)) else cfg[k]
               for k in cfg.keys() if k not in NOT_IN_ID}
    return _training_identity(_without_how_to_run(content))


def _training_identity(content: dict) -> dict:
    """Without the measure group, unless it lists measures that watch training (then their names alone)."""
    measure = content.get("measure")
    content = {k: v for k, v in content.items() if k != "measure"}
    tracked = tracked_names(measure if isinstance(measure, dict) else None)
    if tracked:
        content["measure"] = {"tracked": tracked}
    return content


def _without_how_to_run(content: dict) -> dict:
    content = {k: v for k, v in content.items()
               if not (k in ADDED_GROUPS and isinstance(v, dict) and v.get("name") == ADDED_GROUPS[k])}
    dataset = content.get("dataset")
    if isinstance(dataset, dict):
        content = {**content, "dataset": {k: v for k, v in dataset.items()
                                          if not (k in ADDED_DATASET_KEYS and v == ADDED_DATASET_KEYS[k])}}
    trainer = content.get("trainer")
    if isinstance(trainer, dict):
        content = {**content, "trainer": {k: v for k, v in trainer.items() if k not in NOT_IN_ID_TRAINER
                                          and not (k in ADDED_TRAINER_KEYS and v == ADDED_TRAINER_KEYS[k])}}
    for group in ("model", "optimizer"):
        node = content.get(group)
        if isinstance(node, dict) and node.get("_target_") in MOVED_TARGETS:
            content = {**content, group: {**node, "_target_": MOVED_TARGETS[node["_target_"]]}}
    return content


def _as_before_added_params(params: dict) -> dict:
    """Measure parameters added later, at their defaults, hash as the runs before them did (legacy ids)."""
    params = {k: v for k, v in params.items()
              if not (k in ADDED_MEASURE_PARAMS_ANY_CONVENTION and v == ADDED_MEASURE_PARAMS_ANY_CONVENTION[k])}
    if params.get("convention", "gen") != "gen":
        return params
    hashed_params = dict(params)
    for key, (default, hashed) in ADDED_MEASURE_PARAMS.items():
        if key in params and params[key] == default:
            if hashed is OMIT:
                del hashed_params[key]
            else:
                hashed_params[key] = hashed
    return hashed_params


def _hash(content: dict) -> str:
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:RUN_ID_LENGTH]

