"""A run's id: a short hash of its resolved config, so a relaunched sweep maps each job to the
same folder.  Registered as the OmegaConf resolver ``${run_id:}`` used by ``hydra.run.dir``."""
import hashlib
import json

from omegaconf import DictConfig, ListConfig, OmegaConf

# Keys that say how to run, not what to compute: changing them must not move a run's folder.
NOT_IN_ID = ("hydra", "rerun", "name", "analysis")
NOT_IN_ID_TRAINER = ("progress", "device", "checkpoint_every", "save_weights", "eval_batch_size", "ensemble")
# Measure parameters added after runs had ids: (new default, what the id hashes in its place;
# OMIT leaves the key out).  At that default they compute what the runs before them computed (the
# bracket tolerance: to within the flatness searches' own precision), so adding them moved no
# run's folder.
OMIT = object()
ADDED_MEASURE_PARAMS = {"convention": ("gen", OMIT), "conv_spectral": (None, "fft"),
                        "flatness_bracket_tolerance": (0.01, OMIT)}


def run_id(cfg: DictConfig) -> str:
    text = json.dumps(identity(cfg), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def identity(cfg: DictConfig) -> dict:
    """The resolved config without the keys that say how to run: what the id hashes."""
    content = {k: OmegaConf.to_container(cfg[k], resolve=True)
               if isinstance(cfg[k], (DictConfig, ListConfig)) else cfg[k]
               for k in cfg.keys() if k not in NOT_IN_ID}
    trainer = content.get("trainer")
    if isinstance(trainer, dict):
        content["trainer"] = {k: v for k, v in trainer.items() if k not in NOT_IN_ID_TRAINER}
    measure = content.get("measure")
    if isinstance(measure, dict) and isinstance(measure.get("params"), dict):
        _as_before_added_params(measure["params"])
    return content


def _as_before_added_params(params: dict) -> None:
    """Measure parameters added later, at their defaults, hash as the runs before them did."""
    if params.get("convention", "gen") != "gen":
        return
    for key, (default, hashed) in ADDED_MEASURE_PARAMS.items():
        if key in params and params[key] == default:
            if hashed is OMIT:
                del params[key]
            else:
                params[key] = hashed


def register_resolver() -> None:
    if not OmegaConf.has_resolver("run_id"):
        OmegaConf.register_new_resolver("run_id", lambda *, _root_: run_id(_root_), use_cache=False)


register_resolver()
