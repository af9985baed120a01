"""A researcher's own code without a fork: a model, a dataset, a corruption, an optimizer and measures from a
package and a config folder outside the repository (tests/user_package.py writes them into a tmp folder), run
through launch.py and ranked by the analysis; and bad user code treated like bad config."""
import hashlib
import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from gen.config import ConfigError
from gen.config.overrides import check_group_choices
from tests.helpers import REPO, compose_config, launch, measure_context, relu_mlp
from tests.user_package import write_user_package


@pytest.fixture(scope="module")
def user_root(tmp_path_factory):
    root = write_user_package(tmp_path_factory.mktemp("outside"))
    sys.path.insert(0, str(root))  # in-process tests import labpkg as launch.py would with PYTHONPATH
    yield root
    sys.path.remove(str(root))


def user_launch(args, cwd, root, **kwargs):
    env = {"PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    flags = [a for a in args if a.startswith("-")]  # Hydra's flags before the overrides
    overrides = [a for a in args if not a.startswith("-")]
    return launch([*flags, f"hydra.searchpath=[file://{root / 'conf'}]", *overrides], cwd, env=env, **kwargs)


@pytest.mark.slow
def test_a_sweep_of_a_model_and_dataset_from_outside_the_repository_ranks_the_users_measure(user_root, tmp_path):
    sweep = tmp_path / "zoo"
    proc = user_launch(["-m", "model=lab_net", "dataset=lab_blobs", "corruption=lab_shift", "optimizer=lab_sign",
                        "measure=lab", "model.hidden=4,32", "seed=0,1", "trainer.max_epochs=3",
                        "trainer.progress=false", "analysis.auto=false", f"hydra.sweep.dir={sweep}"],
                       tmp_path, user_root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
    assert len(records) == 4 and {r["status"] for r in records} == {"completed"}
    for run in records:
        assert run["config"]["model"]["_target_"] == "labpkg.nets.TwoLayer"
        assert run["config"]["optimizer"]["_target_"] == "labpkg.optim.SignSGD"
        weights = torch.load(sweep / run["run_id"] / "model.pt", weights_only=True)
        by_hand = sum(float(w.abs().sum()) for w in weights.values())  # the measure, computed another way
        assert run["measures"]["lab_abs_sum"] == pytest.approx(by_hand, rel=1e-5)
        assert run["measures"]["num_params"] == sum(w.numel() for w in weights.values())
    ranked = subprocess.run([sys.executable, "-m", "analysis", "rank", str(sweep)], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert ranked.returncode == 0, ranked.stderr[-2000:]
    table = pd.read_csv(sweep / "analysis" / "rank.csv")
    assert {"lab_abs_sum", "num_params", "l2_path", "distance_from_init"} <= set(table["measure"])
    assert table.set_index("measure").loc["lab_abs_sum", "runs"] == 4


def test_the_users_dataset_and_corruption_reach_the_model_as_tensors(user_root):
    from gen.data import load_data
    from labpkg.data import blobs

    cfg = compose_config([f"hydra.searchpath=[file://{user_root / 'conf'}]", "dataset=lab_blobs",
                          "corruption=lab_shift", "dataset.train_size=30"])
    data = load_data(cfg.dataset, cfg.corruption, "cpu")
    clean = blobs(90, 60)
    assert data.input_shape == (6,) and data.num_classes == 3 and data.task == "classification"
    assert len(data.x_train) == 30 and torch.equal(data.x_test, clean["x_test"])
    assert int(data.corrupted.sum()) == 5 and torch.equal(data.corrupted[:5], torch.ones(5, dtype=torch.bool))


def test_a_users_measure_that_raises_or_returns_a_non_number_is_null_with_its_reason(user_root, caplog):
    from gen.measures import compute_measures
    from gen.measures.registry import code_identity

    names = ["lab_abs_sum", "lab_fails", "margin", "lab_none", "lab_string", "lab_vector", "lab_scalar_tensor",
             "lab_not_here", "num_params"]
    measure_cfg = OmegaConf.create({"modules": ["labpkg.measures"], "names": names, "params": {}})
    from gen.config.measure import check_names
    check_names(measure_cfg)  # imports labpkg.measures, as validate() does
    model = relu_mlp([4, 5, 3])
    x, y = torch.randn(20, 4), torch.arange(20) % 3
    ctx = measure_context(model, x, y)
    with caplog.at_level("WARNING", logger="gen"):
        results = compute_measures(measure_cfg, model, None, ctx.data, None)
    values, notes = results.values, dict(note.split(": ", 1) for note in results.notes)
    assert values["lab_abs_sum"] == pytest.approx(sum(float(p.detach().abs().sum()) for p in model.parameters()))
    assert values["lab_scalar_tensor"] == 2.5
    assert values["num_params"] == 5 * 4 + 5 + 3 * 5 + 3 and values["margin"] is not None
    for name, reason in [("lab_fails", "raised RuntimeError: boom"), ("lab_none", "returned NoneType"),
                         ("lab_string", "returned str '0.5', not a number"),
                         ("lab_vector", "returned a Tensor of 3 elements"), ("lab_not_here", "not for this network")]:
        assert values[name] is None and reason in notes[name], (name, notes.get(name))
    logged = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(logged) == 4 and all(line.startswith("measure lab_") and "\n" not in line for line in logged)
    import gen
    assert code_identity("margin") == f"gen {gen.__version__}"
    source = (user_root / "labpkg" / "measures.py").read_text()
    assert code_identity("lab_abs_sum") == f"labpkg.measures {hashlib.sha256(source.encode()).hexdigest()[:12]}"


BAD_CODE = [
    (["model=lab_missing"],
     "model=lab_missing: _target_ labpkg.nets.Missing cannot be imported (ImportError: labpkg.nets has no Missing)"),
    (["model=lab_net", "model._target_=labpkg.broken.Net"],
     "_target_ labpkg.broken.Net cannot be imported (ModuleNotFoundError: No module named 'a_dependency_nobody_"),
    (["model=lab_net", "+model.depth=2"],
     "model.depth=2: labpkg.nets.TwoLayer does not take depth; it takes ['hidden']"),
    (["model=lab_net", "model.hidden=wide"], "model.hidden=wide: expected an integer"),
    (["model=lab_needs_depth"], "model.depth=<missing>: labpkg.nets.NeedsDepth requires depth"),
    (["model=lab_noshape"], "model=lab_noshape: labpkg.nets.NoShape must take input_shape and num_outputs"),
    (["model=lab_wrong_width"],
     "maps a batch (2, 1, 8, 8) to (2, 11); gen's model contract: raw scores of shape (N, 10)"),
    (["dataset=lab_not_tensors"], "dataset=lab_not_tensors: labpkg.data.not_tensors returned a list"),
    (["corruption=lab_shift", "+corruption.prob=0.5"],
     "corruption.prob=0.5: labpkg.corrupt.shift_labels does not take prob; it takes ['count', 'seed']"),
    (["optimizer=lab_sign", "+optimizer.momentum=0.9"],
     "optimizer.momentum=0.9: labpkg.optim.SignSGD does not take momentum; it takes ['lr']"),
    (["measure.modules=[labpkg.broken]"], "measure.modules[0]=labpkg.broken: cannot be imported (ModuleNotFoundError"),
    (["measure.modules=[labpkg.clash]"], "clashes with gen's built-in measure of that name"),
    (["measure=lab", "measure.names=[lab_abs_sum,lab_typo]"], "measure.names[1]=lab_typo: unknown measure"),
    (["model=lab_nowhere"], "model=lab_nowhere: no such option; choose one of ["),
]


@pytest.mark.parametrize("args, line", BAD_CODE, ids=[" ".join(a) for a, _ in BAD_CODE])
def test_bad_user_code_is_one_line_exit_2_and_nothing_written(user_root, tmp_path, args, line):
    proc = user_launch([*args, "trainer.max_epochs=1", "trainer.progress=false"], tmp_path, user_root)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [text for text in proc.stderr.splitlines() if text.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: invalid config: ") and line in errors[0], proc.stderr
    assert not list(tmp_path.rglob("metrics.json")) and not list(tmp_path.rglob("*.pt"))
    assert not (tmp_path / "outputs" / "runs").exists() or not any((tmp_path / "outputs" / "runs").iterdir())


def test_an_option_from_the_search_path_is_a_known_choice(user_root):
    searchpath = f"hydra.searchpath=[file://{user_root / 'conf'}]"
    check_group_choices([searchpath, "model=lab_net", "optimizer=lab_sign"])
    with pytest.raises(ConfigError, match="model=lab_net: no such option"):
        check_group_choices(["model=lab_net"])


def test_modules_at_their_default_leave_the_run_id_as_it_was():
    from gen.sweeps.run_id import legacy_run_id, run_id

    cfg = compose_config([])
    without = OmegaConf.to_container(cfg)
    del without["measure"]["modules"]
    assert list(cfg.measure.modules) == [] and legacy_run_id(cfg) == legacy_run_id(OmegaConf.create(without))
    with_module = compose_config(["measure.modules=[json]"])
    assert run_id(with_module) == run_id(cfg)  # measures are not part of a run's id (0.6)


def test_a_users_measure_name_is_never_a_built_in_one(user_root):
    from gen.measures import measure
    from gen.measures.registry import RegistrationError

    def mine(ctx):
        return 0.0
    mine.__module__ = "labpkg.other"
    with pytest.raises(RegistrationError, match="clashes with gen's built-in"):
        measure("l2_path")(mine)
    with pytest.raises(RegistrationError, match="not ending in _size_adjusted"):
        measure("num_params_size_adjusted")(mine)


def test_a_measure_from_an_installed_distribution_is_identified_by_its_version():
    from importlib.metadata import version

    from gen.measures.registry import _distribution_of

    assert _distribution_of("omegaconf.dictconfig") == f"omegaconf {version('omegaconf')}"
    assert _distribution_of("labpkg_not_installed.measures") is None


EXAMPLE = REPO / "examples" / "my_research"


def test_the_example_package_validates_and_its_measure_matches_finite_differences(monkeypatch):
    from gen.config import validate
    from gen.data import load_data
    from gen.measures import compute_measures
    from gen.models import build_model

    monkeypatch.syspath_prepend(str(EXAMPLE))
    cfg = compose_config([f"hydra.searchpath=[file://{EXAMPLE / 'conf'}]", "model=two_layer", "dataset=rings",
                          "measure=mine", "model.hidden=8", "dataset.num_train=30", "measure.params.max_samples=12"])
    validate(cfg)
    data = load_data(cfg.dataset, cfg.corruption, "cpu")
    assert data.input_shape == (2,) and data.num_classes == 3
    torch.manual_seed(0)
    model = build_model(cfg.model, data.input_shape, data.num_outputs)
    measured = compute_measures(cfg.measure, model, None, data, None)
    value = measured.values["input_gradient_norm"]
    # central differences of each sample's own loss, in float64
    ctx = measure_context(model, data.x_train, data.y_train, max_samples=12)
    x, y = ctx.sample
    twin = ctx.twin.double()
    eps, norms = 1e-6, []
    for xi, yi in zip(x.double(), y):
        grad = []
        for d in range(xi.numel()):
            step = torch.zeros_like(xi)
            step[d] = eps
            up = torch.nn.functional.cross_entropy(twin((xi + step)[None]), yi[None])
            down = torch.nn.functional.cross_entropy(twin((xi - step)[None]), yi[None])
            grad.append(float((up - down).detach()) / (2 * eps))
        norms.append(torch.tensor(grad).norm().item())
    assert value == pytest.approx(sum(norms) / len(norms), rel=1e-4)
