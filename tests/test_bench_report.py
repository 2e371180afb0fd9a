"""bench/README.md's figures are generated from bench/results.json: the two never disagree."""

from __future__ import annotations

import copy

import pytest

from bench import report

SECTIONS = ["recipe", "planning", "tracker", "layers", "mosaics", "draw", "scheduling", "ui", "sampling", "mutation"]


@pytest.fixture(scope="module")
def results() -> dict:
    return report.load()


def test_readme_tables_are_those_of_results_json(results):
    readme = report.README.read_text()
    assert report.update(readme, report.render(results)) == readme, (
        "bench/README.md differs from bench/results.json: run 'python -m bench.report' (or make bench)"
    )


def test_every_section_is_measured_and_dated(results):
    blocks = report.render(results)
    assert list(blocks) == SECTIONS  # not a loop over nothing
    for name, text in blocks.items():
        assert "| --- |" in text or "|---|" in text.replace(" ", ""), f"{name}: no table"
        assert "Not measured yet" not in text, name
        assert "date not recorded" not in text, name


def test_a_changed_figure_changes_its_table(results):
    changed = copy.deepcopy(results)
    changed["scheduling"]["ours"]["wall_over_ideal"] = 9.87
    before, after = report.render(results)["scheduling"], report.render(changed)["scheduling"]
    assert "9.87x" in after and "9.87x" not in before
    readme = report.README.read_text()
    assert "9.87x" in report.update(readme, report.render(changed))


def test_a_readme_without_a_block_is_refused(results):
    with pytest.raises(ValueError, match=r"has no <!-- bench:planning --> block"):
        report.update("# Benchmarks\n<!-- bench:recipe -->\n<!-- /bench:recipe -->\n", report.render(results))


def test_the_mutation_table_is_that_of_mutation_json(results):
    changed = copy.deepcopy(results)
    group = next(iter(changed["mutation"]["groups"].values()))
    group["killed"], group["timeout"], group["survived"] = group["mutants"] - group["no_tests"] - 1, 0, 1
    group.pop("replay", None)
    before, after = report.render(results)["mutation"], report.render(changed)["mutation"]
    assert after != before and f"| {group['mutants'] - group['no_tests'] - 1} | 0 | 1 |" in after
