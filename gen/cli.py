"""Turn every bad-input failure of ``launch.py`` into one clear line and a non-zero exit.

Hydra prints multi-line reports for composition errors; we let them reach us (by setting
HYDRA_FULL_ERROR for the duration of the call) and print one line instead.  A user who sets
HYDRA_FULL_ERROR=1 still gets the full traceback.
"""
import os
import re
import sys
from typing import Callable

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from gen.overrides import check_group_choices
from gen.schema import ConfigError

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def run_with_clear_errors(main: Callable[[], object], argv: list[str]) -> int:
    wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        check_group_choices(argv)
        main()
    except ConfigError as error:
        return _fail(f"error: {error}", EXIT_BAD_INPUT)
    except (HydraException, OmegaConfBaseException) as error:
        if wants_traceback:
            raise
        return _fail(f"error: {composition_message(error)}", EXIT_BAD_INPUT)
    except Exception as error:  # a failed run: recorded in its metrics.json and log
        if wants_traceback:
            raise
        return _fail(f"error: {type(error).__name__}: {error}", EXIT_FAILED)
    finally:
        if not wants_traceback:
            os.environ.pop("HYDRA_FULL_ERROR", None)
    return 0


def composition_message(error: BaseException) -> str:
    """One line from Hydra/OmegaConf's report: the override, the key and what went wrong."""
    text = str(error)
    match = re.match(r"Could not override '([^']+)'\.\s*To append to your config use \+(\S+)", text)
    if match:
        return (f"invalid config: {match[2]}: unknown key '{match[1]}' "
                f"(see the keys with `python launch.py --cfg job`)")
    cause = error.__cause__
    lines = [text.splitlines()[0] if text else type(error).__name__]
    if cause is not None and str(cause):
        lines.append(str(cause).splitlines()[0])
    return ": ".join(line.strip() for line in lines)


def _fail(line: str, code: int) -> int:
    print(line, file=sys.stderr)
    return code
