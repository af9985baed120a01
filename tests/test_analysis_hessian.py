"""``python -m analysis hessian RUN_DIR``: a trained run's Hessian spectral density, from its saved
weights, drawn and tabled; refused, in one line, for a folder without weights."""
import json

import pytest

from analysis.cli import main
from analysis.hessian import DENSITY_FILE, NODES_FILE
from gen.run import FINAL_WEIGHTS
from tests.helpers import compose_config, train_and_read

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    cfg = compose_config(["model.hidden_units=6", "dataset.train_size=60", "trainer.max_epochs=3",
                          "trainer.progress=false", "measure.names=[hessian_top_eig]",
                          "measure.params.power_tolerance=1e-9", "measure.params.power_iterations=300"])
    metrics = train_and_read(cfg, run_dir)
    assert metrics["status"] == "completed"
    return run_dir, metrics


def test_the_density_of_a_trained_run_is_drawn_and_its_largest_node_is_the_top_eigenvalue(trained_run, capsys):
    run_dir, metrics = trained_run
    assert main(["hessian", str(run_dir), "--runs", "2", "--steps", "40"]) == 0
    out = run_dir / "analysis"
    assert (out / DENSITY_FILE).read_bytes().startswith(PNG_MAGIC)
    table = json.loads((out / NODES_FILE).read_text())
    assert table["runs"] == 2 and len(table["probes"]) == 2
    for probe in table["probes"]:
        assert sum(probe["weights"]) == pytest.approx(1.0, rel=1e-9)
    largest = max(max(probe["nodes"]) for probe in table["probes"])
    # the same Hessian (subsample, folded twin) as the run's measure: 40 steps reach its top eigenvalue
    assert largest == pytest.approx(metrics["measures"]["hessian_top_eig"], rel=1e-3)
    assert f"wrote {out / DENSITY_FILE}" in capsys.readouterr().out


def test_a_run_without_saved_weights_is_refused_in_one_line(trained_run, tmp_path, capsys):
    run_dir, _ = trained_run
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "metrics.json").write_text((run_dir / "metrics.json").read_text())
    assert main(["hessian", str(bare)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and FINAL_WEIGHTS in error


def test_the_probe_count_must_be_positive(trained_run, capsys):
    run_dir, _ = trained_run
    with pytest.raises(SystemExit) as exit_:
        main(["hessian", str(run_dir), "--runs", "0"])
    assert exit_.value.code == 2 and "must be a whole number" in capsys.readouterr().err
