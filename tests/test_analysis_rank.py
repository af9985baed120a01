"""The measure rankings on synthetic tables with known answers, and each score against a value
worked by hand or computed another way (brute force over pairs)."""
import itertools
import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from analysis import rank

AXES = ["model.hidden_units", "optimizer.lr", "trainer.batch_size"]


def grid_table(seed: int = 0) -> pd.DataFrame:
    """A 4 × 3 × 2 grid, three seeds each; the gap grows with every hyperparameter, plus noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for h, lr, bs, s in itertools.product([8, 32, 128, 512], [0.01, 0.03, 0.1], [32, 128], [0, 1, 2]):
        gap = 0.05 * np.log2(h) + 0.5 * lr + 0.0005 * bs + 0.02 * rng.standard_normal()
        rows.append({"model.hidden_units": h, "optimizer.lr": lr, "trainer.batch_size": bs, "seed": s,
                     "trainer.progress": s % 2 == 0, "final.gen_gap": gap, "data.test_size": 10000})
    table = pd.DataFrame(rows)
    table["measures.gap_itself"] = table["final.gen_gap"]
    table["measures.exp_gap"] = np.exp(3 * table["final.gen_gap"])  # monotone: same ranks
    table["measures.negative"] = -table["final.gen_gap"]
    table["measures.noise"] = np.random.default_rng(seed + 100).standard_normal(len(table))
    return table


@pytest.fixture(scope="module")
def ranking():
    table = grid_table()
    result = rank.rank_measures(table, AXES + ["seed", "trainer.progress"])
    return result, result.table.set_index("measure")


def test_a_measure_equal_to_the_gap_scores_perfectly(ranking):
    result, table = ranking
    for name in ("gap_itself", "exp_gap"):
        row = table.loc[name]
        assert row["kendall_tau"] == pytest.approx(1.0)
        assert row["psi"] == pytest.approx(1.0)
        assert row["cmi"] == pytest.approx(1.0)
        assert row["sign_error_max"] == 0.0 and row["sign_error_mean"] == 0.0
        for axis in AXES:
            assert row[f"psi[{axis}]"] == pytest.approx(1.0)
    assert result.gap == "final.gen_gap"
    assert list(result.axes) == AXES  # seed and how-to-run keys are not hyperparameters


def test_its_negative_scores_minus_one_and_always_the_wrong_sign(ranking):
    _, table = ranking
    row = table.loc["negative"]
    assert row["kendall_tau"] == pytest.approx(-1.0)
    assert row["psi"] == pytest.approx(-1.0)
    assert row["cmi"] == pytest.approx(1.0)  # information has no sign
    assert row["sign_error_max"] == 1.0 and row["sign_error_mean"] == 1.0


def test_a_random_measure_scores_near_zero(ranking):
    _, table = ranking
    row = table.loc["noise"]
    assert abs(row["kendall_tau"]) < 0.2
    assert abs(row["psi"]) < 0.2
    assert row["cmi"] < 0.05
    assert 0.3 < row["sign_error_mean"] < 0.7


def test_table_is_sorted_by_absolute_tau(ranking):
    result, _ = ranking
    taus = result.table["kendall_tau"].abs().to_numpy()
    assert list(taus) == sorted(taus, reverse=True)
    assert result.table["measure"].iloc[-1] == "noise"


def test_kendall_tau_by_hand():
    # pairs of (1,2,3,4) vs (1,3,2,4): 5 concordant, 1 discordant → (5 − 1) / 6
    tau, _ = rank.kendall_tau(np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 2, 4]))
    assert tau == pytest.approx(4 / 6)
    assert math.isnan(rank.kendall_tau(np.array([1.0, 1.0]), np.array([1.0, 2.0]))[0])


def test_granulated_psi_by_hand():
    """2 × 2 grid.  Along a: τ = +1 where b = 0 and −1 where b = 1, so ψ_a = 0; along b: τ = +1 at
    both values of a, so ψ_b = 1; Ψ = (0 + 1) / 2."""
    a = np.array([0, 1, 0, 1])
    b = np.array([0, 0, 1, 1])
    gap = np.array([0.0, 1.0, 2.0, 3.0])
    measure = np.array([0.0, 1.0, 3.0, 2.0])
    psi, per_axis = rank.granulated_psi(measure, gap, {"a": a, "b": b})
    assert per_axis == {"a": pytest.approx(0.0), "b": pytest.approx(1.0)}
    assert psi == pytest.approx(0.5)


def brute_force_cmi(m, g, codes, max_set=2):
    """J's K(μ) by counting over every ordered pair of runs with Python dicts."""
    n = len(m)
    sign = lambda v: int(v > 0) - int(v < 0)  # noqa: E731
    best = math.inf
    for size in range(max_set + 1):
        for subset in itertools.combinations(codes, size):
            triples = Counter()
            for i in range(n):
                for j in range(n):
                    if i != j:
                        u = (tuple(codes[a][i] for a in subset), tuple(codes[a][j] for a in subset))
                        triples[(u, sign(m[i] - m[j]), sign(g[i] - g[j]))] += 1
            total = sum(triples.values())
            p_u, p_ua, p_ub = Counter(), Counter(), Counter()
            for (u, va, vb), c in triples.items():
                p_u[u] += c / total
                p_ua[(u, va)] += c / total
                p_ub[(u, vb)] += c / total
            cmi = sum(c / total * math.log((c / total) * p_u[u] / (p_ua[(u, va)] * p_ub[(u, vb)]))
                      for (u, va, vb), c in triples.items())
            h = -sum(p * math.log(p / p_u[u]) for (u, _), p in p_ub.items())
            if h > 1e-12:
                best = min(best, cmi / h)
    return best


def test_cmi_matches_brute_force_over_pairs():
    rng = np.random.default_rng(3)
    codes = {"a": np.repeat([0, 1, 2], 6), "b": np.tile([0, 1], 9), "c": np.tile([0, 0, 1], 6)}
    g = codes["a"] + 0.5 * codes["b"] + 0.3 * rng.standard_normal(18)
    m = g + 0.8 * rng.standard_normal(18)
    assert rank.conditional_mutual_information(m, g, codes) == pytest.approx(brute_force_cmi(m, g, codes), abs=1e-9)
    assert rank.conditional_mutual_information(g, g, codes) == pytest.approx(1.0)


def test_sign_error_by_hand():
    """One axis with three settings: environments (0,1) and (0,2) agree in sign, (1,2) disagrees."""
    codes = {"h": np.array([0, 1, 2])}
    gap = np.array([0.0, 0.1, 0.2])
    measure = np.array([0.0, 2.0, 1.0])
    envs = rank.environment_pairs(codes, seeds=None)
    assert len(envs) == 3
    errors = rank.robust_sign_error(measure, gap, envs, n_test=10000)
    assert sorted(errors["sign_error"]) == [0.0, 0.0, 1.0]
    # with 10 test samples a gap difference of 0.1 is not significant: w = 0, every pair dropped
    assert rank.robust_sign_error(measure, gap, envs, n_test=10).empty


def test_sign_error_weight_formula():
    # w = max(0, 1 − 2 exp(−2 n (Δ/2)²))²; n = 100, Δ = 0.3: 1 − 2e^{−4.5}
    expected = (1 - 2 * math.exp(-4.5)) ** 2
    assert rank.sign_error_weight(np.array([0.3]), 100)[0] == pytest.approx(expected)
    assert rank.sign_error_weight(np.array([0.0]), 100)[0] == 0.0


def test_environments_couple_runs_by_seed():
    codes = {"h": np.array([0, 0, 1, 1])}
    envs = rank.environment_pairs(codes, seeds=np.array([0, 1, 0, 1]))
    assert sorted(zip(envs["i"], envs["j"])) == [(0, 2), (1, 3)]


def test_columns_that_change_together_are_one_axis():
    """Switching corruption options moves corruption.name and corruption.prob at once: one axis,
    named by the column of the finest partition."""
    table = pd.DataFrame({"corruption.name": ["none", "labels", "labels", "none", "labels", "labels"],
                          "corruption.prob": [0.0, 0.5, 1.0, 0.0, 0.5, 1.0],
                          "model.hidden_units": [8, 8, 8, 16, 16, 16], "seed": [0, 1, 2, 3, 4, 5],
                          "name": ["x"] * 6})
    axes = rank.hyperparameter_axes(table, list(table.columns))
    assert axes == {"corruption.prob": ["corruption.name", "corruption.prob"],
                    "model.hidden_units": ["model.hidden_units"]}
    notes = rank.rank_measures(table.assign(**{"final.gen_gap": [0.1, 0.2, 0.3, 0.1, 0.2, 0.4]}),
                               list(table.columns)).notes
    assert "axis corruption.prob also stands for corruption.name: they change together in these runs, so their " \
           "effects cannot be told apart" in notes


def test_regression_sweeps_rank_against_the_loss_gap():
    table = pd.DataFrame({"final.gen_gap": [None] * 4, "final.loss_gap": [0.1, 0.2, 0.3, 0.4],
                          "dataset.f": [0.25, 0.5, 0.75, 1.0], "measures.m": [1.0, 2.0, 3.0, 4.0]})
    result = rank.rank_measures(table, ["dataset.f"])
    assert result.gap == "final.loss_gap"
    assert result.table.loc[0, "kendall_tau"] == pytest.approx(1.0)


def test_the_table_has_p_values_and_tau_intervals(ranking):
    _, table = ranking
    noise, gap = table.loc["noise"], table.loc["gap_itself"]
    assert noise["p_value"] > 0.01 and gap["p_value"] < 1e-10
    assert noise["tau_low"] < 0 < noise["tau_high"]  # no relation: the interval holds 0
    assert noise["tau_low"] < noise["kendall_tau"] < noise["tau_high"]
    assert "p_value" in rank.format_table(ranking[0]) and "tau_low" in rank.format_table(ranking[0])


def test_the_tau_interval_covers_the_true_tau_at_its_nominal_rate():
    rho, n, trials = 0.5, 40, 400
    true_tau = 2 / math.pi * math.asin(rho)  # bivariate normal
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(trials):
        x, y = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=n).T
        low, high = rank.tau_interval(rank.kendall_tau(x, y)[0], n)
        covered += low <= true_tau <= high
    assert 0.91 <= covered / trials <= 0.99
    assert all(math.isnan(v) for v in rank.tau_interval(0.3, 4))  # too few runs for an interval


# ---- the peers' definitions, each on a hand-worked case --------------------------------------------

def test_tau_a_counts_ties_as_zero_over_all_pairs_where_tau_b_corrects_for_them():
    """x = 1, 2, 2, 3 against y = 1, 2, 3, 4: five concordant pairs and one tie in x, of six pairs."""
    x, y = np.array([1.0, 2, 2, 3]), np.array([1.0, 2, 3, 4])
    assert rank.kendall_tau(x, y, "tau_a")[0] == pytest.approx(5 / 6)
    assert rank.kendall_tau(x, y, "tau_b")[0] == pytest.approx(5 / math.sqrt(5 * 6))
    assert rank.kendall_tau(np.ones(4), y, "tau_a")[0] == 0.0  # a constant measure: every pair a tie
    assert math.isnan(rank.kendall_tau(np.ones(4), y, "tau_b")[0])


def test_psi_skips_an_undefined_group_or_counts_it_as_zero():
    """A 2 × 2 grid: along a, the group b = 0 orders the gap rightly (τ = 1) and in the group b = 1 the
    measure is constant (τ-b undefined); along b both groups have τ = 1."""
    codes = {"a": np.array([0, 1, 0, 1]), "b": np.array([0, 0, 1, 1])}
    m, g = np.array([1.0, 2, 5, 5]), np.array([0.1, 0.2, 0.3, 0.4])
    psi, per_axis = rank.granulated_psi(m, g, codes, "tau_b", "skip")
    assert per_axis == {"a": 1.0, "b": 1.0} and psi == 1.0
    psi, per_axis = rank.granulated_psi(m, g, codes, "tau_b", "zero")
    assert per_axis == {"a": 0.5, "b": 1.0} and psi == 0.75
    # Jiang et al.'s τ-a is defined there (0), so either way it gives the zero-counting value
    assert rank.granulated_psi(m, g, codes, "tau_a", "skip")[0] == 0.75


def pgdl_scorer_by_loops(m, g, codes):
    """The PGDL scorer's K written out as its loops over models: for each pair of hyperparameters, a 2 × 2
    table per cell of the pair's values, every ordered pair of models (itself included), '>' as "+"."""
    names = list(codes)
    best = math.inf
    for h1, h2 in itertools.permutations(names, 2):
        tables = {}
        for i in range(len(m)):
            for j in range(len(m)):
                key = (codes[h1][i], codes[h1][j], codes[h2][i], codes[h2][j])
                table = tables.setdefault(key, np.zeros((2, 2)))
                table[int(g[i] > g[j]), int(m[i] > m[j])] += 1
        mis, hs = [], []
        for table in tables.values():
            p = table / table.sum()
            pg, pm = p.sum(axis=1), p.sum(axis=0)
            mis.append(sum(p[a, b] * math.log2(p[a, b] / (pg[a] * pm[b]))
                           for a in range(2) for b in range(2) if p[a, b] > 0))
            hs.append(-sum(q * math.log2(q) for q in pg if q > 0))
        if np.mean(hs) > 0:
            best = min(best, np.mean(mis) / np.mean(hs))
    return best


def test_pgdl_cmi_matches_the_scorers_loops_and_its_hand_worked_extremes():
    rng = np.random.default_rng(4)
    codes = {"a": np.repeat([0, 1, 2], 4), "b": np.tile([0, 1], 6)}  # two seeds per cell
    g = codes["a"] + 0.5 * codes["b"] + 0.4 * rng.standard_normal(12)
    m = np.round(g + 0.6 * rng.standard_normal(12), 1)
    assert rank.pgdl_mutual_information(m, g, codes) == pytest.approx(pgdl_scorer_by_loops(m, g, codes), abs=1e-12)
    # the gap itself: in every cell V_measure = V_gap, so I = H in each and K = 1
    assert rank.pgdl_mutual_information(g, g, codes) == pytest.approx(1.0)
    # the measure a itself: "−" in every cell where a_i = a_j (a tie), one fixed sign in every other
    # cell, so it carries no information in any cell: K = 0
    assert rank.pgdl_mutual_information(codes["a"].astype(float), g, codes) == 0.0
    assert math.isnan(rank.pgdl_mutual_information(m, g, {"a": codes["a"]}))  # needs two hyperparameters


def test_pgdl_cmi_counts_a_tie_as_minus_where_the_paper_makes_it_a_third_class():
    """One cell where the tie matters: a 2 × 2 grid of two seeds each, the measure tied within every seed pair."""
    codes = {"a": np.repeat([0, 1], 4), "b": np.tile([0, 0, 1, 1], 2)}
    g = np.array([0.10, 0.12, 0.30, 0.33, 0.50, 0.51, 0.70, 0.74])
    m = np.repeat([1.0, 2.0, 3.0, 4.0], 2)  # orders the cells rightly, ties within each
    # in a cell a_i = a_j, b_i = b_j (the two seeds of one setting: 4 ordered pairs) V_gap is "+" once and
    # V_measure never "+": I = 0, H(V_gap) = H(1/4); every other cell has a fixed gap sign: H = 0
    assert rank.pgdl_mutual_information(m, g, codes) == 0.0
    assert rank.pgdl_mutual_information(m, g, codes) == pytest.approx(pgdl_scorer_by_loops(m, g, codes))


def test_sign_error_all_pairs_weights_every_seed_pair_by_w_minus_a_half():
    """h = 0, 1 with seeds 0, 1 (runs 0, 1 at h = 0; 2, 3 at h = 1); n = 10,000 test samples.
    Gap differences 0.1 (w ≈ 1) for the pairs into run 2 and 0.02 (w = (1 − 2e⁻²)² ≈ 0.532) into run 3;
    the measure orders run 2 rightly and run 3 wrongly."""
    codes, seeds = {"h": np.array([0, 0, 1, 1])}, np.array([0, 1, 0, 1])
    g, m = np.array([0.0, 0.0, 0.1, 0.02]), np.array([0.0, 0.0, 1.0, -1.0])
    w_small = (1 - 2 * math.exp(-2)) ** 2
    by_seed = rank.robust_sign_error(m, g, rank.environment_pairs(codes, seeds), 10_000)
    assert by_seed["sign_error"].item() == pytest.approx(w_small / (1 + w_small))  # pairs (0,2), (1,3)
    all_pairs = rank.robust_sign_error(m, g, rank.environment_pairs(codes, None), 10_000, shifted=True)
    shift = w_small - 0.5
    assert all_pairs["sign_error"].item() == pytest.approx(2 * shift / (2 * 0.5 + 2 * shift), rel=1e-6)
    assert all_pairs["pairs"].item() == 4


def test_the_definitions_are_named_in_the_table_and_a_bad_one_is_refused():
    table = grid_table()
    chosen = rank.Definitions(tau="tau_a", psi="zero", cmi="pgdl", sign_error="all_pairs")
    result = rank.rank_measures(table, AXES + ["seed"], definitions=chosen)
    row = result.table.set_index("measure").loc["gap_itself"]
    assert (row["definition.tau"], row["definition.psi"], row["definition.cmi"], row["definition.sign_error"]) == \
        ("tau_a", "zero", "pgdl", "all_pairs")
    assert row["kendall_tau"] == pytest.approx(1.0) and row["cmi"] == pytest.approx(1.0)
    assert row["pairs_per_environment_max"] == 9  # three seeds against three
    assert "definitions: tau=tau_a, psi=zero, cmi=pgdl, sign_error=all_pairs" in rank.format_table(result)
    with pytest.raises(ValueError, match="cmi='paper' is not one of jiang, pgdl"):
        rank.Definitions(cmi="paper")


# ---- twins: one network counted once; measures that order the runs alike -------------------------

def twin_table() -> pd.DataFrame:
    """Four label-noise levels and a fifth run under another corruption name with run 3's results."""
    table = pd.DataFrame({"run_id": ["p0", "p3", "p6", "p10", "random"],
                          "corruption.name": ["labels"] * 4 + ["random_labels"],
                          "corruption.prob": [0.0, 0.3, 0.6, 1.0, 1.0], "seed": [0] * 5,
                          "final.gen_gap": [0.05, 0.3, 0.6, 0.9, 0.9], "final.train_loss": [0.01, 0.02, 0.03, 0.04, 0.04],
                          "final.test_loss": [0.2, 1.0, 2.0, 3.0, 3.0], "measures.l2": [1.0, 3.0, 2.0, 4.0, 4.0],
                          "data.test_size": [10000] * 5})
    return table


def test_a_network_in_two_configs_is_counted_once_and_named():
    table = twin_table()
    result = rank.rank_measures(table, ["corruption.name", "corruption.prob", "seed"])
    assert result.twins.to_dict("records") == [{"run_id": "random", "same_as": "p10", "by": "results"}]
    assert result.table.loc[0, "runs"] == 4
    # τ-b over the four networks: pairs (p3, p6) discordant, the other five concordant
    assert result.table.loc[0, "kendall_tau"] == pytest.approx(4 / 6)
    assert any("random is the same network as p10" in note for note in result.notes)
    kept = rank.rank_measures(table, ["corruption.name", "corruption.prob", "seed"], merge_twins=False)
    assert kept.table.loc[0, "runs"] == 5 and kept.twins.empty


def test_fingerprints_decide_where_the_records_have_them():
    from analysis import twins
    table = twin_table().assign(weights_sha256=["a", "b", "c", "d", "e"])
    assert twins.find(table).empty  # equal results, different networks: kept apart
    table.loc[1, "weights_sha256"] = "a"  # equal fingerprints: one network whatever the results
    assert twins.find(table).to_dict("records") == [{"run_id": "p3", "same_as": "p0", "by": "fingerprint"}]


def test_a_history_that_differs_keeps_results_twins_apart():
    from analysis import twins
    table = twin_table()
    history = pd.DataFrame({"run_id": ["p10", "p10", "random", "random"], "epoch": [0, 1, 0, 1],
                            "train_loss": [2.3, 0.04, 2.3, 0.04]})
    assert len(twins.find(table, history)) == 1
    history.loc[2, "train_loss"] = 2.31
    assert twins.find(table, history).empty


def test_measures_that_order_the_runs_alike_are_grouped(ranking):
    _, table = ranking
    assert table.loc["exp_gap", "same_order_as"] == "gap_itself"
    assert table.loc["gap_itself", "same_order_as"] == "gap_itself"
    assert table.loc["negative", "same_order_as"] == "negative"
    assert table.loc["noise", "same_order_as"] == "noise"


def test_the_command_line_records_the_chosen_definitions_in_rank_csv(tmp_path, capsys):
    from analysis.cli import main
    table = grid_table()
    table["run_id"] = [f"run{i:03d}" for i in range(len(table))]
    table.to_csv(tmp_path / "runs.csv", index=False)
    assert main(["rank", str(tmp_path / "runs.csv"), "--cmi", "pgdl", "--tau", "tau_a", "--out", str(tmp_path / "out")]) == 0
    written = pd.read_csv(tmp_path / "out" / "rank.csv")
    assert set(written["definition.cmi"]) == {"pgdl"} and set(written["definition.tau"]) == {"tau_a"}
    assert set(written["definition.psi"]) == {"skip"} and set(written["definition.sign_error"]) == {"seed_pairs"}
    assert "definitions: tau=tau_a, psi=skip, cmi=pgdl" in capsys.readouterr().out
    with pytest.raises(SystemExit) as bad:
        main(["rank", str(tmp_path / "runs.csv"), "--cmi", "paper"])
    assert bad.value.code == 2
