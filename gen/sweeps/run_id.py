"""A run's id: a short hash of its resolved config, so a relaunched sweep maps each job to the
same folder.  Registered as the OmegaConf resolver ``${run_id:}`` used by ``hydra.run.dir``.

The same hash of the config a metrics.json records (:func:`run_id_of_record`) lets every reader check
that a record is the record of its own config."""
import hashlib
import json
import re

from omegaconf import DictConfig, ListConfig, OmegaConf

# Keys that say how to run, not what to compute: changing them must not move a run's folder.
NOT_IN_ID = ("hydra", "rerun", "name", "analysis", "logger")  # logger: trackers are views of metrics.json
NOT_IN_ID_TRAINER = ("progress", "device", "checkpoint_every", "save_weights", "eval_batch_size", "ensemble",
                     "divergence")
# Measure parameters added after runs had ids: (new default, what the id hashes in its place;
# OMIT leaves the key out).  At that default they compute what the runs before them computed (the
# bracket tolerance: to within the flatness searches' own precision), so adding them moved no
# run's folder.
OMIT = object()
ADDED_MEASURE_PARAMS = {"convention": ("gen", OMIT), "conv_spectral": (None, "fft"),
                        "flatness_bracket_tolerance": (0.01, OMIT)}
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
    return _hash(_without_how_to_run({k: v for k, v in config.items() if k not in NOT_IN_ID}))


def looks_like_run_id(name: str) -> bool:
    return bool(_RUN_ID.fullmatch(name))


def identity(cfg: DictConfig) -> dict:
    """The resolved config without the keys that say how to run: what the id hashes."""
    content = {k: OmegaConf.to_container(cfg[k], resolve=True)
               if isinstance(cfg[k], (DictConfig, ListConfig)) else cfg[k]
               for k in cfg.keys() if k not in NOT_IN_ID}
    return _without_how_to_run(content)


def _without_how_to_run(content: dict) -> dict:
    content = {k: v for k, v in content.items()
               if not (k in ADDED_GROUPS and isinstance(v, dict) and v.get("name") == ADDED_GROUPS[k])}
    trainer = content.get("trainer")
    if isinstance(trainer, dict):
        content = {**content, "trainer": {k: v for k, v in trainer.items() if k not in NOT_IN_ID_TRAINER
                                          and not (k in ADDED_TRAINER_KEYS and v == ADDED_TRAINER_KEYS[k])}}
    for group in ("model", "optimizer"):
        node = content.get(group)
        if isinstance(node, dict) and node.get("_target_") in MOVED_TARGETS:
            content = {**content, group: {**node, "_target_": MOVED_TARGETS[node["_target_"]]}}
    measure = content.get("measure")
    if isinstance(measure, dict) and isinstance(measure.get("params"), dict):
        content = {**content, "measure": {**measure, "params": _as_before_added_params(measure["params"])}}
    return content


def _as_before_added_params(params: dict) -> dict:
    """Measure parameters added later, at their defaults, hash as the runs before them did."""
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

