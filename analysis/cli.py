"""``python -m analysis [COMMAND] SWEEP_DIR [SWEEP_DIR ...] [--out DIR]``

Commands (default ``report``: all of it):
  report   collect + plot + rank, then report.md and report.html
  collect  runs.csv (one row per completed run), history.csv, status.csv (every run folder)
  plot     the figures of the studies the sweep reproduces; or one figure with --x/--y [--hue] [--col]
  rank     Kendall τ, granulated Ψ, CMI and robust sign-error of every measure vs the gap: rank.csv, rank.png
  status   counts of completed / diverged / failed / running / interrupted / missing / invalid / unreadable runs

Output goes to DIR, by default the ``analysis/`` folder inside the first sweep folder.
"""
import argparse
import logging
import sys
from pathlib import Path

COMMANDS = ("report", "collect", "plot", "rank", "status")

log = logging.getLogger("analysis")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m analysis", description=__doc__.split("\n\n")[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter,
                                  epilog=__doc__.split("\n\n", 1)[1])
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        sub = commands.add_parser(name, help=_command_help(name))
        sub.add_argument("sweeps", nargs="+", type=Path, metavar="SWEEP_DIR",
                         help="folders holding run folders (a sweep, outputs/sweeps, or one run)")
        if name != "status":
            sub.add_argument("--out", type=Path, help="output folder (default: SWEEP_DIR/analysis)")
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
    return top


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
    missing = [s for s in args.sweeps if not s.is_dir()]
    if missing:
        print(f"error: no such folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    if args.command == "status":
        return status(args.sweeps)
    out = args.out or default_out_dir(args.sweeps)
    if args.command == "collect":
        return _print_paths(collect_step(args.sweeps, out)[1])
    if args.command == "plot":
        return plot(args, out)
    if args.command == "rank":
        return rank(args.sweeps, out, args.gap)
    return _print_paths(analyse(args.sweeps, out, gap=args.gap))


def default_out_dir(sweeps: list[Path]) -> Path:
    return Path(sweeps[0]) / "analysis"


def status(sweeps: list[Path]) -> int:
    from gen.sweeps import status as run_status
    print(run_status.describe(run_status.scan(sweeps), sweeps))
    return 0


def collect_step(sweeps: list[Path], out: Path):
    from analysis.collect import collect, write_tables
    collection = collect(sweeps)
    if not collection.folders:
        log.warning("no run folders (a folder with metrics.json or .hydra/) below %s",
                    ", ".join(map(str, sweeps)))
    return collection, write_tables(collection, out)


def plot(args, out: Path) -> int:
    from analysis.collect import collect
    from analysis.figures import Skip, draw_figures, generic, style
    from analysis.figures.common import Context
    collection = collect(args.sweeps)
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


def rank(sweeps: list[Path], out: Path, gap: str | None) -> int:
    from analysis import rank as ranking_module
    from analysis.collect import collect
    collection = collect(sweeps)
    ranking, paths = rank_step(collection, out, gap)
    print(ranking_module.format_table(ranking))
    return _print_paths(paths)


def rank_step(collection, out: Path, gap: str | None = None):
    from analysis import rank as ranking_module
    from analysis.figures.ranking import draw_ranking
    ranking = ranking_module.rank_measures(collection.runs, collection.config_columns, gap=gap)
    out.mkdir(parents=True, exist_ok=True)
    ranking.table.to_csv(out / "rank.csv", index=False)
    paths = [out / "rank.csv"]
    if len(ranking.sign_errors):
        ranking.sign_errors.to_csv(out / "rank_sign_errors.csv", index=False)
        paths.append(out / "rank_sign_errors.csv")
    return ranking, paths + draw_ranking(ranking, out / "figures")


def analyse(sweeps: list[Path], out: Path, gap: str | None = None) -> list[Path]:
    """Everything: tables, the studies' figures, the ranking, and the report.  Returns the files written."""
    from analysis import double_descent, regularization, report
    from analysis.figures import draw_figures
    collection, tables = collect_step(sweeps, out)
    tables += regularization.write(collection.runs, out)
    tables += double_descent.write(collection.runs, collection.history, out)
    drawn = draw_figures(collection.runs, collection.history, out / "figures")
    ranking, rank_files = rank_step(collection, out, gap)
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
