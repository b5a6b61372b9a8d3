"""Reading what students hand in: which files are submissions, and whether each one is a notebook.

Nothing here runs student code. A file that cannot be read, is not a regular file, is not JSON, or is JSON
but not a valid notebook is reported with a message that names what is wrong (the field, for a bad
notebook), for that submission alone. See INSTRUCTORS.md, "How a submission is graded".
"""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from pathlib import Path

import nbformat

MAX_READ_SECONDS = 20  # reading one submission file
MAX_FILE_BYTES = 200 * 2**20  # a notebook with big outputs is a few MB; 200 MB is not a notebook


def read_bytes(path: Path, timeout: float = MAX_READ_SECONDS, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a *regular* file, read within ``timeout`` seconds; a clear ValueError for anything else.

    Opened without blocking and checked with fstat, so a FIFO or a device named ``*.ipynb`` (a tarball can
    carry one) is refused at once instead of hanging the batch; a slow disk or network share is given up
    after ``timeout`` seconds.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise ValueError(f"cannot be opened ({err.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"not a regular file but {_file_kind(info.st_mode)}; skipped")
        if info.st_size > limit:
            raise ValueError(f"{info.st_size / 2**20:.0f} MB is too large for a notebook (the limit is "
                             f"{limit // 2**20} MB)")
        box: dict = {}

        def read():
            try:
                box["data"] = f.read(limit + 1)
            except OSError as err:
                box["error"] = err

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if reader.is_alive():
            raise ValueError(f"reading the file took longer than {timeout:g} s; skipped")
    if "error" in box:
        raise ValueError(f"cannot be read ({box['error']})")
    return box["data"][:limit]


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "a special file"


def read_submission(path: Path) -> nbformat.NotebookNode:
    """Read any nbformat version as version 4; a clear ValueError, naming every bad field, for anything else."""
    try:
        text = read_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not a text file (is it really a .ipynb notebook?)") from None
    if not text.strip():
        raise ValueError("the file is empty")
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        where = f"line {err.lineno}, column {err.colno}: {err.msg}" if isinstance(err, json.JSONDecodeError) else \
            "nested too deeply"
        raise ValueError(f"not valid JSON ({where}); was the notebook saved completely?") from None
    if not isinstance(raw, dict) or "cells" not in raw and "worksheets" not in raw:
        raise ValueError("valid JSON, but not a Jupyter notebook (no cells)")
    problems = schema_problems(raw)  # as written, in its own nbformat version
    if not problems:
        try:
            nb = nbformat.reads(text, as_version=4, capture_validation_error={})
        except Exception as err:  # noqa: BLE001 - nbformat raises many kinds of errors
            raise ValueError(f"not a notebook nbformat can read ({type(err).__name__}: {str(err)[:300]})") from None
        problems = schema_problems(nb)  # and as converted to version 4
    if problems:
        more = f" (and {len(problems) - 8} more)" if len(problems) > 8 else ""
        raise ValueError("valid JSON, but not a valid notebook: " + "; ".join(problems[:8]) + more)
    return nb


def schema_problems(nb) -> list[str]:
    """What nbformat's schema finds wrong in ``nb``, each with where: ``cells[3].source: 5 is not of type ...``."""
    from nbformat.validator import get_validator

    problems = []
    try:
        version = nb.get("nbformat", 4) if isinstance(nb.get("nbformat"), int) else 4
        minor = nb.get("nbformat_minor", 0) if isinstance(nb.get("nbformat_minor"), int) else 0
        validator = get_validator(version, minor, name="jsonschema") or get_validator(4, 5, name="jsonschema")
        for err in sorted(validator.iter_errors(nb), key=lambda e: list(map(str, e.absolute_path))):
            problems += [f"{where or 'the notebook'}: {message[:160]}" for where, message in _explain(err)]
    except Exception as err:  # noqa: BLE001 - a validator that cannot even walk the document
        problems.append(f"the notebook cannot be validated ({type(err).__name__})")
    # the grader's own reading of the course's metadata, which the schema leaves open
    cells = nb.get("cells", []) if isinstance(nb.get("cells"), list) else []
    for i, cell in enumerate(cells):
        meta = cell.get("metadata", {}) if isinstance(cell, dict) else {}
        if isinstance(meta, dict) and "nbgrader" in meta and not isinstance(meta["nbgrader"], dict):
            problems.append(f"cells[{i}].metadata.nbgrader: {type(meta['nbgrader']).__name__} instead of an object")
    return problems


def _explain(err) -> list[tuple[str, str]]:
    """(where, what) for one schema error; for "one of these kinds" (a cell, an output) the errors of its own kind."""
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path).lstrip(".")
    if not err.context or not isinstance(err.instance, dict):
        return [(where, err.message)]
    kind_key = "cell_type" if "cell_type" in err.instance else "output_type"
    kind = err.instance.get(kind_key)
    choices = err.schema.get("oneOf", [])
    match = [i for i, alt in enumerate(choices) if isinstance(kind, str) and f"{kind}_" in json.dumps(alt)
             or json.dumps(kind) in json.dumps(alt.get("properties", {}).get(kind_key, {}))]
    if not match:
        return [(f"{where}.{kind_key}", f"{kind!r} is not a kind of {kind_key.split('_')[0]} "
                 "('code', 'markdown' or 'raw' for a cell)")]
    found = []
    for sub in err.context:
        if sub.schema_path and sub.schema_path[0] == match[0]:
            found += _explain(sub)
    return found or [(where, err.message)]


def collect_submissions(paths: list[str], skipped: list | None = None) -> list[tuple[str, Path]]:
    """(student, file) for every notebook: one folder per student, one folder of files, or files.

    Anything named ``*.ipynb`` that is not a regular file (a FIFO, a device, a socket, a dangling link) is
    left out, and (student, file, a line saying why) goes to ``skipped``.
    """
    candidates: list[tuple[str, Path]] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            for f in sorted(p.rglob("*.ipynb")):
                if ".ipynb_checkpoints" in f.parts or f.is_dir():
                    continue
                rel = f.relative_to(p)
                candidates.append((rel.parts[0] if len(rel.parts) > 1 else _student(f), f))
        elif p.exists() or p.is_symlink():
            candidates.append((_student(p), p))
        else:
            raise FileNotFoundError(f"No such file or folder: {arg!r}")
    found = []
    for student, f in candidates:
        if f.is_file():  # False for FIFOs, devices, sockets and dangling links
            found.append((student, f))
        elif skipped is not None:
            skipped.append((student, f, f"skipped {f}: {_kind_of(f)}, not a notebook file"))
    seen: dict[str, int] = {}
    unique = []
    for student, f in found:
        seen[student] = seen.get(student, 0) + 1
        unique.append((student if seen[student] == 1 else f"{student}-{seen[student]}", f))
    return unique


def _kind_of(path: Path) -> str:
    try:
        return _file_kind(path.stat().st_mode)
    except OSError:
        return "a link to nothing"


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
