"""Validation machinery shared by every group's schema.

One home per fact: the YAML files under ``conf/`` hold every value (the defaults a user reads and
overrides); a schema holds what a value may be — its type and range — and no defaults, so every key
a schema names must be in its option's YAML (a missing key is a config error, and a test composes
every option).  A schema is a dataclass (written without ``from __future__ import annotations``, so that its
annotations are real types); range limits sit in each field's metadata (``ge``, ``gt``, ``le``,
``lt``, ``choices``; for lists ``length``, ``min_length`` and ``items``, the limits of every item;
``folder_name`` for a key that becomes a folder) through :func:`spec`.  Nested dataclasses
(``optimizer.sam``) are checked recursively.  Every number must be finite, every string and list
non-empty (unless ``min_length=0``), every seed fit :data:`SEED_MAX` (what every consumer of a seed
accepts: torch, numpy, scikit-learn); ``items`` may name values accepted beside a range (``also``).
"""
import dataclasses
import difflib
import math
import re
import types
import typing
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

GROUPS: dict[str, dict[str, type]] = {}
# Groups composed as a list (``logger=[tensorboard,mlflow]``): each chosen option nests under the group
# by its name (``logger.tensorboard``), so the group's node maps option names to their blocks.
LIST_GROUPS: dict[str, dict[str, type]] = {}
SEED_MAX = 2**32 - 1
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1
FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=+-]{0,199}")  # no separators, no leading dot (.., hidden)


class ConfigError(ValueError):
    """Bad user input: one line naming the key, the value and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"invalid config: {key}={_show(value)}: {allowed}")


SHOWN_CHARS = 100  # an error line echoes at most this much of a value


def _show(value: Any) -> str:
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=False)
    text = str(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}… ({len(text)} characters)"


def spec(*, ge=None, gt=None, le=None, lt=None, choices=None, length=None, min_length=None, items=None,
         folder_name=None, help: str = ""):
    """A dataclass field with range limits that :func:`validate` enforces (no default: the YAML holds it)."""
    limits = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt, choices=choices, length=length,
                                    min_length=min_length, items=items, folder_name=folder_name).items()
              if v is not None}
    return dataclasses.field(metadata={"limits": limits, "help": help})


def register(group: str, name: str):
    """Class decorator: the schema of option ``name`` of config group ``group``."""
    def wrap(cls):
        GROUPS.setdefault(group, {})[name] = cls
        return cls
    return wrap


def register_list_option(group: str, name: str):
    """Class decorator: the schema of option ``name`` of the list group ``group`` (:data:`LIST_GROUPS`)."""
    def wrap(cls):
        LIST_GROUPS.setdefault(group, {})[name] = cls
        return cls
    return wrap


def validate(cfg: DictConfig) -> None:
    """Check every group of a composed config against its schema; raise ConfigError."""
    for group, options in GROUPS.items():
        if group == "":
            check_node(cfg, options["root"], "", top_level=True)
            continue
        node = cfg.get(group)
        if node is None:
            raise ConfigError(group, None, f"the '{group}' group is missing; choose one of {sorted(options)}")
        name = node.get("name")
        schema = options.get(name) or options.get("*")  # "*": one schema for every option
        if schema is None:
            from gen.config.user_options import check_user_option, is_user_option

            if is_user_option(group, node):  # the user's own option: checked against its _target_
                check_user_option(group, node)
                continue
            raise ConfigError(f"{group}.name", name, f"one of {sorted(options)}")
        check_node(node, schema, group)
    for group, options in LIST_GROUPS.items():
        check_list_group(cfg.get(group), group, options)
    from gen.config.measure import check_names  # the measure set's names, beside its schema

    check_names(cfg.get("measure"))


def check_list_group(node: Any, group: str, options: dict[str, type]) -> None:
    """Each option chosen in a list group against its schema; a schema's ``check(name)`` (if any) may
    refuse it further (a tracker whose package is missing)."""
    if not isinstance(node, DictConfig):
        raise ConfigError(group, node, f"the '{group}' group is missing or not a mapping; choose "
                                       f"{group}=[{','.join(sorted(options))}] or {group}=none")
    for name in node.keys():
        schema = options.get(str(name))
        if schema is None:
            raise ConfigError(f"{group}.{name}", OmegaConf.select(node, str(name), throw_on_missing=False),
                              f"not a {group}; choose among {sorted(options)}")
        if not isinstance(node[name], DictConfig):
            raise ConfigError(f"{group}.{name}", node[name], f"expected a mapping with keys "
                                                             f"{[f.name for f in dataclasses.fields(schema)]}")
        check_node(node[name], schema, f"{group}.{name}")
        if hasattr(schema, "check"):
            schema.check(f"{group}={name}")


def check_folder_names(cfg: DictConfig) -> None:
    """Check the top-level keys that become folders (before anything is created from them)."""
    for field in dataclasses.fields(GROUPS[""]["root"]):
        if field.metadata.get("limits", {}).get("folder_name") and field.name in cfg:
            _check_value(field.name, cfg[field.name], field.type, field.metadata["limits"])


def check_node(node: DictConfig, schema: type, prefix: str, top_level: bool = False) -> None:
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in node.keys():
        if key not in fields:
            if top_level and (key in GROUPS or key in LIST_GROUPS):
                continue
            raise ConfigError(_join(prefix, key), OmegaConf.select(node, str(key), throw_on_missing=False),
                              f"unknown key; {prefix or 'the top level'} accepts {sorted(fields)}"
                              f"{other_options_hint(_join(prefix, key))}{misspelt_key_hint(_join(prefix, key))}")
    for name, field in fields.items():
        key = _join(prefix, name)
        if name not in node:
            raise ConfigError(key, "<missing>", "this key is required")
        value = node[name]
        _check_value(key, value, field.type, field.metadata.get("limits", {}))
    if hasattr(schema, "check_values"):  # limits that tie keys together, or to the data (dataset.test_fraction)
        schema.check_values(node, prefix)


def misspelt_key_hint(dotted_key: str) -> str:
    """For a key that does not exist but nearly does: "; did you mean model.hidden_units?".  Each part is
    matched against the keys any option of its group has at that depth."""
    parts = dotted_key.split(".")
    schemas = [GROUPS[""]["root"]] if "" in GROUPS else []
    names = [*(g for g in GROUPS if g), *(f.name for s in schemas for f in dataclasses.fields(s))]
    for depth, part in enumerate(parts):
        if part not in names:
            close = difflib.get_close_matches(part, names, n=1, cutoff=0.75)
            return f"; did you mean {'.'.join([*parts[:depth], close[0], *parts[depth + 1:]])}?" if close else ""
        schemas = _schemas_under(schemas, part, top=depth == 0)
        names = sorted({f.name for schema in schemas for f in dataclasses.fields(schema)})
    return ""


def _schemas_under(schemas: list[type], name: str, top: bool) -> list[type]:
    """The schemas a key ``name`` can hold: every option of a group at the top, else the fields' types."""
    if top and name in GROUPS:
        return list(dict.fromkeys(GROUPS[name].values()))
    types_ = [next((f.type for f in dataclasses.fields(s) if f.name == name), None) for s in schemas]
    return [t for t in types_ if dataclasses.is_dataclass(t)]


def other_options_hint(dotted_key: str) -> str:
    """For a key the chosen option lacks, the options of its group that have it: "; choose
    corruption=gaussian (or labels, ...) to set prob" (empty if none has it)."""
    group, _, rest = dotted_key.partition(".")
    having = [name for name, schema in GROUPS.get(group, {}).items()
              if name != "*" and rest and _has_key(schema, rest.split("."))]
    if not having:
        return ""
    first, *others = sorted(having)
    also = f" (or {', '.join(others)})" if others else ""
    return f"; choose {group}={first}{also} to set {rest}"


def _has_key(schema: type, path: list[str]) -> bool:
    fields = {f.name: f for f in dataclasses.fields(schema)}
    field = fields.get(path[0])
    if field is None:
        return False
    if len(path) == 1:
        return True
    return dataclasses.is_dataclass(field.type) and _has_key(field.type, path[1:])


def _check_value(key: str, value: Any, annotation: Any, limits: dict) -> None:
    if isinstance(value, str) and value in limits.get("also", ()):  # named values beside a range ("M")
        return
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return
        annotation = options[0]
        origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, DictConfig):
            keys = [f.name for f in dataclasses.fields(annotation)]
            raise ConfigError(key, value, f"expected a mapping with keys {keys}")
        check_node(value, annotation, key)
        return
    if origin in (list, tuple):
        if not isinstance(value, ListConfig):
            raise ConfigError(key, value, "expected a list")
        (item_type, *_) = typing.get_args(annotation) or (Any,)
        _check_length(key, value, limits)
        for i, item in enumerate(value):
            _check_value(f"{key}[{i}]", item, item_type, limits.get("items", {}))
        return
    if origin is dict or annotation is dict:
        if not isinstance(value, DictConfig):
            raise ConfigError(key, value, "expected a mapping")
        return
    if value is None:
        raise ConfigError(key, value, f"expected {_type_name(annotation)}, not null")
    _check_scalar_type(key, value, annotation)
    _check_limits(key, value, limits)  # a key's own range names the allowed values better than the int64 bound
    _check_int64(key, value, annotation)


def _check_length(key: str, value: ListConfig, limits: dict) -> None:
    """A list has ``length`` items if given, else at least ``min_length`` (default 1: empty means unset)."""
    if "length" in limits:
        if len(value) != limits["length"]:
            raise ConfigError(key, value, f"expected a list of {limits['length']} values")
    elif len(value) < limits.get("min_length", 1):
        raise ConfigError(key, value, f"expected a list of at least {limits.get('min_length', 1)} value(s)")


def _check_scalar_type(key: str, value: Any, annotation: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, value, "must be a finite number")
    if value == "" and annotation in (str, Any):
        raise ConfigError(key, value, "must not be empty")
    if annotation is Any:
        return
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(annotation, True)
    if not ok:
        raise ConfigError(key, value, f"expected {_type_name(annotation)}")


def _check_int64(key: str, value: Any, annotation: Any) -> None:
    if annotation is int and not INT64_MIN <= value <= INT64_MAX:  # what torch, numpy and the rest accept
        raise ConfigError(key, value, "must fit in a 64-bit integer (from -2^63 to 2^63 - 1)")


def _check_limits(key: str, value: Any, limits: dict) -> None:
    if limits.get("folder_name") and not (isinstance(value, str) and FOLDER_NAME.fullmatch(value)):
        raise ConfigError(key, value, f"{folder_name_problem(value)}; choose the folder itself with hydra.sweep.dir")
    if "choices" in limits and value not in limits["choices"]:
        raise ConfigError(key, value, f"one of {list(limits['choices'])}")
    bounds = {"ge": (lambda v, b: v >= b, "≥"), "gt": (lambda v, b: v > b, ">"),
              "le": (lambda v, b: v <= b, "≤"), "lt": (lambda v, b: v < b, "<")}
    for name, (holds, _) in bounds.items():
        if name in limits and not holds(value, limits[name]):
            parts = [f"{s} {limits[n]}" for n, (_, s) in bounds.items() if n in limits]
            raise ConfigError(key, value, "must be " + " and ".join(parts))


def folder_name_problem(value: Any) -> str:
    """What keeps ``value`` from being a plain folder name (:data:`FOLDER_NAME`), in words."""
    plain = "a plain folder name has 1 to 200 ASCII letters, digits and _ . = + -, not starting with a dot"
    if not isinstance(value, str):
        return f"must be a string: {plain}"
    if len(value) > 200:
        return f"is {len(value)} characters long; {plain}"
    wrong = sorted(set(re.sub(r"[A-Za-z0-9_.=+-]", "", value)))
    if wrong:
        shown = " ".join(repr(c) for c in wrong[:10]) + (" ..." if len(wrong) > 10 else "")
        return f"holds characters not allowed ({shown}); {plain}"
    return f"must not start with {value[0]!r}; {plain}"


def _type_name(annotation: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        annotation, getattr(annotation, "__name__", str(annotation)))


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)
