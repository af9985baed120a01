"""The generated parts of docs/measures.md: the conventions table, and every measure's value on
one fixed small network under each convention.

    python -m gen.measures.reference docs/measures.md     # rewrite both tables in the page

The network: conv3×3 (1→3 channels, stride 2, padding 1) → ReLU → Linear(27→8) → ReLU →
Linear(8→3), with biases, on 60 seeded 1×6×6 inputs labelled by the network itself (so every
margin is positive); its "initialisation" is a seeded perturbation of it.  A conv with a stride,
biases and a sample whose 10th percentile falls between two order statistics make every setting
of the conventions change some value.  The parameters are the defaults but for
``REFERENCE_PARAMS`` (fewer ascent and bisection steps keep the recomputation short).
tests/test_measures_docs.py recomputes both tables.
"""
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn as nn

from gen.data.bundle import DataBundle
from gen.measures import compute_measures
from gen.measures.conventions import CONVENTIONS, MEANINGS, settings
from gen.measures.registry import MEASURES

SAMPLES = 60
REFERENCE_PARAMS = {"sharpness_steps": 5, "flatness_search_depth": 8}
BLOCKS = ("conventions", "values")  # <!-- NAME:start --> … <!-- NAME:end --> in the page


def reference_network() -> tuple[nn.Module, dict, DataBundle]:
    """(model, weights at initialisation, data) — the same on every call."""
    generator = torch.Generator().manual_seed(2020)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(27, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    init = {k: v + 0.2 * torch.randn(v.shape, generator=generator) for k, v in model.state_dict().items()}
    x = torch.randn(SAMPLES, 1, 6, 6, generator=generator)
    with torch.no_grad():
        y = model(x).argmax(1)
    data = DataBundle("reference", "classification", x, y, x, y, 3, torch.zeros(SAMPLES, dtype=torch.bool))
    return model, init, data


def reference_values() -> dict[str, dict[str, float | None]]:
    """convention → measure → value (None where the measure has none here, e.g. the trajectory ones)."""
    model, init, data = reference_network()
    record = SimpleNamespace(history=[], train_size=SAMPLES)  # no training: the record-based measures are null
    names = list(MEASURES)
    return {convention: compute_measures({"names": names, "params": {**REFERENCE_PARAMS, "convention": convention}},
                                         model, init, data, record).values
            for convention in CONVENTIONS}


def format_value(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


def values_table() -> str:
    values = reference_values()
    conventions = list(values)
    lines = ["| measure | " + " | ".join(f"`{c}`" for c in conventions) + " |",
             "|---|" + "---:|" * len(conventions)]
    for name in MEASURES:
        lines.append(f"| `{name}` | " + " | ".join(format_value(values[c][name]) for c in conventions) + " |")
    return "\n".join(lines)


def conventions_table() -> str:
    """One row per setting: what it means under each convention."""
    lines = ["| setting | " + " | ".join(f"`{c}`" for c in CONVENTIONS) + " |", "|---|" + "---|" * len(CONVENTIONS)]
    for setting in settings():
        cells = []
        for convention in CONVENTIONS.values():
            choice = getattr(convention, setting)
            cells.append(f"`{choice}`: {MEANINGS[setting][choice]}")
        lines.append(f"| `{setting}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- {name}:start -->\n)(.*?)(<!-- {name}:end -->)", re.S)


def block(page: str, name: str) -> str:
    """The text between ``<!-- name:start -->`` and ``<!-- name:end -->`` (without the last newline)."""
    found = _pattern(name).search(page)
    if found is None:
        raise ValueError(f"the page has no {name} block")
    return found.group(2).removesuffix("\n")


def update_page(path: Path) -> None:
    page = path.read_text()
    for name, make in (("conventions", conventions_table), ("values", values_table)):
        block(page, name)  # the markers are there
        table = make()
        page = _pattern(name).sub(lambda found: found.group(1) + table + "\n" + found.group(3), page)  # noqa: B023
    path.write_text(page)


if __name__ == "__main__":
    update_page(Path(sys.argv[1]))
