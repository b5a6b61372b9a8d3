"""The grader's results and what it writes: grades.csv, a feedback page per student, the summary table."""

from __future__ import annotations

import csv
import hashlib
import html
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

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


def _csv_cell(value):
    """A cell that a spreadsheet shows as text: one starting with =, +, -, @, a tab or a carriage return is a
    formula to Excel and LibreOffice, so it gets a leading apostrophe (OWASP's advice for CSV exports)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def feedback_names(students: list[str]) -> dict[str, str]:
    """{student: feedback file name}, unique per student whatever the names (zoë and zoé, Bob and bob).

    A name that is not plain ASCII letters, digits, ``_.-`` keeps a readable stem plus 8 hex digits of a
    hash of the whole name; so does a name that would clash with another on a case-insensitive disk.
    """
    names: dict[str, str] = {}
    stems = {s: re.sub(r"[^A-Za-z0-9_.-]", "_", s).lstrip(".")[:60] or "student" for s in students}
    clashes: dict[str, int] = {}
    for s in students:
        clashes[stems[s].casefold()] = clashes.get(stems[s].casefold(), 0) + 1
    for s in students:
        stem = stems[s]
        if stem != s or clashes[stem.casefold()] > 1:
            stem = f"{stem}-{hashlib.sha256(s.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
        names[s] = f"{stem}.html"
    return names


def writable_beside(path: Path) -> Path:
    """``path`` if a file can be written there, else the first free ``STEM.N.SUFFIX`` beside it (``path`` turned
    into a folder, or made read-only, by a submission without a sandbox), said in one line on stderr."""
    try:
        with open(path, "a", encoding="utf-8"):
            pass
        return path
    except OSError as err:
        for n in range(1, 1000):
            other = path.with_name(f"{path.stem}.{n}{path.suffix}")
            try:
                with open(other, "x", encoding="utf-8"):
                    pass
            except OSError:
                continue
            print(f"genimg grade: {path} could not be written ({type(err).__name__}: {err.strerror}); wrote "
                  f"{other} instead", file=sys.stderr)
            return other
        raise


def write_reports(results: list[SubmissionResult], out: Path) -> Path:
    """Write grades.csv, feedback/STUDENT.html and results.json; returns where grades.csv went (beside it when
    it cannot be written: ``writable_beside``)."""
    grades = writable_beside(out / "grades.csv")
    with open(grades, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "notebook", "exercise", "points", "max_points", "status", "message"])
        for r in results:
            for e in r.exercises:
                writer.writerow(map(_csv_cell, [r.student, r.notebook, e.exercise, e.points, e.max_points, e.status,
                                                e.message]))
            status = "graded" if r.graded and not r.problem else ("partly graded" if r.graded else "not graded")
            writer.writerow(map(_csv_cell, [r.student, r.notebook, "TOTAL", r.points, r.max_points, status,
                                            r.problem]))
    feedback = out / "feedback"
    if feedback.is_symlink() or (feedback.exists() and not feedback.is_dir()):  # a file (or a link) in its place
        feedback = next(p for p in (out / f"feedback.{n}" for n in range(1, 1000)) if not p.exists())
        print(f"genimg grade: {out / 'feedback'} is not a folder; wrote the feedback pages in {feedback}",
              file=sys.stderr)
    feedback.mkdir(exist_ok=True)
    by_student: dict[str, list[SubmissionResult]] = {}
    for r in results:
        by_student.setdefault(r.student, []).append(r)
    files = feedback_names(list(by_student))
    for student, rs in by_student.items():
        (feedback / files[student]).write_text(feedback_html(student, rs), encoding="utf-8")
    (feedback / "index.csv").write_text("student,feedback\n" + "".join(
        f"{_csv_quote(_csv_cell(s))},{files[s]}\n" for s in by_student), encoding="utf-8")
    writable_beside(out / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    return grades


def _csv_quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


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
