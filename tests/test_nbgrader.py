"""INSTRUCTORS.md's nbgrader route, run with nbgrader itself on 01_preprocessing.

``solutions/NN_slug.ipynb`` goes into an nbgrader course's ``source/`` as it stands; ``nbgrader generate_assignment``
releases the student version, and ``nbgrader autograde`` (with ``GENIMG_STRICT=1``) gives a solved submission every
point and an untouched one none. Everything (course, gradebook, HOME, Jupyter and matplotlib folders, the
notebook's temporary files) lives in pytest's tmp folder; nothing needs the network. About 30 s on 2 cores.
"""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from genimg_course.course import lessons
from genimg_course.course.notebooks import BEGIN, END, STUB

pytest.importorskip("nbgrader", reason="nbgrader is not installed (pip install -e '.[nbgrader]'; make does)")

ROOT = Path(__file__).resolve().parents[1]
LESSON = "01_preprocessing"  # the quickest lesson with exercises
EXERCISES = [name for name, (lesson, _) in lessons.declared_exercises().items() if lesson == LESSON]
POINTS = sum(lessons.declared_exercises()[name][1] for name in EXERCISES)


def _nbgrader(course: Path, env: dict, *args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stdout[-6000:]}"
    assert "| ERROR]" not in result.stdout, result.stdout[-6000:]


def _environment(tmp: Path) -> dict:
    home = {name: tmp / name for name in ("home", "jupyter_config", "jupyter_data", "jupyter_runtime", "ipython",
                                          "matplotlib", "tmp", "data")}
    for folder in home.values():
        folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "NBGRADER", "XDG_"))}
    env.update(
        HOME=str(home["home"]), JUPYTER_CONFIG_DIR=str(home["jupyter_config"]),
        JUPYTER_DATA_DIR=str(home["jupyter_data"]), JUPYTER_RUNTIME_DIR=str(home["jupyter_runtime"]),
        IPYTHONDIR=str(home["ipython"]), MPLCONFIGDIR=str(home["matplotlib"]), TMPDIR=str(home["tmp"]),
        GENIMG_DATA=str(home["data"]), MPLBACKEND="Agg", GENIMG_PROFILE="ci", GENIMG_STRICT="1",
        # nbgrader runs `alembic` (its database migrations) from PATH: the venv's bin folder comes first
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    return env


def test_generate_assignment_then_autograde(tmp_path):
    env = _environment(tmp_path)
    course = tmp_path / "course"
    (course / "source" / "ps1").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(f"c = get_config()\nc.CourseDirectory.root = {str(course)!r}\n")
    source = course / "source" / "ps1" / f"{LESSON}.ipynb"
    shutil.copyfile(ROOT / "solutions" / f"{LESSON}.ipynb", source)

    _nbgrader(course, env, "generate_assignment", "ps1", "--force")
    release = course / "release" / "ps1" / f"{LESSON}.ipynb"
    released = nbformat.read(release, as_version=4)
    text = "".join(c.source for c in released.cells)
    assert BEGIN not in text and END not in text
    answers = {c.metadata.nbgrader.grade_id: c.source for c in released.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    assert list(answers) == EXERCISES and all(STUB[1] in a for a in answers.values())
    ours = nbformat.read(ROOT / "notebooks" / f"{LESSON}.ipynb", as_version=4)
    assert [c.source for c in released.cells] == [c.source for c in ours.cells], "nbgrader releases notebooks/"

    for student, notebook in (("solved", source), ("untouched", release)):
        (course / "submitted" / student / "ps1").mkdir(parents=True)
        shutil.copyfile(notebook, course / "submitted" / student / "ps1" / f"{LESSON}.ipynb")
    _nbgrader(course, env, "autograde", "ps1", "--create")
    _nbgrader(course, env, "export", "--to", str(tmp_path / "grades.csv"))

    with open(tmp_path / "grades.csv", newline="") as f:
        scores = {row["student_id"]: (float(row["score"]), float(row["max_score"])) for row in csv.DictReader(f)}
    assert scores == {"solved": (POINTS, POINTS), "untouched": (0, POINTS)}
