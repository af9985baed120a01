"""A run's id: a short hash of what determines its trained network, so a relaunched sweep maps each
job to the same folder.  Registered as the OmegaConf resolver ``${run_id:}`` used by ``hydra.run.dir``.

The id hashes the resolved config less the keys that say how to run (``NOT_IN_ID``...) and less the
``measure`` group: which measures are computed on a trained network does not change the network, so a
run trained once is measured many times (gen.remeasure) in one folder.  The exception are measures that
watch training (per-step trajectory tracking, ``TRACKED_MEASURES``): when a set lists one, the training
loop runs a tracker and its history rows hold the tracked values, so those names stay in the id.
Keys that entered gen after runs had ids are undone first, by the table ``IDENTITY_CHANGES`` below.

The same hash of the config a metrics.json records (:func:`run_id_of_record`) lets every reader check
that a record is the record of its own config.  :func:`legacy_run_id` is gen <= 0.5's rule (the whole
measure group in the id), kept for gen.migrate alone."""
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from gen.config.measure import TRACKED_MEASURES

# Keys that say how to run, not what to compute: changing them must not move a run's folder.
NOT_IN_ID = ("hydra", "rerun", "name", "analysis", "logger",  # logger: trackers are views of metrics.json
             "measure_run")  # gen.measure's jobs: which trained run to measure
NOT_IN_ID_TRAINER = ("progress", "device", "checkpoint_every", "save_weights", "eval_batch_size", "ensemble",
                     "divergence", "save_epochs")  # save_epochs: extra weight files, the same training
RUN_ID_LENGTH = 12
_RUN_ID = re.compile(rf"[0-9a-f]{{{RUN_ID_LENGTH}}}")

OMIT = object()  # hashed in place of a value: the key is left out of the id


@dataclass(frozen=True)
class GroupOption:
    """A config group at one of its options (the group's ``name`` key), whatever its other keys."""
    name: str

    def matches(self, node: Any) -> bool:
        return isinstance(node, dict) and node.get("name") == self.name


@dataclass(frozen=True)
class IdentityChange:
    """One change to the config after runs had ids: see the rule above ``IDENTITY_CHANGES``."""
    since: str                 # the gen release that made it
    path: str                  # the dotted key it concerns, in the resolved config
    before: Any                # the value at which the key computes what runs before ``since`` computed
    hashed: Any = OMIT         # what the id hashes in its place (OMIT: the key is left out)
    only_if: tuple[str, Any] | None = None  # ...and only where this other key has this value (or is absent)

    def holds(self, value: Any) -> bool:
        return self.before.matches(value) if isinstance(self.before, GroupOption) else value == self.before


# The rule: adding a key to gen's config must not move any run's id.  A key added after runs had ids is one
# line here, with the value that computes what those runs computed (its default in conf/): at that value the
# id leaves the key out (or hashes ``hashed`` in its place), so only a run that sets another value gets an id
# of its own; a class whose module moved hashes its old path.  In ``only_if`` an absent key reads as its
# ``before``: the config was written before the key existed.  The ``measure.*`` lines matter to legacy ids alone
# (since 0.6.0 the measure group is out of the id).  A change that is meant to move ids (0.6.0's: measures left
# the id) is a new rule with a migration (gen.migrate, :func:`legacy_run_id`), never a line here.
_GEN_CONVENTION = ("measure.params.convention", "gen")
_CERTIFIED_DEFAULTS = {  # Dziugaite & Roy's bound: these change only the certified_* measures
    "certified_steps": 200, "certified_lr": 1.0e-3, "certified_batch_size": 100, "certified_mc_draws": 10,
    "certified_delta": 0.025, "certified_delta_prime": 0.01, "certified_prior_c": 0.1, "certified_prior_b": 100,
    "certified_prior_variance_init": 2.5e-3}
IDENTITY_CHANGES = (
    IdentityChange("0.3.0", "measure.params.convention", "gen"),
    # runs before it took the exact (FFT) conv spectral norm, gen's convention's; the other conventions came with it
    IdentityChange("0.3.0", "measure.params.conv_spectral", None, hashed="fft", only_if=_GEN_CONVENTION),
    # the flatness searches' bracket: to within the searches' own precision, what they computed before
    IdentityChange("0.3.0", "measure.params.flatness_bracket_tolerance", 0.01, only_if=_GEN_CONVENTION),
    IdentityChange("0.4.0", "optimizer._target_", "gen.training.adashift.AdaShift", hashed="gen.optim.AdaShift"),
    IdentityChange("0.4.0", "augment", GroupOption("none")),
    IdentityChange("0.6.0", "measure.modules", []),
    *(IdentityChange("0.6.0", f"measure.params.{key}", value) for key, value in _CERTIFIED_DEFAULTS.items()),
    IdentityChange("0.6.0", "dataset.binary", "none"),
    IdentityChange("0.6.0", "trainer.loss", "cross_entropy"),
)


def run_id(cfg: DictConfig) -> str:
    return _hash(identity(cfg))


def run_id_of_record(config: dict) -> str:
    """The id of the run whose resolved config (as metrics.json records it) is ``config``."""
    return _hash(_training_identity(_hashed_content(config)))


def legacy_run_id(config: dict | DictConfig) -> str:
    """The id gen <= 0.5 gave this config (its measure group hashed too): for gen.migrate alone."""
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    return _hash(_hashed_content(config))


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
    return _training_identity(_hashed_content(content))


def without(content: dict, path: str) -> dict:
    """``content`` less the dotted key ``path`` (a copy where it changes; unchanged where it is absent)."""
    return _replaced(content, path.split("."), OMIT)


def _training_identity(content: dict) -> dict:
    """Without the measure group, unless it lists measures that watch training (then their names alone)."""
    measure = content.get("measure")
    content = {k: v for k, v in content.items() if k != "measure"}
    tracked = tracked_names(measure if isinstance(measure, dict) else None)
    if tracked:
        content["measure"] = {"tracked": tracked}
    return content


def _hashed_content(config: dict) -> dict:
    """The config less the keys that say how to run, with every identity change hashed as before it."""
    content = {k: v for k, v in config.items() if k not in NOT_IN_ID}
    for key in NOT_IN_ID_TRAINER:
        content = without(content, f"trainer.{key}")
    for change in IDENTITY_CHANGES:
        keys = change.path.split(".")
        found, value = _lookup(content, keys)
        if not found or not change.holds(value):
            continue
        if change.only_if is not None:
            other_found, other = _lookup(content, change.only_if[0].split("."))
            if other_found and other != change.only_if[1]:
                continue
        content = _replaced(content, keys, change.hashed)
    return content


def _lookup(content: dict, keys: list[str]) -> tuple[bool, Any]:
    node: Any = content
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def _replaced(content: dict, keys: list[str], value: Any) -> dict:
    """A copy of ``content`` with ``value`` at ``keys`` (OMIT: without it); ``content`` itself where the key is
    absent.  Only the dicts on the way are copied: the caller's config is never changed."""
    head, rest = keys[0], keys[1:]
    if head not in content:
        return content
    if rest:
        node = content[head]
        return content if not isinstance(node, dict) else {**content, head: _replaced(node, rest, value)}
    if value is OMIT:
        return {k: v for k, v in content.items() if k != head}
    return {**content, head: value}


def _hash(content: dict) -> str:
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:RUN_ID_LENGTH]
