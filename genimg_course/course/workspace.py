"""The student's working copies of the lessons: ``genimg workspace`` (``make lab`` runs it).

``notebooks/`` belongs to the course: ``git pull`` and ``genimg notebooks`` rewrite it. The student works in
``mywork/`` (in ``.gitignore``), which nothing in the course writes over:

* the first run copies every lesson of ``notebooks/`` there; a later run copies the lessons the student does not
  have yet (a new week's lessons, or one the student deleted);
* a file in the folder is never written over, renamed or deleted. When a released lesson changed since the
  student copied it, its new version is written *beside* the student's, as ``NN_slug.new-SHA8.ipynb`` (SHA8: the
  first 8 hex digits of its sha256), and the run says so, every time, until the student's copy equals the new
  version (they moved it over theirs) or the new file is gone (they merged it and deleted it);
* a ``notebooks/`` file that differs from what ``genimg notebooks`` last wrote (``notebooks/.genimg-built.json``)
  was edited there, before mywork/ existed: when mywork/ has no copy of that lesson yet, the edited file is the
  one copied.

``mywork/.genimg-workspace.json`` records, for each lesson, the sha256 of the released notebook it was copied
from and when (and the newer version written beside it, if any); it is the only file here this rewrites.
Nothing here imports torch, or nbformat (``genimg workspace`` runs at the start of every ``make lab``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

DEFAULT_DIR = "mywork"
MANIFEST = ".genimg-workspace.json"
BUILT_MANIFEST = ".genimg-built.json"  # in notebooks/, written by genimg notebooks: {name: sha256 of what it wrote}


# ------------------------------------------------------------------ shared with genimg notebooks (stdlib only)
def find_course_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` that holds ``solutions/``."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "solutions").is_dir():
            return folder
    raise FileNotFoundError(f"No 'solutions/' folder at or above {start}; run this from the course folder "
                            "or pass --root.")


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's text (line endings as Python reads them, so a CRLF checkout hashes the same), or of
    its bytes when it is not UTF-8."""
    try:
        return text_sha256(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        return hashlib.sha256(path.read_bytes()).hexdigest()


def read_built(students: Path) -> dict[str, str]:
    """``notebooks/.genimg-built.json``: {notebook name: sha256 of the text genimg notebooks last wrote}; {} when
    there is none; ValueError naming the file when it is damaged."""
    path = students / BUILT_MANIFEST
    if not path.exists():
        return {}
    try:
        built = json.loads(path.read_text(encoding="utf-8"))["notebooks"]
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in built.items()):
            raise TypeError("entries must be name: sha256")
    except Exception as err:  # noqa: BLE001 - any damage (a merge conflict, a hand edit) is reported with the path
        raise ValueError(f"{path}: not a manifest of genimg notebooks ({err}); restore it with "
                         f"`git checkout {path.parent.name}/{path.name}`, or delete it") from None
    return built


# ------------------------------------------------------------------ the working folder


@dataclass
class Report:
    """What one ``sync`` did: lesson names (stems) by outcome, and one line per lesson that needs saying."""
    folder: Path
    shown: str  # the folder as the messages name it ("mywork")
    created: bool = False
    copied: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    newer: list[str] = field(default_factory=list)  # a newer version is beside the student's copy
    rescued: list[str] = field(default_factory=list)  # copied from an edited notebooks/ file
    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        total = len(self.copied) + len(self.up_to_date) + len(self.newer)
        head = (f"{self.shown}/: created from notebooks/ ({len(self.copied)} lessons)" if self.created else
                f"{self.shown}/: {total} lessons; {len(self.copied)} copied now, {len(self.newer)} with a newer "
                "version beside yours")
        out = [head]
        if self.copied and not self.created:
            out.append("copied: " + ", ".join(self.copied))
        out += self.lines
        lab = " (`make lab` opens JupyterLab there)" if self.shown == DEFAULT_DIR else ""
        out.append(f"Work in {self.shown}/{lab}: nothing in the course writes over your files. After `git pull`, "
                   "run `genimg workspace` (or `make lab`) again for new lessons.")
        return "\n".join(out)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()  # a dangling link is something of the student's too


def _copy_new(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest``, which must not exist: 'x' mode fails rather than write over a file."""
    data = src.read_bytes()
    with open(dest, "xb") as f:
        f.write(data)


def _read_state(path: Path) -> dict:
    if not _exists(path):
        return {"lessons": {}}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(state.get("lessons"), dict):
            raise TypeError("no 'lessons' object")
    except Exception as err:  # noqa: BLE001 - damaged by hand: say which file, and how to recover
        raise ValueError(f"{path}: not a genimg workspace manifest ({err}); delete it and run genimg workspace "
                         "again (your notebooks are not touched)") from None
    return state


def _write_state(path: Path, state: dict) -> None:
    state["about"] = ("written by `genimg workspace`: the released notebook each lesson here was copied from "
                      "(sha256 of its text) and when. It never writes over your notebooks.")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dict(sorted(state.items())), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def sync(root: Path | str, folder: Path | str = DEFAULT_DIR) -> Report:
    """Create or update the working folder ``folder`` (relative to the course folder ``root`` unless absolute)
    from ``root/notebooks``; see the module's docstring. Raises FileNotFoundError, NotADirectoryError or ValueError
    (one line naming the path) when it cannot."""
    root = Path(root)
    released = root / "notebooks"
    if not released.is_dir():
        raise FileNotFoundError(f"{released}: no such folder (the released lessons); run this in the course folder "
                                "or pass --root")
    lessons = sorted(p for p in released.glob("*.ipynb") if p.is_file())
    if not lessons:
        raise FileNotFoundError(f"{released}: no lessons (*.ipynb) to copy")
    dest = Path(folder).expanduser()
    dest = dest if dest.is_absolute() else root / dest
    if _exists(dest) and not dest.is_dir():
        raise NotADirectoryError(f"{dest} exists and is not a folder: move it away, or pass --dir another name")
    try:
        shown = str(dest.resolve().relative_to(root.resolve()))
    except ValueError:
        shown = str(dest)
    report = Report(dest, shown, created=not dest.exists())
    try:
        built = read_built(released)
    except ValueError as err:  # only needed to spot edits made in notebooks/: say so, and go on without it
        built = {}
        report.lines.append(f"note: {err}; cannot tell which notebooks/ files you edited")
    state_path = dest / MANIFEST
    state = _read_state(state_path)
    before = json.dumps(state, sort_keys=True)
    dest.mkdir(parents=True, exist_ok=True)
    for src in lessons:
        name, lesson = src.name, src.stem
        have = file_sha256(src)
        edited = name in built and have != built[name]  # changed in notebooks/ since genimg notebooks wrote it
        release = built[name] if edited else have  # the sha of the released version
        entry = state["lessons"].get(name)
        mine = dest / name
        if not _exists(mine):
            _copy_new(src, mine)
            state["lessons"][name] = {"sha256": release, "copied": _now()}
            report.copied.append(lesson)
            if edited:
                state["lessons"][name]["from_edited_notebooks"] = have
                report.rescued.append(lesson)
                report.lines.append(f"{lesson}: notebooks/{name} holds edits (it differs from what genimg notebooks "
                                    f"wrote): copied YOUR version to {shown}/{name}. `git checkout notebooks/{name}` "
                                    "then returns notebooks/ to the release.")
            elif entry is not None:
                report.lines.append(f"{lesson}: {shown}/{name} was missing: copied the released lesson again")
            continue
        if edited and (not mine.is_file() or file_sha256(mine) != have):
            report.lines.append(f"{lesson}: notebooks/{name} holds edits too; they are not copied, since you have "
                                f"{shown}/{name} (copy them yourself if you need them)")
        mine_sha = file_sha256(mine) if mine.is_file() else None
        adopted = entry is None  # put there by the student (or the manifest was deleted): from which release?
        if adopted:  # unknown: unless it is the release itself, the release is written beside it
            entry = state["lessons"][name] = {"sha256": None, "copied": None, "adopted": _now()}
        why = (f"{shown}/{name} was not copied by genimg workspace and differs from the released lesson" if adopted
               else "the released lesson changed since you copied it")
        if mine_sha == release:  # the release itself: never edited, or the student moved the new version over it
            if entry["sha256"] != release or "newer" in entry:
                entry.update(sha256=release, updated=_now())
                entry.pop("newer", None)
            report.up_to_date.append(lesson)
        elif entry["sha256"] == release:
            report.up_to_date.append(lesson)
        elif edited:  # the release changed, but notebooks/ holds edits rather than the new version
            report.newer.append(lesson)
            report.lines.append(f"{lesson}: {why}, but notebooks/{name} holds edits, not the release: "
                                f"`git checkout notebooks/{name}`, then run genimg workspace again")
        else:
            beside = f"{lesson}.new-{release[:8]}.ipynb"
            newer = entry.get("newer")
            if newer and newer.get("sha256") == release:
                if _exists(dest / beside):
                    report.newer.append(lesson)
                    report.lines.append(f"{lesson}: a newer version is beside your copy: {beside}")
                else:  # the student deleted it: merged, or not wanted
                    entry.update(sha256=release, updated=_now())
                    entry.pop("newer", None)
                    report.up_to_date.append(lesson)
                    report.lines.append(f"{lesson}: {beside} is gone: taken as merged into your copy")
                continue
            if not _exists(dest / beside):
                _copy_new(src, dest / beside)
            entry["newer"] = {"sha256": release, "file": beside, "written": _now()}
            report.newer.append(lesson)
            unedited = " and unedited: you may replace it with the new one" if mine_sha == entry["sha256"] else ""
            what = "it" if adopted else "its new version"
            report.lines.append(f"{lesson}: {why}; {what} is beside yours: {beside} (yours is untouched{unedited})")
    if json.dumps(state, sort_keys=True) != before or not _exists(state_path):
        _write_state(state_path, state)
    return report
