"""Submissions for the grader's tests, built from the released and solved notebook of a lesson."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
LESSON = "01_preprocessing"  # the quickest lesson with exercises


def released(lesson: str = LESSON) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "notebooks" / f"{lesson}.ipynb", as_version=4)


def answer_sources(lesson: str = LESSON) -> dict[str, str]:
    """The solved answer cells, with the BEGIN/END markers removed, by exercise name."""
    from genimg_course.course.notebooks import BEGIN, END, student_version

    solved = nbformat.read(ROOT / "solutions" / f"{lesson}.ipynb", as_version=4)
    student = student_version(solved, lesson)
    answers = {}
    for s_cell, st_cell in zip(solved.cells, student.cells):
        grade_id = st_cell.metadata.get("nbgrader", {}).get("grade_id")
        if st_cell.metadata.get("nbgrader", {}).get("solution"):
            answers[grade_id] = "\n".join(l for l in s_cell.source.splitlines() if l.strip() not in (BEGIN, END))
    return answers


def solved_submission(lesson: str = LESSON, **replace: str) -> nbformat.NotebookNode:
    """The released notebook with every answer filled in (or replaced by ``replace[name]``)."""
    nb = copy.deepcopy(released(lesson))
    answers = {**answer_sources(lesson), **replace}
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = answers[grade_id]
    return nb


def answer_cell(nb, name):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == name)


def write(nb, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def build_all(folder: Path) -> dict[str, Path]:
    """Every case of the grading issue, one notebook per 'student'. Returns {student: path}."""
    a = answer_sources()
    cases: dict[str, Path] = {}

    def add(student, nb, name=None):
        cases[student] = write(nb, folder / student / (name or f"{LESSON}.ipynb"))

    add("full", solved_submission())
    add("none", released())
    add("wrong", solved_submission(gray_world="def gray_world(x, eps=1e-6):\n    return x * 1.0\n"))
    add("wrong_again", solved_submission(gray_world="def gray_world(x, eps=1e-6):\n    return x * 1.0\n"))
    add("loop", solved_submission(normalize=a["normalize"] + "\nwhile True:\n    pass\n"))
    # a loop that swallows KeyboardInterrupt: only killing the kernel stops it
    add("stubborn", solved_submission(normalize=a["normalize"] + "\nwhile True:\n    try:\n        pass\n"
                                      "    except:\n        pass\n"))
    add("warns", solved_submission(gray_world="import warnings\nwarnings.warn('deprecated!', DeprecationWarning)\n"
                                   "warnings.warn('a user warning')\n" + a["gray_world"]))
    sleepy = "import time\ntime.sleep(13)\n"  # each cell within its limit, the notebook past its own
    add("sleepy", solved_submission(adjust_contrast=a["adjust_contrast"] + "\n" + sleepy,
                                    contrast_stretch=a["contrast_stretch"] + "\n" + sleepy,
                                    gray_world=a["gray_world"] + "\n" + sleepy,
                                    normalize=a["normalize"] + "\n" + sleepy))
    add("dies", solved_submission(gray_world="import os\nos._exit(1)\n" + a["gray_world"]))
    add("hog", solved_submission(contrast_stretch=a["contrast_stretch"] + "\nhog = []\nwhile True:\n"
                                 "    hog.append(bytearray(50_000_000))\n"))
    add("flood", solved_submission(adjust_contrast=a["adjust_contrast"] + "\nprint('x' * 100_000_000)\n"))
    (folder / "badjson").mkdir(parents=True, exist_ok=True)
    (folder / "badjson" / f"{LESSON}.ipynb").write_text('{"cells": [ {"cell_type": "code", "sou')
    cases["badjson"] = folder / "badjson" / f"{LESSON}.ipynb"
    (folder / "empty").mkdir(parents=True, exist_ok=True)
    (folder / "empty" / f"{LESSON}.ipynb").write_text("")
    cases["empty"] = folder / "empty" / f"{LESSON}.ipynb"
    old = nbformat.convert(solved_submission(), 3)
    (folder / "oldformat").mkdir(parents=True, exist_ok=True)
    (folder / "oldformat" / f"{LESSON}.ipynb").write_text(nbformat.writes(old, version=3))
    cases["oldformat"] = folder / "oldformat" / f"{LESSON}.ipynb"
    shuffled = solved_submission()
    keep = [c for c in shuffled.cells if c.metadata.get("nbgrader", {}).get("solution")]
    shuffled.cells = list(reversed(keep))  # every other cell deleted, the answers in reverse order
    add("shuffled", shuffled)
    add("renamed", solved_submission(gray_world=a["gray_world"].replace("def gray_world(", "def gray_world_v2(")))
    add("syntax", solved_submission(contrast_stretch=a["contrast_stretch"].replace("flat = x.flatten(-2)",
                                                                                   "flat = x.flatten(-2")))
    add("tamper_check", solved_submission(gray_world="def gray_world(x, eps=1e-6):\n    return x\n\n"
                                          "check.gray_world = lambda fn, strict=None: fn\n"))
    add("tamper_tests", solved_submission(gray_world="def gray_world(x, eps=1e-6):\n    return x\n\n"
                                          "import genimg_course.course.exercises as E\n"
                                          "E.EXERCISES['gray_world'].tests = lambda t, fn: None\n"))
    add("tamper_torch", solved_submission(gray_world="def gray_world(x, eps=1e-6):\n    return x\n\n"
                                          "vars(__import__('torch'))['allclose'] = lambda *a, **k: True\n"))
    add("reference", solved_submission(gray_world="def gray_world(x, eps=1e-6):\n"
                                       "    return preprocess.gray_world(x, eps)\n"))
    add("reference_hidden", solved_submission(gray_world="def gray_world(x, eps=1e-6):\n"
                                              "    f = getattr(preprocess, 'gray' + '_world')\n    return f(x)\n"))
    # answers that only call a library doing the whole exercise: found in the source (the notebook imports v2),
    # and at run time through an alias the source alone cannot resolve
    add("library", solved_submission(adjust_contrast="def adjust_contrast(x, factor):\n"
                                     "    return v2.functional.adjust_contrast(x, factor)\n"))
    add("library_hidden", solved_submission(normalize="tv = v2.functional\n\n\ndef normalize(x, mean=0.5, std=0.5):\n"
                                            "    c = x.shape[-3]\n    return tv.normalize(x, torch.as_tensor(mean)"
                                            ".expand(c).tolist(), torch.as_tensor(std).expand(c).tolist())\n"))
    stripped = json.loads(nbformat.writes(solved_submission()))
    for cell in stripped["cells"]:
        cell["metadata"] = {}
    (folder / "stripped").mkdir(parents=True, exist_ok=True)
    (folder / "stripped" / f"{LESSON}.ipynb").write_text(json.dumps(stripped))
    cases["stripped"] = folder / "stripped" / f"{LESSON}.ipynb"
    dup = solved_submission(gray_world="def gray_world(x, eps=1e-6):\n    return x\n")
    cell = answer_cell(dup, "gray_world")
    fixed = nbformat.v4.new_code_cell(a["gray_world"])
    dup.cells.insert(dup.cells.index(cell) + 1, fixed)
    add("duplicate", dup)
    md = solved_submission()
    idx = md.cells.index(answer_cell(md, "normalize"))
    md.cells[idx] = nbformat.v4.new_markdown_cell(md.cells[idx].source)
    add("markdown", md)
    add("otherlesson", solved_submission("02_mlp_generator"), name="02_mlp_generator.ipynb")
    # --- issue 32: notebooks that pass in the student's kernel and not in a fresh one (genimg check predicts them) ---
    for student, nb in kernel_cases(a).items():
        add(student, nb)
    changed = solved_submission()
    check_cell = next(c for c in changed.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "check_normalize")
    check_cell.source = "normalize = normalize  # I skipped the check"
    add("lockedchanged", changed)

    # --- grading, second round: whole-batch failures ---
    source_number = json.loads(nbformat.writes(solved_submission()))
    source_number["cells"][3]["source"] = 5  # valid JSON, not a valid notebook
    (folder / "badsource").mkdir(parents=True, exist_ok=True)
    (folder / "badsource" / f"{LESSON}.ipynb").write_text(json.dumps(source_number))
    cases["badsource"] = folder / "badsource" / f"{LESSON}.ipynb"
    meta_string = json.loads(nbformat.writes(solved_submission()))
    index = next(i for i, c in enumerate(meta_string["cells"]) if "nbgrader" in c["metadata"])
    meta_string["cells"][index]["metadata"]["nbgrader"] = "solution"
    (folder / "badmeta").mkdir(parents=True, exist_ok=True)
    (folder / "badmeta" / f"{LESSON}.ipynb").write_text(json.dumps(meta_string))
    cases["badmeta"] = folder / "badmeta" / f"{LESSON}.ipynb"
    # --- lost or unsafe output: names the file-name sanitiser folds together, and spreadsheet formulas ---
    add("zoë", solved_submission())
    add("zoé", released())
    add("=1+1", released())
    add("@SUM(A1)", released())
    # --- correct answers whose cell never finishes: not graded, with the reason ---
    add("sigloop", solved_submission(normalize=a["normalize"] + "\nimport signal\n"
                                     "for s in (signal.SIGINT, signal.SIGTERM):\n    signal.signal(s, signal.SIG_IGN)\n"
                                     "while True:\n    pass\n"))
    add("overflow", solved_submission(normalize=a["normalize"] + "\n" + C_STACK_OVERFLOW))
    return cases


def as_run(nb, passed: dict[str, bool], first: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    """``nb`` as a student's kernel would save it: execution counts top to bottom (the answer cells of ``first``
    ran before all the others), and each check cell's output saying passed or failed as ``passed`` says."""
    from genimg_course.course import checks
    from genimg_course.course.exercises import EXERCISES

    checks.load_all()
    counter = iter(range(1, 10**6))
    early = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") in first]
    for cell in early + [c for c in nb.cells if c.cell_type == "code" and c not in early]:
        cell.execution_count = next(counter)
        cell.outputs = []
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        name = grade_id[len("check_"):]
        if grade_id.startswith("check_") and name in passed:
            points = EXERCISES[name].points
            text = (f"✅ {name}: all 5 tests passed ({points} point{'s' * (points != 1)}).\n" if passed[name] else
                    f"❌ {name}: 2 of 5 tests failed.\n")
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    return nb


def kernel_cases(a: dict[str, str]) -> dict[str, nbformat.NotebookNode]:
    """Submissions whose saved outputs say every check passed (or, stale, what the kernel saw before the last save)
    but that a fresh, top-to-bottom run grades otherwise."""
    everything = dict.fromkeys(a, True)
    # gray_world uses GAIN, set by a cell since deleted
    deleted = solved_submission(gray_world=a["gray_world"].replace(
        "mu = mu_c.mean(dim=-3, keepdim=True)", "mu = mu_c.mean(dim=-3, keepdim=True) * GAIN"))
    # gray_world uses a helper that normalize's (later) answer cell defines; that cell ran first
    helper = "\n\n\ndef channel_means(x):\n    return x.mean(dim=(-2, -1), keepdim=True)\n"
    order = solved_submission(gray_world=a["gray_world"].replace("mu_c = x.mean(dim=(-2, -1), keepdim=True)",
                                                                 "mu_c = channel_means(x)"),
                              normalize=a["normalize"] + helper)
    # the wrong gray_world was saved; the kernel then ran the right one, never saved
    stale = solved_submission(gray_world="def gray_world(x, eps=1e-6):\n    return x * 1.0\n")
    return {"deleted_variable": as_run(deleted, everything),
            "out_of_order": as_run(order, everything, first=("normalize",)),
            "stale_save": as_run(stale, {**everything, "gray_world": False})}


# A C stack overflow in CPython 3.11+: repr of a list nested a million deep, the recursion limit raised to allow it.
C_STACK_OVERFLOW = "import sys\nsys.setrecursionlimit(10**7)\nnest = []\nfor _ in range(10**6):\n    nest = [nest]\nrepr(nest)\n"

# Answers the first grader gave full points: {case: (exercise, answer cell)}. Graded by the answers process
# alone (tests/test_grading.py), as a whole batch of notebooks would cost minutes.
ANSWER_CASES = {
    "reference_import": ("gray_world", (
        "def gray_world(x, eps=1e-6):\n    import importlib\n"
        "    module = importlib.import_module('genimg_course.' + 'pre' + 'process')\n"
        "    return vars(module)['gray' + '_world'](x, eps)\n")),
    "reference_check": ("gray_world", (  # the check's fallback hands out the reference
        "def gray_world(x, eps=1e-6):\n    return check.gray_world(lambda *a, **k: 1 / 0)(x, eps)\n")),
    "reference_copy": ("gray_world", (  # a fresh copy of the reference, loaded from its file
        "def gray_world(x, eps=1e-6):\n    import importlib.util\n    import genimg_course\n"
        "    spec = importlib.util.spec_from_file_location('p', genimg_course.__path__[0] + '/preprocess.py')\n"
        "    module = importlib.util.module_from_spec(spec)\n    spec.loader.exec_module(module)\n"
        "    return module.gray_world(x, eps)\n")),
    "patch_compare": ("gray_world", (  # a comparison that always agrees, undone a second later
        "import threading\nimport torch\n\n\ndef gray_world(x, eps=1e-6):\n"
        "    real = torch.allclose\n    torch.allclose = lambda *a, **k: True\n"
        "    threading.Timer(1.0, lambda: setattr(torch, 'allclose', real)).start()\n    return x * 1.0\n")),
    "patch_oracle": ("adjust_contrast", (  # the oracle made to agree with a wrong answer
        "from torchvision.transforms.v2 import functional as _F\n\n\ndef adjust_contrast(x, factor):\n"
        "    _F.adjust_contrast = lambda image, c: image\n    return x * 1.0\n")),
    "agree_tensor": ("gray_world", (  # a result that answers every comparison itself
        "import torch\n\n\nclass Agree(torch.Tensor):\n    @classmethod\n"
        "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
        "        if func in (torch.allclose, torch.equal):\n            return True\n"
        "        return super().__torch_function__(func, types, args, kwargs or {})\n\n\n"
        "def gray_world(x, eps=1e-6):\n    return torch.zeros_like(x).as_subclass(Agree)\n")),
    "top_level_only": ("gray_world", (  # the right function is defined only by a top-level statement
        "exec('def gray_world(x, eps=1e-6):\\n    m = x.mean(dim=(-2, -1), keepdim=True)\\n"
        "    return (x * m.mean(-3, keepdim=True) / (m + eps)).clamp(0, 1)')\n")),
    "overflow_in_tests": ("gray_world", (  # the function itself overflows the C stack when the tests call it
        "def gray_world(x, eps=1e-6):\n" + "".join("    " + line + "\n" for line in C_STACK_OVERFLOW.splitlines())
        + "    return x\n")),
    "loops_in_tests": ("gray_world", "def gray_world(x, eps=1e-6):\n    while True:\n        pass\n"),
}


def special_file(folder: Path) -> Path:
    """A FIFO named like a notebook, as a tarball can carry one: reading it would block forever."""
    import os

    path = folder / "fifo" / f"{LESSON}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def course_rewriter(target: Path) -> nbformat.NotebookNode:
    """A submission whose answer cell rewrites a file of the course on disk (``target``)."""
    return solved_submission(gray_world=answer_sources()["gray_world"] + (
        f"\nwith open({str(target)!r}, 'a') as _f:\n    _f.write(' ')\n"))
