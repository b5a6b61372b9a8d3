"""The notebooks: committed clean, built from solutions/, in the exercise format."""

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from genimg_course.course import checks
from genimg_course.course import lessons
from genimg_course.course import notebooks as build
from genimg_course.course.cli import main
from genimg_course.course.exercises import EXERCISES, exercises_for

checks.load_all()  # declares every exercise of the course (EXERCISES)

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
STUDENTS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_lessons():
    names = [p.name for p in SOLUTIONS]
    assert "00_setup_and_tour.ipynb" in names and "01_preprocessing.ipynb" in names
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", n) for n in names)
    assert [p.name for p in STUDENTS] == names


@pytest.mark.parametrize("path", SOLUTIONS + STUDENTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_without_outputs_and_in_format(path):
    raw = json.loads(path.read_text())
    assert (raw["nbformat"], raw["nbformat_minor"]) == (4, 5)
    assert raw["metadata"]["kernelspec"]["name"] == "python3"
    for cell in raw["cells"]:
        assert cell.get("id"), "every cell has an id (nbformat 4.5)"
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"cell {cell['id']} has outputs"
    nbformat.validate(nbformat.reads(path.read_text(), as_version=4))


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_lesson_calls_setup_first(path):
    nb = nbformat.read(path, as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code" and not c.source.startswith(lessons.BOOTSTRAP_MARK))
    assert "genimg_course.setup(" in first_code.source
    assert "cuda" not in "".join(c.source for c in nb.cells if c.cell_type == "code"), "never hard-code a device"


def test_notebooks_are_up_to_date():
    assert main(["notebooks", "--check", "--root", str(ROOT)]) == 0


@pytest.mark.parametrize("path", SOLUTIONS + STUDENTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_first_code_cell_is_the_install_cell(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source == lessons.bootstrap_source(), "stale or missing install cell: run `genimg notebooks`"
    assert code[0].get("id") == lessons.BOOTSTRAP_ID
    assert sum(c.source.startswith(lessons.BOOTSTRAP_MARK) for c in code) == 1


def _built_copy(tmp_path: Path) -> Path:
    """A copy of solutions/ and notebooks/ in tmp_path, built (so the test does not depend on the repo's state)."""
    shutil.copytree(ROOT / "solutions", tmp_path / "solutions")
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    build.build(tmp_path)
    return tmp_path


def test_build_inserts_and_refreshes_the_install_cell(tmp_path, capsys):
    root = _built_copy(tmp_path)
    solution, student = root / "solutions" / "03_vae.ipynb", root / "notebooks" / "03_vae.ipynb"
    nb = nbformat.read(solution, as_version=4)
    nb.cells = [c for c in nb.cells if c.get("id") != lessons.BOOTSTRAP_ID]  # a lesson written without it
    nbformat.write(nb, solution)
    nb = nbformat.read(student, as_version=4)
    cell = next(c for c in nb.cells if c.get("id") == lessons.BOOTSTRAP_ID)
    cell.source = cell.source.replace("genimg-course/genimg-course", "someone/old-fork")  # stale URL
    nbformat.write(nb, student)
    assert main(["notebooks", "--check", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "solutions/03_vae.ipynb (install cell missing)" in out
    assert "notebooks/03_vae.ipynb (install cell stale)" in out
    assert main(["notebooks", "--force", "--root", str(root)]) == 0  # --force: the student notebook was edited
    assert main(["notebooks", "--check", "--root", str(root)]) == 0
    for path in (solution, student):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code[0].source == lessons.bootstrap_source() and code[0].outputs == []
        assert nb.cells[0].cell_type == "markdown", "the title stays first; the install cell is the first code cell"
        assert sum(c.source.startswith(lessons.BOOTSTRAP_MARK) for c in code) == 1
        assert "genimg_course.setup(" in code[1].source
        assert "nbgrader" not in code[0].metadata


def test_build_rewrites_the_readme_lesson_table(tmp_path, capsys):
    root = _built_copy(tmp_path)
    readme = ROOT.joinpath("README.md").read_text()
    stale = readme.replace(lessons.colab_badge("03_vae") + " ", "")  # a lesson lost its badge
    assert stale != readme
    (root / "README.md").write_text(stale)
    assert main(["notebooks", "--check", "--root", str(root)]) == 1
    assert "README.md (lesson table differs from genimg_course/course/lessons.py)" in capsys.readouterr().out
    assert main(["notebooks", "--root", str(root)]) == 0
    assert lessons.readme_block() in (root / "README.md").read_text()
    (root / "README.md").write_text("# no markers\n")
    assert main(["notebooks", "--root", str(root)]) == 2  # a README without the block is an error, not ignored


def test_check_detects_a_stale_notebook(tmp_path, capsys):
    _built_copy(tmp_path)
    target = tmp_path / "notebooks" / "01_preprocessing.ipynb"
    nb = nbformat.read(target, as_version=4)
    nb.cells[0].source += "\nedited by hand"
    nbformat.write(nb, target)
    (tmp_path / "notebooks" / "99_orphan.ipynb").write_text(target.read_text())
    assert main(["notebooks", "--check", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "01_preprocessing.ipynb (out of date)" in out and "99_orphan.ipynb" in out
    assert main(["notebooks", "--root", str(tmp_path)]) == 1  # edited by hand: not written over (test_workspace)
    assert main(["notebooks", "--force", "--root", str(tmp_path)]) == 0  # --force fixes the stale one ...
    assert main(["notebooks", "--check", "--root", str(tmp_path)]) == 1  # ... but never deletes a file


def test_build_strips_outputs_from_solutions(tmp_path):
    shutil.copytree(ROOT / "solutions", tmp_path / "solutions")
    path = tmp_path / "solutions" / "00_setup_and_tour.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello")]
    code.execution_count = 3
    nbformat.write(nb, path)
    changes = build.build(tmp_path)
    assert any(c.path == path for c in changes)
    again = json.loads(path.read_text())
    assert all(c.get("outputs", []) == [] for c in again["cells"])


@pytest.mark.parametrize("path", STUDENTS, ids=lambda p: p.name)
def test_student_notebooks_have_stubs_and_nbgrader_metadata(path):
    nb = nbformat.read(path, as_version=4)
    lesson = path.stem
    text = "".join(c.source for c in nb.cells)
    assert build.BEGIN not in text and build.END not in text
    solution_ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
                    if c.metadata.get("nbgrader", {}).get("solution")]
    graded = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"] for c in nb.cells
              if c.metadata.get("nbgrader", {}).get("grade")}
    expected = [ex.name for ex in exercises_for(lesson)]
    assert solution_ids == expected, "every exercise of the lesson, in order, once"
    assert graded == {f"check_{n}": EXERCISES[n].points for n in expected}
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            assert "# YOUR CODE HERE" in cell.source and "raise NotImplementedError()" in cell.source
            compile(cell.source, str(path), "exec")  # still valid Python


def test_strip_solutions_keeps_indentation_and_rejects_bad_markers():
    src = "def f(x):\n    '''doc'''\n    ### BEGIN SOLUTION\n    y = x\n    return y\n    ### END SOLUTION\n"
    out = build.strip_solutions(src)
    assert out == "def f(x):\n    '''doc'''\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    with pytest.raises(build.BuildError, match="never closed"):
        build.strip_solutions("def f():\n    ### BEGIN SOLUTION\n    pass\n")
    with pytest.raises(build.BuildError, match="without"):
        build.strip_solutions("def f():\n    ### END SOLUTION\n")


def test_solution_outside_a_function_is_an_error():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")])
    with pytest.raises(build.BuildError, match="inside a function"):
        build.student_version(nb, "bad.ipynb")
