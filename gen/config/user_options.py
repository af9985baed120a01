"""Options gen does not ship: a researcher's own model, dataset, corruption or optimizer.

A YAML file in the user's own config folder (added with ``hydra.searchpath=[file:///path/myconf]``) with
a ``_target_`` naming the user's class or function, a ``name`` (the file's name; not one of gen's) and
its arguments.  gen has no schema for it, so it checks it against the target itself, before any work:
the target must import, the target's signature must accept every key (less gen's own keys of that
group, below) and every argument gen passes, and every parameter it requires must be given.  A
parameter annotated ``int``/``float``/``bool``/``str`` must get a value of that type.  Each failure is
one line (ConfigError) naming the option, the key or the target.

What gen passes and which keys are gen's own (not passed to the target), per group — the contracts
that README's "Your own measure, model and data" writes out:

- model: ``target(input_shape=(C, H, W) or (D,), num_outputs=K, **keys)``, an ``nn.Module`` returning
  raw scores ``[N, K]`` (logits; no softmax).  Gen's keys: ``name``.
- dataset: ``target(**keys)`` returns the data as tensors (gen.data.user: a mapping with ``x_train``,
  ``y_train``, ``x_test``, ``y_test`` and optionally ``num_classes``, or a DataBundle).  Gen's keys:
  ``name`` and the optional per-run steps gen applies afterwards (``classes``, ``normalize``, ``mean``,
  ``std``, ``train_size``); ``data_seed`` is both passed (if the target takes it) and seeds gen's subset.
- corruption: ``target(data, **keys)`` takes and returns a DataBundle.  Gen's keys: ``name``.
- optimizer: ``target(params, **keys)`` a ``torch.optim.Optimizer`` (gen builds it partially, as its
  own; ``_partial_: true`` in the YAML is accepted).  Gen's keys: ``name``, ``sam``, ``schedule``
  (optional; checked against gen's schemas when present).
"""
import dataclasses
import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable

from omegaconf import DictConfig, ListConfig, OmegaConf

from gen.config.base import ConfigError, _check_value

HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


@dataclass(frozen=True)
class UserGroup:
    own_keys: tuple[str, ...]        # gen's keys: read by gen, not passed to the target
    passed: tuple[str, ...]          # arguments gen passes the target itself
    positional: bool = False         # ``passed`` go in positionally (an optimizer's params)
    also_passed: tuple[str, ...] = ()  # gen's keys the target gets too, when its signature takes them


def _schemas() -> dict[str, dict[str, Any]]:
    """gen's own keys' types and limits, from the schemas of gen's own options (one home per fact)."""
    from gen.config.dataset import ImageCommon
    from gen.config.optimizer import SAMConfig, ScheduleConfig

    image = {f.name: f for f in dataclasses.fields(ImageCommon)}
    return {"dataset": {k: image[k] for k in ("train_size", "data_seed", "classes", "normalize", "mean", "std")},
            "optimizer": {"sam": SAMConfig, "schedule": ScheduleConfig}}


USER_GROUPS = {
    "model": UserGroup(own_keys=("name",), passed=("input_shape", "num_outputs")),
    "dataset": UserGroup(own_keys=("name", "train_size", "classes", "normalize", "mean", "std", "data_seed"),
                         passed=(), also_passed=("data_seed",)),
    "corruption": UserGroup(own_keys=("name",), passed=("data",), positional=True),
    "optimizer": UserGroup(own_keys=("name", "sam", "schedule"), passed=("params",), positional=True),
}


def is_user_option(group: str, node: Any) -> bool:
    return group in USER_GROUPS and isinstance(node, DictConfig) and "_target_" in node


def check_user_option(group: str, node: DictConfig) -> None:
    """Raise ConfigError unless ``node`` (an option of ``group`` gen does not know) fits its target."""
    name = node.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{group}.name", name if "name" in node else "<missing>",
                          f"your {group} option needs a name (its file's name)")
    target_path = node.get("_target_")
    target = locate(group, name, target_path)
    spec = USER_GROUPS[group]
    _check_own_keys(group, node)
    parameters = _parameters(group, name, target_path, target)
    takes_any = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
    keyword = {n: p for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    _check_passed(group, name, target_path, spec, parameters, keyword, takes_any)
    keys = target_keys(group, node, parameters)
    for key in keys:
        if key not in keyword and not takes_any:
            accepted = [n for n in keyword if n not in spec.passed]
            raise ConfigError(f"{group}.{key}", _plain(node[key]),
                              f"{target_path} does not take {key}; it takes {accepted}")
        if key in keyword:
            _check_annotation(f"{group}.{key}", node[key], keyword[key].annotation)
    skipped = len(spec.passed) if spec.positional else 0
    for position, (param_name, param) in enumerate(parameters.items()):
        required = param.default is param.empty and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY,
                                                                    param.POSITIONAL_ONLY)
        given = param_name in keys or param_name in spec.passed or position < skipped
        if required and not given:
            raise ConfigError(f"{group}.{param_name}", "<missing>",
                              f"{target_path} requires {param_name}; add it to {group}={name}'s YAML")


def locate(group: str, name: str, target_path: Any) -> Callable:
    """The class or function ``_target_`` names; a ConfigError naming the option and the target if none."""
    if not isinstance(target_path, str) or not target_path:
        raise ConfigError(f"{group}._target_", target_path, "expected a dotted path to your class or function")
    try:
        target = import_object(target_path)
    except Exception as error:  # noqa: BLE001 — the user's import: whatever it raises, one line
        detail = str(error).splitlines()[0] if str(error) else ""
        raise ConfigError(group, name, f"_target_ {target_path} cannot be imported ({type(error).__name__}: "
                                       f"{detail}); put its package on PYTHONPATH or install it") from None
    if not callable(target):
        raise ConfigError(group, name, f"_target_ {target_path} is not a class or function")
    return target


def import_object(path: str) -> Any:
    """``package.module.Name``: the longest importable module prefix, then attributes.  An error raised
    while importing the user's module (a dependency it lacks) is its own, not "no such module"."""
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        module_name = ".".join(parts[:end])
        try:
            found = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and module_name.startswith(error.name):  # this prefix itself is missing
                if end == 1:
                    raise
                continue
            raise
        for attribute in parts[end:]:
            if not hasattr(found, attribute):
                raise ImportError(f"{'.'.join(parts[:end])} has no {'.'.join(parts[end:])}")
            found = getattr(found, attribute)
        return found
    raise ImportError(f"no module {parts[0]}")


def target_keys(group: str, node: DictConfig, parameters: dict) -> list[str]:
    """The keys of ``node`` the target gets: all but Hydra's and gen's own (less those also passed)."""
    spec = USER_GROUPS[group]
    return [str(k) for k in node.keys() if k not in HYDRA_KEYS and
            (k not in spec.own_keys or (k in spec.also_passed and k in parameters))]


def arguments(group: str, node: DictConfig, target: Callable) -> list[str]:
    """The keys to pass ``target`` (for instantiate's skip list, the complement: gen's own keys)."""
    return target_keys(group, node, _parameters(group, node.get("name"), node.get("_target_"), target))


def _parameters(group: str, name: str, target_path: str, target: Callable) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(target).parameters)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check against
        return {"kwargs": inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)}


def _check_passed(group: str, name: str, target_path: str, spec: UserGroup, parameters: dict, keyword: dict,
                  takes_any: bool) -> None:
    """The target must take what gen passes it (positionally: at least that many positional parameters)."""
    if spec.positional:
        positional = [p for p in parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(positional) < len(spec.passed) and not any(p.kind == p.VAR_POSITIONAL for p in parameters.values()):
            raise ConfigError(group, name, f"{target_path} must take {', '.join(spec.passed)} first ("
                                           f"gen's {group} contract)")
        return
    missing = [p for p in spec.passed if p not in keyword and not takes_any]
    if missing:
        raise ConfigError(group, name, f"{target_path} must take {' and '.join(spec.passed)} (gen's {group} "
                                       f"contract); it takes {list(parameters)}")


def _check_own_keys(group: str, node: DictConfig) -> None:
    """gen's own keys, when present, against the types and limits of gen's schemas."""
    for key, schema in _schemas().get(group, {}).items():
        if key not in node:
            continue
        if isinstance(schema, dataclasses.Field):
            _check_value(f"{group}.{key}", node[key], schema.type, schema.metadata.get("limits", {}))
        else:
            _check_value(f"{group}.{key}", node[key], schema, {})


def _check_annotation(key: str, value: Any, annotation: Any) -> None:
    if annotation in (int, float, bool, str):
        _check_value(key, value, annotation, {})


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value
