"""The notebooks as committed: no outputs, a parameters cell of literals that matches the notebook's config.

Executing them with their (tiny) default parameters is nbval's job: `pytest --nbval-lax notebooks`."""

from pathlib import Path

import nbformat
import pytest

from llmclf.config import NOTEBOOK_CONFIGS
from llmclf.study.spec import notebook_defaults

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_every_configured_notebook_exists():
    assert {p.stem for p in NOTEBOOKS} == set(NOTEBOOK_CONFIGS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {i} has outputs: clear them before committing"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_matches_the_config(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    defaults = notebook_defaults(path.stem)  # literals only, or this raises
    config = NOTEBOOK_CONFIGS[path.stem]
    assert set(defaults) == set(config.field_names())
    config.from_dict(defaults)  # the defaults are valid


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem != "90_report"], ids=lambda p: p.stem)
def test_first_cell_says_the_literals_are_for_hand_runs(path):
    """Issue 9.1: the tiny literals are for hand runs and nbval; a study run uses the documented defaults."""
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == "markdown"
    assert "llmclf params" in first.source and "documented defaults" in first.source
