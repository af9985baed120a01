"""The registry of measures: each name maps to a function of a MeasureContext returning a float.

``@measure(name)`` is the public, stable way to add a measure — gen's own families (norms.py,
sharpness.py, ...) use it, and so may a researcher's own module, outside gen::

    from gen.measures import MeasureContext, NotApplicable, measure

    @measure("my_measure")
    def my_measure(ctx: MeasureContext) -> float:
        ...

A function raises :class:`NotApplicable` (with the reason) where a measure has no value for the
network or task at hand; the run then records null and the reason in its notes.  A user's measure is
registered when its module is imported: ``measure.modules=[my_measures]`` imports it before the names
in ``measure.names`` are checked.  A user's name may not be a built-in one (nor registered by two
different functions).  Built-in measures live in :data:`MEASURES`, users' in :data:`USER_MEASURES`:
the built-in sets, docs and tables are about gen's own.

Jiang et al.'s measures also come "size-adjusted" (their Sec. 6): a measure registered with
``size_adjust="log"`` (already a logarithm) gives ``NAME_size_adjusted`` = ½(v − log m); one with
``size_adjust="sqrt"`` gives √(v / m), with m the number of training samples.
"""
import hashlib
import inspect
import math
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Callable

SIZE_ADJUSTED_SUFFIX = "_size_adjusted"
SIZE_ADJUSTMENTS = (None, "log", "sqrt")
BUILTIN_PACKAGE = "gen.measures"
SOURCE_HASH_LENGTH = 12


class NotApplicable(Exception):
    """The measure has no value here (wrong kind of network, task or training record)."""


class RegistrationError(ValueError):
    """A measure name that cannot be registered (taken, or a bad option)."""


@dataclass(frozen=True)
class Measure:
    name: str
    compute: Callable  # (MeasureContext) -> float
    size_adjust: str | None = None   # "log" | "sqrt" | None
    needs_trajectory: bool = False   # needs the training loop to watch every step (built-ins only)

    @property
    def module(self) -> str:
        return self.compute.__module__

    @property
    def builtin(self) -> bool:
        return _is_builtin_module(self.module)


MEASURES: dict[str, Measure] = {}        # gen's own
USER_MEASURES: dict[str, Measure] = {}   # registered by modules outside gen (measure.modules)


def measure(name: str, size_adjust: str | None = None, needs_trajectory: bool = False):
    """Decorator: register ``fn(ctx: MeasureContext) -> float`` as the measure ``name``.

    ``size_adjust`` ("log" or "sqrt") also registers ``name + "_size_adjusted"`` (see the module's doc).
    ``needs_trajectory`` is for gen's own trajectory measures, which the training loop feeds step by step.
    """
    if size_adjust not in SIZE_ADJUSTMENTS:
        raise RegistrationError(f"measure {name!r}: size_adjust={size_adjust!r}; "
                                f"choose one of {list(SIZE_ADJUSTMENTS)}")
    if not isinstance(name, str) or not name or name.endswith(SIZE_ADJUSTED_SUFFIX):
        raise RegistrationError(f"measure {name!r}: a name is a non-empty string not ending in {SIZE_ADJUSTED_SUFFIX}")

    def wrap(fn):
        entry = Measure(name, fn, size_adjust, needs_trajectory)
        if entry.builtin:
            if name in MEASURES:
                raise RegistrationError(f"measure {name} registered twice")
            MEASURES[name] = entry
            return fn
        if needs_trajectory:
            raise RegistrationError(f"measure {name!r}: needs_trajectory is for gen's own trajectory measures")
        if name in MEASURES or _adjusted_builtin(name):
            raise RegistrationError(f"measure {name!r} ({_where(fn)}) clashes with gen's built-in measure of that "
                                    f"name; choose another name")
        earlier = USER_MEASURES.get(name)
        if earlier is not None and _where(earlier.compute) != _where(fn):
            raise RegistrationError(f"measure {name!r} ({_where(fn)}) is already registered by "
                                    f"{_where(earlier.compute)}; choose another name")
        USER_MEASURES[name] = entry  # the same function again (its module re-imported): the newer one
        return fn
    return wrap


def _is_builtin_module(module: str) -> bool:
    return module == BUILTIN_PACKAGE or module.startswith(BUILTIN_PACKAGE + ".")


def _adjusted_builtin(name: str) -> bool:
    base = name.removesuffix(SIZE_ADJUSTED_SUFFIX)
    return name != base and base in MEASURES and MEASURES[base].size_adjust is not None


def _where(fn: Callable) -> str:
    return f"{fn.__module__}.{getattr(fn, '__qualname__', getattr(fn, '__name__', '?'))}"


def known_names() -> list[str]:
    """Every built-in name a measure set may list: the registered measures and their size-adjusted forms."""
    return _names_of(MEASURES)


def user_names() -> list[str]:
    """The names users' modules registered (in this process), with their size-adjusted forms."""
    return _names_of(USER_MEASURES)


def _names_of(registry: dict[str, Measure]) -> list[str]:
    names = list(registry)
    names += [m.name + SIZE_ADJUSTED_SUFFIX for m in registry.values() if m.size_adjust]
    return names


def base_of(name: str) -> tuple[Measure, bool]:
    """The registered measure behind ``name`` and whether ``name`` asks for its size-adjusted form."""
    for registry in (MEASURES, USER_MEASURES):
        if name in registry:
            return registry[name], False
        base = name.removesuffix(SIZE_ADJUSTED_SUFFIX)
        if name.endswith(SIZE_ADJUSTED_SUFFIX) and base in registry and registry[base].size_adjust:
            return registry[base], True
    raise KeyError(name)


def code_identity(name: str) -> str:
    """Which code computes the measure ``name``, as a record keeps it beside the value.

    A built-in measure: ``gen <version>``.  A user's measure: ``<distribution> <version>`` when its module
    comes from an installed distribution with a version, else ``<module> <hash>``, the first 12 hex digits
    of the SHA-256 of the module's source, so a changed measure never passes for its earlier version."""
    measure_, _ = base_of(name)
    if measure_.builtin:
        import gen
        return f"gen {gen.__version__}"
    module = measure_.module
    distribution = _distribution_of(module)
    if distribution is not None:
        return distribution
    return f"{module} {_source_hash(module)}"


def _distribution_of(module: str) -> str | None:
    """``name version`` of the installed distribution providing ``module``'s top-level package, if any.
    An editable install of a folder the user still edits is a distribution too: its version is the
    user's promise."""
    top = module.split(".")[0]
    try:
        names = metadata.packages_distributions().get(top) or []
    except Exception:  # a broken metadata folder somewhere on sys.path: fall back to the source hash
        return None
    for name in names:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if version:
            return f"{name} {version}"
    return None


def _source_hash(module: str) -> str:
    loaded = sys.modules.get(module)
    try:
        source = inspect.getsource(loaded) if loaded is not None else ""
    except (OSError, TypeError):  # defined in a notebook cell or an interactive session: no file
        source = ""
    if not source:
        return "source-unavailable"
    return hashlib.sha256(source.encode()).hexdigest()[:SOURCE_HASH_LENGTH]


def size_adjusted(value: float, kind: str, train_size: int) -> float:
    """J's adjustment for the number of training samples m."""
    if kind == "log":
        return 0.5 * (value - math.log(train_size))
    if value < 0:
        raise NotApplicable(f"negative value {value:.4g} has no square root")
    return math.sqrt(value / train_size)
