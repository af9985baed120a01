"""Score every complexity measure against the generalization gap across a sweep's runs.

Four scores (Jiang et al. 2020, Dziugaite et al. 2020; their values on the real-data runs:
docs/reproductions.md, "Ranking every measure against the gap").  Where the peers define a score
differently, each definition is an option (:class:`Definitions`, ``python -m analysis rank --tau …``),
named in rank.csv's ``definition.*`` columns; the defaults come first:

- **Kendall τ** of the measure with the gap over all runs, its p-value (scipy: the test of τ = 0,
  the same for both definitions) and a 95% confidence interval (:func:`tau_interval`).
  ``tau_b``: scipy's τ-b, ties corrected.  ``tau_a``: Jiang et al.'s, the mean over all pairs of
  sign(Δmeasure)·sign(Δgap), a tie counting zero.
- **Granulated Kendall Ψ** (Jiang et al. 2020): for each swept hyperparameter i, the mean τ over the
  groups of runs that share every other hyperparameter; Ψ is the mean over i.  ``skip``: a group where τ
  is undefined (the measure or the gap constant in it) is left out.  ``zero``: it counts as τ = 0, as
  Jiang et al.'s τ (ties count zero) makes it.
- **Conditional mutual information** K.  ``jiang`` (the paper): over ordered pairs of distinct runs, with V
  the sign of a difference (a tie is a third class), K = min over conditioning sets S of at most two
  hyperparameters of I(V_measure; V_gap | U_S) / H(V_gap | U_S), where U_S is the pair's values of S.
  ``pgdl`` (the PGDL competition's official scorer, the number of its leaderboard before its ×100): over
  all ordered pairs of runs, a run with itself included, V = "+" where the difference is > 0 and "−"
  otherwise (a tie is "−"); for each pair of distinct hyperparameters, the mutual information in each cell
  of the pair's values of both, averaged uniformly over the cells, over the cells' mean entropy of V_gap;
  K is the minimum over the pairs of hyperparameters (undefined below two).  Cells without a pair of runs
  (an incomplete grid; the scorer refuses those) are left out.
- **Robust sign-error** (Dziugaite et al. 2020): over pairs of runs that differ in exactly one
  hyperparameter (an "environment" is a pair of such settings), the weighted mean of
  (1 − sign(Δmeasure)·sign(Δgap))/2, with the weight w of :func:`sign_error_weight` (how surely the gap
  difference is real); reported as the worst environment and the mean over environments.
  ``seed_pairs``: runs coupled by seed where seeds vary, pairs with w > 0.5 kept and weighted by w.
  ``all_pairs`` (Dziugaite et al.'s released code): every seed of one setting against every seed of the
  other, weighted by (w − 0.5)₊.

Identical networks are counted once (analysis/twins.py; ``Ranking.twins`` names them).  Measures that
order the runs identically (monotone twins, e.g. `l2` and `l2_plain`) have equal scores;
``same_order_as`` names the first of each such group.

The swept hyperparameters ("axes") are the config columns that vary, except those that say how to
run rather than what to train, and the seed; columns that always change together (``corruption.name``
and ``corruption.prob`` when a sweep switches corruption options) form one axis.
"""
import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis import twins as twin_runs
from gen.sweeps.run_id import NOT_IN_ID, NOT_IN_ID_TRAINER

GAP_COLUMNS = ("final.gen_gap", "final.loss_gap")  # accuracy gap; the loss gap where there is no accuracy
MEASURE_PREFIX = "measures."
# Not axes of variation: the seed (what varies within a cell), the measures themselves, and the keys
# that say how to run rather than what (gen.sweeps.run_id's: they do not enter a run's id either).
NOT_AXES = ("seed", *NOT_IN_ID)
NOT_AXES_PREFIXES = ("measure.", *(f"{key}." for key in NOT_IN_ID), *(f"trainer.{key}" for key in NOT_IN_ID_TRAINER))
MAX_PAIRS = 400_000  # CMI and sign-error work on pairs of runs; beyond this, a seeded sample of pairs
SIGNIFICANT_WEIGHT = 0.5


@dataclass(frozen=True)
class Definitions:
    """Which peer's definition of each score (the module docstring); the first option is the default."""
    tau: str = "tau_b"
    psi: str = "skip"
    cmi: str = "jiang"
    sign_error: str = "seed_pairs"

    def __post_init__(self):
        for key, allowed in OPTIONS.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key}={getattr(self, key)!r} is not one of {', '.join(allowed)}")

    def columns(self) -> dict[str, str]:
        return {f"definition.{key}": getattr(self, key) for key in OPTIONS}


OPTIONS = {"tau": ("tau_b", "tau_a"), "psi": ("skip", "zero"), "cmi": ("jiang", "pgdl"),
           "sign_error": ("seed_pairs", "all_pairs")}


@dataclass
class Ranking:
    table: pd.DataFrame            # one row per measure, sorted by |τ|
    sign_errors: pd.DataFrame      # measure, axis, environment, sign_error: the distribution behind D
    gap: str                       # the gap column used
    axes: dict[str, list[str]]     # axis name → the config columns it stands for
    notes: list[str]
    twins: pd.DataFrame = None     # run_id, same_as, by: the runs counted once (analysis/twins.py)
    definitions: Definitions = Definitions()


def gap_column(runs: pd.DataFrame) -> str | None:
    for column in GAP_COLUMNS:
        if column in runs and pd.to_numeric(runs[column], errors="coerce").notna().sum() >= 2:
            return column
    return None


def hyperparameter_axes(runs: pd.DataFrame, config_columns: list[str]) -> dict[str, list[str]]:
    """Varying config columns, merged where they partition the runs identically."""
    varying = [c for c in config_columns if c in runs and not _ignored(c)
               and runs[c].nunique(dropna=False) > 1]
    by_partition: dict[tuple, list[str]] = {}
    for column in varying:
        codes = tuple(pd.factorize(runs[column], use_na_sentinel=False)[0])
        by_partition.setdefault(codes, []).append(column)
    def determined(codes):  # a column fixed by another axis never varies alone: it is folded into that axis
        return [other for other in by_partition if other != codes and _is_function_of(codes, other)]
    own = {codes: columns for codes, columns in by_partition.items() if not determined(codes)}
    folded = {codes: list(columns) for codes, columns in own.items()}
    for codes, columns in by_partition.items():
        if codes not in own:
            finest = max((o for o in determined(codes) if o in own), key=lambda o: len(set(o)))
            folded[finest] += columns
    axes = {}
    for codes, columns in own.items():
        name = min(columns, key=lambda c: (c.endswith("_target_"), runs[c].isna().any(), varying.index(c)))
        axes[name] = sorted(folded[codes], key=varying.index)
    return axes


def _is_function_of(coarse: tuple, fine: tuple) -> bool:
    """True when every value of ``fine`` determines the value of ``coarse``."""
    seen = {}
    return all(seen.setdefault(f, c) == c for c, f in zip(coarse, fine))


def _ignored(column: str) -> bool:
    return column in NOT_AXES or column.startswith(NOT_AXES_PREFIXES)


def rank_measures(runs: pd.DataFrame, config_columns: list[str], measures: list[str] | None = None,
                  gap: str | None = None, test_size: int | None = None, seed: int = 0,
                  definitions: Definitions = Definitions(), history: pd.DataFrame | None = None,
                  merge_twins: bool = True) -> Ranking:
    """The ranking table of every ``measures.*`` column (or the ``measures`` given) against the gap,
    identical networks counted once (``history``, where collected, helps tell records without a
    fingerprint apart)."""
    twins = twin_runs.find(runs.iloc[:0])
    if merge_twins:
        runs, twins = twin_runs.drop(runs, history)
    gap = gap or gap_column(runs)
    measures = measures if measures is not None else [c for c in runs.columns if c.startswith(MEASURE_PREFIX)]
    notes = [f"counted once: {row.run_id} is the same network as {row.same_as} (same {row.by})"
             for row in twins.itertuples()]
    if gap is None:
        return Ranking(_empty_table(), _empty_sign_errors(), "", {},
                       notes + ["no generalization gap to rank against"], twins, definitions)
    axes = hyperparameter_axes(runs, config_columns)
    notes += [f"axis {axis} also stands for {', '.join(c for c in columns if c != axis)}: they change together "
              "in these runs, so their effects cannot be told apart"
              for axis, columns in axes.items() if len(columns) > 1]
    codes = {axis: pd.factorize(runs[axis], use_na_sentinel=False)[0] for axis in axes}
    seeds = runs["seed"].to_numpy() if "seed" in runs and runs["seed"].nunique() > 1 else None
    g = pd.to_numeric(runs[gap], errors="coerce").to_numpy(dtype=float)
    n_test = test_size or _test_size(runs)
    use_weights = gap == "final.gen_gap" and n_test is not None
    if not use_weights:
        notes.append("sign-error: no test-set size or no accuracy gap, so every pair with a gap difference counts")
    all_pairs = definitions.sign_error == "all_pairs"
    environments = environment_pairs(codes, None if all_pairs else seeds)
    if not axes:
        notes.append("no swept hyperparameters: Ψ and sign-error need runs that differ in one hyperparameter")
    rows, sign_rows = [], []
    rng = np.random.default_rng(seed)
    for measure in measures:
        m = pd.to_numeric(runs[measure], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(m) & np.isfinite(g)
        row = {"measure": measure.removeprefix(MEASURE_PREFIX), "runs": int(ok.sum())}
        row["kendall_tau"], row["p_value"] = kendall_tau(m[ok], g[ok], definitions.tau)
        row["tau_low"], row["tau_high"] = tau_interval(row["kendall_tau"], row["runs"])
        psi, per_axis = granulated_psi(m, g, codes, definitions.tau, definitions.psi)
        row["psi"] = psi
        row.update({f"psi[{axis}]": value for axis, value in per_axis.items()})
        cmi = pgdl_mutual_information if definitions.cmi == "pgdl" else conditional_mutual_information
        row["cmi"] = cmi(m, g, codes, rng=rng)
        errors = robust_sign_error(m, g, environments, n_test if use_weights else None, shifted=all_pairs)
        row["sign_error_max"] = errors["sign_error"].max() if len(errors) else math.nan
        row["sign_error_mean"] = errors["sign_error"].mean() if len(errors) else math.nan
        row["environments"] = len(errors)
        row["pairs_per_environment_max"] = int(errors["pairs"].max()) if len(errors) else 0
        rows.append(row)
        if len(errors):
            errors.insert(0, "measure", row["measure"])
            sign_rows.append(errors)
    table = pd.DataFrame(rows) if rows else _empty_table()
    if len(table):
        order = table["kendall_tau"].abs().fillna(-1).sort_values(ascending=False, kind="stable").index
        table = table.loc[order].reset_index(drop=True)
        table["same_order_as"] = same_order_groups(runs, table["measure"], g)
        table = table.assign(**definitions.columns())
    sign_errors = pd.concat(sign_rows, ignore_index=True) if sign_rows else _empty_sign_errors()
    return Ranking(table, sign_errors, gap, axes, notes, twins, definitions)


def same_order_groups(runs: pd.DataFrame, measures: pd.Series, g: np.ndarray) -> list[str]:
    """For each measure (in table order), the first measure that orders the same runs identically: the
    same runs have a value and the ranks of the values are equal, ties included.  Such measures have equal
    scores, whatever the definitions."""
    first: dict[tuple, str] = {}
    groups = []
    for measure in measures:
        m = pd.to_numeric(runs[MEASURE_PREFIX + measure], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(m) & np.isfinite(g)
        key = (tuple(np.flatnonzero(ok)), tuple(stats.rankdata(m[ok])))
        groups.append(first.setdefault(key, measure))
    return groups


def _test_size(runs: pd.DataFrame) -> int | None:
    if "data.test_size" in runs:
        sizes = pd.to_numeric(runs["data.test_size"], errors="coerce").dropna()
        if len(sizes):
            return int(sizes.min())
    return None


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame(columns=["measure", "runs", "kendall_tau", "p_value", "tau_low", "tau_high", "psi", "cmi",
                                 "sign_error_max", "sign_error_mean", "environments", "pairs_per_environment_max",
                                 "same_order_as"])


def _empty_sign_errors() -> pd.DataFrame:
    return pd.DataFrame(columns=["measure", "axis", "environment", "sign_error", "pairs"])


# ---- Kendall τ and Ψ --------------------------------------------------------------------------

def kendall_tau(x: np.ndarray, y: np.ndarray, definition: str = "tau_b") -> tuple[float, float]:
    """τ-b (scipy) or τ-a (Jiang et al.: the mean of sign(Δx)·sign(Δy) over all pairs, ties zero), and
    scipy's p-value of τ = 0; NaN where τ-b is undefined (fewer than two runs, or a constant side) —
    τ-a is 0 on a constant side (every pair a tie) and NaN below two runs."""
    if len(x) < 2:
        return math.nan, math.nan
    constant = np.all(x == x[0]) or np.all(y == y[0])
    if definition == "tau_a":
        i, j = np.triu_indices(len(x), k=1)
        tau_a = float(np.mean(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])))
        return tau_a, (math.nan if constant else _tau_b(x, y)[1])
    if constant:
        return math.nan, math.nan
    return _tau_b(x, y)


def _tau_b(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.kendalltau(x, y)
    return float(result.statistic), float(result.pvalue)


TAU_CONFIDENCE = 0.95


def tau_interval(tau: float, n: int, confidence: float = TAU_CONFIDENCE) -> tuple[float, float]:
    """The confidence interval of Kendall's τ over ``n`` runs: Fieller, Hartley and Pearson's (1957)
    normal approximation of arctanh(τ), standard error sqrt(0.437 / (n − 4)).  Analytic, so a
    ranking of many measures over thousands of runs costs nothing more; NaN below 5 runs, where
    the approximation has no standard error."""
    if not np.isfinite(tau) or n < 5:
        return math.nan, math.nan
    z = stats.norm.ppf(0.5 + confidence / 2) * math.sqrt(0.437 / (n - 4))
    centre = math.atanh(min(max(tau, -1 + 1e-12), 1 - 1e-12))
    return math.tanh(centre - z), math.tanh(centre + z)


def granulated_psi(m: np.ndarray, g: np.ndarray, codes: dict[str, np.ndarray], tau: str = "tau_b",
                   undefined: str = "skip") -> tuple[float, dict]:
    """Ψ = mean over axes i of ψ_i, ψ_i = mean τ over groups of runs that share all other axes; a group
    where τ is undefined is skipped (``undefined="skip"``) or counts 0 (``"zero"``)."""
    ok = np.isfinite(m) & np.isfinite(g)
    per_axis = {}
    for axis in codes:
        others = [codes[a][ok] for a in codes if a != axis]
        group = _combine(others, ok.sum())
        taus = []
        for members in _groups(group):
            if len(np.unique(codes[axis][ok][members])) < 2:
                continue  # this group does not vary axis i
            value, _ = kendall_tau(m[ok][members], g[ok][members], tau)
            if not math.isnan(value):
                taus.append(value)
            elif undefined == "zero":
                taus.append(0.0)
        per_axis[axis] = float(np.mean(taus)) if taus else math.nan
    defined = [v for v in per_axis.values() if not math.isnan(v)]
    return (float(np.mean(defined)) if defined else math.nan), per_axis


def _combine(columns: list[np.ndarray], n: int) -> np.ndarray:
    """One integer code per run for the tuple of its codes in ``columns``."""
    if not columns:
        return np.zeros(n, dtype=np.int64)
    stacked = np.stack(columns, axis=1)
    return np.unique(stacked, axis=0, return_inverse=True)[1].reshape(-1)


def _groups(code: np.ndarray):
    order = np.argsort(code, kind="stable")
    bounds = np.flatnonzero(np.diff(code[order])) + 1
    return np.split(order, bounds)


# ---- conditional mutual information -------------------------------------------------------------

def conditional_mutual_information(m: np.ndarray, g: np.ndarray, codes: dict[str, np.ndarray],
                                   max_set: int = 2, rng: np.random.Generator | None = None) -> float:
    """K(μ) = min over |S| ≤ max_set of I(V_μ; V_gap | U_S) / H(V_gap | U_S), over ordered pairs of runs."""
    idx = np.flatnonzero(np.isfinite(m) & np.isfinite(g))
    if len(idx) < 2:
        return math.nan
    i, j = _ordered_pairs(len(idx), rng or np.random.default_rng(0))
    i, j = idx[i], idx[j]
    v_m, v_g = np.sign(m[i] - m[j]).astype(np.int64), np.sign(g[i] - g[j]).astype(np.int64)
    best = math.inf
    for size in range(min(max_set, len(codes)) + 1):
        for subset in itertools.combinations(codes, size):
            run_code = _combine([codes[a] for a in subset], len(m))
            u = run_code[i] * (run_code.max() + 1) + run_code[j]
            h_g_given_u = _entropy(u, v_g) - _entropy(u)
            if h_g_given_u <= 1e-12:
                continue  # the gap's sign is fixed by S: nothing left to explain
            cmi = _entropy(u, v_m) + _entropy(u, v_g) - _entropy(u, v_m, v_g) - _entropy(u)
            best = min(best, max(cmi, 0.0) / h_g_given_u)
    return best if best < math.inf else math.nan


def pgdl_mutual_information(m: np.ndarray, g: np.ndarray, codes: dict[str, np.ndarray],
                            rng: np.random.Generator | None = None) -> float:
    """The PGDL competition scorer's K (module docstring): min over pairs of hyperparameters of the
    cell-averaged I(V_measure; V_gap) over the cell-averaged H(V_gap), in bits, ties "−"."""
    idx = np.flatnonzero(np.isfinite(m) & np.isfinite(g))
    if len(idx) < 2 or len(codes) < 2:
        return math.nan
    i, j = _ordered_pairs(len(idx), rng or np.random.default_rng(0), with_self=True)
    i, j = idx[i], idx[j]
    v_m, v_g = (m[i] > m[j]).astype(np.int64), (g[i] > g[j]).astype(np.int64)
    best = math.inf
    for first, second in itertools.combinations(codes, 2):
        cell = _combine([codes[first][i], codes[first][j], codes[second][i], codes[second][j]], len(i))
        counts = np.zeros((cell.max() + 1, 2, 2))
        np.add.at(counts, (cell, v_g, v_m), 1)
        information, entropy = _mi_and_gap_entropy(counts)
        if entropy.mean() > 1e-12:
            best = min(best, information.mean() / entropy.mean())
    return best if best < math.inf else math.nan


def _mi_and_gap_entropy(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell of ``counts`` (cell × gap sign × measure sign): I(V_gap; V_measure) and H(V_gap), bits."""
    joint = counts / counts.sum(axis=(1, 2), keepdims=True)
    p_gap, p_measure = joint.sum(axis=2, keepdims=True), joint.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log2(joint / (p_gap * p_measure)), 0.0)
        gap_terms = np.where(p_gap > 0, -p_gap * np.log2(p_gap), 0.0)
    return terms.sum(axis=(1, 2)), gap_terms.sum(axis=(1, 2))


def _ordered_pairs(n: int, rng: np.random.Generator, with_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    if n * (n - 1 + with_self) <= MAX_PAIRS:
        i, j = np.nonzero(np.ones((n, n), dtype=bool) if with_self else ~np.eye(n, dtype=bool))
        return i, j
    i = rng.integers(0, n, MAX_PAIRS)
    j = rng.integers(0, n, MAX_PAIRS) if with_self else (i + rng.integers(1, n, MAX_PAIRS)) % n  # j ≠ i
    return i, j


def _entropy(*columns: np.ndarray) -> float:
    """Plug-in joint entropy (nats) of integer columns."""
    _, counts = np.unique(np.stack(columns, axis=1), axis=0, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


# ---- robust sign-error ---------------------------------------------------------------------------

def environment_pairs(codes: dict[str, np.ndarray], seeds: np.ndarray | None) -> pd.DataFrame:
    """Pairs of runs (i, j) that differ in exactly one axis, with their environment: the axis and the
    pair of settings.  Runs are coupled by seed where seeds vary and match; else every pair counts."""
    frames = []
    n = len(next(iter(codes.values()))) if codes else 0
    for axis in codes:
        others = _combine([codes[a] for a in codes if a != axis], n)
        runs = pd.DataFrame({"run": np.arange(n), "others": others, "value": codes[axis]})
        if seeds is not None:
            runs["seed"] = seeds
        if _pair_count(runs["others"]) > 50 * MAX_PAIRS:
            continue  # too many pairs to enumerate (a sweep of thousands of runs along one axis)
        pairs = runs.merge(runs, on="others", suffixes=("_a", "_b"))
        pairs = pairs[pairs["value_a"] < pairs["value_b"]]
        if seeds is not None:
            coupled = pairs[pairs["seed_a"] == pairs["seed_b"]]
            pairs = coupled if len(coupled) else pairs
        if not len(pairs):
            continue
        env = pairs["others"].astype(str) + ":" + pairs["value_a"].astype(str) + "-" + pairs["value_b"].astype(str)
        frames.append(pd.DataFrame({"i": pairs["run_a"].to_numpy(), "j": pairs["run_b"].to_numpy(),
                                    "axis": axis, "environment": f"{axis}@" + env.to_numpy()}))
    if not frames:
        return pd.DataFrame(columns=["i", "j", "axis", "environment"])
    return pd.concat(frames, ignore_index=True)


def _pair_count(group: pd.Series) -> int:
    sizes = group.value_counts().to_numpy()
    return int((sizes * sizes).sum())


def sign_error_weight(gap_difference: np.ndarray, n: int | None) -> np.ndarray:
    """Dziugaite et al.'s w = max(0, 1 − 2·exp(−2n(|Δgap|/2)²))²: how surely a gap difference measured
    on n test samples is real (Hoeffding).  Without n, every nonzero difference gets weight 1."""
    if n is None:
        return (gap_difference != 0).astype(float)
    return np.maximum(0.0, 1.0 - 2.0 * np.exp(-2.0 * n * (np.abs(gap_difference) / 2.0) ** 2)) ** 2


def robust_sign_error(m: np.ndarray, g: np.ndarray, environments: pd.DataFrame, n_test: int | None,
                      shifted: bool = False) -> pd.DataFrame:
    """Per environment: the weighted mean sign-error over its significant pairs: weights w over the pairs
    with w > 0.5, or (``shifted``, Dziugaite et al.'s code) weights (w − 0.5)₊."""
    if not len(environments):
        return _empty_sign_errors().drop(columns="measure")
    i, j = environments["i"].to_numpy(), environments["j"].to_numpy()
    d_m, d_g = m[j] - m[i], g[j] - g[i]
    w = sign_error_weight(d_g, n_test)
    if shifted:
        w = np.maximum(w - SIGNIFICANT_WEIGHT, 0.0) if n_test is not None else np.ones_like(w)
    keep = np.isfinite(d_m) & np.isfinite(d_g) & ((w > 0) if shifted else (w > SIGNIFICANT_WEIGHT))
    if not keep.any():
        return _empty_sign_errors().drop(columns="measure")
    errors = (1.0 - np.sign(d_m[keep]) * np.sign(d_g[keep])) / 2.0
    kept = pd.DataFrame({"axis": environments["axis"].to_numpy()[keep],
                         "environment": environments["environment"].to_numpy()[keep],
                         "weighted": errors * w[keep], "w": w[keep]})
    per_env = kept.groupby(["axis", "environment"], sort=False).agg(weighted=("weighted", "sum"), w=("w", "sum"),
                                                                    pairs=("w", "size")).reset_index()
    per_env["sign_error"] = per_env["weighted"] / per_env["w"]
    return per_env[["axis", "environment", "sign_error", "pairs"]]


def format_table(ranking: Ranking, digits: int = 3) -> str:
    """The ranking as aligned text for the terminal."""
    if not len(ranking.table):
        return "no measures to rank" + "".join(f"\n  note: {n}" for n in ranking.notes)
    columns = ["measure", "runs", "kendall_tau", "p_value", "tau_low", "tau_high", "psi", "cmi", "sign_error_max",
               "sign_error_mean", "same_order_as"]
    shown = ranking.table[[c for c in columns if c in ranking.table]].copy()
    text = shown.to_string(index=False, float_format=lambda v: f"{v:.{digits}f}", na_rep="–")
    header = f"measures vs {ranking.gap} over axes: {', '.join(ranking.axes) or 'none'}"
    chosen = ", ".join(f"{key}={value}" for key, value in vars(ranking.definitions).items())
    return "\n".join([header, f"definitions: {chosen}", text] + [f"note: {n}" for n in ranking.notes])
