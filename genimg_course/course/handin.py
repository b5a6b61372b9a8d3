"""Before handing in: grade the *saved* notebook exactly as ``genimg grade`` will, and say what would cost points.

``genimg check 03_vae.ipynb`` (or the last cell of each lesson, ``check.before_hand_in("03_vae.ipynb")``) runs
``grading.grader.grade_submission`` on the file on disk: a fresh kernel, top to bottom, the released notebook with
only the student's answer cells put in, each answer scored where only the answer cells' definitions exist. The
per-exercise status it prints is the grader's own (without the hidden tests an instructor may add). Then it reads the
saved file for what would make the grade differ from what the student saw in their kernel:

* an answer that uses a name the grader will not have: defined in a cell that is not an answer cell, in a later
  answer cell, by a top-level statement the grader does not run, or nowhere in the saved file (a deleted cell);
* saved outputs that came from running cells out of order;
* a check whose saved output says passed while the fresh run does not pass;
* from the lesson's cell only (the kernel is there to ask): an answer whose saved source is not the one the kernel
  ran, that is, edits made after the last save.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import os
import re
import symtable
import textwrap
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

GRADING_ENV = "GENIMG_GRADING"  # set in every process the grader starts (grader.grading_env)


@dataclass
class Report:
    """What ``check_notebook`` found: the grader's result and the reasons it may differ from the kernel's."""
    result: object  # grading.reports.SubmissionResult
    costs: dict[str, list[str]] = field(default_factory=dict)  # exercise -> why it may fail in grading
    warnings: list[str] = field(default_factory=list)  # worth fixing, whatever the points
    released_from: str = ""  # where the released notebook came from

    @property
    def full_marks(self) -> bool:
        return self.result.graded and not self.result.problem and self.result.points == self.result.max_points


# ----------------------------------------------------------------------------- what the saved file shows
def _parse(source: str) -> ast.Module | None:
    """``ast.parse`` one thread at a time (``grader.parse_source``: CPython 3.11's AST constructor is not
    thread-safe, and checks run in threads), None for a syntax error."""
    from genimg_course.course.grading.grader import parse_source

    try:
        return parse_source(source)
    except SyntaxError:
        return None


def _definitions(source: str) -> tuple[str, list[int]] | None:
    """``answers.definitions`` (what of an answer cell the grader runs, and the lines it drops) under the same
    lock; None for a syntax error."""
    from genimg_course.course.grading.answers import definitions
    from genimg_course.course.grading.grader import PARSE_LOCK

    try:
        with PARSE_LOCK:
            return definitions(source)
    except SyntaxError:
        return None


def top_level_names(source: str) -> set[str]:
    """The names a cell binds at its top level (assignments, imports, functions, classes, loops, with-as)."""
    tree = _parse(source)
    names: set[str] = set()
    if tree is None:
        return names
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
        else:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    names.add(sub.id)
                elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    break
    return names


def used_globals(source: str) -> set[str]:
    """The global names an answer cell's definitions read (in function and class bodies, defaults, decorators),
    less the names the cell's own definitions bind; ``symtable`` does the scoping (Python's own rules)."""
    parsed = _definitions(source)
    if parsed is None:
        return set()
    table = symtable.symtable(parsed[0], "<answer>", "exec")
    bound = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    used = {s.get_name() for s in table.get_symbols() if s.is_referenced()}

    def walk(t):
        for child in t.get_children():
            used.update(s.get_name() for s in child.get_symbols() if s.is_global() and s.is_referenced())
            walk(child)

    walk(table)
    return used - bound - set(dir(builtins))


def out_of_order(nb) -> list[tuple[int, int, int, int]]:
    """(upper cell, its count, lower cell, its count) where a cell above ran after a cell below it."""
    runs = [(i, c.get("execution_count")) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and isinstance(c.get("execution_count"), int)]
    found, latest = [], None  # latest: the cell above with the highest count so far
    for i, count in runs:
        if latest and count < latest[1]:
            found.append((latest[0], latest[1], i, count))
        if not latest or count > latest[1]:
            latest = (i, count)
    return found


def saved_check_status(nb, name: str) -> str | None:
    """'passed' or 'failed' as the saved output of ``check.NAME(...)``'s cell says (None: never run or unknown)."""
    for cell in nb.cells:
        if cell.cell_type == "code" and re.search(rf"\bcheck\.{name}\s*\(", cell.source):
            text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
            if f"✅ {name}:" in text:
                return "passed"
            if f"❌ {name}" in text:
                return "failed"
    return None


def function_source(source: str, name: str) -> str | None:
    """The text of ``def name`` in a cell (None when the cell does not define it)."""
    tree = _parse(source)
    for node in (tree.body if tree else []):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return ast.get_source_segment(source, node, padded=False)
    return None


def _same_code(a: str, b: str) -> bool:
    """Whether two function sources are the same code (comments, blank lines and layout aside)."""
    def tree(s):
        try:
            return ast.dump(ast.parse(textwrap.dedent(s)))
        except SyntaxError:
            return s
    return tree(a) == tree(b)


# ----------------------------------------------------------------------------- the check
def released_notebook(path: Path, submission, root: Path | None) -> tuple[dict, str]:
    """{lesson: released notebook} as the grader reads them, and where they came from. In a checkout of the
    course: its ``notebooks/``. Without one (Colab, a pip install): rebuilt from the submission itself, each
    answer cell emptied to ``raise NotImplementedError()``, so that the student's other cells stand in for the
    lesson's (a locked check cell the student changed is then the changed one)."""
    from genimg_course.course.grading.grader import released_notebooks
    from genimg_course.course.notebooks import find_course_root

    if root is None:
        try:
            root = find_course_root(path.parent)
        except FileNotFoundError:
            root = None
    if root is not None and (root / "notebooks").is_dir():
        lessons = released_notebooks(root)
        if lessons:
            return lessons, f"the released notebooks of {root / 'notebooks'}"
    from genimg_course.course import checks
    from genimg_course.course.exercises import EXERCISES

    checks.load_all()
    nb = nbformat.from_dict(nbformat.reads(nbformat.writes(submission), as_version=4))
    lesson = ""
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and meta.get("grade_id") in EXERCISES:
            lesson = EXERCISES[meta["grade_id"]].lesson
            header = function_source(cell.source, meta["grade_id"])
            tree = _parse(header) if header else None
            if tree:
                tree.body[0].body = [ast.Raise(ast.Call(ast.Name("NotImplementedError"), [], []))]
                cell.source = ast.unparse(ast.fix_missing_locations(tree))
            cell.outputs = []
    if not lesson:
        raise ValueError(f"{path}: no exercise of the course in this notebook (its answer cells' nbgrader metadata "
                         "is missing); run the check from a checkout of the course (git clone), whose notebooks/ "
                         "it can compare with")
    return {lesson: nb}, f"your file's own lesson cells (no checkout of the course with notebooks/ found above {path.parent})"


def check_notebook(path, root: Path | None = None, live: dict[str, str] | None = None, limits=None) -> Report:
    """Grade the saved notebook ``path`` as ``genimg grade`` would and say what may cost points.

    ``live``: {exercise: source of the function as the student's kernel has it} (``before_hand_in`` passes it);
    an answer whose saved source differs was edited after the last save.
    """
    from genimg_course.course.exercises import exercises_for
    from genimg_course.course.grading.grader import Limits, find_answers, grade_submission, released_imports
    from genimg_course.course.grading.submissions import read_submission, student_from_name

    path = Path(path)
    if path.suffix != ".ipynb":
        raise ValueError(f"{path}: not a notebook (.ipynb)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such notebook")
    submission = read_submission(path)  # ValueError with the reason for an unreadable file
    lessons, released_from = released_notebook(path, submission, root)
    result = grade_submission(path, student_from_name(path.name), lessons, limits or Limits())
    report = Report(result, released_from=released_from)
    if not result.graded or not result.notebook:
        return report
    lesson = result.notebook
    status = {e.exercise: e.status for e in result.exercises}
    available = top_level_names(released_imports(lessons[lesson]))
    cells = submission.cells
    answer_cells = {}
    for ex in exercises_for(lesson):
        found, _ = find_answers(submission, ex.name)
        if found:
            answer_cells[ex.name] = next(i for i, c in enumerate(cells) if c is found[0])
    for ex in exercises_for(lesson):  # in the lesson's order, which is the order the grader defines them in
        why = report.costs.setdefault(ex.name, [])
        if ex.name not in answer_cells:
            continue
        index = answer_cells[ex.name]
        source = cells[index].source
        kept, dropped = _definitions(source) or ("", [])
        kept_here = top_level_names(kept)
        for name in sorted(used_globals(source) - available):
            why.append(_where_defined(name, ex.name, index, cells, answer_cells, source, dropped, live))
        available |= kept_here
        saved = saved_check_status(submission, ex.name)
        if saved == "passed" and status.get(ex.name) != "passed":
            why.append(f"your saved output of check.{ex.name} says it passed, but a fresh run of the saved file "
                       f"does not: the answer uses something your kernel had and the saved file does not give "
                       f"(see above), or it was edited after that run")
        if live and ex.name in live:
            mine = function_source(source, ex.name)
            if mine is not None and not _same_code(mine, live[ex.name]):
                why.append(f"the saved file's `{ex.name}` is not the one your kernel ran: you edited it after the "
                           f"last save. Save the notebook (Ctrl+S, or File → Save) and run the check again")
        if status.get(ex.name) == "passed":
            report.costs[ex.name] = [w for w in why if "kernel ran" in w]  # passes anyway: only the stale save
    for upper, a, lower, b in out_of_order(submission)[:3]:
        report.warnings.append(f"the saved outputs came from running cells out of order: cell {upper} ran as "
                               f"[{a}], after cell {lower} below it ran as [{b}]. The grader runs top to bottom in "
                               "a fresh kernel; Kernel → Restart Kernel and Run All Cells shows what it sees")
    return report


def _where_defined(name, exercise, index, cells, answer_cells, source, dropped, live) -> str:
    """Why ``name``, used by ``exercise``'s answer (cell ``index``), will not exist when the grader tests it."""
    later = {i: n for n, i in answer_cells.items() if i > index}
    here = [line for line in dropped if re.search(rf"\b{re.escape(name)}\b", source.splitlines()[line - 1])]
    if name in top_level_names(source) and here:
        return (f"`{exercise}` uses `{name}`, which its cell sets by a top-level statement (line {here[0]}); the "
                "grader keeps only the cell's imports, functions, classes and constants: compute it inside the "
                "function")
    defined_in = [i for i, c in enumerate(cells) if c.cell_type == "code" and name in top_level_names(c.source)]
    if any(i in later for i in defined_in):
        i = next(i for i in defined_in if i in later)
        return (f"`{exercise}` uses `{name}`, defined only in a later answer cell (cell {i}, `{later[i]}`): the "
                "grader runs the answers top to bottom; define it in this cell")
    if defined_in:
        return (f"`{exercise}` uses `{name}`, defined in cell {defined_in[0]}, which is not an answer cell: the "
                "grader tests each answer with only the answer cells and the lesson's imports; define it in this "
                "cell")
    kernel = " (your kernel still has it)" if live is not None and name in live.get("__globals__", ()) else ""
    return (f"`{exercise}` uses `{name}`, which no cell of the saved notebook defines{kernel}: it came from a cell "
            "you deleted or changed; define it in this cell")


# ----------------------------------------------------------------------------- what the student reads
def format_report(report: Report, path) -> str:
    r = report.result
    lines = [f"{Path(path).name}, graded as `genimg grade` will (a fresh kernel, top to bottom, the saved file; "
             f"no hidden tests):"]
    if not r.graded:
        return "\n".join(lines + [f"  not gradable: {r.problem}"])
    width = max((len(e.exercise) for e in r.exercises), default=0)
    for e in r.exercises:
        mark = "✅" if e.status == "passed" else "❌"
        detail = "" if e.status == "passed" else f": {e.message.splitlines()[0][:160] if e.message else ''}"
        lines.append(f"  {mark} {e.exercise:<{width}}  {e.points:g} / {e.max_points}  {e.status}{detail}")
        for why in report.costs.get(e.exercise, []):
            lines.append(f"      ↳ {why}")
    lines.append(f"  total: {r.points:g} / {r.max_points} points")
    if r.problem:
        lines.append(f"  the run stopped: {r.problem}")
    for err in r.cell_errors[:3]:
        lines.append(f"  a cell failed: {err.splitlines()[0][:200]}")
    for w in report.warnings:
        lines.append(f"  note: {w}")
    for n in r.notes:
        lines.append(f"  note: {n}")
    if report.full_marks and not report.warnings and not any(report.costs.values()):
        lines.append("Ready to hand in.")
    return "\n".join(lines)


def _kernel_notebook(name: str) -> Path:
    """The notebook this kernel belongs to: the server's session path when it gives one and it is a file of that
    name's lesson (a renamed copy), else ``name`` in the working folder (Jupyter starts kernels there)."""
    for candidate in (os.environ.get("JPY_SESSION_NAME"), getattr(sys.modules.get("__main__"), "__session__", None),
                      getattr(sys.modules.get("__main__"), "__vsc_ipynb_file__", None)):
        if candidate and str(candidate).endswith(".ipynb") and Path(candidate).is_file():
            return Path(candidate)
    return Path(name)


def _answered(path: Path) -> bool:
    """Whether any answer cell of the saved file is more than the released stub: its functions' bodies, without
    their docstrings, are all ``raise NotImplementedError()`` (imports and comments aside)."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 - unreadable: let the check say why
        return True
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            continue
        tree = _parse(cell.source)
        if tree is None:
            return True
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if not isinstance(node, ast.FunctionDef):
                return True
            body = [ast.unparse(b) for b in node.body
                    if not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant))]
            if body != ["raise NotImplementedError()"]:
                return True
    return False


def before_hand_in(name: str) -> Report | None:
    """The lesson's last cell: grade the saved notebook ``name`` as the grader will, and compare it with this
    kernel (answers edited since the last save, names only this kernel has)."""
    if os.environ.get(GRADING_ENV):
        print("(skipped: this is the grader's own run)")
        return None
    path = _kernel_notebook(name)
    if path.resolve().parent.name == "solutions" and (path.resolve().parent.parent / "notebooks").is_dir():
        print("(skipped: this is the solved notebook in solutions/; students run this in their copy)")
        return None
    if not path.is_file():
        print(f"No file {str(path)!r} here ({Path.cwd()}): save the notebook, and if you renamed it, pass its name: "
              f"check.before_hand_in('YOUR_NAME.ipynb')")
        return None
    if not _answered(path):
        print(f"No exercise is answered in the saved {path.name} yet (every answer cell is as released): the grader "
              "would give 0 points. Write your answers, save, and run this again.")
        return None
    main = sys.modules.get("__main__")
    live: dict = {"__globals__": set(vars(main)) if main else set()}
    for key, value in (vars(main).items() if main else ()):
        code = getattr(value, "__code__", None)
        if inspect.isfunction(value) and code and "genimg_course" not in code.co_filename:
            try:
                live[key] = inspect.getsource(value)  # IPython keeps each cell's text for this
            except (OSError, TypeError):
                pass
    print(f"Grading the saved {path.name} in a fresh kernel (as long as the lesson takes in the ci profile)...",
          flush=True)
    report = check_notebook(path, live=live)
    print(format_report(report, path))
    return report
