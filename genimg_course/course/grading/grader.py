"""Grade student notebooks: ``genimg grade SUBMISSIONS... --out DIR``. See INSTRUCTORS.md.

For each submitted notebook:

1. read it (a regular file only, within a time limit; any nbformat version; a file that is not valid
   JSON or not a valid notebook is reported for that submission alone) and tell which lesson it is
   from the exercises it contains;
2. take only the student's *answer cells* (by the function they define, else by nbgrader ``grade_id``)
   and put them into a fresh copy of the released notebook, so every check cell and test is the
   instructor's; run that notebook in its own process and kernel (``python -m
   genimg_course.course.grading.worker``) with a per-cell and a whole-notebook time limit and a
   memory limit, for the feedback page: outputs, errors, where it stopped, and whether it replaced any
   of the course's or the libraries' functions (hidden cells, ``kernel.report``);
3. score every answer in another process where only the answer's *definitions* exist
   (``answers``: no top-level statement of the student's cell runs there, values are compared as plain
   arrays with expected values recorded before any student code ran, the reference is detected by the
   identity of its code);
4. check that no file of the course changed on disk, and write ``grades.csv``,
   ``feedback/STUDENT.html`` and a summary table. The parent kills a worker's whole process group when
   it outlives its limit, so nothing one submission does can stop or slow down the batch.
"""

from __future__ import annotations

import ast
import hashlib
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
from dataclasses import dataclass
from pathlib import Path

import nbformat

from genimg_course.course.grading import sandbox
from genimg_course.course.grading.answers import Server
from genimg_course.course.grading.worker import HIDDEN_TAG, SETUP_CELL_SECONDS
# (summary_table and student_from_name: for the CLI and the tests, which know the grader as one module)
from genimg_course.course.grading.reports import (ExerciseResult, SubmissionResult, summary_table,  # noqa: F401
                                                  write_reports)
from genimg_course.course.grading.submissions import (collect_submissions, read_submission,  # noqa: F401
                                                      student_from_name)
from genimg_course.course.notebooks import compute_checksum

SUSPICIOUS = {  # names whose use in an answer cell means "reaches into the grader or the course's code"
    "setattr": "setattr()", "__code__": "__code__", "_getframe": "sys._getframe", "f_locals": "frame.f_locals",
    "f_back": "frame.f_back", "get_objects": "gc.get_objects", "sys.modules": "sys.modules",
    "grading_kernel": "the grader", "EXERCISES": "the exercise table", "builtins": "builtins",
    "setprofile": "sys.setprofile", "settrace": "sys.settrace", "__closure__": "__closure__",
    "cell_contents": "a closure's cells", "__wrapped__": "__wrapped__", "__globals__": "__globals__",
}
grading_batch_paths: dict[str, Path] = {}  # where the last batch's grades.csv went (the CLI prints it)
_RUNNING: set[int] = set()  # process groups of the workers now running (killed on Ctrl-C)

# names under which the notebooks import the course's modules
COURSE_NAMES = {"genimg_course", "check", "preprocess", "mlp", "vae", "exercises", "zoo", "data", "viz"}


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


# Submissions are graded in threads (-j N), and CPython 3.11 keeps the AST constructor's recursion
# counter in state shared by all threads: two ast.parse calls at once can fail with "SystemError: AST
# constructor recursion depth mismatch" (seen here under pytest; CPython gh-106905). One parse at a time.
PARSE_LOCK = threading.Lock()  # (public: the check before hand-in parses in threads too)


def parse_source(source: str) -> ast.Module:
    """``ast.parse``, one thread at a time (raises SyntaxError like it)."""
    with PARSE_LOCK:
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
                          token: str) -> tuple[nbformat.NotebookNode, list, list[str], dict]:
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
        nb.cells[slot].metadata["genimg_answer"] = ex.name  # (not written to the feedback; read back below)
    # hidden cells: one first (fingerprint the course before any student code), one after each answer (has the
    # notebook replaced any of the course's or the libraries' functions?)
    graded_names = {r.exercise for r in preset}
    begin = nbformat.v4.new_code_cell("import genimg_course.course.grading.kernel as _genimg_grading\n"
                                      "_genimg_grading.begin()", metadata={"tags": [HIDDEN_TAG]})
    begin["id"] = "genimg-grading-begin"
    cells = [begin]
    check_cells = {}
    for cell in nb.cells:
        cells.append(cell)
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if cell.metadata.get("nbgrader", {}).get("solution") and grade_id not in graded_names:
            hidden = nbformat.v4.new_code_cell(
                f"import genimg_course.course.grading.kernel as _genimg_grading\n"
                f"_genimg_grading.report({grade_id!r}, {token!r})", metadata={"tags": [HIDDEN_TAG]})
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


# ----------------------------------------------------------------------------- one submission
@dataclass
class Limits:
    timeout_cell: int = 60  # seconds per cell
    timeout: int = 300  # seconds per notebook
    memory: int = 2048  # MB of data per worker and kernel


def grade_submission(path: Path, student: str, lessons: dict, limits: Limits, expected: str | None = None,
                     extra_tests: str | None = None, workdir: Path | None = None,
                     server: Server | None = None, isolation: sandbox.Isolation | None = None) -> SubmissionResult:
    """Grade one notebook file; never raises for anything the file contains.

    ``server`` grades the answers (``answers.Server``, one per batch); without one, this submission starts
    its own.
    """
    start = time.monotonic()
    result = SubmissionResult(student=student, path=str(path), notebook="", graded=False)
    try:
        _grade_into(result, path, lessons, limits, expected, extra_tests, workdir, server, isolation)
    except Exception as err:  # noqa: BLE001 - a case nobody foresaw: this submission alone is not graded
        result.graded, result.exercises = False, []
        result.notebook = result.notebook or expected or ""
        result.problem = (f"{path.name}: the grader could not grade this file ({type(err).__name__}: "
                          f"{str(err)[:200]}); please report it")
    result.seconds = time.monotonic() - start
    return result


def _grade_into(result: SubmissionResult, path: Path, lessons: dict, limits: Limits, expected: str | None,
                extra_tests: str | None, workdir: Path | None, server: Server | None,
                isolation: sandbox.Isolation | None = None) -> None:
    from genimg_course.course.exercises import EXERCISES, exercises_for

    try:
        submission = read_submission(path)
    except (ValueError, OSError) as err:
        result.notebook = expected or ""
        result.problem = f"{path.name}: {err}"
        return
    lesson, score = identify_lesson(submission, path, lessons)
    if not lesson:
        result.problem = f"{path.name}: none of the exercises of {', '.join(lessons)} is in this notebook"
        return
    if expected and lesson != expected:
        names = ", ".join(ex.name for ex in exercises_for(lesson))
        result.notebook = expected
        result.problem = (f"{path.name} is the notebook of lesson {lesson} (it has {names}), not {expected}: "
                          "handed in by mistake?")
        return
    result.notebook = lesson
    result.notes += changed_locked_cells(lessons[lesson], submission)
    token = secrets.token_hex(16)
    graded, preset, notes, check_cells = build_graded_notebook(lessons[lesson], submission, lesson, token)
    result.notes += notes
    answers = {c.metadata.pop("genimg_answer"): (i, c.source) for i, c in enumerate(graded.cells)
               if "genimg_answer" in c.metadata}
    env = grading_env()
    isolation = isolation or sandbox.detect()
    with tempfile.TemporaryDirectory(dir=workdir, prefix="genimg-grade-") as tmp:
        tmp = Path(tmp)
        # 1. the whole notebook, for the feedback page. The kernel sees work/ (its notebook, its folder) and
        # kernel/sockets; results.json and spec.json stay outside what the sandbox can reach
        work, kernel_dir = tmp / "work", tmp / "kernel"
        work.mkdir()
        kernel_dir.mkdir()
        nb_path, results_path = work / f"{lesson}.ipynb", tmp / "results.json"
        nbformat.write(graded, nb_path)
        spec = {"notebook": str(nb_path), "results": str(results_path), "token": token, "cwd": str(work),
                "timeout_cell": limits.timeout_cell, "timeout": limits.timeout, "memory": limits.memory,
                "kernel_dir": str(kernel_dir),
                "sandbox": sandbox.command(isolation, [], [work, kernel_dir / "sockets"], work)
                if isolation.sandboxed else None}
        (tmp / "spec.json").write_text(json.dumps(spec))
        problems = _run_process(["genimg_course.course.grading.worker", str(tmp / "spec.json")],
                                tmp, env, limits.timeout + 210 + SETUP_CELL_SECONDS,  # + the kernel's start-up and set-up
                                sandbox.Watchdog(limits.memory))
        result.cell_errors += problems
        state = json.loads(results_path.read_text()) if results_path.exists() else {
            "results": {}, "errors": [], "outputs": {}, "stopped": "the notebook could not be started",
            "stopped_at": 0}
        if problems and not state.get("stopped"):  # the watchdog stopped it: where it was, from what it had saved
            state["stopped"] = "the notebook was stopped: " + "; ".join(problems)
            done = [int(i) for i in state.get("outputs", {})]
            state["stopped_at"] = max(done) + 1 if done else 0
        # 2. each answer alone, for the points: the cells the notebook ran past (a cell it stopped in is not)
        stop = state.get("stopped_at")
        reached = [ex.name for ex in exercises_for(lesson)
                   if ex.name in answers and (stop is None or answers[ex.name][0] < stop)]
        scored: dict[str, dict] = {}
        if reached:
            cells = [{"exercise": n, "source": answers[n][1]} for n in reached]
            own = server is None  # graded alone (not in a batch): a server for this submission only
            server = server or Server(lesson, released_imports(lessons[lesson]), extra_tests, limits.memory, tmp,
                                      grading_env(), isolation)
            try:
                scored = server.grade(cells, [r.exercise for r in preset], limits.timeout_cell)
            finally:
                if own:
                    server.close()
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
        tampered = state["results"].get(ex.name, {}).get("tampered")
        r = scored.get(ex.name)
        if tampered:  # the notebook itself replaced the course's or a library's code in or before this answer
            r = {"status": "tampering", "message": "the notebook changed the course's or a library's code, so "
                 "this exercise was not graded: " + ", ".join(tampered)}
        elif r is None:
            why = state["stopped"] if ex.name in answers and ex.name not in reached else \
                "the process that grades the answers did not report"
            r = {"status": "not graded", "message": why or "the grading cell did not run"}
        points = EXERCISES[ex.name].points if r["status"] == "passed" else 0
        result.exercises.append(ExerciseResult(ex.name, points, ex.points, r["status"], r["message"]))


def grading_env() -> dict:
    """Every submission is graded the same way: the ci profile on its offline data, whatever the instructor's
    shell says (GENIMG_DATASET=mnist there would make a download part of grading)."""
    return {**os.environ, "GENIMG_PROFILE": "ci", "GENIMG_STRICT": "0", "MPLBACKEND": "Agg",
            "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "GENIMG_DATASET": "digits", "GENIMG_COLOUR_DATASET": "shapes",
            "GENIMG_GRADING": "1"}  # the lessons' last cell (handin.before_hand_in) does nothing in the grader


def _run_process(module_args: list[str], cwd: Path, env: dict, seconds: float,
                 watchdog: sandbox.Watchdog | None = None) -> list[str]:
    """Run ``python -m MODULE ARGS`` in a process group of its own; kill its whole tree when it is done, outlives
    ``seconds`` (the process enforces its own limits; this is the backstop) or passes the ``watchdog``'s limits on
    memory and processes, summed over the tree."""
    proc = subprocess.Popen([sys.executable, "-m", *module_args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # its own process group
    _RUNNING.add(proc.pid)
    problems = []
    try:
        why = sandbox.wait(proc, watchdog or sandbox.Watchdog(float("inf"), 10**9), seconds)
        if why:
            problems.append(why)
    finally:
        if proc.poll() is None:  # still running (interrupted): everything below it, while its pid is still its own
            sandbox.kill_tree(proc.pid)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # what is left of its process group (the group outlives a reaped pid)
        except ProcessLookupError:
            pass
        proc.wait()
        _RUNNING.discard(proc.pid)
    return problems


def released_imports(released: nbformat.NotebookNode) -> str:
    """The import statements of the released notebook's code cells: the context an answer is graded in."""
    lines = []
    for cell in released.cells:
        if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        try:
            tree = parse_source(cell.source)
        except SyntaxError:
            continue
        lines += [ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    return "\n".join(dict.fromkeys(lines))


# ----------------------------------------------------------------------------- the batch
def grade_batch(paths: list[str], out: Path, root: Path, limits: Limits, jobs: int = 1, lesson: str | None = None,
                extra_tests: str | None = None, progress: bool = True) -> list[SubmissionResult]:
    """Grade every submission (``jobs`` at a time) and write grades.csv and feedback/*.html."""
    from tqdm.auto import tqdm

    lessons = released_notebooks(root)
    if not lessons:
        raise FileNotFoundError(f"No released notebooks with exercises in {root / 'notebooks'}")
    if lesson and lesson not in lessons:
        raise ValueError(f"Unknown lesson {lesson!r}. Lessons with exercises: {', '.join(lessons)}.")
    skipped: list[str] = []
    submissions = collect_submissions(paths, skipped)
    for _, _, line in skipped:
        print(f"genimg grade: {line}", file=sys.stderr)
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
    before = course_fingerprint(root)
    running: dict = {}
    # no submission may see the others, the gradebook, or the grader's folders of the others
    hide = {Path(p).resolve() if Path(p).is_dir() else Path(p).resolve().parent for p in paths}
    hide |= {out.resolve(), Path(tempfile.gettempdir()).resolve()}
    isolation = sandbox.detect(sorted(hide))
    print(f"genimg grade: {isolation.line}", file=sys.stderr)
    server = Server(lesson, released_imports(lessons[lesson]), extra_tests, limits.memory, None, grading_env(),
                    isolation) if lesson else None
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {}
        for s, f in submissions:
            futures[pool.submit(_graded, grade_submission, running, f, s, lessons, limits, lesson, extra_tests,
                                None, server, isolation)] = f
        try:
            for future in tqdm(as_completed(futures), total=len(futures), desc="grading", disable=not progress):
                results.append(future.result())
                changed = course_fingerprint(root, before)
                if changed:  # no grade may be computed with altered checks: stop the batch
                    culprits = sorted({str(futures[future])} | {str(p) for p in running.values()})
                    raise CourseChanged(
                        f"the course's files changed on disk while grading ({', '.join(changed[:5])}); the "
                        f"submission(s) being graded then: {', '.join(culprits)}. No grades were written. Restore "
                        "the course (git checkout / pip install --force-reinstall), move those submissions aside, "
                        "and grade again (and see INSTRUCTORS.md, 'Threat model').")
        except (KeyboardInterrupt, CourseChanged):  # stop every running notebook now, not when its limit ends
            for future in futures:
                future.cancel()
            _kill_running()
            if server:
                server.close()
            raise
    if server:
        server.close()
    for student, f, line in skipped:  # the instructor sees them in the gradebook too
        results.append(SubmissionResult(student=student, path=str(f), notebook=lesson or "", graded=False,
                                        problem=line))
    results.sort(key=lambda r: (r.student, r.path))
    grading_batch_paths["grades"] = write_reports(results, out)
    return results


class CourseChanged(RuntimeError):
    """A file of the course (or of a library the checks use) changed on disk during the batch."""


def _graded(grade, running: dict, path: Path, *args) -> SubmissionResult:
    """``grade(path, *args)``, noting in ``running`` which submission this thread is grading meanwhile."""
    key = threading.get_ident()
    running[key] = path
    try:
        return grade(path, *args)
    finally:
        running.pop(key, None)


def _kill_running() -> None:
    for pgid in list(_RUNNING):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass




def course_fingerprint(root: Path, before: dict | None = None):
    """A hash of every file the grading depends on; with ``before``, the list of what changed since then.

    The course's package and released notebooks by content; the libraries the checks use (torch,
    torchvision, numpy, nbformat, nbclient) and the interpreter's site-packages and IPython start-up
    folders by name, size and modification time (hashing all of torch per submission would cost seconds).
    """
    import genimg_course

    prints: dict[str, str] = {}
    package = Path(genimg_course.__file__).resolve().parent
    for path in sorted(package.rglob("*.py")) + sorted((root / "notebooks").glob("*.ipynb")):
        try:
            prints[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            prints[str(path)] = "unreadable"
    import importlib.util
    import site

    folders = [Path(p) for p in site.getsitepackages() + [site.getusersitepackages()]]
    folders.append(Path.home() / ".ipython" / "profile_default" / "startup")
    for name in ("torch", "torchvision", "numpy", "nbformat", "nbclient", "ipykernel"):
        spec = importlib.util.find_spec(name)
        if spec and spec.submodule_search_locations:
            folders += [Path(p) for p in spec.submodule_search_locations]
    for folder in folders:
        if not folder.is_dir():
            continue
        entries = folder.iterdir() if folder.name in ("site-packages", "startup", "dist-packages") else \
            folder.rglob("*.py")
        for path in entries:
            try:
                info = path.stat()
                prints[str(path)] = f"{info.st_size}:{info.st_mtime_ns}"
            except OSError:
                continue
    if before is None:
        return prints
    return sorted(k for k in set(before) | set(prints) if before.get(k) != prints.get(k))
