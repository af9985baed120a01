"""python launch.py --help: the groups and their options, the presets and launchers with one line each,
the two commands; nothing internal.  Generated from conf/ (gen/config/help.py), so a new option shows up."""
import pytest

from gen.config import help
from tests.helpers import CONF, launch


@pytest.fixture(scope="module")
def help_text(tmp_path_factory):
    proc = launch(["--help"], tmp_path_factory.mktemp("help"))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_help_lists_every_preset_and_launcher_with_its_summary(help_text):
    for folder, prefix in ((CONF / "experiment", ""), (CONF / "hydra" / "launcher", "hydra/launcher=")):
        for path in folder.glob("*.yaml"):
            line = next(line for line in help_text.splitlines() if line.strip().startswith(prefix + path.stem + " "))
            assert line.strip().endswith(help.summary(path)), line


def test_help_lists_the_user_groups_and_their_options_and_nothing_internal(help_text):
    assert "  model: " in help_text and "inception_small_nobn" in help_text
    assert "  optimizer/schedule: cosine, exponential, none, s5_decay, step" in help_text
    assert "s2_model" not in help_text and "measure/params" not in help_text and "@_global_" not in help_text
    assert "python launch.py -m experiment=quickstart" in help_text and "bash scripts/test.sh" in help_text
    assert "$" not in help_text  # no template variable left unfilled


def test_a_new_option_appears_without_editing_the_help(tmp_path):
    (tmp_path / "model").mkdir()
    for name in ("fc", "brand_new"):
        (tmp_path / "model" / f"{name}.yaml").write_text("name: x\n")
    assert help.groups(tmp_path) == "  model: brand_new, fc"


def test_every_preset_and_launcher_has_a_summary_line():
    for path in [*CONF.glob("experiment/*.yaml"), *CONF.glob("hydra/launcher/*.yaml")]:
        assert len(help.summary(path)) < 110, path
