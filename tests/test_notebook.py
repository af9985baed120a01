"""The example notebook (examples/explore_sweep.ipynb) runs top to bottom on a tiny sweep: it loads the runs
table, draws, and ranks the measures as `python -m analysis rank` does."""
import pandas as pd
import pytest

from tests.helpers import REPO, launch

nbclient = pytest.importorskip("nbclient", reason="the dev extra: pip install -e '.[dev]'")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

NOTEBOOK = REPO / "examples" / "explore_sweep.ipynb"


@pytest.mark.slow
def test_the_example_notebook_explores_a_sweep(tmp_path, monkeypatch):
    sweep = tmp_path / "tiny"
    proc = launch(["-m", "model.hidden_units=4,32", "seed=0,1", "trainer.max_epochs=2", "trainer.progress=false",
                   "dataset.train_size=200", "measure=default", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    monkeypatch.setenv("GEN_SWEEP", str(sweep))
    monkeypatch.setenv("GEN_NOTEBOOK_FIGURE", str(tmp_path / "figure.png"))
    monkeypatch.setenv("GEN_NOTEBOOK_RANK", str(tmp_path / "rank.csv"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO / "examples")}}).execute()
    errors = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert (tmp_path / "figure.png").stat().st_size > 0
    # the notebook's ranking is the analysis' own (rank.csv, written by the sweep's automatic report)
    mine, written = pd.read_csv(tmp_path / "rank.csv"), pd.read_csv(sweep / "analysis" / "rank.csv")
    assert list(mine["measure"]) == list(written["measure"]) and {"num_params", "margin"} <= set(mine["measure"])
    pd.testing.assert_frame_equal(mine[["kendall_tau", "psi"]], written[["kendall_tau", "psi"]])
    assert "kendall_tau" in notebook.cells[-1].outputs[-1]["data"]["text/plain"]
