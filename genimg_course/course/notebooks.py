"""Build the student notebooks from the solved ones: ``genimg notebooks``.

``solutions/NN_slug.ipynb`` is the single source of truth. For each of them this
writes ``notebooks/NN_slug.ipynb`` where

* every block between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes
  ``# YOUR CODE HERE`` / ``raise NotImplementedError()`` (same indentation);
* the exercise cell gets nbgrader metadata ``solution: true`` with the exercise's
  function name as ``grade_id``, and the check cell after it (the one calling
  ``check.NAME(...)``) gets ``grade: true``, ``locked: true`` and the exercise's points;
* outputs and execution counts are removed, and the notebook is nbformat 4.5
  (cell ids) with the ``python3`` kernel.

The same clean-up (no outputs, ids, kernel) and the same nbgrader metadata (without the checksums, which
``nbgrader generate_assignment`` computes) are applied to ``solutions/`` itself, so a solved notebook is an
nbgrader source notebook as it stands. Both versions get the same first code cell: the install cell of
``lessons.bootstrap_source()`` (inserted when missing, refreshed when stale). Each number marked ``<!--claim:NAME-->`` in the Markdown is
rewritten from ``genimg_course/registry/`` (``prose.fill``). README.md's lesson table (between
``<!-- lessons:begin -->`` and ``<!-- lessons:end -->``) is rewritten from ``lessons.LESSONS``.
``--check`` writes nothing and reports every file that differs.

``notebooks/.genimg-built.json`` (committed) records the sha256 of the text written to each student notebook. A
notebook whose text no longer matches it was edited after the build (a student's answers?): it is not written
over (``Change.refused``) unless ``force``; ``genimg workspace`` keeps such work in ``mywork/``. A notebook with no
entry yet is written as before. ``--check`` also reports a manifest that does not match what it would write.

Nothing here imports torch: the exercises' names and points are read from the checks modules' source.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from genimg_course.course import lessons, prose, workspace
# stdlib-only helpers shared with `genimg workspace` (which does not import nbformat, so that it starts at once)
from genimg_course.course.workspace import BUILT_MANIFEST, file_sha256, find_course_root, text_sha256  # noqa: F401

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
DEF_RE = re.compile(r"^def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)
CHECK_RE = re.compile(r"\bcheck\.([A-Za-z_]\w*)\s*\(")
EDITED = "differs from what genimg notebooks wrote last time (your edits?): not overwritten"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
NBGRADER_SCHEMA = 3


class BuildError(ValueError):
    """A solution notebook breaks the exercise format; the message names the file and cell."""


def strip_solutions(source: str, where: str = "") -> str:
    """Replace each BEGIN/END SOLUTION block with the stub, keeping the block's indentation."""
    out, inside, indent = [], False, ""
    for number, line in enumerate(source.splitlines(), 1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise BuildError(f"{where} line {number}: '{BEGIN}' inside another solution block")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in STUB)
        elif stripped == END:
            if not inside:
                raise BuildError(f"{where} line {number}: '{END}' without '{BEGIN}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise BuildError(f"{where}: '{BEGIN}' is never closed by '{END}'")
    return "\n".join(out)


def _nbgrader(grade_id: str, *, solution: bool, grade: bool, locked: bool, points: int | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": NBGRADER_SCHEMA,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def compute_checksum(cell) -> str:
    """nbgrader's checksum of a graded or locked cell (nbgrader.utils.compute_checksum, same fields).

    The grader compares it to tell which protected cells a student changed.
    """
    meta = cell.metadata["nbgrader"]
    m = hashlib.md5()
    m.update(cell.source.encode("utf-8"))
    m.update(cell.cell_type.encode("utf-8"))
    for flag in ("grade", "solution", "locked"):
        m.update(str(bool(meta.get(flag, False))).encode("utf-8"))
    m.update(meta["grade_id"].encode("utf-8"))
    if meta.get("grade"):
        m.update(str(float(meta["points"])).encode("utf-8"))
    return m.hexdigest()


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """No outputs, no execution counts, nbformat 4.5 with cell ids, the python3 kernel."""
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    for i, cell in enumerate(nb.cells):
        cell.setdefault("id", f"cell-{i}")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
        cell.metadata.pop("nbgrader", None)  # rewritten from the package by with_nbgrader
        if cell.cell_type != "code":
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
    return nb


def _where(name: str, i: int, cell) -> str:
    return f"{name} cell {i} (id {cell.get('id')})"


def with_nbgrader(nb: nbformat.NotebookNode, name: str = "") -> nbformat.NotebookNode:
    """``nb`` with nbgrader's metadata on its exercises (the format of an nbgrader source notebook).

    An answer cell (one holding a solution block) gets ``solution: true`` with its function's name as
    ``grade_id``; a check cell (one calling ``check.NAME(...)``) gets ``grade: true``, ``locked: true``, the
    exercise's points and ``check_NAME`` as ``grade_id``.
    """
    declared = lessons.declared_exercises()  # {name: (lesson, points)}, without importing torch
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if BEGIN in cell.source:
            if not (funcs := DEF_RE.findall(cell.source)):
                raise BuildError(f"{_where(name, i, cell)}: a solution block must sit inside a function "
                                 "(def NAME(...))")
            cell.metadata["nbgrader"] = _nbgrader(funcs[0], solution=True, grade=False, locked=False)
        elif (calls := [c for c in CHECK_RE.findall(cell.source) if c in declared]):
            points = sum(declared[c][1] for c in calls)
            cell.metadata["nbgrader"] = _nbgrader(f"check_{calls[0]}", solution=False, grade=True, locked=True,
                                                  points=points)
    return nb


def student_version(solution: nbformat.NotebookNode, name: str = "") -> nbformat.NotebookNode:
    """The student notebook for one solved notebook (which is left unchanged): stubs for the solution
    blocks, and nbgrader's checksum on the check cells."""
    nb = with_nbgrader(clean(nbformat.from_dict(solution)), name)
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = strip_solutions(cell.source, _where(name, i, cell))
        elif meta.get("grade"):
            meta["checksum"] = compute_checksum(cell)
    return nb


def with_bootstrap(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` whose first code cell is the current install cell (inserted if absent, replaced if stale)."""
    nb.cells = [c for c in nb.cells if c.get("id") != lessons.BOOTSTRAP_ID
                and not (c.cell_type == "code" and c.source.startswith(lessons.BOOTSTRAP_MARK))]
    first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    nb.cells.insert(first, nbformat.v4.new_code_cell(lessons.bootstrap_source(), id=lessons.BOOTSTRAP_ID))
    return nb


def with_claims(nb: nbformat.NotebookNode, registry: dict, name: str = "") -> nbformat.NotebookNode:
    """``nb`` whose Markdown numbers marked ``<!--claim:NAME-->`` say what the claims registry says."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and "<!--claim:" in cell.source:
            try:
                cell.source = prose.fill(cell.source, registry, _where(name, i, cell))
            except prose.ClaimsError as err:
                raise BuildError(str(err)) from None
    return nb


@dataclass
class Change:
    path: Path
    why: str
    refused: bool = False  # not written: the file was edited since genimg notebooks wrote it (see ``force``)


def read_built(students: Path) -> dict[str, str]:
    """``notebooks/.genimg-built.json``: {notebook name: sha256 of the text genimg notebooks last wrote}; {} when
    there is none; BuildError naming the file when it is damaged."""
    try:
        return workspace.read_built(students)
    except ValueError as err:
        raise BuildError(str(err)) from None


def built_manifest_text(built: dict[str, str]) -> str:
    about = ("written by `genimg notebooks`: the sha256 of each student notebook as it wrote it; it will not "
             "write over a notebook that differs (edited by hand). Do not edit.")
    return json.dumps({"about": about, "notebooks": dict(sorted(built.items()))}, indent=1) + "\n"


def claim_drift(path: Path, wanted: str) -> list[str]:
    """Each claimed number in ``path``'s Markdown that differs from the registry's (``wanted``: the built text):
    "06_diffusion.ipynb cell 33: claim 06.fid_flow says 42.3, the Markdown 44.8"."""
    try:
        have = nbformat.read(path, as_version=4).cells
    except Exception:  # noqa: BLE001 - unreadable: reported as differing by the caller
        return []
    want = nbformat.reads(wanted, as_version=4).cells
    by_id = {c.get("id"): c for c in want if c.get("id")}
    found = []
    # a cell is compared with the built cell of the same id (a cell inserted or removed shifts every index after it)
    pairs = [(i, old, by_id.get(old.get("id"))) for i, old in enumerate(have)] if by_id else \
        [(i, old, new) for i, (old, new) in enumerate(zip(have, want))]
    for i, old, new in pairs:
        if new is None or old.cell_type != "markdown" or old.source == new.source:
            continue
        for a, b in zip(prose.MARKER_RE.finditer(old.source), prose.MARKER_RE.finditer(new.source)):
            if a["old"] != b["old"]:
                field = f" ({a['field']})" if a["field"] else ""
                found.append(f"{path.name} cell {i}: claim {a['name']}{field} says {b['old']}, "
                             f"the Markdown {a['old'] or '(nothing)'}")
    return found


def _why_stale(path: Path, student: bool, wanted: str | None = None) -> str:
    if wanted is not None and (drift := claim_drift(path, wanted)):
        return "a number differs from genimg_course/registry/: " + "; ".join(drift)
    try:
        nb = nbformat.read(path, as_version=4)
        first = next((c.source for c in nb.cells if c.cell_type == "code"), "")
    except Exception:  # noqa: BLE001 - unreadable: just say it differs
        first = None
    if first is not None and first != lessons.bootstrap_source():
        return "install cell stale" if first.startswith(lessons.BOOTSTRAP_MARK) else "install cell missing"
    return "out of date" if student else "has outputs or metadata to clean"


def build(root: Path, check: bool = False, force: bool = False) -> list[Change]:
    """Write (or, with ``check``, only compare) ``notebooks/``, the cleaned ``solutions/``, README's lesson
    table (when ``root`` has a README.md) and ``notebooks/.genimg-built.json``.

    A student notebook that differs from what the manifest says was written last time is not written over
    (its Change has ``refused=True``) unless ``force``.
    """
    solutions, students = root / "solutions", root / "notebooks"
    sources = sorted(solutions.glob("*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"No notebooks in {solutions}")
    changes: list[Change] = []
    wanted: dict[Path, str] = {}
    registry = prose.load_registry()
    for src in sources:
        try:
            nb = nbformat.read(src, as_version=4)
        except Exception as err:  # noqa: BLE001 - any parse error is reported with the file name
            raise BuildError(f"{src}: not a readable notebook ({err})") from None
        nb = with_claims(with_bootstrap(nbformat.from_dict(nb)), registry, src.name)
        wanted[src] = nbformat.writes(with_nbgrader(clean(nbformat.from_dict(nb)), src.name)) + "\n"
        wanted[students / src.name] = nbformat.writes(student_version(nb, src.name)) + "\n"
    readme = root / "README.md"
    if readme.exists():
        try:
            wanted[readme] = lessons.with_readme_block(readme.read_text(encoding="utf-8"))
        except ValueError as err:
            raise BuildError(f"{readme}: {err}") from None
    for path, text in wanted.items():
        if path == readme:
            if text != path.read_text(encoding="utf-8"):
                changes.append(Change(path, "lesson table differs from genimg_course/course/lessons.py"))
        elif not path.exists():
            changes.append(Change(path, "missing"))
        elif path.read_text(encoding="utf-8") != text:
            changes.append(Change(path, _why_stale(path, path.parent == students, text)))
    for extra in sorted(set(students.glob("*.ipynb")) - set(wanted)):
        changes.append(Change(extra, "has no solution in solutions/"))
    built = read_built(students) if not (check or force) else {}  # --check compares the text; --force ignores it
    if built:
        for change in changes:
            path = change.path
            if (path.parent == students and path in wanted and path.name in built and path.is_file()
                    and file_sha256(path) != built[path.name]):
                change.why, change.refused = EDITED, True
    new_built = {p.name: text_sha256(text) for p, text in wanted.items() if p.parent == students}
    new_built.update({c.path.name: built[c.path.name] for c in changes if c.refused})  # still what was written
    manifest, manifest_text = students / BUILT_MANIFEST, built_manifest_text(new_built)
    if not manifest.exists():
        changes.append(Change(manifest, "manifest of what genimg notebooks wrote: missing"))
    elif manifest.read_text(encoding="utf-8") != manifest_text:
        changes.append(Change(manifest, "manifest of what genimg notebooks wrote: "
                                        + ("does not match notebooks/" if check else "updated")))
    if not check:
        wanted[manifest] = manifest_text
        students.mkdir(exist_ok=True)
        for change in changes:  # the manifest comes last: interrupted before it, the next build repairs it
            if change.path in wanted and not change.refused:
                change.path.write_text(wanted[change.path], encoding="utf-8")
    return changes
