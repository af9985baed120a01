"""Each study's figures are drawn from small sweeps written as real run folders (metrics.json,
.hydra/), as the presets would leave them, and come out as non-empty PNGs."""
import numpy as np
import pytest

from analysis.cli import main
from analysis.collect import collect
from analysis.figures import detect_studies, draw_figures
from analysis.testing import make_config, make_history, write_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def s1_width_sweep(root, name="neyshabur_width"):
    rng = np.random.default_rng(0)
    for h in (4, 16, 64, 256):
        for corruption in ("none", "random_labels"):
            for seed in (0, 1):
                random = corruption != "none"
                margin = (0.5 if random else 2.0) * (1 + 0.1 * rng.standard_normal())
                write_run(root, make_config(name, **{"model.hidden_units": h, "corruption.name": corruption,
                                                     "seed": seed}),
                          train_acc=1.0, test_acc=0.1 if random else 0.9 + 0.01 * np.log2(h) + 0.01 * rng.random(),
                          measures={"num_params": 74 * h, "margin": margin, "l2": h ** 0.5 / margin ** 2,
                                    "spectral": h / margin ** 2})
    return root


def s1_size_sweep(root):
    for n in (100, 300, 1000):
        for corruption in ("none", "random_labels"):
            random = corruption != "none"
            write_run(root, make_config("neyshabur_size", **{"dataset.train_size": n, "corruption.name": corruption}),
                      train_size=n, test_acc=0.1 if random else 0.7 + 0.05 * np.log10(n),
                      measures={"margin": 1.0, "l2": n * (3 if random else 1)})
    return root


def s2_sweep(root):
    """Zhang's label-noise study: corruption levels × two models, with split accuracy and interpolation."""
    for model in ("mlp1", "alexnet_small"):
        for p in (0.0, 0.5, 1.0):
            for seed in (0, 1):
                name = "none" if p == 0 else "labels"
                config = make_config("zhang_label_noise", **{"model.name": model, "corruption.name": name,
                                                             "corruption.prob": p, "seed": seed})
                epochs = int(12 + 12 * p) + seed
                history = make_history(epochs, 50, 1.0, 0.9 - 0.8 * p, rate=1.0 / (1 + p))
                for row in history:
                    row["split_acc.train_clean"] = row["train_acc"]
                    row["split_acc.train_corrupted"] = row["train_acc"] ** 3 if p > 0 else None
                write_run(root, config, history=history,
                          split_acc={"train_clean": 1.0, "train_corrupted": 1.0 if p > 0 else None},
                          measures={"margin": 1.0 - 0.5 * p + 0.01 * seed, "l2": 1 + p + 0.01 * seed})
    return root


def s2_randomization_sweep(root):
    for corruption in ("none", "random_labels", "shuffled_pixels", "random_pixels", "gaussian"):
        write_run(root, make_config("zhang_randomization", **{"corruption.name": corruption}),
                  epochs=20, test_acc=0.9 if corruption == "none" else 0.1)
    return root


def s2_bn_sweep(root):
    for model in ("inception_small", "inception_small_nobn"):
        for seed in (0, 1):
            write_run(root, make_config("zhang_bn_ablation", **{"model.name": model, "seed": seed}), epochs=15,
                      test_acc=0.85 if model == "inception_small" else 0.8)
    return root


def s4_sweep(root):
    rng = np.random.default_rng(1)
    for model in ("simple_batch", "middle_batch"):
        for optimizer in ("sgd", "adam", "adagrad"):
            for sam in (False, True):
                sharp = 10 ** rng.uniform(0, 3)
                write_run(root, make_config("sharpness_optimizers", **{"model.name": model, "optimizer.name": optimizer,
                                                                        "optimizer.sam.enabled": sam}),
                          test_acc=0.95 - 0.03 * np.log10(sharp), measures={"min_sharpness": sharp, "margin": 1.0})
    return root


def s5_sweep(root):
    rng = np.random.default_rng(2)
    for f in (0.25, 0.5, 1.0):
        for seed in (0, 1, 2):
            epochs = 10
            per_epoch = list(f * np.exp(-np.arange(epochs) / 5) + 0.01 * rng.random(epochs))
            history = make_history(epochs, 100, 0.5, 0.5, bias_trajectory_epoch=per_epoch,
                                   lipschitz=list(f * (1 + np.arange(epochs) / 5)))
            for row in history:
                row["train_acc"] = row["test_acc"] = None
            config = make_config("steady_sinusoid", **{"dataset.name": "sinusoid", "dataset.f": f, "seed": seed})
            write_run(root, config, history=history,
                      measures={"bias_trajectory": sum(per_epoch), "bias_variance": f * rng.random(),
                                "bias_distance_init": f + 0.1 * rng.random(), "lipschitz": f * 3})
    return root


STUDIES = {"s1_width": (s1_width_sweep, ["s1_error_vs_hidden_units", "s1_measures_vs_hidden_units"]),
           "s1_size": (s1_size_sweep, ["s1_error_vs_train_size", "s1_measures_vs_train_size"]),
           "s2": (s2_sweep, ["s2_loss_vs_step", "s2_time_to_interpolation", "s2_test_error_at_interpolation",
                             "s3_split_accuracy_vs_corruption", "s3_split_accuracy_vs_epoch"]),
           "s2_randomization": (s2_randomization_sweep, ["s2_loss_vs_step"]),
           "s2_bn": (s2_bn_sweep, ["s2_batch_norm_ablation"]),
           "s4": (s4_sweep, ["s4_sharpness_vs_gap", "s4_optimizers"]),
           "s5": (s5_sweep, ["s5_trajectory", "s5_violins", "s5_lipschitz_vs_epoch"])}


def assert_png(path):
    assert path.exists(), path
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000, path


@pytest.mark.parametrize("study", list(STUDIES))
def test_each_study_draws_its_figures(tmp_path, study):
    make, expected = STUDIES[study]
    sweep = make(tmp_path / "sweep")
    collection = collect([sweep])
    drawn = draw_figures(collection.runs, collection.history, tmp_path / "figures")
    written = {d.path.stem: d.path for d in drawn if d.path is not None}
    assert set(expected) <= set(written), [(d.name, d.skipped) for d in drawn]
    for name in expected:
        assert_png(written[name])


def test_studies_are_inferred_from_what_varies(tmp_path):
    """Without a preset name, the varying keys choose the figures."""
    sweep = tmp_path / "sweep"
    for h in (8, 32):
        for p in (0.0, 1.0):
            write_run(sweep, make_config("default", **{"model.hidden_units": h, "corruption.name": "labels",
                                                       "corruption.prob": p}))
    collection = collect([sweep])
    assert detect_studies(collection.runs, collection.history) == ["s1_width", "s2"]
    write_run(tmp_path / "s4", make_config("my_sweep", **{"optimizer.name": "adam"}))
    write_run(tmp_path / "s4", make_config("my_sweep", **{"optimizer.name": "sgd"}))
    collection = collect([tmp_path / "s4"])
    assert detect_studies(collection.runs, collection.history) == ["s4"]


def test_generic_plot_of_run_and_history_columns(tmp_path, capsys):
    sweep = s1_width_sweep(tmp_path / "sweep")
    out = tmp_path / "out"
    assert main(["plot", str(sweep), "--out", str(out), "--x", "model.hidden_units", "--y", "final.test_error",
                 "--hue", "corruption.name"]) == 0
    assert main(["plot", str(sweep), "--out", str(out), "--x", "epoch", "--y", "train_loss",
                 "--hue", "model.hidden_units", "--col", "corruption.name"]) == 0
    printed = capsys.readouterr().out
    assert_png(out / "figures" / "plot_final.test_error_vs_model.hidden_units_by_corruption.name.png")
    assert_png(out / "figures" / "plot_train_loss_vs_epoch_by_model.hidden_units_per_corruption.name.png")
    assert "wrote" in printed
    assert main(["plot", str(sweep), "--out", str(out), "--x", "epoch", "--y", "no_such_column"]) == 2


def test_error_figures_draw_the_chance_level_and_name_the_seeds_only_when_they_vary(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from analysis.figures import style

    collection = collect([s1_width_sweep(tmp_path / "sweep")])
    assert style.chance_error(collection.runs) == pytest.approx(90.0)        # 10 classes
    saved = {}
    monkeypatch.setattr(plt, "close", lambda fig: saved.setdefault("fig", fig))
    draw_figures(collection.runs, collection.history, tmp_path / "figures", studies=["s1_width"])
    ax = saved["fig"].axes[0]
    assert [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == ":"] == [pytest.approx(90.0)]
    assert "chance" in [text.get_text() for text in ax.texts]
    assert ax.get_title() == "train and test error (mean ± sd over 2 seeds)"
    one_seed = collection.runs[collection.runs["seed"] == 0]
    assert style.over_seeds(one_seed) == ""
    assert style.chance_error(one_seed.assign(**{"data.num_classes": 0})) is None    # regression: no chance level


def undefined_margin_sweep(root):
    """The S1 width sweep plus two random-label runs whose margin is ≤ 0, so l2 and spectral are null
    there (with the note gen writes)."""
    s1_width_sweep(root)
    for h in (4, 16):
        note = "the margin (10th percentile) is -0.3 ≤ 0: the network misclassifies that share of the sample"
        write_run(root, make_config("neyshabur_width", **{"model.hidden_units": h, "corruption.name": "random_labels",
                                                          "seed": 2}),
                  train_acc=0.4, test_acc=0.1, measures={"num_params": 74 * h, "margin": -0.3, "l2": None,
                                                         "spectral": None},
                  notes=[f"l2: {note}", f"spectral: {note}"])
    return root


def test_measure_panels_mark_the_runs_whose_margin_is_not_positive(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from analysis.figures import style

    collection = collect([undefined_margin_sweep(tmp_path / "sweep")])
    assert style.undefined_by_margin(collection.runs, "measures.l2").sum() == 2
    assert style.undefined_by_margin(collection.runs, "measures.num_params").sum() == 0  # defined there
    figures = []
    monkeypatch.setattr(plt, "close", lambda fig: figures.append(fig))
    draw_figures(collection.runs, collection.history, tmp_path / "figures", studies=["s1_width"])
    measures_fig = next(f for f in figures if "complexity measures" in f.get_suptitle())
    panels = {ax.get_title(): ax for ax in measures_fig.axes if ax.get_visible()}
    l2 = next(ax for title, ax in panels.items() if title.startswith("ℓ2 norm"))
    crosses = [c for c in l2.collections if c.get_gid() == style.UNDEFINED_GID]
    assert sorted(x for c in crosses for x in c.get_offsets()[:, 0]) == [4, 16]
    assert l2.get_yscale() == "log"  # absolute values: the true/random factor reads off the axis
    legend = [t.get_text() for t in measures_fig.axes[0].get_legend().get_texts()]
    assert style.UNDEFINED_BY_MARGIN in legend
    assert measures_fig.get_suptitle().endswith("(mean ± sd over 3 seeds)")


def test_the_report_counts_the_runs_whose_margin_is_not_positive(tmp_path):
    sweep = undefined_margin_sweep(tmp_path / "sweep")
    assert main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "2 of 18 runs have a margin γ ≤ 0" in report and "l2, spectral — which divide by γ" in report
    assert "| p_value | tau_95%_interval |" in report


def test_a_ranking_score_without_values_says_no_data(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    import pandas as pd

    from analysis.figures.ranking import draw_ranking
    from analysis.rank import Ranking

    table = pd.DataFrame({"measure": ["l2", "margin"], "runs": [6, 6], "kendall_tau": [0.5, -0.2],
                          "p_value": [0.1, 0.5], "tau_low": [-0.2, -0.7], "tau_high": [0.9, 0.5],
                          "psi": [np.nan, np.nan], "cmi": [0.1, 0.0], "sign_error_max": [np.nan, np.nan],
                          "sign_error_mean": [np.nan, np.nan]})
    figures = []
    monkeypatch.setattr(plt, "close", lambda fig: figures.append(fig))
    draw_ranking(Ranking(table, pd.DataFrame(), "final.gen_gap", {}, []), tmp_path)
    psi_ax, cmi_ax = figures[0].axes[1], figures[0].axes[2]
    assert any(t.get_text().startswith("no data") for t in psi_ax.texts) and not psi_ax.patches
    assert not any(t.get_text().startswith("no data") for t in cmi_ax.texts) and cmi_ax.patches


@pytest.mark.parametrize("make, study", [("s4_sweep", "s4"), ("s2_bn_sweep", "s2_bn")])
def test_accuracy_figures_draw_the_chance_accuracy(make, study, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", lambda fig: figures.append(fig))
    collection = collect([globals()[make](tmp_path / "sweep")])
    draw_figures(collection.runs, collection.history, tmp_path / "figures", studies=[study])
    accuracy_axes = [ax for fig in figures for ax in fig.axes if "accuracy (%)" in ax.get_ylabel()
                     and "gap" not in ax.get_ylabel()]
    assert accuracy_axes
    for ax in accuracy_axes:
        assert [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == ":"] == [pytest.approx(10.0)]


def test_the_ranking_figure_draws_rank_csv_one_row_per_same_order_group(tmp_path, monkeypatch):
    """Drawn from the table rank.csv holds: τ's interval lines at its tau_low/tau_high, measures that order
    the runs alike in one row named by all of them, and with one pair per environment the mean sign-error
    panel with the reason the worst is not drawn."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from analysis.figures.ranking import draw_ranking
    from analysis.rank import Ranking

    table = pd.DataFrame({"measure": ["l2", "l2_plain", "margin"], "runs": [6, 6, 6],
                          "kendall_tau": [0.5, 0.5, -0.2], "p_value": [0.1, 0.1, 0.5],
                          "tau_low": [-0.2, -0.2, -0.7], "tau_high": [0.9, 0.9, 0.5], "psi": [0.3, 0.3, 0.0],
                          "cmi": [0.1, 0.1, 0.0], "sign_error_max": [1.0, 1.0, 1.0],
                          "sign_error_mean": [0.25, 0.25, 0.5], "pairs_per_environment_max": [1, 1, 1],
                          "same_order_as": ["l2", "l2", "margin"]})
    csv = tmp_path / "rank.csv"
    table.to_csv(csv, index=False)
    figures = []
    monkeypatch.setattr(plt, "close", lambda fig: figures.append(fig))
    draw_ranking(Ranking(pd.read_csv(csv), pd.DataFrame(), "final.gen_gap", {}, []), tmp_path)
    tau_ax, sign_ax = figures[0].axes[0], figures[0].axes[3]
    labels = [t.get_text() for t in tau_ax.get_yticklabels()]
    assert labels == ["ℓ2 norm / γ² = Π‖W‖_F / γ (S1 code)", "margin γ"]
    (intervals,) = tau_ax.collections
    assert [list(segment[:, 0]) for segment in intervals.get_segments()] == [[-0.2, 0.9], [-0.7, 0.5]]
    assert "the worst is 0 or 1" in sign_ax.get_title()
    assert [round(p.get_width(), 2) for p in sign_ax.patches] == [0.25, 0.5]


def test_coinciding_randomization_curves_stay_visible_and_s4_names_its_optimizers(tmp_path, monkeypatch):
    """S2's loss curves: a dash pattern per test, so true labels show under shuffled pixels (their curves
    coincide on an MLP). S4: optimizers as the paper names them, sharpness as points on its log axis."""
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", lambda fig: figures.append(fig))
    collection = collect([s2_randomization_sweep(tmp_path / "s2")])
    draw_figures(collection.runs, collection.history, tmp_path / "figures", studies=["s2"])
    loss = next(f for f in figures if f.get_suptitle().startswith("training loss"))
    (ax,) = [a for a in loss.axes if a.lines]
    curves = [line for line in ax.lines if len(line.get_xdata()) > 2]
    assert len(curves) == 5
    assert len({(line._dash_pattern[0], tuple(line._dash_pattern[1] or ())) for line in curves}) == 5
    figures.clear()
    collection = collect([s4_sweep(tmp_path / "s4")])
    draw_figures(collection.runs, collection.history, tmp_path / "figures4", studies=["s4"])
    bars = next(f for f in figures if f.get_suptitle().startswith("by optimizer"))
    names = {t.get_text() for t in bars.axes[0].get_xticklabels()}
    assert names == {"SGD", "Adam", "Adagrad"}
    sharpness = [a for a in bars.axes if a.get_ylabel() == "minimum sharpness"]
    assert sharpness and not sharpness[0].patches and sharpness[0].get_yscale() == "log"
