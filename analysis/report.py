"""One page a researcher reads in a minute: the sweep's config, what finished, the figures, the ranking.

Written twice from the same blocks: ``report.md`` (links the PNGs beside it) and ``report.html``
(a static page with the PNGs embedded, so it opens anywhere as a single file).
"""
import base64
import html
import time
from pathlib import Path

import pandas as pd
import yaml

from analysis import double_descent, regularization
from analysis.collect import Collection
from analysis.figures import style
from analysis.figures import STUDY_TITLES, Drawn
from analysis.rank import Ranking
from gen import atomic
from gen.sweeps.status import NOT_RESULTS

MAX_LISTED = 20  # problem runs listed per status; the rest are in status.csv

# Blocks: ("h1"|"h2"|"h3"|"p", text), ("list", [text]), ("table", DataFrame), ("image", path, caption),
# ("code", text), ("details", summary, [blocks])


def build(collection: Collection, drawn: list[Drawn], ranking: Ranking | None, ranking_figures: list[Path],
          tables: list[Path], out_dir: Path) -> list[tuple]:
    names = ", ".join(collection.sweep_names())
    blocks = [("h1", f"Analysis: {names}"),
              ("p", f"Sweep folders: {', '.join(str(s) for s in collection.sweeps)}. "
                    f"Written {time.strftime('%Y-%m-%d %H:%M')}.")]
    blocks += _runs_section(collection)
    blocks += _config_section(collection)
    blocks += _regularization_section(collection)
    blocks += _double_descent_section(collection)
    blocks += _figures_section(drawn)
    blocks += _undefined_by_margin(collection.runs)
    blocks += _ranking_section(ranking, ranking_figures)
    blocks += [("h2", "Tables"), ("list", [_relative(p, out_dir) for p in tables])]
    return blocks


def _runs_section(collection: Collection) -> list[tuple]:
    counts = collection.counts()
    blocks = [("h2", "Runs"), ("table", pd.DataFrame([counts])),
              ("p", "Only completed runs are results; the others are listed here and in status.csv.")]
    for status in NOT_RESULTS:
        chosen = [f for f in collection.folders if f.status == status]
        if not chosen:
            continue
        items = [f"{f.path}: {f.reason}" + (f" (log: {f.log})" if f.log and status == "failed" else "")
                 for f in chosen[:MAX_LISTED]]
        if len(chosen) > MAX_LISTED:
            items.append(f"… and {len(chosen) - MAX_LISTED} more (status.csv)")
        blocks += [("h3", f"{status} ({len(chosen)})"), ("list", items)]
    return blocks


def _config_section(collection: Collection) -> list[tuple]:
    runs = collection.runs
    blocks = [("h2", "Sweep")]
    command = _sweep_command(collection.sweeps)
    if command:
        blocks.append(("code", command))
    columns = [c for c in collection.config_columns if c in runs]
    varying = [(c, runs[c].dropna().unique()) for c in columns if runs[c].nunique(dropna=False) > 1]
    if varying:
        blocks.append(("table", pd.DataFrame({"swept key": [c for c, _ in varying],
                                              "values": [", ".join(_fmt(v) for v in _sorted(vals))
                                                         for _, vals in varying]})))
    fixed = [(c, runs[c].iloc[0]) for c in columns if runs[c].nunique(dropna=False) == 1]
    if fixed:
        table = pd.DataFrame({"key": [c for c, _ in fixed], "value": [_fmt(v) for _, v in fixed]})
        blocks.append(("details", f"the {len(fixed)} config keys shared by every run", [("table", table)]))
    return blocks


def _sweep_command(sweeps: list[Path]) -> str:
    """The overrides the sweep was launched with, from Hydra's multirun.yaml."""
    lines = []
    for sweep in sweeps:
        path = Path(sweep) / "multirun.yaml"
        if not path.exists():
            continue
        try:
            hydra = (yaml.safe_load(atomic.read_regular_file(path, 16 << 20)) or {}).get("hydra") or {}
        except (OSError, yaml.YAMLError, RecursionError, AttributeError):
            continue
        task = (hydra.get("overrides") or {}).get("task") or []
        params = (hydra.get("sweeper") or {}).get("params") or {}
        args = list(task) + [f"{k}={v}" for k, v in params.items() if not any(t.startswith(f"{k}=") for t in task)]
        lines.append("python launch.py -m " + " ".join(args))
    return "\n".join(lines)


def _regularization_section(collection: Collection) -> list[tuple]:
    if not regularization.applies(collection.runs):
        return []
    return [("h2", "Explicit regularization (Zhang et al. 2017, Table 1)"),
            ("p", "Final train and test accuracy of each model with and without data augmentation and weight "
                  "decay, on true and on random training labels (the test labels are always true); a cell of "
                  f"several runs shows their mean. Also in {regularization.FILE}."),
            ("table", regularization.table(collection.runs))]


def _double_descent_section(collection: Collection) -> list[tuple]:
    runs = style.with_derived_columns(collection.runs)
    blocks = []
    if double_descent.modelwise_applies(runs):
        blocks += [("h2", "Double descent, model-wise (Belkin et al. 2019; Nakkiran et al. 2019)"),
                   ("p", "Per label-noise level: the classical minimum of the test error, the peak (the highest "
                         "final test error after that minimum, averaged over seeds; empty where the curve never "
                         "rises again), its parameter count against the interpolation threshold n·K, and the "
                         f"widest network's test error. Also in {double_descent.MODELWISE_FILE}."),
                   ("table", double_descent.modelwise_table(runs))]
    if (double_descent.epochwise_applies(runs) or double_descent.modelwise_applies(runs)) \
            and "epoch" in collection.history:
        blocks += [("h2", "Double descent, epoch-wise (Nakkiran et al. 2019)"),
                   ("p", "Per label-noise level, for the sweep's network (the widest of a width sweep): the epoch "
                         "and test error of the first minimum, of the peak after it and of the last evaluation. "
                         f"Also in {double_descent.EPOCHWISE_FILE}."),
                   ("table", double_descent.epochwise_table(runs, collection.history))]
    return blocks


def _figures_section(drawn: list[Drawn]) -> list[tuple]:
    blocks = [("h2", "Figures")]
    if not drawn:
        return blocks + [("p", "No study figures for this sweep (no completed runs, or nothing that a "
                               "study varies); `python -m analysis plot --x KEY --y KEY` draws any column.")]
    for study in dict.fromkeys(d.study for d in drawn):
        blocks.append(("h3", STUDY_TITLES.get(study, study)))
        skipped = []
        for figure in (d for d in drawn if d.study == study):
            if figure.path is None:
                skipped.append(f"{figure.caption} — skipped: {figure.skipped}")
            else:
                blocks.append(("image", figure.path, figure.caption))
        if skipped:
            blocks.append(("list", skipped))
    return blocks


def _undefined_by_margin(runs: pd.DataFrame) -> list[tuple]:
    """One line counting the runs whose margin-normalised measures do not exist (margin γ ≤ 0)."""
    measures = [c for c in runs.columns if c.startswith("measures.")]
    undefined = {m: style.undefined_by_margin(runs, m) for m in measures}
    affected = pd.concat(undefined.values(), axis=1).any(axis=1) if undefined else pd.Series(dtype=bool)
    if not affected.any():
        return []
    names = sorted(m.removeprefix("measures.") for m, mask in undefined.items() if mask.any())
    return [("p", f"{int(affected.sum())} of {len(runs)} runs have a margin γ ≤ 0 (the network misclassifies at "
                  f"least the margin percentile of its sample): {', '.join(names)} — which divide by γ — are "
                  f"undefined there, marked × at the bottom of the measure panels ({style.UNDEFINED_BY_MARGIN}) "
                  f"and left out of the ranking. Each run's notes in metrics.json say so.")]


def _ranking_section(ranking: Ranking | None, figures: list[Path]) -> list[tuple]:
    blocks = [("h2", "Measures vs the generalization gap")]
    if ranking is None or not len(ranking.table):
        notes = ranking.notes if ranking else []
        return blocks + [("p", "No measures to rank. " + " ".join(notes))]
    blocks.append(("p", f"Gap: {ranking.gap}. Swept hyperparameters: {', '.join(ranking.axes) or 'none'}. "
                        "τ: Kendall's τ over all runs, its p-value (the test of τ = 0) and 95% interval "
                        "(Fieller et al. 1957); Ψ: granulated τ (Jiang et al. 2020); CMI: conditional "
                        "mutual information (Jiang et al.; PGDL); sign-error: worst and mean over environments "
                        "(Dziugaite et al. 2020). Definitions (analysis/rank.py): "
                        + ", ".join(f"{k} {v}" for k, v in vars(ranking.definitions).items())
                        + ". Identical networks counted once: "
                        + f"{len(ranking.twins) if ranking.twins is not None else 0} "
                          "run(s) merged (the notes below name them)."))
    blocks.append(("table", _ranking_table(ranking.table)))
    captions = {"rank.png": "τ, Ψ, CMI and worst sign-error per measure",
                "rank_sign_errors.png": "sign-error per environment, by the hyperparameter that varies"}
    blocks += [("image", path, captions.get(path.name, path.stem)) for path in figures]
    if ranking.notes:
        blocks.append(("list", [f"note: {n}" for n in ranking.notes]))
    return blocks


def _ranking_table(table: pd.DataFrame) -> pd.DataFrame:
    """The ranking as shown: τ's interval in one column beside its p-value."""
    interval = [f"[{low:.2f}, {high:.2f}]" if pd.notna(low) and pd.notna(high) else "–"
                for low, high in zip(table["tau_low"], table["tau_high"])]
    shown = table.drop(columns=["tau_low", "tau_high", *[c for c in table if c.startswith("definition.")]])
    shown.insert(shown.columns.get_loc("p_value") + 1, "tau_95%_interval", interval)
    return shown


# ---- rendering ---------------------------------------------------------------------------------

def to_markdown(blocks: list[tuple], out_dir: Path) -> str:
    parts = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            parts.append("#" * int(kind[1]) + " " + block[1])
        elif kind == "p":
            parts.append(block[1])
        elif kind == "list":
            parts.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            parts.append(_markdown_table(block[1]))
        elif kind == "image":
            parts.append(f"![{block[2]}]({_relative(block[1], out_dir)})\n\n*{block[2]}*")
        elif kind == "code":
            parts.append(f"```\n{block[1]}\n```")
        elif kind == "details":
            parts.append(f"<details><summary>{block[1]}</summary>\n\n{to_markdown(block[2], out_dir)}\n\n</details>")
    return "\n\n".join(parts) + "\n"


def _markdown_table(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    rows = ["| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |"
            for row in table.itertuples(index=False)]
    return "\n".join([header, rule] + rows)


def to_html(blocks: list[tuple], title: str) -> str:
    body = "\n".join(_html_block(b) for b in blocks)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }}
th {{ background: #f3f3f3; }}
figure {{ margin: 1em 0 2em; }} img {{ max-width: 100%; }} figcaption {{ color: #555; font-style: italic; }}
pre {{ background: #f6f6f6; padding: 0.6em; overflow-x: auto; }}
</style></head>
<body>
{body}
</body></html>
"""


def _html_block(block: tuple) -> str:
    kind = block[0]
    if kind in ("h1", "h2", "h3"):
        return f"<{kind}>{html.escape(block[1])}</{kind}>"
    if kind == "p":
        return f"<p>{html.escape(block[1])}</p>"
    if kind == "list":
        return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in block[1]) + "</ul>"
    if kind == "table":
        return block[1].to_html(index=False, na_rep="–", float_format=lambda v: f"{v:.3g}", border=0)
    if kind == "image":
        data = base64.b64encode(Path(block[1]).read_bytes()).decode()
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block[2])}">'
                f"<figcaption>{html.escape(block[2])}</figcaption></figure>")
    if kind == "code":
        return f"<pre>{html.escape(block[1])}</pre>"
    if kind == "details":
        inner = "\n".join(_html_block(b) for b in block[2])
        return f"<details><summary>{html.escape(block[1])}</summary>{inner}</details>"
    raise ValueError(f"unknown report block {kind!r}")


def write(blocks: list[tuple], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown, page = out_dir / "report.md", out_dir / "report.html"
    markdown.write_text(to_markdown(blocks, out_dir))
    page.write_text(to_html(blocks, blocks[0][1] if blocks else "analysis"))
    return [markdown, page]


def _relative(path: Path, out_dir: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(out_dir).resolve()))
    except ValueError:
        return str(path)


def _fmt(value) -> str:
    if isinstance(value, float):
        return "–" if pd.isna(value) else f"{value:.3g}"
    return "–" if value is None else str(value)


def _sorted(values) -> list:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)
