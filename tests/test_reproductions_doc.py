"""docs/reproductions.md against the committed CSVs it quotes: every number checked here is computed from
docs/reproductions/*/runs.csv or rank.csv and must appear in the page exactly as formatted, so that the
text cannot drift from its tables again.  (The double-descent and PAC-Bayes sections check themselves.)"""
import math

import pandas as pd

from tests.helpers import REPO

DOCS = REPO / "docs"
PAGE = (DOCS / "reproductions.md").read_text()


def runs(study: str) -> pd.DataFrame:
    return pd.read_csv(DOCS / "reproductions" / study / "runs.csv")


def rank_table(study: str) -> pd.DataFrame:
    return pd.read_csv(DOCS / "reproductions" / study / "rank.csv").set_index("measure")


def pct(value: float, digits: int = 1) -> str:
    """A fraction in percent, rounded half up (0.8045 → 80.5) after float32 noise is cut at 6 decimals (accuracies over 10,000 test images have 4)."""
    from decimal import ROUND_HALF_UP, Decimal
    return str((Decimal(repr(round(float(value), 6))) * 100).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def span(values, fmt) -> str:
    return f"{fmt(min(values))}–{fmt(max(values))}"


def p_value(p: float) -> str:
    """As the ranking table prints p: one significant digit in powers of ten below 0.001, else two."""
    if p < 0.001:
        mantissa, exponent = f"{p:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{p:.2g}"


def section(title: str) -> str:
    start = PAGE.index(title)
    end = PAGE.find("\n## ", start + 1)
    return " ".join(PAGE[start:end if end > 0 else None].split())  # line breaks are spaces


def assert_quoted(text: str, where: str):
    assert text in section(where), f"{text!r} is not in the section {where!r}"


S1, S2, S2N, S4, RANK = ("## S1 —", "## S2 — Zhang et al. 2017, randomization", "### Label noise",
                         "## S4 —", "## Ranking every measure")


def test_s1_numbers():
    table = runs("repro_s1")
    random = table[table["corruption.name"] == "random_labels"]
    true = table[table["corruption.name"] == "none"]
    assert_quoted(f"{span(random['final.test_error'], pct)} % for every H", S1)
    negative = int((table["measures.sharpness_expected"] < 0).sum())
    assert_quoted(f"{negative} of {len(table)} runs negative", S1)
    assert_quoted(f"{span(true['final.epochs'], str)} epochs, random labels on 5,000 images for "
                  f"{span(random['final.epochs'], str)}", S1)
    ranked = rank_table("repro_s1")
    norms = ranked.loc[["l2", "l1_path", "l2_path", "spectral", "l2_plain", "spectral_plain", "l1_path_plain",
                        "l2_path_plain"]]
    assert_quoted(f"{span(norms['kendall_tau'], lambda v: f'{v:.2f}')} for the norm capacities", S1)
    assert_quoted(f"(p {span(norms['p_value'], lambda v: f'{v:.1g}')}", S1)


def test_s2_randomization_numbers():
    table = runs("repro_s2_randomization")
    assert_quoted(f"all {len(table)} runs interpolate (train accuracy {span(table['final.train_acc'], lambda v: pct(v, 2))} %)", S2)


def test_s2_label_noise_numbers():
    table = runs("repro_s2_label_noise").sort_values("corruption.prob")
    assert_quoted(f"all {len(table)}, at {span(table['final.train_acc'], lambda v: pct(v, 2))} % train accuracy", S2N)
    steps = dict(zip(table["corruption.prob"].round(1), table["interpolation.step"].astype(int)))
    assert {steps[p] for p in (0.2, 0.3, 0.4)} == {3200}
    later = [steps[p] for p in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)]
    assert_quoted(f"3,200 at 0.2–0.4, {min(later):,}–{max(later):,} at 0.5–1.0", S2N)
    assert_quoted(f"840 steps at p = 0, {steps[0.1]:,} at 0.1", S2N)
    clean, corrupted = table["split_acc.train_clean"].dropna(), table["split_acc.train_corrupted"].dropna()
    assert_quoted(f"clean {pct(clean.min())}–{100 * clean.max():.0f} %", S2N)
    assert_quoted(f"corrupted {pct(corrupted.min())} % (p = 0.1) to {pct(corrupted.max())} %", S2N)
    errors = [f"{pct(e)} %" for e in table["interpolation.test_error"]]
    assert_quoted(f"{errors[0]} (p = 0), " + ", ".join(errors[1:-1]) + f", {errors[-1]} (p = 1)", S2N)
    excess = {p: pct(e - 0.9 * p) for p, e in zip(table["corruption.prob"].round(1), table["interpolation.test_error"])}
    assert_quoted(f"{excess[0.0]} points at p = 0, {excess[0.1]} at 0.1, {excess[0.3]} at 0.3, {excess[0.5]} at 0.5, "
                  f"{excess[0.7]} at 0.7, {excess[0.9]} at 0.9", S2N)


def test_s4_numbers():
    table = runs("repro_s4")
    full = int((table["final.train_acc"] == 1.0).sum())
    assert_quoted(f"{full} of {len(table)} runs reach 100 % train accuracy", S4)
    converged = table[table["final.train_loss"] < 0.01]
    assert_quoted(f"final training losses range {span(converged['final.train_loss'], lambda v: f'{v:.4f}')}", S4)
    ten = table[table["final.epochs"] == 10]
    assert sorted(ten["optimizer.name"]) == ["adabound", "adam"] and not ten["optimizer.sam.enabled"].any()
    for name, lr in dict(zip(table["optimizer.name"], table["optimizer.lr"])).items():
        label = {"s4_sgd": "SGD (lr", "momentum": "heavy ball (PHB, config `momentum`, lr", "adagrad": "Adagrad (lr",
                 "adam": "Adam (lr", "adabound": "AdaBound (lr", "adashift": "AdaShift (lr"}[name]
        assert_quoted(f"{label} {lr:g}", S4)
    tau = rank_table("repro_s4").loc["min_sharpness"]
    assert_quoted(f"Kendall τ = {tau['kendall_tau']:.2f} (p = {tau['p_value']:.2f}) over the {len(table)} runs", S4)


def rank_rows() -> list[str]:
    """The ranking table's rows as the page prints them, from repro_rank/rank.csv (one row per same-order group)."""
    table = rank_table("repro_rank")
    rows = []
    for measure, row in table.iterrows():
        if row["same_order_as"] != measure:
            continue
        cells = [str(int(row["runs"])), f"{row['kendall_tau']:.2f}".replace("-", "−"), p_value(row["p_value"]),
                 f"{row['psi']:.2f}".replace("-", "−"), f"{row['cmi']:.2f}", f"{row['sign_error_mean']:.2f}"]
        rows.append(" | ".join(cells) + " |")
    return rows


def test_the_ranking_table_is_rank_csv():
    table = rank_table("repro_rank")
    twins = pd.read_csv(DOCS / "reproductions" / "repro_rank" / "rank_twins.csv")
    networks = int(table["runs"].max())
    assert_quoted(f"S2, {networks} networks)", RANK)
    assert_quoted(f"hold {networks + len(twins)} runs but {networks} networks", RANK)
    for dropped, kept in zip(twins["run_id"], twins["same_as"]):
        assert_quoted(f"`{dropped}` = `{kept}`", RANK)
    for row in rank_rows():
        assert_quoted(row, RANK)
    assert_quoted(f"ℓ2: 0.083 against {table.loc['l2', 'cmi']:.3f}", RANK)
    worst = table["sign_error_max"]
    assert (worst.drop("num_params") == 1.0).all() and worst["num_params"] == 0.5
    assert (table["pairs_per_environment_max"] == 1).all()  # why the worst is 0 or 1
    assert table.loc["l2", "same_order_as"] == table.loc["l2_plain", "same_order_as"] == "l2"
    assert table.loc["l1_path_plain", "same_order_as"] == "l1_path"
    undefined = int(table["runs"].max() - table.loc["l2", "runs"])
    assert_quoted(f"({undefined} of {networks})", RANK)


def test_the_peers_definitions_paragraph():

    from analysis import rank
    from analysis.collect import read_runs_tables
    collection = read_runs_tables([DOCS / "reproductions" / s / "runs.csv"
                                   for s in ("repro_s1", "repro_s2_randomization", "repro_s2_label_noise")])
    default = rank.rank_measures(collection.runs, collection.config_columns).table.set_index("measure")
    peers = rank.rank_measures(collection.runs, collection.config_columns,
                               definitions=rank.Definitions("tau_a", "zero", "pgdl", "all_pairs")).table.set_index("measure")
    same = (peers["kendall_tau"] - default["kendall_tau"]).abs() < 1e-12
    assert list(same[~same].index) == ["num_params"]
    assert_quoted(f"({peers.loc['num_params', 'kendall_tau']:.2f} against {default.loc['num_params', 'kendall_tau']:.2f}",
                  RANK)
    assert_quoted(f"({peers.loc['num_params', 'psi']:.2f} against {default.loc['num_params', 'psi']:.2f})", RANK)
    assert_quoted(f"moves ℓ2 to {peers.loc['l2', 'cmi']:.2f} and the margin to {peers.loc['margin', 'cmi']:.2f}", RANK)
    assert ((peers["sign_error_mean"] - default["sign_error_mean"]).abs() < 1e-12).all()
    assert math.isclose(default.loc["l2", "cmi"], rank_table("repro_rank").loc["l2", "cmi"], rel_tol=1e-9)
