"""pytest configuration shared by the unit tests and nbval over the notebooks.

Notebooks are committed without outputs, so nbval has nothing to compare a
``# NBVAL_CHECK_OUTPUT`` cell with. Such a cell therefore writes what it should
print in the cell itself, as comment lines after ``# Expected output:``; this hook
turns them into the cell's reference output before nbval runs it. The student
sees the same lines as "what you should get".
"""

from __future__ import annotations

import os

import nbformat
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")  # no windows; inherited by the nbval kernels
os.environ.setdefault("GENIMG_DASHBOARD", "text")  # nbval has no widget front end: text progress bars

EXPECTED_MARKER = "# Expected output:"


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a test module (``pytestmark = pytest.mark.usefixtures("one_thread")``): the
    smallest models run fastest that way, and on a busy 2-core machine several threads spin."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def expected_output(source: str) -> str | None:
    """The text after ``# Expected output:`` (each line with its ``# `` removed), or None."""
    lines = source.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == EXPECTED_MARKER:
            rest = [l.strip() for l in lines[i + 1:]]
            return "".join(l[2:] + "\n" if l.startswith("# ") else "\n" for l in rest if l.startswith("#"))
    return None


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is None or not getattr(item, "options", {}).get("check"):
            continue
        text = expected_output(cell.source)
        if text is None:
            continue
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        cell.execution_count = 1  # nbval compares only cells that look as if they had been run
