"""Score every complexity measure against the generalization gap across a sweep's runs.

Four scores (Jiang et al. 2020, Dziugaite et al. 2020; their values on the real-data runs:
docs/reproductions.md, "Ranking every measure against the gap"):

- **Kendall τ** of the measure with the gap over all runs (scipy's τ-b, ties allowed), its p-value
  (scipy: the test of τ = 0) and a 95% confidence interval (:func:`tau_interval`).
- **Granulated Kendall Ψ** (Jiang et al. 2020): for each swept hyperparameter i, the mean τ over the
  groups of runs that share every other hyperparameter; Ψ is the mean over i.
- **Conditional mutual information** K (Jiang et al.; the PGDL score): over pairs of runs, with V the
  sign of a difference, K = min over conditioning sets S of at most two hyperparameters of
  I(V_measure; V_gap | U_S) / H(V_gap | U_S), where U_S is the pair's values of S.
- **Robust sign-error** (Dziugaite et al. 2020): over pairs of runs that differ in exactly one
  hyperparameter (an "environment" is a pair of such settings; runs are coupled by seed), the
  weighted mean of (1 − sign(Δmeasure)·sign(Δgap))/2, keeping pairs whose gap difference is
  significant (weight w > 0.5); reported as the worst environment and the mean over environments.

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

from gen.sweeps.run_id import NOT_IN_ID, NOT_IN_ID_TRAINER

GAP_COLUMNS = ("final.gen_gap", "final.loss_gap")  # accuracy gap; the loss gap where there is no accuracy
MEASURE_PREFIX = "measures."
# Not axes of variation: the seed (what varies within a cell), the measures themselves, and the keys
# that say how to run rather than what (gen.sweeps.run_id's: they do not enter a run's id either).
NOT_AXES = ("seed", *NOT_IN_ID)
NOT_AXES_PREFIXES = ("measure.", *(f"{key}." for key in NOT_IN_ID), *(f"trainer.{key}" for key in NOT_IN_ID_TRAINER))
MAX_PAIRS = 400_000  # CMI and sign-error work on pairs of runs; beyond this, a seeded sample of pairs
SIGNIFICANT_WEIGHT = 0.5


@dataclass
class Ranking:
    table: pd.DataFrame            # one row per measure, sorted by |τ|
    sign_errors: pd.DataFrame      # measure, axis, environment, sign_error: the distribution behind D
    gap: str                       # the gap column used
    axes: dict[str, list[str]]     # axis name → the config columns it stands for
    notes: list[str]


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
                  gap: str | None = None, test_size: int | None = None, seed: int = 0) -> Ranking:
    """The ranking table of every ``measures.*`` column (or the ``measures`` given) against the gap."""
    gap = gap or gap_column(runs)
    measures = measures if measures is not None else [c for c in runs.columns if c.startswith(MEASURE_PREFIX)]
    notes = []
    if gap is None:
        return Ranking(_empty_table(), _empty_sign_errors(), "", {}, ["no generalization gap to rank against"])
    axes = hyperparameter_axes(runs, config_columns)
    codes = {axis: pd.factorize(runs[axis], use_na_sentinel=False)[0] for axis in axes}
    seeds = runs["seed"].to_numpy() if "seed" in runs and runs["seed"].nunique() > 1 else None
    g = pd.to_numeric(runs[gap], errors="coerce").to_numpy(dtype=float)
    n_test = test_size or _test_size(runs)
    use_weights = gap == "final.gen_gap" and n_test is not None
    if not use_weights:
        notes.append("sign-error: no test-set size or no accuracy gap, so every pair with a gap difference counts")
    environments = environment_pairs(codes, seeds)
    if not axes:
        notes.append("no swept hyperparameters: Ψ and sign-error need runs that differ in one hyperparameter")
    rows, sign_rows = [], []
    rng = np.random.default_rng(seed)
    for measure in measures:
        m = pd.to_numeric(runs[measure], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(m) & np.isfinite(g)
        row = {"measure": measure.removeprefix(MEASURE_PREFIX), "runs": int(ok.sum())}
        row["kendall_tau"], row["p_value"] = kendall_tau(m[ok], g[ok])
        row["tau_low"], row["tau_high"] = tau_interval(row["kendall_tau"], row["runs"])
        psi, per_axis = granulated_psi(m, g, codes)
        row["psi"] = psi
        row.update({f"psi[{axis}]": value for axis, value in per_axis.items()})
        row["cmi"] = conditional_mutual_information(m, g, codes, rng=rng)
        errors = robust_sign_error(m, g, environments, n_test if use_weights else None)
        row["sign_error_max"] = errors["sign_error"].max() if len(errors) else math.nan
        row["sign_error_mean"] = errors["sign_error"].mean() if len(errors) else math.nan
        row["environments"] = len(errors)
        rows.append(row)
        if len(errors):
            errors.insert(0, "measure", row["measure"])
            sign_rows.append(errors)
    table = pd.DataFrame(rows) if rows else _empty_table()
    if len(table):
        order = table["kendall_tau"].abs().fillna(-1).sort_values(ascending=False, kind="stable").index
        table = table.loc[order].reset_index(drop=True)
    sign_errors = pd.concat(sign_rows, ignore_index=True) if sign_rows else _empty_sign_errors()
    return Ranking(table, sign_errors, gap, axes, notes)


def _test_size(runs: pd.DataFrame) -> int | None:
    if "data.test_size" in runs:
        sizes = pd.to_numeric(runs["data.test_size"], errors="coerce").dropna()
        if len(sizes):
            return int(sizes.min())
    return None


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame(columns=["measure", "runs", "kendall_tau", "p_value", "tau_low", "tau_high", "psi", "cmi",
                                 "sign_error_max", "sign_error_mean", "environments"])


def _empty_sign_errors() -> pd.DataFrame:
    return pd.DataFrame(columns=["measure", "axis", "environment", "sign_error", "pairs"])


# ---- Kendall τ and Ψ --------------------------------------------------------------------------

def kendall_tau(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """scipy's τ-b; NaN where it is undefined (fewer than two runs, or a constant side)."""
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan, math.nan
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


def granulated_psi(m: np.ndarray, g: np.ndarray, codes: dict[str, np.ndarray]) -> tuple[float, dict]:
    """Ψ = mean over axes i of ψ_i, ψ_i = mean τ over groups of runs that share all other axes."""
    ok = np.isfinite(m) & np.isfinite(g)
    per_axis = {}
    for axis in codes:
        others = [codes[a][ok] for a in codes if a != axis]
        group = _combine(others, ok.sum())
        taus = []
        for members in _groups(group):
            if len(np.unique(codes[axis][ok][members])) < 2:
                continue  # this group does not vary axis i
            tau, _ = kendall_tau(m[ok][members], g[ok][members])
            if not math.isnan(tau):
                taus.append(tau)
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


def _ordered_pairs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if n * (n - 1) <= MAX_PAIRS:
        i, j = np.nonzero(~np.eye(n, dtype=bool))
        return i, j
    i = rng.integers(0, n, MAX_PAIRS)
    j = (i + rng.integers(1, n, MAX_PAIRS)) % n  # j ≠ i
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


def robust_sign_error(m: np.ndarray, g: np.ndarray, environments: pd.DataFrame, n_test: int | None) -> pd.DataFrame:
    """Per environment: the w-weighted mean sign-error over its significant pairs (w > 0.5)."""
    if not len(environments):
        return _empty_sign_errors().drop(columns="measure")
    i, j = environments["i"].to_numpy(), environments["j"].to_numpy()
    d_m, d_g = m[j] - m[i], g[j] - g[i]
    w = sign_error_weight(d_g, n_test)
    keep = np.isfinite(d_m) & np.isfinite(d_g) & (w > SIGNIFICANT_WEIGHT)
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
               "sign_error_mean"]
    shown = ranking.table[columns].copy()
    text = shown.to_string(index=False, float_format=lambda v: f"{v:.{digits}f}", na_rep="–")
    header = f"measures vs {ranking.gap} over axes: {', '.join(ranking.axes) or 'none'}"
    return "\n".join([header, text] + [f"note: {n}" for n in ranking.notes])
