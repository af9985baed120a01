"""The config schema: one dataclass per config-group option, and the validator.

YAML files under ``conf/`` hold the values; the dataclasses here say which keys exist, their
types and their allowed ranges.  ``validate(cfg)`` checks a composed config before any work
starts and raises :class:`ConfigError` with one line naming the key, the value and what is
allowed.  Each group's schemas live in the module of the same name (``gen/config/model.py``...);
importing this package registers them all.
"""
from gen.config.base import SEED_MAX, ConfigError, GROUPS, check_folder_names, register, validate

from gen.config import augment, corruption, dataset, logger, measure, model, optimizer, run, trainer  # noqa: F401  (register)

__all__ = ["SEED_MAX", "ConfigError", "GROUPS", "check_folder_names", "register", "validate"]
