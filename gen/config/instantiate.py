"""The one place where a config node becomes an object: ``hydra.utils.instantiate`` on the node's
``_target_`` with its other keys as arguments, and the one place where what Hydra raises on the way
(it wraps the constructor's error in an ``InstantiationException``) becomes the one-line ConfigError
that names the group and the option the user chose."""
from typing import Any

import hydra.utils
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from gen.config.base import ConfigError


def instantiate(node: DictConfig, group: str, skip: tuple[str, ...] = ("name",), **kwargs: Any) -> Any:
    """``node``'s ``_target_`` built from its keys (less ``skip``: gen's own keys) and ``kwargs``."""
    # resolved in place first: a value may interpolate another group (``${pick:${model.name},...}``)
    resolved = OmegaConf.to_container(node, resolve=True)
    arguments = OmegaConf.create({k: v for k, v in resolved.items() if k not in skip})
    try:
        return hydra.utils.instantiate(arguments, **kwargs, _convert_="all")
    except InstantiationException as error:
        raise _as_config_error(error.__cause__ or error, group, node.get("name")) from None
    except ConfigError as error:
        raise _as_config_error(error, group, node.get("name")) from None


def _as_config_error(error: BaseException, group: str, name: str | None) -> ConfigError:
    if isinstance(error, ConfigError):
        # a component knows its class; the user chose it by its option's name
        return ConfigError(group, name, error.allowed) if error.key == group else error
    return ConfigError(group, name, str(error).splitlines()[0] if str(error) else type(error).__name__)
