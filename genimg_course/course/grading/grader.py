"""Grade student notebooks: ``genimg grade SUBMISSIONS... --out DIR``. See INSTRUCTORS.md.

For each submitted notebook:

1. read it (any nbformat version; unreadable files are reported, not fatal) and tell
   which lesson it is from the exercises it contains;
2. take only the student's *answer cells* (by nbgrader ``grade_id``, else by the
   function they define) and put them into a fresh copy of the released notebook, so
   every check cell and test is the instructor's; after each answer, insert a hidden
   cell that grades it (``grading_kernel.grade``);
3. run that notebook in its own process and kernel (``python -m genimg_course.course.grading.grader
   worker``), with a per-cell and a whole-notebook time limit and a memory limit; the
   parent kills the whole process group if the worker outlives its limit, so nothing
   one submission does can stop or slow down the batch;
4. score every exercise whose hidden cell reported, and write ``grades.csv``,
   ``feedback/STUDENT.html`` and a summary table.
"""

from __future__ import annotations

import ast
import csv
import html
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from genimg_course.course.notebooks import compute_checksum

MAX_OUTPUT_CHARS = 4000  # per cell, in the feedback
HIDDEN_TAG = "genimg-grading"
SUSPICIOUS = {  # names whose use in an answer cell means "reaches into the grader or the course's code"
    "setattr": "setattr()", "__code__": "__code__", "_getframe": "sys._getframe", "f_locals": "frame.f_locals",
    "f_back": "frame.f_back", "get_objects": "gc.get_objects", "sys.modules": "sys.modules",
    "grading_kernel": "the grader", "EXERCISES": "the exercise table", "builtins": "builtins",
}


_RUNNING: set[int] = set()  # process groups of the workers now running (killed on Ctrl-C)

# names under which the notebooks import the course's modules
COURSE_NAMES = {"genimg_course", "check", "preprocess", "mlp", "vae", "exercises", "zoo", "data", "viz"}


# ----------------------------------------------------------------------------- results
@dataclass
class ExerciseResult:
    exercise: str
    points: float
    max_points: int
    status: str  # passed | failed | not attempted | missing | reference used | library used | tampering | not graded
    message: str


@dataclass
class SubmissionResult:
    student: str
    path: str
    notebook: str  # the lesson, e.g. "01_preprocessing" ("" if unknown)
    graded: bool  # False: the submission could not be graded at all (unreadable, wrong lesson)
    problem: str = ""  # why it could not be graded, or what went wrong while running it
    exercises: list[ExerciseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # changed locked cells, duplicates, ...
    cell_errors: list[str] = field(default_factory=list)  # errors and cut outputs while running
    feedback: dict[str, str] = field(default_factory=dict)  # exercise -> its check cell's output
    seconds: float = 0.0

    @property
    def points(self) -> float:
        return sum(e.points for e in self.exercises)

    @property
    def max_points(self) -> int:
        from genimg_course.course.exercises import exercises_for

        return sum(e.points for e in exercises_for(self.notebook)) if self.notebook else 0


# ----------------------------------------------------------------------------- reading submissions
def released_notebooks(root: Path) -> dict[str, nbformat.NotebookNode]:
    """The released student notebooks that have exercises, by lesson name."""
    from genimg_course.course import checks

    checks.load_all()  # declares every exercise
    from genimg_course.course.exercises import exercises_for

    lessons = {}
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        if exercises_for(path.stem):
            lessons[path.stem] = nbformat.read(path, as_version=4)
    return lessons


def read_submission(path: Path) -> nbformat.NotebookNode:
    """Read any nbformat version as version 4; a clear ValueError for anything else."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError("not a text file (is it really a .ipynb notebook?)") from None
    if not text.strip():
        raise ValueError("the file is empty")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); "
                         "was the notebook saved completely?") from None
    if not isinstance(raw, dict) or "cells" not in raw and "worksheets" not in raw:
        raise ValueError("valid JSON, but not a Jupyter notebook (no cells)")
    try:
        return nbformat.reads(text, as_version=4)
    except Exception as err:  # noqa: BLE001 - nbformat raises many kinds of errors
        raise ValueError(f"not a notebook nbformat can read ({type(err).__name__}: {err})") from None


# Submissions are graded in threads (-j N), and CPython 3.11 keeps the AST constructor's recursion
# counter in state shared by all threads: two ast.parse calls at once can fail with "SystemError: AST
# constructor recursion depth mismatch" (seen here under pytest; CPython gh-106905). One parse at a time.
_PARSE_LOCK = threading.Lock()


def parse_source(source: str) -> ast.Module:
    """``ast.parse``, one thread at a time (raises SyntaxError like it)."""
    with _PARSE_LOCK:
        return ast.parse(source)


def defined_functions(source: str) -> list[str]:
    """Top-level function names a code cell defines ([] if it does not parse)."""
    try:
        tree = parse_source(source)
    except SyntaxError:
        return [m.group(1) for m in re.finditer(r"^def\s+(\w+)\s*\(", source, re.MULTILINE)]
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def find_answers(nb: nbformat.NotebookNode, name: str) -> tuple[list, list[str]]:
    """The student's answer cells for exercise ``name``, and notes about how they were found."""
    by_id = [c for c in nb.cells if c.cell_type == "code"
             and c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == name]
    by_def = [c for c in nb.cells if c.cell_type == "code" and name in defined_functions(c.source)]
    notes = []
    cells = by_def or by_id  # the cell that really defines the function wins over stale metadata
    if not by_id and by_def:
        notes.append(f"{name}: found by its function name (the cell's nbgrader metadata was missing)")
    if len(cells) > 1:
        notes.append(f"{name}: {len(cells)} cells define it; graded the last one, as running the notebook would")
    if not cells:
        markdown = [c for c in nb.cells if c.cell_type != "code" and re.search(rf"def\s+{name}\s*\(", c.source)]
        if markdown:
            notes.append(f"{name}: the answer cell is a Markdown cell, so it never runs; change it back to Code")
    return cells[-1:], notes


def identify_lesson(nb: nbformat.NotebookNode, path: Path, lessons: dict) -> tuple[str, int]:
    """The lesson whose exercises this notebook answers best (and how many it found)."""
    from genimg_course.course.exercises import exercises_for

    best, best_score = "", 0
    for lesson in lessons:
        names = [ex.name for ex in exercises_for(lesson)]
        found = sum(1 for n in names if find_answers(nb, n)[0] or any(
            n in c.source for c in nb.cells if c.cell_type != "code"))
        score = 2 * found + (1 if lesson[:2] in path.stem or lesson[3:] in path.stem else 0)
        if score > best_score:
            best, best_score = lesson, score
    return best, best_score


def static_problems(source: str, name: str, reference, exercise=None,
                    aliases: dict[str, str] | None = None) -> tuple[str, str] | None:
    """(status, message) when an answer cell's code reaches into the course or calls the reference.

    With ``exercise``, also when the function ``name`` uses a library function the exercise forbids
    (``Exercise.forbidden``), resolved through the cell's imports and ``aliases`` (the released notebook's).
    """
    try:
        tree = parse_source(source)
    except SyntaxError as err:
        return "failed", f"syntax error in your answer cell, line {err.lineno}: {err.msg}"
    for node in ast.walk(tree):
        text = ast.unparse(node) if isinstance(node, (ast.Attribute, ast.Name)) else ""
        for needle, what in SUSPICIOUS.items():
            if text and (text == needle or text.endswith("." + needle)):
                return "tampering", f"the answer uses {what}, which a solution never needs; not graded"
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                if isinstance(target, (ast.Attribute, ast.Subscript)):
                    base = target.value
                    while isinstance(base, (ast.Attribute, ast.Subscript)):
                        base = base.value
                    if isinstance(base, ast.Name) and base.id in COURSE_NAMES | {"torch", "np", "numpy", "F", "TF"}:
                        return "tampering", (f"the answer cell modifies the course's or a library's code "
                                             f"(`{ast.unparse(target)} = ...`); not graded")
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("genimg_course"):
            if any(alias.name == reference.__name__ for alias in node.names):
                return "reference used", (f"the answer imports the reference implementation "
                                          f"{reference.__module__}.{reference.__name__}; write it yourself")
        if isinstance(node, ast.Attribute) and node.attr in (reference.__name__, "reference"):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            # only the course's modules: F.normalize or torch.distributions.kl_divergence are other code
            if isinstance(base, ast.Name) and base.id in COURSE_NAMES:
                return "reference used", (f"the answer calls `{ast.unparse(node)}`, the course's reference "
                                          "implementation; write the computation yourself")
    if exercise is not None and exercise.forbidden:  # the same test the check runs, on the source alone
        from genimg_course.course.exercises import forbidden_objects, forbidden_uses, import_aliases

        cell_aliases = {**(aliases or {}), **import_aliases(tree)}
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                uses = forbidden_uses(node, forbidden_objects(exercise.forbidden), {}, cell_aliases)
                if uses:
                    return "library used", exercise.forbidden_message(uses).replace("your function", f"`{name}`", 1)
    return None


def notebook_aliases(nb: nbformat.NotebookNode) -> dict[str, str]:
    """{name: dotted path} of everything the notebook's code cells import (the names an answer can use)."""
    from genimg_course.course.exercises import import_aliases

    aliases: dict[str, str] = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            try:
                aliases.update(import_aliases(parse_source(cell.source)))
            except SyntaxError:
                pass
    return aliases


# ----------------------------------------------------------------------------- the graded notebook
def build_graded_notebook(released: nbformat.NotebookNode, submission: nbformat.NotebookNode, lesson: str,
                          token: str, extra_tests: str | None) -> tuple[nbformat.NotebookNode, list, list[str], dict]:
    """A fresh copy of the released notebook with the student's answers and hidden grading cells.

    Returns (notebook, pre-decided results, notes, {exercise: index of its check cell}).
    """
    from genimg_course.course.exercises import exercises_for

    nb = nbformat.from_dict(json.loads(json.dumps(released)))
    aliases = notebook_aliases(released)
    preset: list[ExerciseResult] = []
    notes: list[str] = []
    for ex in exercises_for(lesson):
        answers, found_notes = find_answers(submission, ex.name)
        notes += found_notes
        slot = next(i for i, c in enumerate(nb.cells)
                    if c.metadata.get("nbgrader", {}).get("grade_id") == ex.name)
        if not answers:
            preset.append(ExerciseResult(ex.name, 0, ex.points, "missing", next(
                (n for n in found_notes if "Markdown" in n), f"no code cell defines `{ex.name}` (deleted or renamed?)")))
            continue
        source = answers[0].source
        defined = defined_functions(source)
        problem = static_problems(source, ex.name, ex.reference, exercise=ex, aliases=aliases)
        if problem is None and ex.name not in defined:
            problem = ("missing", f"the answer cell defines {', '.join(f'`{d}`' for d in defined) or 'no function'}"
                                  f" instead of `{ex.name}` (renamed?); the name must stay `{ex.name}`")
        if problem:
            preset.append(ExerciseResult(ex.name, 0, ex.points, *problem))
            continue  # the released stub stays in place, so the notebook runs on with the reference
        nb.cells[slot].source = source
    # hidden cells: one first (fingerprint the course before any student code), one after each answer
    graded_names = {r.exercise for r in preset}
    begin = nbformat.v4.new_code_cell(
        f"import genimg_course.course.grading.kernel as _genimg_grading\n_genimg_grading.begin({extra_tests!r})",
        metadata={"tags": [HIDDEN_TAG]})
    begin["id"] = "genimg-grading-begin"
    cells = [begin]
    check_cells = {}
    for cell in nb.cells:
        cells.append(cell)
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if cell.metadata.get("nbgrader", {}).get("solution") and grade_id not in graded_names:
            hidden = nbformat.v4.new_code_cell(
                f"import genimg_course.course.grading.kernel as _genimg_grading\n"
                f"_genimg_grading.grade({grade_id!r}, {token!r}, globals())", metadata={"tags": [HIDDEN_TAG]})
            hidden["id"] = f"genimg-grading-{grade_id}"
            cells.append(hidden)
        if grade_id.startswith("check_"):
            check_cells[grade_id[len("check_"):]] = len(cells) - 1
    nb.cells = cells
    return nb, preset, notes, check_cells


def changed_locked_cells(released: nbformat.NotebookNode, submission: nbformat.NotebookNode) -> list[str]:
    """Which protected cells (nbgrader checksums) the student changed or deleted; their versions are ignored."""
    theirs = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id"): c for c in submission.cells}
    if not any(k for k in theirs if k):
        return ["the notebook has no nbgrader metadata (an editor stripped it), so changes to protected cells "
                "could not be checked; they were ignored in any case"]
    notes = []
    for cell in released.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("checksum"):
            continue
        mine = theirs.get(meta["grade_id"])
        if mine is None:
            notes.append(f"protected cell {meta['grade_id']} was deleted; the original was used")
        elif mine.get("metadata", {}).get("nbgrader", {}).get("checksum") and compute_checksum(
                nbformat.from_dict({**mine, "metadata": {**mine.metadata, "nbgrader": meta}})) != meta["checksum"]:
            notes.append(f"protected cell {meta['grade_id']} was changed; the original was used")
    return notes


# ----------------------------------------------------------------------------- the worker process
def _limit_memory(megabytes: int) -> None:
    """Cap this process's data segment; the kernel it starts inherits the limit.

    RLIMIT_DATA counts heap and anonymous memory (what arrays use) but not mapped libraries,
    so importing torch still works, and a runaway allocation fails with MemoryError inside
    the student's notebook instead of taking the machine down.
    """
    import resource

    limit = megabytes * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def run_worker(spec_path: str) -> int:
    """Execute one graded notebook (called as ``python -m genimg_course.course.grading.grader worker SPEC``)."""
    import asyncio

    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    spec = json.loads(Path(spec_path).read_text())
    _limit_memory(spec["memory"])  # before the kernel starts, so that it inherits the limit
    nb = nbformat.read(spec["notebook"], as_version=4)
    out_path = Path(spec["results"])
    token = spec["token"]
    state = {"results": {}, "errors": [], "outputs": {}, "stopped": ""}

    def save():
        tmp = out_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, out_path)

    class CappedClient(NotebookClient):
        """Keeps at most 4 x MAX_OUTPUT_CHARS of each cell's text, so a flood cannot exhaust memory."""

        def output(self, outs, msg, display_id, cell_index):
            if msg["msg_type"] == "stream":
                text = msg["content"].get("text", "")
                room = 4 * MAX_OUTPUT_CHARS - sum(len(o.get("text", "")) for o in outs)
                if len(text) > room:
                    self._cut[cell_index] = self._cut.get(cell_index, 0) + len(text) - max(room, 0)
                    # keep the grader's result line, which the hidden cells print last
                    keep = [line for line in text.splitlines() if line.startswith(token + " ")]
                    msg["content"]["text"] = text[: max(room, 0)] + "".join(f"\n{line}\n" for line in keep)
            return super().output(outs, msg, display_id, cell_index)

    client = CappedClient(nb, timeout=spec["timeout_cell"], allow_errors=True, shutdown_kernel="immediate",
                          kernel_manager_class=AsyncKernelManager, kernel_name="python3",
                          interrupt_on_timeout=False, resources={"metadata": {"path": spec["cwd"]}})
    client._cut = {}
    deadline = time.monotonic() + spec["timeout"]

    async def run():
        async with client.async_setup_kernel():
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    state["stopped"] = f"the notebook ran past its time limit of {spec['timeout']} s"
                    break
                client.timeout = max(1, min(spec["timeout_cell"], int(remaining) + 1))
                try:
                    await client.async_execute_cell(cell, index)
                except CellTimeoutError:
                    if client.timeout < spec["timeout_cell"]:  # cut short by the notebook's own limit
                        state["stopped"] = (f"the notebook ran past its time limit of {spec['timeout']} s (in cell "
                                            f"{index}); later cells did not run")
                    else:
                        state["stopped"] = (f"cell {index} ran past its time limit of {client.timeout} s (an endless "
                                            "loop?); the kernel was stopped, later cells did not run")
                    break
                except DeadKernelError:
                    state["stopped"] = (f"the kernel died in cell {index} (os._exit, a crash, or out of memory); "
                                        "later cells did not run")
                    break
                finally:
                    collect(index, cell)
                    save()

    def collect(index, cell):
        text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
        if HIDDEN_TAG in cell.metadata.get("tags", []):
            for line in text.splitlines():
                if line.startswith(token + " "):
                    state["results"][cell.id[len("genimg-grading-"):]] = json.loads(line[len(token) + 1:])
            return
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        for err in errors:
            state["errors"].append(f"cell {index}: {err.get('ename')}: {str(err.get('evalue'))[:300]}")
        cut = client._cut.get(index, 0)
        if cut:
            state["errors"].append(f"cell {index}: printed too much; {cut:,} characters of output were cut")
        state["outputs"][str(index)] = text[:MAX_OUTPUT_CHARS] + ("\n[output cut]" if len(text) > MAX_OUTPUT_CHARS or cut else "")

    try:
        asyncio.run(run())
    except Exception as err:  # noqa: BLE001 - kernel start failures and the like: report, don't crash
        state["stopped"] = state["stopped"] or f"the notebook could not be run: {type(err).__name__}: {err}"
    save()
    return 0


# ----------------------------------------------------------------------------- one submission
@dataclass
class Limits:
    timeout_cell: int = 60  # seconds per cell
    timeout: int = 300  # seconds per notebook
    memory: int = 2048  # MB of data per worker and kernel


def grade_submission(path: Path, student: str, lessons: dict, limits: Limits, expected: str | None = None,
                     extra_tests: str | None = None, workdir: Path | None = None) -> SubmissionResult:
    """Grade one notebook file; never raises for anything the file contains."""
    from genimg_course.course.exercises import EXERCISES, exercises_for

    start = time.monotonic()
    result = SubmissionResult(student=student, path=str(path), notebook="", graded=False)
    try:
        submission = read_submission(path)
    except (ValueError, OSError) as err:
        result.notebook = expected or ""
        result.problem = f"{path.name}: {err}"
        return result
    lesson, score = identify_lesson(submission, path, lessons)
    if not lesson:
        result.problem = f"{path.name}: none of the exercises of {', '.join(lessons)} is in this notebook"
        return result
    if expected and lesson != expected:
        names = ", ".join(ex.name for ex in exercises_for(lesson))
        result.notebook = expected
        result.problem = (f"{path.name} is the notebook of lesson {lesson} (it has {names}), not {expected}: "
                          "handed in by mistake?")
        return result
    result.notebook = lesson
    result.notes += changed_locked_cells(lessons[lesson], submission)
    token = secrets.token_hex(16)
    graded, preset, notes, check_cells = build_graded_notebook(lessons[lesson], submission, lesson, token, extra_tests)
    result.notes += notes
    with tempfile.TemporaryDirectory(dir=workdir, prefix="genimg-grade-") as tmp:
        tmp = Path(tmp)
        nb_path, results_path = tmp / f"{lesson}.ipynb", tmp / "results.json"
        nbformat.write(graded, nb_path)
        spec = {"notebook": str(nb_path), "results": str(results_path), "token": token, "cwd": str(tmp),
                "timeout_cell": limits.timeout_cell, "timeout": limits.timeout, "memory": limits.memory}
        (tmp / "spec.json").write_text(json.dumps(spec))
        # every submission is graded the same way: the ci profile on its offline data, whatever the instructor's
        # shell says (GENIMG_DATASET=mnist there would make a download part of grading)
        env = {**os.environ, "GENIMG_PROFILE": "ci", "GENIMG_STRICT": "0", "MPLBACKEND": "Agg",
               "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "GENIMG_DATASET": "digits", "GENIMG_COLOUR_DATASET": "shapes"}
        proc = subprocess.Popen([sys.executable, "-m", "genimg_course.course.grading.grader", "worker", str(tmp / "spec.json")],
                                cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # its own process group: killed as a whole
        _RUNNING.add(proc.pid)
        try:
            proc.wait(timeout=limits.timeout + 30)  # the worker enforces the limit; this is the watchdog
        except subprocess.TimeoutExpired:
            result.cell_errors.append("the grading process did not stop by itself and was killed")
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # worker, kernel and anything they started
            except ProcessLookupError:
                pass
            proc.wait()
            _RUNNING.discard(proc.pid)
        state = json.loads(results_path.read_text()) if results_path.exists() else {
            "results": {}, "errors": [], "outputs": {}, "stopped": "the notebook could not be started"}
    result.graded = True
    result.problem = state["stopped"]
    result.cell_errors += state["errors"]
    for name, index in check_cells.items():
        result.feedback[name] = state["outputs"].get(str(index), "")
    decided = {r.exercise: r for r in preset}
    for ex in exercises_for(lesson):
        if ex.name in decided:
            result.exercises.append(decided[ex.name])
            continue
        r = state["results"].get(ex.name)
        if r is None:
            why = state["stopped"] or "the grading cell did not run"
            result.exercises.append(ExerciseResult(ex.name, 0, ex.points, "not graded", why))
        else:
            points = EXERCISES[ex.name].points if r["status"] == "passed" else 0
            result.exercises.append(ExerciseResult(ex.name, points, ex.points, r["status"], r["message"]))
    result.seconds = time.monotonic() - start
    return result


# ----------------------------------------------------------------------------- the batch
def collect_submissions(paths: list[str]) -> list[tuple[str, Path]]:
    """(student, file) for every notebook: one folder per student, one folder of files, or files."""
    found: list[tuple[str, Path]] = []
    for arg in paths:
        p = Path(arg)
        if p.is_file():
            found.append((_student(p), p))
        elif p.is_dir():
            for f in sorted(p.rglob("*.ipynb")):
                if ".ipynb_checkpoints" in f.parts:
                    continue
                rel = f.relative_to(p)
                found.append((rel.parts[0] if len(rel.parts) > 1 else _student(f), f))
        else:
            raise FileNotFoundError(f"No such file or folder: {arg!r}")
    seen: dict[str, int] = {}
    unique = []
    for student, f in found:
        seen[student] = seen.get(student, 0) + 1
        unique.append((student if seen[student] == 1 else f"{student}-{seen[student]}", f))
    return unique


def _student(path: Path) -> str:
    """A notebook named like a lesson (01_preprocessing.ipynb) is named after its folder."""
    if re.fullmatch(r"\d\d_[a-z0-9_]+", path.stem):
        return path.parent.name
    return student_from_name(path.stem)


def student_from_name(stem: str) -> str:
    """'alice_03' -> 'alice', '03_vae_bob' -> 'bob', 'alice' -> 'alice'."""
    name = re.sub(r"[_\-\s]*\d\d([_\-][a-z_]+?)?$", "", stem)
    name = re.sub(r"^\d\d_[a-z]+(_[a-z]+)*?[_\-]", "", name) if re.match(r"^\d\d_", name) else name
    return name or stem


def grade_batch(paths: list[str], out: Path, root: Path, limits: Limits, jobs: int = 1, lesson: str | None = None,
                extra_tests: str | None = None, progress: bool = True) -> list[SubmissionResult]:
    """Grade every submission (``jobs`` at a time) and write grades.csv and feedback/*.html."""
    from tqdm.auto import tqdm

    lessons = released_notebooks(root)
    if not lessons:
        raise FileNotFoundError(f"No released notebooks with exercises in {root / 'notebooks'}")
    if lesson and lesson not in lessons:
        raise ValueError(f"Unknown lesson {lesson!r}. Lessons with exercises: {', '.join(lessons)}.")
    submissions = collect_submissions(paths)
    if not submissions:
        raise FileNotFoundError(f"No .ipynb files in {', '.join(paths)}")
    if lesson is None:  # the batch's lesson: the one most submissions are
        votes: dict[str, int] = {}
        for _, f in submissions:
            try:
                found = identify_lesson(read_submission(f), f, lessons)[0]
            except (ValueError, OSError):
                continue
            if found:
                votes[found] = votes.get(found, 0) + 1
        lesson = max(votes, key=votes.get) if votes else None
        if lesson and progress:
            print(f"grading lesson {lesson} (the lesson of {votes[lesson]} of {len(submissions)} notebooks; "
                  "--lesson chooses another)", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    results: list[SubmissionResult] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(grade_submission, f, s, lessons, limits, lesson, extra_tests)
                   for s, f in submissions]
        try:
            for future in tqdm(as_completed(futures), total=len(futures), desc="grading", disable=not progress):
                results.append(future.result())
        except KeyboardInterrupt:  # stop every running notebook now, not when its time limit ends
            for future in futures:
                future.cancel()
            for pgid in list(_RUNNING):
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            raise
    results.sort(key=lambda r: (r.student, r.path))
    write_reports(results, out)
    return results


def write_reports(results: list[SubmissionResult], out: Path) -> int:
    """Write grades.csv, feedback/STUDENT.html and results.json; returns the number of feedback pages."""
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "notebook", "exercise", "points", "max_points", "status", "message"])
        for r in results:
            for e in r.exercises:
                writer.writerow([r.student, r.notebook, e.exercise, e.points, e.max_points, e.status, e.message])
            status = "graded" if r.graded and not r.problem else ("partly graded" if r.graded else "not graded")
            writer.writerow([r.student, r.notebook, "TOTAL", r.points, r.max_points, status, r.problem])
    (out / "feedback").mkdir(exist_ok=True)
    by_student: dict[str, list[SubmissionResult]] = {}
    for r in results:
        by_student.setdefault(r.student, []).append(r)
    for student, rs in by_student.items():
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", student)
        (out / "feedback" / f"{safe}.html").write_text(feedback_html(student, rs), encoding="utf-8")
    (out / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    return len(by_student)


def feedback_html(student: str, results: list[SubmissionResult]) -> str:
    e = html.escape
    parts = [f"<!doctype html><meta charset='utf-8'><title>Feedback for {e(student)}</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.3em .6em;vertical-align:top}.passed{background:#e6ffe6}"
             ".failed,.missing,.tampering,.reference,.library{background:#ffe6e6}pre{background:#f6f6f6;padding:.5em;"
             "white-space:pre-wrap}</style>", f"<h1>Feedback for {e(student)}</h1>"]
    for r in results:
        parts.append(f"<h2>{e(r.notebook or Path(r.path).name)}: {r.points:g} / {r.max_points} points</h2>")
        parts.append(f"<p>Submitted file: <code>{e(Path(r.path).name)}</code></p>")
        if r.problem:
            parts.append(f"<p><strong>{'Not graded' if not r.graded else 'Problem'}:</strong> {e(r.problem)}</p>")
        if r.exercises:
            parts.append("<table><tr><th>exercise</th><th>points</th><th>status</th><th>details</th></tr>")
            for x in r.exercises:
                parts.append(f"<tr class='{e(x.status.split()[0])}'><td><code>{e(x.exercise)}</code></td>"
                             f"<td>{x.points:g} / {x.max_points}</td><td>{e(x.status)}</td><td>{e(x.message)}</td></tr>")
            parts.append("</table>")
        for name, text in r.feedback.items():
            if text.strip():
                parts.append(f"<h3>What the check of <code>{e(name)}</code> said</h3><pre>{e(text)}</pre>")
        if r.notes:
            parts.append("<h3>Notes</h3><ul>" + "".join(f"<li>{e(n)}</li>" for n in r.notes) + "</ul>")
        if r.cell_errors:
            parts.append("<h3>Errors while running your notebook</h3><ul>"
                         + "".join(f"<li>{e(n)}</li>" for n in r.cell_errors[:20]) + "</ul>")
    return "\n".join(parts)


def summary_table(results: list[SubmissionResult]) -> str:
    rows = [("student", "notebook", "points", "status")]
    for r in results:
        status = "not graded: " + r.problem if not r.graded else (r.problem or "ok")
        rows.append((r.student, r.notebook or "?", f"{r.points:g}/{r.max_points}", status[:70]))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d}" for a, b, c, d in rows)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        sys.exit(run_worker(sys.argv[2]))
    print("usage: genimg grade ... (this module's own entry point is for the grader's worker processes)")
    sys.exit(2)
