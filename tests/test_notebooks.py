"""The tutorials under docs/tutorials/ are executed, so they cannot rot: every cell runs
without error (their asserts check the numbers) and a Network cell shows its layer table."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = Path(__file__).resolve().parents[1] / "docs" / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))


def test_the_four_tutorials_are_there():
    assert {p.stem for p in NOTEBOOKS} >= {"units-vs-timesteps", "echo-state-forecast",
                                          "importing-pytorch", "finding-fixed-points"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_runs(path):
    book = nbformat.read(path, as_version=4)
    assert not any(cell.get("outputs") for cell in book.cells if cell.cell_type == "code"), \
        f"{path.name} is committed with outputs: clear them (the docs build runs it)"
    NotebookClient(book, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(TUTORIALS)}}).execute()
    html = [output["data"]["text/html"] for cell in book.cells if cell.cell_type == "code"
            for output in cell.outputs if "text/html" in output.get("data", {})]
    assert any("<b>Network</b>" in h and "none depends on the timesteps T" in h for h in html)
    images = [o for cell in book.cells if cell.cell_type == "code" for o in cell.outputs
              if "image/png" in o.get("data", {})]
    if path.stem != "importing-pytorch":
        assert images, f"{path.name} draws no figure"
