"""genimg grade against submissions that attack the batch (issue 33), graded as one batch in the sandbox and, for the
attacks the watchdog alone must stop, once without it.

Each attack is an answer cell of lesson 01 with the right answer plus a top-level statement (which runs in the
notebook's kernel) or a function body (which runs where the answers are scored). Beside them, a full and a wrong
submission, whose grades must come out right and be written whatever the others did.
"""

import csv
import json
import os
import socket
import textwrap
import threading
import time
from pathlib import Path

import pytest

from genimg_course.course.cli import main
from genimg_course.course.grading import sandbox
from grading_fixtures import LESSON, ROOT, answer_sources, released, solved_submission, write

MAX = 7
LIMITS = ["--timeout-cell", "20", "--timeout", "60", "--memory", "1500", "-j", "3"]
A = answer_sources()
PROBE = ROOT / "genimg_course" / "sandbox_probe.py"  # a course file an attack tries to create


def with_top(exercise: str, code: str) -> str:
    """The right answer to ``exercise``, then ``code`` at the top level of its cell (runs in the kernel only)."""
    return A[exercise] + "\n\n" + textwrap.dedent(code)


def body_first(exercise: str, code: str) -> str:
    """The right answer to ``exercise`` with ``code`` first in its body, after the docstring (runs wherever the
    function is called)."""
    src = A[exercise]
    end = src.index('    """\n', src.index('"""') + 3) + len('    """\n')
    return src[:end] + textwrap.indent(textwrap.dedent(code), "    ") + src[end:]


def daemon(marker: str, target: Path) -> str:
    # double fork + setsid: the daemon's parent is init, not the kernel; it waits for the gradebook, then rewrites it
    return f"""
    import os, sys, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", "import os, time, sys; sys.argv.append({marker!r})\\n"
                      "for _ in range(600):\\n"
                      "    time.sleep(0.1)\\n"
                      "    if os.path.isfile({str(target)!r}):\\n"
                      "        time.sleep(1)\\n"
                      "        open({str(target)!r}, 'w').write('student,points\\\\nmallory,999\\\\n')\\n"
                      "        break", {marker!r}])
        os._exit(0)
    """


def sleeper(tag: str) -> str:
    """A number of seconds for ``sleep`` that no other process on the machine uses: its command line marks it."""
    return f"987.{abs(hash(tag)) % 10**6:06d}"


def fork_many(marker: str, n: int = 200) -> str:
    return f"""
    import os
    for _ in range({n}):
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", {marker!r}])
    """


CHILDREN_MEMORY = """
import subprocess, sys, time
grow = ("import time\\nblock = bytearray(800 * 2**20)\\nfor i in range(0, len(block), 4096):\\n    block[i] = 1\\n"
        "time.sleep(60)")
workers = [subprocess.Popen([sys.executable, "-c", grow]) for _ in range(3)]  # each under the per-process limit
time.sleep(30)
"""

SHARED_MAPPING = """
import mmap, time
shared = mmap.mmap(-1, 2500 * 2**20, flags=mmap.MAP_SHARED)
for i in range(0, len(shared), 4096):
    shared[i] = 1
time.sleep(30)
"""


def leftovers(marker: str) -> list[int]:
    """Processes whose command line holds ``marker``."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry.name}/cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


class Listener:
    """A TCP server on the host's loopback that counts connections (a submission must not reach it)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port, self.accepted = self.sock.getsockname()[1], 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()


def build(folder: Path, out: Path, port: int, tag: str) -> dict[str, Path]:
    other = folder / "full" / f"{LESSON}.ipynb"
    cases = {
        "full": solved_submission(),
        "wrong": solved_submission(gray_world="def gray_world(x, eps=1e-6):\n    return x * 1.0\n"),
        "daemon": solved_submission(normalize=with_top("normalize", daemon(f"daemon-{tag}", out / "grades.csv"))),
        "course": solved_submission(normalize=with_top("normalize", f"""
            try:
                open({str(PROBE)!r}, "w").write("# written by a submission")
            except OSError as err:
                print("could not write the course:", err)
            """)),
        "reader": solved_submission(gray_world=body_first("gray_world", f"open({str(other)!r}).read()\n")),
        "network": solved_submission(gray_world=body_first(
            "gray_world", f"__import__('socket').create_connection(('127.0.0.1', {port}), timeout=2).close()\n")),
        "shared": solved_submission(normalize=with_top("normalize", SHARED_MAPPING)),
        "children": solved_submission(normalize=with_top("normalize", CHILDREN_MEMORY)),
        "forks": solved_submission(normalize=with_top("normalize", fork_many(sleeper(tag)))),
        "orphan": solved_submission(normalize=with_top("normalize", f"""
            import os, signal, subprocess
            subprocess.Popen(["sleep", {sleeper("orphan" + tag)!r}])  # an ordinary child, then its grader killed
            for pid in [os.getppid()] + [int(p) for p in os.listdir("/proc") if p.isdigit()]:
                try:
                    if pid == os.getppid() or b"grading.worker" in open(f"/proc/{{pid}}/cmdline", "rb").read():
                        os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            """)),
        "gradebook": solved_submission(normalize=with_top("normalize", f"""
            import os
            os.makedirs({str(out / "grades.csv")!r}, exist_ok=True)
            """)),
    }
    return {s: write(nb, folder / s / f"{LESSON}.ipynb") for s, nb in cases.items()}


def grade(tmp_path_factory, tag: str, only=None):
    folder, out = tmp_path_factory.mktemp(f"subs-{tag}"), tmp_path_factory.mktemp(f"out-{tag}")
    listener = Listener()
    cases = build(folder, out, listener.port, tag)
    if only:
        for student in set(cases) - set(only):
            (cases.pop(student)).unlink()
    start = time.monotonic()
    code = main(["grade", str(folder), "--out", str(out), "--lesson", LESSON, "--root", str(ROOT), *LIMITS])
    seconds = time.monotonic() - start
    time.sleep(2)  # a daemon that outlived the batch would rewrite the gradebook now
    rows = list(csv.DictReader(open(out / "grades.csv", encoding="utf-8")))
    results = {r["student"]: r for r in json.loads((out / "results.json").read_text())}
    return {"code": code, "rows": rows, "results": results, "out": out, "listener": listener, "tag": tag,
            "seconds": seconds, "cases": cases}


@pytest.fixture(scope="module")
def boxed(tmp_path_factory):
    if not sandbox.detect().sandboxed:
        pytest.skip("bubblewrap cannot start a sandbox on this machine (apt-get install bubblewrap)")
    PROBE.unlink(missing_ok=True)
    try:
        yield grade(tmp_path_factory, f"b{os.getpid()}")
    finally:
        PROBE.unlink(missing_ok=True)


def total(batch, student):
    return sum(float(r["points"]) for r in batch["rows"] if r["student"] == student and r["exercise"] != "TOTAL")


def exercise(batch, student, name):
    return next(e for e in batch["results"][student]["exercises"] if e["exercise"] == name)


def test_every_row_is_written_and_the_controls_are_right(boxed):
    students = {r["student"] for r in boxed["rows"]}
    assert students == set(boxed["cases"]), students
    assert total(boxed, "full") == MAX and total(boxed, "wrong") == MAX - 2
    assert (boxed["out"] / "grades.csv").is_file()


def test_a_daemon_does_not_outlive_its_submission(boxed):
    assert not leftovers(f"daemon-{boxed['tag']}"), "the daemon is still running"
    assert "mallory" not in (boxed["out"] / "grades.csv").read_text()


def test_the_course_cannot_be_written(boxed):
    assert boxed["code"] == 0, "the batch stopped (the course changed?)"
    assert not PROBE.exists()
    assert total(boxed, "course") == MAX


def test_another_submission_cannot_be_read(boxed):
    e = exercise(boxed, "reader", "gray_world")
    assert e["status"] == "failed" and "FileNotFoundError" in e["message"], e
    assert "❌" in boxed["results"]["reader"]["feedback"]["gray_world"]  # nor in the kernel


def test_no_network(boxed):
    e = exercise(boxed, "network", "gray_world")
    assert e["status"] == "failed" and ("Network is unreachable" in e["message"] or "refused" in e["message"]), e
    assert boxed["listener"].accepted == 0


@pytest.mark.parametrize("student", ["shared", "children"])
def test_memory_is_limited_for_the_whole_tree(boxed, student):
    r = boxed["results"][student]
    assert "memory limit of 1500 MB" in r["problem"], r["problem"]
    assert r["graded"] and total(boxed, student) == MAX - 1  # the answers before the cell that was stopped count


def test_a_fork_bomb_is_stopped_and_leaves_nothing(boxed):
    r = boxed["results"]["forks"]
    assert "more than 64 processes" in r["problem"], r["problem"]
    assert not leftovers(sleeper(boxed["tag"]))


def test_a_kernel_cannot_kill_its_grader_and_its_child_does_not_survive(boxed):
    assert total(boxed, "orphan") == MAX  # its worker was out of reach: the notebook ran to the end
    assert not leftovers(sleeper("orphan" + boxed["tag"]))


def test_the_gradebook_cannot_be_turned_into_a_folder(boxed):
    assert (boxed["out"] / "grades.csv").is_file() and total(boxed, "gradebook") == MAX


def test_without_a_sandbox_the_watchdog_still_holds(tmp_path_factory, monkeypatch, capsys):
    """The route without bubblewrap: the grader says so, and the limits on the whole tree still stop a fork bomb
    and memory spread over children."""
    monkeypatch.setenv(sandbox.ENV, "0")
    batch = grade(tmp_path_factory, f"n{os.getpid()}", only=("full", "children", "forks"))
    assert "no sandbox (GENIMG_SANDBOX=0)" in capsys.readouterr().err
    assert total(batch, "full") == MAX
    assert "memory limit" in batch["results"]["children"]["problem"]
    assert "more than 64 processes" in batch["results"]["forks"]["problem"]
    assert not leftovers(sleeper(batch["tag"]))


def test_a_gradebook_that_cannot_be_written_is_written_beside_it(tmp_path, capsys):
    from genimg_course.course.grading.reports import SubmissionResult, write_reports

    (tmp_path / "grades.csv").mkdir()
    (tmp_path / "feedback").write_text("not a folder")
    where = write_reports([SubmissionResult("alice", "a.ipynb", LESSON, True)], tmp_path)
    assert where == tmp_path / "grades.1.csv" and "alice" in where.read_text()
    err = capsys.readouterr().err
    assert "grades.csv could not be written (IsADirectoryError" in err and "grades.1.csv instead" in err
    assert (tmp_path / "feedback.1" / "alice.html").is_file()
