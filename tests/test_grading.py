"""genimg grade on every kind of submission the grading issue lists, graded as one batch.

The batch runs once (about two minutes with -j 2); each test reads its row. Every case is
built from the released and the solved notebook of 01_preprocessing (tests/grading_fixtures.py).
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import time

import nbformat
import pytest

from genimg_course.course import checks
from genimg_course.course.grading import grader as grading
from genimg_course.course.cli import main
from genimg_course.course.exercises import EXERCISES, exercises_for
from grading_fixtures import (ANSWER_CASES, LESSON, ROOT, answer_sources, build_all, course_rewriter, released,
                              solved_submission, special_file)

checks.load_all()  # declares every exercise of the course (EXERCISES)

MAX = sum(ex.points for ex in exercises_for(LESSON))
LIMITS = ["--timeout-cell", "15", "--timeout", "45", "--memory", "1500", "-j", "3"]


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("graded")
    cases = build_all(folder)
    cases["fifo"] = special_file(folder)
    start = time.monotonic()
    code = main(["grade", str(folder), "--out", str(out), "--lesson", LESSON, "--root", str(ROOT), *LIMITS])
    seconds = time.monotonic() - start
    results = {r["student"]: r for r in json.loads((out / "results.json").read_text())}
    rows = list(csv.DictReader(open(out / "grades.csv", encoding="utf-8")))
    return {"code": code, "results": results, "rows": rows, "out": out, "cases": cases, "seconds": seconds}


def status(batch, student, exercise):
    e = next(e for e in batch["results"][student]["exercises"] if e["exercise"] == exercise)
    return e["status"], e["points"], e["message"]


def total(batch, student):
    return sum(e["points"] for e in batch["results"][student]["exercises"])


def test_every_case_is_in_the_batch(batch):
    assert set(batch["results"]) == set(batch["cases"])


def test_full_marks_and_none_attempted(batch):
    assert total(batch, "full") == MAX
    assert all(e["status"] == "passed" for e in batch["results"]["full"]["exercises"])
    assert total(batch, "none") == 0
    assert {e["status"] for e in batch["results"]["none"]["exercises"]} == {"not attempted"}


def test_one_wrong_exercise_gets_the_checks_message(batch):
    s, points, message = status(batch, "wrong", "gray_world")
    assert (s, points) == ("failed", 0)
    assert "expected" in message and "got" in message and "input:" in message
    assert total(batch, "wrong") == MAX - EXERCISES["gray_world"].points
    fb = (batch["out"] / "feedback" / "wrong.html").read_text()
    assert "gray_world" in fb and "❌" in fb  # the check cell's own feedback is on the student's page


def test_grading_twice_gives_the_same_scores(batch):
    strip = lambda r: [(e["exercise"], e["points"], e["status"], e["message"]) for e in r["exercises"]]  # noqa: E731
    assert strip(batch["results"]["wrong"]) == strip(batch["results"]["wrong_again"])


@pytest.mark.parametrize("student", ["loop", "stubborn"])
def test_endless_loop_is_stopped_and_earlier_exercises_count(batch, student):
    r = batch["results"][student]
    assert "time limit of 15 s" in r["problem"]
    assert status(batch, student, "normalize")[0] == "not graded"
    assert total(batch, student) == MAX - EXERCISES["normalize"].points
    # stopped after its 15 s, not at the notebook's 45 s limit: compared with the full submission's run in the same
    # batch (the grader's set-up cell is not counted in the notebook's time, so an absolute bound is machine-bound)
    assert r["seconds"] < batch["results"]["full"]["seconds"] + 15 + 10


def test_warnings_cost_nothing(batch):
    assert total(batch, "warns") == MAX


def test_sleeping_past_the_notebook_limit(batch):
    r = batch["results"]["sleepy"]
    assert "notebook ran past its time limit of 45 s" in r["problem"]
    assert 0 < total(batch, "sleepy") < MAX  # the exercises graded before the limit keep their points
    assert r["seconds"] < batch["results"]["full"]["seconds"] + 45  # stopped at the limit (set-up not counted in it)


def test_dead_kernel_is_noticed_at_once(batch):
    r = batch["results"]["dies"]
    assert "kernel died" in r["problem"]
    assert status(batch, "dies", "adjust_contrast")[0] == "passed"
    assert status(batch, "dies", "gray_world")[0] == "not graded"
    # not the cell time limit of 15 s on top of a normal run: compared with the full submission's run in the same
    # batch (an absolute bound failed on a slow machine: 30.3 s against 30)
    assert r["seconds"] < batch["results"]["full"]["seconds"] + 10, (r["seconds"], batch["results"]["full"]["seconds"])


def test_memory_hog_is_stopped_by_the_limit(batch):
    r = batch["results"]["hog"]
    assert any("MemoryError" in e for e in r["cell_errors"])
    assert status(batch, "hog", "adjust_contrast")[0] == "passed"


def test_output_flood_is_cut(batch):
    r = batch["results"]["flood"]
    assert any("characters of output were cut" in e for e in r["cell_errors"])
    assert total(batch, "flood") == MAX
    assert (batch["out"] / "feedback" / "flood.html").stat().st_size < 100_000


@pytest.mark.parametrize("student,words", [("badjson", "not valid JSON"), ("empty", "empty")])
def test_unreadable_files_are_reported(batch, student, words):
    r = batch["results"][student]
    assert not r["graded"] and words in r["problem"]
    row = next(row for row in batch["rows"] if row["student"] == student and row["exercise"] == "TOTAL")
    assert row["status"] == "not graded" and row["points"] == "0"


def test_old_format_reordered_and_stripped_notebooks_get_full_marks(batch):
    for student in ("oldformat", "shuffled", "stripped"):
        assert total(batch, student) == MAX, student
    assert any("nbgrader metadata" in n for n in batch["results"]["stripped"]["notes"])


def test_renamed_function_and_syntax_error(batch):
    s, _, message = status(batch, "renamed", "gray_world")
    assert s == "missing" and "gray_world_v2" in message
    s, _, message = status(batch, "syntax", "contrast_stretch")
    assert s == "failed" and "syntax error" in message and "line" in message
    assert total(batch, "syntax") == MAX - EXERCISES["contrast_stretch"].points


@pytest.mark.parametrize("student", ["tamper_check", "tamper_tests", "tamper_torch"])
def test_tampering_gains_nothing(batch, student):
    s, points, message = status(batch, student, "gray_world")
    assert s == "tampering" and points == 0
    assert total(batch, student) <= MAX - EXERCISES["gray_world"].points


@pytest.mark.parametrize("student", ["reference", "reference_hidden"])
def test_calling_the_reference_is_not_done(batch, student):
    s, points, message = status(batch, student, "gray_world")
    assert s == "reference used" and points == 0 and "reference implementation" in message


@pytest.mark.parametrize("student,exercise,call", [("library", "adjust_contrast", "v2.functional.adjust_contrast"),
                                                   ("library_hidden", "normalize", "tv.normalize")])
def test_a_library_only_answer_scores_zero_with_the_reason(batch, student, exercise, call):
    s, points, message = status(batch, student, exercise)
    assert (s, points) == ("library used", 0)
    assert f"`{call}`" in message and "may not be used" in message
    assert total(batch, student) == MAX - EXERCISES[exercise].points
    assert "library used" in (batch["out"] / "feedback" / f"{student}.html").read_text()


def test_duplicate_markdown_other_lesson_and_locked_cells(batch):
    assert total(batch, "duplicate") == MAX
    assert any("2 cells define it" in n for n in batch["results"]["duplicate"]["notes"])
    s, _, message = status(batch, "markdown", "normalize")
    assert s == "missing" and "Markdown" in message
    other = batch["results"]["otherlesson"]
    assert not other["graded"] and "02_mlp_generator" in other["problem"] and "by mistake" in other["problem"]
    assert any("check_normalize was changed" in n for n in batch["results"]["lockedchanged"]["notes"])
    assert total(batch, "lockedchanged") == MAX


@pytest.mark.parametrize("student,field", [("badsource", "cells[3].source"),
                                           ("badmeta", "metadata.nbgrader: str instead of an object")])
def test_a_valid_json_invalid_notebook_is_reported_alone(batch, student, field):
    r = batch["results"][student]
    assert not r["graded"] and "not a valid notebook" in r["problem"] and field in r["problem"], r["problem"]
    assert total(batch, "full") == MAX  # and the batch went on


def test_a_fifo_is_skipped_with_one_line(batch, capsys):
    r = batch["results"]["fifo"]
    assert not r["graded"] and "FIFO" in r["problem"] and "skipped" in r["problem"]


def test_names_folded_together_get_their_own_feedback_pages(batch):
    pages = {p.name: p.read_text() for p in (batch["out"] / "feedback").glob("zo*.html")}
    assert len(pages) == 2, sorted(pages)
    assert sum("Feedback for zoë" in t for t in pages.values()) == 1
    assert sum("Feedback for zoé" in t for t in pages.values()) == 1
    assert total(batch, "zoë") == MAX and total(batch, "zoé") == 0


def test_no_cell_of_the_gradebook_is_a_formula(batch):
    text = (batch["out"] / "grades.csv").read_text(encoding="utf-8")
    cells = [cell for row in csv.reader(text.splitlines()) for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")], "a cell a spreadsheet would execute"
    assert "'=1+1" in text and "'@SUM(A1)" in text


@pytest.fixture(scope="module")
def answer_cases(tmp_path_factory):
    """Each of ANSWER_CASES graded by the answers process alone: the solved lesson with that one answer replaced."""
    context, solved = grading.released_imports(released()), answer_sources()
    order = [ex.name for ex in exercises_for(LESSON)]
    specs = {case: {"lesson": LESSON, "context": context, "extra_tests": None, "memory": 2048, "failed_before": [],
                    "cells": [{"exercise": n, "source": source if n == exercise else solved[n]} for n in order],
                    "timeout": 5 if case == "loops_in_tests" else 60}
             for case, (exercise, source) in ANSWER_CASES.items()}
    return grade_answers(tmp_path_factory.mktemp("answers"), specs, wait=300)


def grade_answers(folder, specs: dict, wait: float) -> dict:
    """Run the answers process on every spec at once ({name: spec without "results"}); {name: its results}."""
    procs = {}
    for name, spec in specs.items():
        (folder / f"{name}.spec").write_text(json.dumps({**spec, "results": str(folder / f"{name}.json")}))
        procs[name] = subprocess.Popen([sys.executable, "-m", "genimg_course.course.grading.answers",
                                        str(folder / f"{name}.spec")], cwd=folder,
                                       env={**os.environ, "OMP_NUM_THREADS": "1", "GENIMG_PROFILE": "ci"})
    for proc in procs.values():
        proc.wait(timeout=wait)
    return {name: json.loads((folder / f"{name}.json").read_text()) for name in procs}


@pytest.mark.parametrize("case,status,words", [
    ("reference_import", "reference used", "reference implementation"),
    ("reference_check", "reference used", "reference implementation"),
    ("reference_copy", "reference used", "reference implementation"),
    ("patch_compare", "tampering", "torch.allclose"),
    ("patch_oracle", "tampering", "adjust_contrast"),
    ("agree_tensor", "failed", "an object of type Agree"),
    ("top_level_only", "missing", "no function `gray_world`"),
    ("overflow_in_tests", "not graded", "died"),
    ("loops_in_tests", "not graded", "time limit of 5 s"),
])
def test_answers_the_first_grader_accepted_score_nothing(answer_cases, case, status, words):
    exercise = ANSWER_CASES[case][0]
    result = answer_cases[case][exercise]
    assert result["status"] == status and words in result["message"], result
    others = {n: r["status"] for n, r in answer_cases[case].items() if n != exercise}
    assert set(others.values()) == {"passed"}, others  # the other answers are graded as usual


@pytest.mark.parametrize("student,exercise,why", [("sigloop", "normalize", "time limit"),
                                                  ("overflow", "normalize", "kernel died")])
def test_a_cell_that_never_finishes_is_not_graded_with_the_reason(batch, student, exercise, why):
    s, points, message = status(batch, student, exercise)
    assert (s, points) == ("not graded", 0) and why in message, (s, message)
    assert status(batch, student, "adjust_contrast")[0] == "passed"


def test_a_submission_that_rewrites_the_course_stops_the_batch(tmp_path, capsys, monkeypatch):
    """Without the sandbox (which makes the course read-only: tests/test_sandbox.py), the grader notices."""
    monkeypatch.setenv("GENIMG_SANDBOX", "0")
    root = tmp_path / "course"
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    subs = tmp_path / "subs"
    nbformat.write(solved_submission(), (subs / "alice").mkdir(parents=True) or subs / "alice" / f"{LESSON}.ipynb")
    target = root / "notebooks" / f"{LESSON}.ipynb"
    nbformat.write(course_rewriter(target), (subs / "mallory").mkdir() or subs / "mallory" / f"{LESSON}.ipynb")
    code = main(["grade", str(subs), "--out", str(tmp_path / "out"), "--root", str(root), "--lesson", LESSON,
                 "--timeout-cell", "30", "--timeout", "120"])
    err = capsys.readouterr().err
    assert code == 2 and "changed on disk" in err and "mallory" in err and "No grades were written" in err, err
    assert not (tmp_path / "out" / "grades.csv").exists()


def test_reports_and_exit_status(batch):
    assert batch["code"] == 1  # some submissions could not be graded
    header = list(batch["rows"][0])
    assert header == ["student", "notebook", "exercise", "points", "max_points", "status", "message"]
    totals = [r for r in batch["rows"] if r["exercise"] == "TOTAL"]
    assert len(totals) == len(batch["cases"])
    assert len(list((batch["out"] / "feedback").glob("*.html"))) == len(batch["cases"])


def test_extra_tests_and_a_clean_batch_exit_zero(tmp_path, capsys):
    sub = tmp_path / "subs"
    nbformat.write(solved_submission(), (sub.mkdir() or sub) / "alice_01.ipynb")
    extra = tmp_path / "extra.py"
    extra.write_text("def test_normalize(fn):\n    raise AssertionError('hidden test: always fails')\n")
    code = main(["grade", str(sub), "--out", str(tmp_path / "out"), "--root", str(ROOT), "--extra-tests", str(extra),
                 "--timeout-cell", "30", "--timeout", "120"])
    assert code == 0
    rows = {r["exercise"]: r for r in csv.DictReader(open(tmp_path / "out" / "grades.csv"))}
    assert rows["normalize"]["status"] == "failed" and "hidden test: always fails" in rows["normalize"]["message"]
    assert rows["gray_world"]["status"] == "passed"
    assert rows["TOTAL"]["student"] == "alice"
    assert "alice" in capsys.readouterr().out


def test_student_names():
    assert grading.student_from_name("alice_01") == "alice"
    assert grading.student_from_name("bob-03_vae") == "bob"
    assert grading.student_from_name("carol") == "carol"


def test_read_submission_errors(tmp_path):
    (tmp_path / "a.ipynb").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a Jupyter notebook"):
        grading.read_submission(tmp_path / "a.ipynb")
    (tmp_path / "b.ipynb").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError):
        grading.read_submission(tmp_path / "b.ipynb")


def test_identify_lesson():
    lessons = grading.released_notebooks(ROOT)
    assert grading.identify_lesson(released(), ROOT / "x.ipynb", lessons)[0] == LESSON
    assert grading.identify_lesson(released("03_vae"), ROOT / "x.ipynb", lessons)[0] == "03_vae"


def test_bad_arguments(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--root", str(ROOT)]) == 2
    assert "No such file or folder" in capsys.readouterr().err
    (tmp_path / "x.ipynb").write_text("{}")
    assert main(["grade", str(tmp_path / "x.ipynb"), "--out", str(tmp_path / "o"), "--root", str(ROOT),
                 "--lesson", "99_nothing"]) == 2
    assert "Unknown lesson" in capsys.readouterr().err
    assert main(["grade", str(tmp_path / "x.ipynb"), "--out", str(tmp_path / "o"), "--root", str(ROOT),
                 "--timeout", "0"]) == 2


def test_every_lessons_solutions_get_full_points_where_only_their_definitions_exist(tmp_path):
    """No solved answer may lean on a notebook variable that the answer process does not give it."""
    from grading_fixtures import answer_sources as solved_answers

    lessons = sorted({ex.lesson for ex in EXERCISES.values()})
    specs = {}
    for lesson in lessons:
        solved = solved_answers(lesson)
        specs[lesson] = {"lesson": lesson, "context": grading.released_imports(released(lesson)), "extra_tests": None,
                         "memory": 4096, "failed_before": [], "timeout": 120,
                         "cells": [{"exercise": ex.name, "source": solved[ex.name]} for ex in exercises_for(lesson)]}
    for lesson, results in grade_answers(tmp_path, specs, wait=600).items():
        assert {name: r["status"] for name, r in results.items()} == {ex.name: "passed" for ex in exercises_for(lesson)}, \
            (lesson, results)


# ----------------------------------------------------------------------------- issue 32: the check before hand-in
HANDIN_CASES = ("full", "none", "wrong", "out_of_order", "stale_save", "deleted_variable")


@pytest.fixture(scope="module")
def handin(batch):
    """``genimg check``'s prediction for each case: the CLI for two, the function (with the kernel's view of the
    answers, as the lesson's cell passes it) for the rest; two of them without a course checkout (Colab)."""
    from concurrent.futures import ThreadPoolExecutor

    from genimg_course.course.handin import check_notebook, format_report

    limits = grading.Limits(timeout_cell=15, timeout=45, memory=1500)
    kernel = {"stale_save": {"gray_world": answer_sources()["gray_world"]},
              "deleted_variable": {"__globals__": {"GAIN"}}}

    def predict(student):
        path = batch["cases"][student]
        root = None if student in ("wrong", "stale_save") else ROOT  # None: no checkout above: rebuilt from the file
        report = check_notebook(path, root, live=kernel.get(student), limits=limits)
        return student, report, format_report(report, path)

    with ThreadPoolExecutor(3) as pool:
        return {s: (r, text) for s, r, text in pool.map(predict, HANDIN_CASES[2:])}


@pytest.mark.parametrize("student", HANDIN_CASES[2:])
def test_the_check_before_hand_in_predicts_the_graders_points(batch, handin, student):
    report, text = handin[student]
    graded = {e["exercise"]: (e["status"], e["points"]) for e in batch["results"][student]["exercises"]}
    predicted = {e.exercise: (e.status, e.points) for e in report.result.exercises}
    assert predicted == graded, text
    assert f"total: {total(batch, student):g} / {MAX} points" in text


@pytest.mark.parametrize("student, words", [
    ("out_of_order", ["uses `channel_means`, defined only in a later answer cell (cell 29, `normalize`)",
                      "cells out of order: cell 27 ran as [18], after cell 29 below it ran as [1]",
                      "saved output of check.gray_world says it passed, but a fresh run"]),
    ("deleted_variable", ["uses `GAIN`, which no cell of the saved notebook defines (your kernel still has it)",
                          "saved output of check.gray_world says it passed"]),
    ("stale_save", ["the saved file's `gray_world` is not the one your kernel ran: you edited it after the last save"]),
    ("wrong", ["❌ gray_world        0 / 2  failed: "])])
def test_the_check_says_why_a_fresh_run_differs_from_the_kernel(handin, student, words):
    text = handin[student][1]
    for w in words:
        assert w in text, text
    assert "Ready to hand in" not in text
    if student == "wrong":  # nothing the kernel would have seen otherwise: only the check's own message
        assert "↳" not in text and "note:" not in text, text


def test_genimg_check_full_and_none(batch, capsys):
    code = main(["check", str(batch["cases"]["full"]), "--root", str(ROOT), "--timeout-cell", "15", "--timeout", "45"])
    out = capsys.readouterr().out
    assert code == 0 and f"total: {MAX} / {MAX} points" in out and "Ready to hand in." in out, out
    code = main(["check", str(batch["cases"]["none"]), "--root", str(ROOT), "--timeout-cell", "15", "--timeout", "45"])
    out = capsys.readouterr().out
    assert code == 1 and f"total: 0 / {MAX} points" in out and out.count("not attempted") == len(exercises_for(LESSON))
    assert [(e["status"], e["points"]) for e in batch["results"]["none"]["exercises"]] == \
        [("not attempted", 0)] * len(exercises_for(LESSON))


def test_genimg_check_bad_input(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nothing.ipynb")]) == 2
    assert "no such notebook" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hi")
    assert main(["check", str(tmp_path / "notes.txt")]) == 2
    assert "not a notebook" in capsys.readouterr().err


def test_static_reading_of_a_saved_notebook():
    from genimg_course.course import handin

    assert handin.used_globals("import torch\nK = 2\n\ndef f(x, e=E0):\n    y = h(x) * K + torch.ones(1)\n"
                               "    return [a for a in y if a > M]\nprint(f)\n") == {"E0", "h", "M"}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a", execution_count=n) for n in (1, 2, 5, 3, 4)])
    assert handin.out_of_order(nb) == [(2, 5, 3, 3), (2, 5, 4, 4)]
    nb.cells[2].execution_count = None  # never run (or cleared): not an order
    assert handin.out_of_order(nb) == []
    assert handin.saved_check_status(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "check.f(f)", outputs=[nbformat.v4.new_output("stream", text="❌ f: 1 of 2 tests failed.")])]), "f") == "failed"


def test_the_lessons_cell_does_nothing_in_the_grader(monkeypatch, capsys):
    from genimg_course.course import handin

    monkeypatch.setenv("GENIMG_GRADING", "1")
    assert handin.before_hand_in("01_preprocessing.ipynb") is None
    assert "skipped" in capsys.readouterr().out
    assert grading.grading_env()["GENIMG_GRADING"] == "1"


def test_the_lessons_last_cell_in_a_real_kernel_sees_an_unsaved_edit(tmp_path):
    """The student's kernel ran the right gray_world; the file on disk still has the wrong one. The lesson's last
    cell, run in that kernel, grades the saved file (5 / 7, as genimg grade would) and names the unsaved edit, for
    gray_world alone (the other answers are the same code in the kernel and on disk)."""
    from nbclient import NotebookClient

    nbformat.write(solved_submission(gray_world="def gray_world(x, eps=1e-6):\n    return x * 1.0\n"),
                   tmp_path / f"{LESSON}.ipynb")
    ran = solved_submission()
    assert "before_hand_in" in ran.cells[-1].source
    env = {k: v for k, v in os.environ.items() if k != "GENIMG_GRADING"}
    NotebookClient(ran, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
                   env=env).execute()
    out = "".join(o.get("text", "") for o in ran.cells[-1].outputs)
    assert f"total: 5 / {MAX} points" in out, out
    assert out.count("is not the one your kernel ran") == 1 and "`gray_world` is not the one" in out, out


def test_copying_or_saving_a_tensor_is_not_tampering():
    """copyreg caches __slotnames__ in torch.Tensor the first time a tensor is copied or saved (lesson 06 does):
    a solved notebook was marked 'tampering' for it. Replacing a Tensor method still is."""
    import copy
    import io

    import torch

    from genimg_course.course.grading import kernel

    if "__slotnames__" in vars(torch.Tensor):  # as in a fresh kernel
        delattr(torch.Tensor, "__slotnames__")
    kernel.take_fingerprint()
    copy.copy(torch.zeros(2))
    torch.save(torch.zeros(2), io.BytesIO())
    assert "__slotnames__" in vars(torch.Tensor) and kernel.tampered() == []
    real = torch.Tensor.allclose
    try:
        torch.Tensor.allclose = lambda *a, **k: True
        assert kernel.tampered() == ["Tensor.allclose"]
    finally:
        torch.Tensor.allclose = real
