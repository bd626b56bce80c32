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
