"""docs/measures.md against the code: a row for every registered measure, its sets column equal
to the sets' lists, the conventions table equal to gen.measures.conventions, and the values of the
fixed network under each convention recomputed."""
import re

import pytest
from omegaconf import OmegaConf

from gen.measures.conventions import CONVENTIONS
from gen.measures.reference import block, conventions_table, reference_values
from gen.measures.registry import MEASURES
from tests.helpers import CONF, REPO

PAGE = (REPO / "docs" / "measures.md").read_text()
SET_LETTERS = {"d": "default", "n": "norms", "s": "sharpness", "t": "trajectory", "N": "neyshabur2017",
               "J": "jiang2020", "h": "heavy_tail", "p": "pgdl", "c": "certified"}


def measure_table_lines() -> list[tuple[str, list[str]]]:
    """(measure, its cells) for each row of the tables of the page's "The measures" section."""
    section = PAGE.split("## The measures", 1)[1].split("## One network", 1)[0]
    rows = []
    for line in section.splitlines():
        found = re.match(r"\| `([^`]+)` \|(.*)\|$", line)
        if found:
            rows.append((found.group(1), [cell.strip() for cell in re.split(r"(?<!\\)\|", found.group(2))]))
    return rows


def measure_rows() -> dict[str, list[str]]:
    return dict(measure_table_lines())


def test_every_registered_measure_has_one_row_and_no_row_names_an_unknown_measure():
    names = [name for name, _ in measure_table_lines()]
    assert len(names) == len(set(names))
    assert set(names) == set(MEASURES)


def test_the_sets_column_lists_exactly_the_sets_that_list_the_measure():
    for name, cells in measure_rows().items():
        listed = {SET_LETTERS[letter] for letter in cells[2].split()}
        actual = {s for s in SET_LETTERS.values() if name in OmegaConf.load(CONF / "measure" / f"{s}.yaml").names}
        assert listed == actual, name


def test_the_size_adjusted_mark_matches_the_registry():
    for name, cells in measure_rows().items():
        assert ("(*sa*)" in cells[0]) == (MEASURES[name].size_adjust is not None), name


def test_the_conventions_table_is_the_one_the_code_defines():
    assert block(PAGE, "conventions") == conventions_table()


def parse_values() -> dict[str, dict[str, float | None]]:
    lines = block(PAGE, "values").splitlines()
    header = re.findall(r"`([^`]+)`", lines[0])
    assert header == list(CONVENTIONS)
    table = {c: {} for c in header}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        name = cells[0].strip("`")
        for convention, cell in zip(header, cells[1:]):
            table[convention][name] = None if cell == "—" else float(cell)
    return table


def test_the_values_table_is_recomputed_from_the_fixed_network():
    shown, computed = parse_values(), reference_values()
    for convention, values in computed.items():
        assert list(shown[convention]) == list(values), convention
        for name, value in values.items():
            if value is None:
                assert shown[convention][name] is None, (convention, name)
            else:
                assert shown[convention][name] == pytest.approx(value, rel=1e-4, abs=1e-9), (convention, name)


def test_every_setting_changes_some_value_of_the_fixed_network():
    shown = parse_values()
    jiang, gen, ney = shown["jiang2020"], shown["gen"], shown["neyshabur2017"]
    assert jiang["margin"] != gen["margin"] == ney["margin"]                 # margin_rank
    assert len({gen["num_params"], jiang["num_params"], ney["num_params"]}) == 2  # no BatchNorm: S1 = gen
    assert gen["path_norm"] != ney["path_norm"] == jiang["path_norm"]        # path_biases
    assert gen["spectral_product"] != ney["spectral_product"]                # conv_spectral
    assert gen["pacbayes_flatness"] != jiang["pacbayes_flatness"]            # pacbayes_sigma
    assert gen["sharpness_orig"] != jiang["sharpness_orig"]                  # pacbayes_vector (α is the same)
    assert gen["sharpness_flatness"] == jiang["sharpness_flatness"]


def test_the_readme_measures_section_links_the_page():
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Complexity measures", 1)[1].split("\n## ", 1)[0]
    assert "docs/measures.md" in section
