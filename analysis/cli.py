"""``python -m analysis [COMMAND] SWEEP_DIR [SWEEP_DIR ...] [--out DIR]``; ``python -m analysis hessian RUN_DIR``

Commands (default ``report``: all of it):
  report   collect + plot + rank, then report.md and report.html
  collect  runs.csv (one row per completed run), history.csv, status.csv (every run folder)
  plot     the figures of the studies the sweep reproduces; or one figure with --x/--y [--hue] [--col]
           (SWEEP_DIR may also be a runs.csv: the figures that need no history)
  rank     Kendall τ, granulated Ψ, CMI and robust sign-error of every measure vs the gap: rank.csv, rank.png
           (SWEEP_DIR may also be a runs.csv that collect wrote: rank the committed tables again)
  status   counts of completed / diverged / failed / running / interrupted / missing / invalid / unreadable runs
  hessian  one run's Hessian spectral density (stochastic Lanczos quadrature): hessian_density.png and .json

Output goes to DIR, by default the ``analysis/`` folder inside the first sweep folder.
"""
import argparse
import logging
import sys
from pathlib import Path

COMMANDS = ("report", "collect", "plot", "rank", "status", "hessian")

log = logging.getLogger("analysis")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m analysis", description=__doc__.split("\n\n")[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter,
                                  epilog=__doc__.split("\n\n", 1)[1])
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        sub = commands.add_parser(name, help=_command_help(name))
        if name == "hessian":
            sub.add_argument("sweeps", nargs=1, type=Path, metavar="RUN_DIR", help="one completed run's folder")
            sub.add_argument("--runs", type=_positive, default=10, help="Rademacher probes (default 10)")
            sub.add_argument("--steps", type=_positive, default=80, help="Lanczos steps per probe (default 80)")
        else:
            sub.add_argument("sweeps", nargs="+", type=Path, metavar="SWEEP_DIR",
                             help="folders holding run folders (a sweep, outputs/sweeps, or one run)")
        if name != "status":
            sub.add_argument("--out", type=Path, help="output folder (default: SWEEP_DIR/analysis)")  # or RUN_DIR's
        if name == "plot":
            sub.add_argument("--study", action="append", help="draw this study's figures (s1_width, s1_size, "
                                                              "s2, s2_bn, s3, s4, s5); default: detected")
            sub.add_argument("--x", help="generic figure: the column on the x axis")
            sub.add_argument("--y", help="generic figure: the column on the y axis")
            sub.add_argument("--hue", help="generic figure: one line/colour per value of this column")
            sub.add_argument("--col", help="generic figure: one panel per value of this column")
            sub.add_argument("--logx", action=argparse.BooleanOptionalAction, default=None)
            sub.add_argument("--logy", action=argparse.BooleanOptionalAction, default=None)
        if name in ("rank", "report"):
            sub.add_argument("--gap", help="the gap column (default: final.gen_gap, else final.loss_gap)")
            _definition_options(sub)
    return top


DEFINITION_HELP = {  # analysis/rank.py's docstring defines each
    "tau": "Kendall τ: tau_b (scipy, ties corrected; default) or tau_a (Jiang et al. 2020: ties count 0)",
    "psi": "Ψ's groups where τ is undefined: skip (default) or zero (count them as τ = 0)",
    "cmi": "conditional mutual information: jiang (the paper; default) or pgdl (the competition's scorer)",
    "sign_error": "robust sign-error pairs: seed_pairs (coupled by seed, w > 0.5; default) or all_pairs "
                  "(Dziugaite et al.'s code: every seed pair, weights (w − 0.5)+)",
}


def _definition_options(sub: argparse.ArgumentParser) -> None:
    from analysis.rank import OPTIONS
    for key, allowed in OPTIONS.items():
        sub.add_argument(f"--{key.replace('_', '-')}", dest=f"definition_{key}", choices=allowed,
                         default=allowed[0], help=DEFINITION_HELP[key])


def definitions_of(args):
    from analysis.rank import OPTIONS, Definitions
    return Definitions(**{key: getattr(args, f"definition_{key}") for key in OPTIONS})


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be a whole number ≥ 1")
    return value


def _command_help(name: str) -> str:
    for line in __doc__.splitlines():
        if line.strip().startswith(name + " "):
            return line.strip()[len(name):].strip()
    return name


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        argv.insert(0, "report")  # python -m analysis SWEEP_DIR … = everything
    args = parser().parse_args(argv)
    if args.command is None:
        parser().print_help()
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    tables = args.command in ("rank", "plot") and any(s.suffix == ".csv" for s in args.sweeps)
    missing = [s for s in args.sweeps if not (s.is_file() if tables else s.is_dir())]
    if missing:
        print(f"error: no such {'runs table' if tables else 'folder'}: {', '.join(map(str, missing))}",
              file=sys.stderr)
        return 2
    if args.command == "status":
        return status(args.sweeps)
    if args.command == "hessian":
        return hessian(args.sweeps[0], args.out or args.sweeps[0] / "analysis", args.runs, args.steps)
    out = args.out or default_out_dir(args.sweeps)
    if args.command == "collect":
        return _print_paths(collect_step(args.sweeps, out)[1])
    if args.command == "plot":
        return plot(args, out)
    if args.command == "rank":
        return rank(args.sweeps, out, args.gap, definitions_of(args))
    return _print_paths(analyse(args.sweeps, out, gap=args.gap, definitions=definitions_of(args)))


def default_out_dir(sweeps: list[Path]) -> Path:
    first = Path(sweeps[0])
    return (first.parent if first.suffix == ".csv" else first) / "analysis"


def status(sweeps: list[Path]) -> int:
    from gen.sweeps import status as run_status
    print(run_status.describe(run_status.scan(sweeps), sweeps))
    return 0


def hessian(run_dir: Path, out: Path, runs: int, steps: int) -> int:
    from analysis import hessian as spectrum
    try:
        return _print_paths(spectrum.write(run_dir, out, runs, steps))
    except spectrum.RunUnusable as reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2


def collect_step(sweeps: list[Path], out: Path):
    from analysis.collect import collect, write_tables
    collection = collect(sweeps)
    if not collection.folders:
        log.warning("no run folders (a folder with metrics.json or .hydra/) below %s",
                    ", ".join(map(str, sweeps)))
    return collection, write_tables(collection, out)


def plot(args, out: Path) -> int:
    from analysis.collect import collect, read_runs_tables
    from analysis.figures import Skip, draw_figures, generic, style
    from analysis.figures.common import Context
    csv = [s for s in args.sweeps if s.suffix == ".csv"]
    collection = read_runs_tables(csv) if csv else collect(args.sweeps)
    figures_dir = out / "figures"
    if args.x or args.y:
        if not (args.x and args.y):
            print("error: a generic figure needs both --x and --y", file=sys.stderr)
            return 2
        ctx = Context(style.with_derived_columns(collection.runs), collection.history, figures_dir)
        try:
            return _print_paths([generic.draw(ctx, args.x, args.y, args.hue, args.col, args.logx, args.logy)])
        except Skip as reason:
            print(f"error: {reason}", file=sys.stderr)
            return 2
    drawn = draw_figures(collection.runs, collection.history, figures_dir, args.study)
    for figure in drawn:
        if figure.path is None:
            print(f"skipped {figure.name}: {figure.skipped}")
    return _print_paths([d.path for d in drawn if d.path is not None])


def rank(sweeps: list[Path], out: Path, gap: str | None, definitions=None) -> int:
    from analysis import rank as ranking_module
    from analysis.collect import collect, read_runs_tables
    csv = [s for s in sweeps if s.suffix == ".csv"]
    collection = read_runs_tables(csv) if csv else collect(sweeps)
    ranking, paths = rank_step(collection, out, gap, definitions)
    print(ranking_module.format_table(ranking))
    return _print_paths(paths)


def rank_step(collection, out: Path, gap: str | None = None, definitions=None):
    from analysis import rank as ranking_module
    from analysis.figures.ranking import draw_ranking
    ranking = ranking_module.rank_measures(collection.runs, collection.config_columns, gap=gap,
                                           definitions=definitions or ranking_module.Definitions(),
                                           history=collection.history)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("rank_sign_errors.csv", "rank_twins.csv"):  # from an earlier ranking of other runs
        (out / stale).unlink(missing_ok=True)
    ranking.table.to_csv(out / "rank.csv", index=False)
    paths = [out / "rank.csv"]
    if len(ranking.sign_errors):
        ranking.sign_errors.to_csv(out / "rank_sign_errors.csv", index=False)
        paths.append(out / "rank_sign_errors.csv")
    if len(ranking.twins):
        ranking.twins.to_csv(out / "rank_twins.csv", index=False)
        paths.append(out / "rank_twins.csv")
    return ranking, paths + draw_ranking(ranking, out / "figures")


def analyse(sweeps: list[Path], out: Path, gap: str | None = None, definitions=None) -> list[Path]:
    """Everything: tables, the studies' figures, the ranking, and the report.  Returns the files written."""
    from analysis import double_descent, regularization, report
    from analysis.figures import draw_figures
    collection, tables = collect_step(sweeps, out)
    tables += regularization.write(collection.runs, out)
    tables += double_descent.write(collection.runs, collection.history, out)
    drawn = draw_figures(collection.runs, collection.history, out / "figures")
    ranking, rank_files = rank_step(collection, out, gap, definitions)
    rank_tables = [p for p in rank_files if p.suffix == ".csv"]
    rank_figures = [p for p in rank_files if p.suffix == ".png"]
    blocks = report.build(collection, drawn, ranking, rank_figures, tables + rank_tables, out)
    counts = collection.counts()
    print(", ".join(f"{n} {status}" for status, n in counts.items() if n) or "no run folders found")
    written = report.write(blocks, out)
    return tables + [d.path for d in drawn if d.path is not None] + rank_files + written


def _print_paths(paths: list[Path]) -> int:
    for path in paths:
        print(f"wrote {path}")
    return 0
