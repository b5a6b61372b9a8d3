"""Grade each answer in a process where only the answer's definitions exist. Not for students.

``genimg grade`` runs a student's whole notebook in a Jupyter kernel, but only for the feedback page (its
outputs, its errors, where it stopped). The points come from here, one process per batch (``Server``,
``python -m genimg_course.course.grading.answers serve SPEC``) that forks a handler per submission:

0. Before any student code exists in this process, it imports the course and runs every check of the
   lesson on the *reference* implementation, recording each expected value the checks compare with
   (``exercises.Tester(record=...)``). Oracles computed later cannot be changed by an answer.
1. For each answer it forks a child. The child runs the released lesson's imports, then only the
   *definitions* of the student's answer cells up to this one (``definitions``: imports, functions,
   classes, simple assignments such as ``EPS = 1e-6``). No top-level statement of a student's cell runs.
   Earlier exercises that failed are bound to their reference, as the notebook's check cells do.
2. The child runs the exercise's tests on the student's function. Every value is compared as a plain
   NumPy array through functions captured before any answer ran (``exercises.plain``), with the values
   recorded in step 0.
3. While the student's function runs, a profiler hook watches every Python call: reaching the exercise's
   reference implementation by any route (an alias, ``getattr``, the exercise table, a copy loaded from
   its file) is seen by the identity of its code. After every call the course's and the libraries'
   functions are fingerprinted again (``kernel.tampered``): a change, even one undone later, is tampering.
4. The child writes one JSON line to a pipe; this process gives each child a time limit and reports
   ``not graded`` with the reason when a child runs too long or dies (a crash, a C stack overflow).
"""

from __future__ import annotations

import ast
import json
import linecache
import os
import select
import signal
import sys
import time
import types
from pathlib import Path

SIMPLE_NODES = (ast.Constant, ast.Name, ast.Attribute, ast.Tuple, ast.List, ast.UnaryOp, ast.BinOp, ast.Load,
                ast.USub, ast.UAdd, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)


def limit_memory(megabytes: int) -> None:
    """Cap this process's data segment (heap and anonymous memory, not mapped libraries); children inherit it."""
    import resource

    limit = megabytes * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


# ----------------------------------------------------------------------------- what of a cell runs
def _simple(node: ast.AST | None) -> bool:
    """A value whose evaluation runs no code of the student's: constants, dotted names, arithmetic of them."""
    return node is None or all(isinstance(n, SIMPLE_NODES) for n in ast.walk(node))


def _simple_decorator(node: ast.AST) -> bool:
    """``@name``, ``@a.b`` or ``@a.b(constants)`` (``@torch.no_grad()``, ``@functools.cache``)."""
    if isinstance(node, ast.Call):
        return _simple(node.func) and all(_simple(a) for a in node.args) and all(_simple(k.value) for k in node.keywords)
    return _simple(node)


def _definition(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return True
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        defaults = node.args.defaults + [d for d in node.args.kw_defaults if d is not None]
        return all(_simple(d) for d in defaults) and all(_simple_decorator(d) for d in node.decorator_list)
    if isinstance(node, ast.ClassDef):
        return (all(_simple(b) for b in node.bases) and not node.keywords
                and all(_simple_decorator(d) for d in node.decorator_list)
                and all(_definition(b) or (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant))
                        for b in node.body))
    if isinstance(node, ast.Assign):
        return all(isinstance(t, ast.Name) for t in node.targets) and _simple(node.value)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and _simple(node.value)
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)  # a docstring


def definitions(source: str) -> tuple[str, list[int]]:
    """The part of an answer cell that only defines things, and the line numbers of the statements left out.

    Kept: imports, functions, classes (whose default values and decorators are plain names or constants),
    and assignments of constants or dotted names to a name (``EPS = 1e-6``, ``tv = v2.functional``). Left
    out: every other top-level statement (calls, loops, prints, assignments to attributes...). Lines keep
    their numbers, so a traceback points at the student's own line.
    """
    tree = ast.parse(source)
    lines = source.splitlines()
    keep, dropped = [False] * len(lines), []
    for node in tree.body:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        if _definition(node):
            for i in range(start - 1, node.end_lineno):
                keep[i] = True
        else:
            dropped.append(start)
    return "\n".join(line if k else "" for line, k in zip(lines, keep)), dropped


# ----------------------------------------------------------------------------- inside the child
class ReferenceUsed(BaseException):
    """The student's function reached the reference (a BaseException: the tests' ``except Exception`` lets it by)."""


class Tampered(BaseException):
    """Something the checks rely on changed while the student's function ran."""


def watched(fn, reference, tampered):
    """``fn`` wrapped so that each call is watched: a call of ``reference``'s code, or a changed fingerprint."""
    code = reference.__code__
    key = (code.co_filename, code.co_firstlineno, code.co_name)  # also a copy compiled from the same file

    def hook(frame, event, arg):
        if event == "call":
            f = frame.f_code
            if f is code or (f.co_filename, f.co_firstlineno, f.co_name) == key:
                hook.hit = True

    hook.hit = False

    def call(*args, **kwargs):
        sys.setprofile(hook)
        try:
            return fn(*args, **kwargs)
        finally:
            still = sys.getprofile() is hook
            sys.setprofile(None)
            if not still:
                raise Tampered("the answer turned off the grader's watch (sys.setprofile)")
            if hook.hit:
                raise ReferenceUsed()
            changed = tampered()
            if changed:
                raise Tampered("the function changed the course's or a library's code while its tests ran: "
                               + ", ".join(changed[:5]))

    return call


def grade_answer(name: str, cells: list[dict], context: dict, expected: dict, failed_before: set[str],
                 extra: dict[str, list]) -> dict:
    """Grade exercise ``name`` in this (child) process; returns {"status", "message"}."""
    from genimg_course.course.exercises import EXERCISES, Tester
    from genimg_course.course.grading import kernel

    ex = EXERCISES[name]
    # the released imports, and the reference for every exercise the notebook went on without (as its checks do)
    namespace = {**context, **{n: EXERCISES[n].reference for n in failed_before}}
    for cell in cells:  # this answer's cell and the answer cells before it, definitions only
        filename = f"<answer cell of {cell['exercise']}>"
        code, _ = definitions(cell["source"])
        linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)  # for inspect
        try:
            exec(compile(code, filename, "exec"), namespace)
        except Exception as err:  # noqa: BLE001 - an import that fails, a class body that raises...
            if cell["exercise"] == name:
                return {"status": "failed", "message": f"defining the answer failed: {type(err).__name__}: {err}"}
        if cell["exercise"] in failed_before:  # the notebook's check cell went on with the reference
            namespace[cell["exercise"]] = EXERCISES[cell["exercise"]].reference
    fn = namespace.get(name)
    if fn is None:
        return {"status": "missing", "message": f"no function `{name}` is defined in its answer cell"}
    if fn is ex.reference:
        return {"status": "reference used", "message": f"`{name}` is the course's reference implementation, "
                "not your own code"}
    if type(fn) is not types.FunctionType:
        return {"status": "failed", "message": f"`{name}` is a {type(fn).__name__}, not a function"}
    wrap = lambda f: watched(f, ex.reference, kernel.tampered)  # noqa: E731
    try:
        result = ex.evaluate(fn, tester=Tester(name, expected=expected), wrap=wrap)
        extra_failures = []
        if result.ok:
            for test in extra.get(name, []):
                try:
                    test(wrap(fn))
                except Exception as err:  # noqa: BLE001 - an instructor test failed, for whatever reason
                    extra_failures.append(f"instructor test {test.__name__}: {type(err).__name__}: {err}")
    except ReferenceUsed:
        return {"status": "reference used", "message": f"`{name}` calls the reference implementation "
                f"{ex.reference.__module__}.{ex.reference.__name__}; write the computation yourself"}
    except Tampered as err:
        return {"status": "tampering", "message": f"{err}; not graded"}
    if result.ok and not extra_failures:
        return {"status": "passed", "message": f"all {result.total} tests passed"}
    if result.status == "library used":  # the check found a call to a library doing the whole exercise
        return {"status": "library used", "message": result.failures[0]}
    if result.status == "not attempted":
        return {"status": "not attempted", "message": "the function still raises NotImplementedError"}
    failures = result.failures + extra_failures
    return {"status": "failed", "message": f"{len(failures)} test(s) failed: " + " | ".join(
        f.replace("\n    ", " — ") for f in failures[:3])}


# ----------------------------------------------------------------------------- the parent of the children
def _run_child(task, timeout: float, memory: float = float("inf")) -> dict:
    """Fork, run ``task()`` in the child, and read its one JSON line; kill it and everything it started after
    ``timeout`` seconds, or once its processes together use more than ``memory`` MB or number more than
    ``sandbox.MAX_PROCESSES`` (``sandbox.Watchdog``, checked every ``sandbox.POLL_SECONDS``)."""
    from genimg_course.course.grading import sandbox

    watchdog = sandbox.Watchdog(memory)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run the task, write the result, leave without running any cleanup
        os.setpgid(0, 0)  # a process group of its own, killed as a whole
        os.close(read)
        try:
            result = task()
        except BaseException as err:  # noqa: BLE001 - whatever happens, the parent gets a line
            result = {"status": "not graded", "message": f"grading stopped with {type(err).__name__}: {err}"}
        try:
            os.write(write, (json.dumps(result) + "\n").encode())
        finally:
            os._exit(0)
    os.close(write)
    data, deadline, timed_out, over = b"", time.monotonic() + timeout, False, ""
    with os.fdopen(read, "rb", buffering=0) as pipe:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([pipe], [], [], min(left, sandbox.POLL_SECONDS))
            if ready:
                chunk = pipe.read(65536)
                if not chunk:
                    break
                data += chunk
            elif over := watchdog.check(pid):
                break
    sandbox.kill_tree(pid)  # the child if still running, and whatever it started below it
    _, status = os.waitpid(pid, 0)
    if over:
        return {"status": "not graded", "message": f"while its tests ran, {over}"}
    if timed_out:
        return {"status": "not graded", "message": f"its tests ran past the time limit of {timeout:g} s "
                "(an endless loop in the function?)"}
    try:
        return json.loads(data.decode().splitlines()[-1])
    except (ValueError, IndexError):
        how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit status {os.WEXITSTATUS(status)}")
        return {"status": "not graded", "message": f"the process grading it died ({how}: a crash, a C stack "
                "overflow, os._exit, or out of memory)"}


class Server:
    """What the grader talks to: one process per batch that never runs student code itself.

    It imports the course, records the lesson's expected values and fingerprints the libraries once; then,
    for each submission it is sent, it forks a handler, which forks one child per answer (``_run_child``).
    So each answer is graded in a fresh copy of a process in which no student code ever ran, and the
    cost of importing torch is paid once per batch, not once per submission.
    """

    def __init__(self, lesson: str, context: str, extra_tests: str | None, memory: int, workdir, env: dict,
                 isolation=None):
        import subprocess
        import tempfile
        import threading

        from genimg_course.course.grading import sandbox

        self.folder = Path(tempfile.mkdtemp(prefix="genimg-answers-", dir=workdir))
        spec = {"lesson": lesson, "context": context, "extra_tests": extra_tests, "memory": memory}
        (self.folder / "server.json").write_text(json.dumps(spec))
        argv = [sys.executable, "-m", "genimg_course.course.grading.answers", "serve", str(self.folder / "server.json")]
        isolation = isolation or sandbox.detect()
        self.proc = subprocess.Popen(sandbox.command(isolation, argv, [self.folder], self.folder), cwd=self.folder,
                                     env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True)  # its own process group: killed as a whole
        self.lock, self.count, self.ready = threading.Lock(), 0, None

    def _wait_ready(self, timeout: float = 180) -> bool:
        if self.ready is None:
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            self.ready = bool(ready) and self.proc.stdout.readline().strip() == b"ready"
        return self.ready

    def grade(self, cells: list[dict], failed_before: list[str], timeout: float) -> dict[str, dict]:
        """Grade one submission's answers; {exercise: {"status", "message"}} (not graded, with why, on failure)."""
        with self.lock:
            ok = self._wait_ready() and self.proc.poll() is None
            self.count += 1
            request = self.folder / f"request-{self.count}.json"
        results = request.with_suffix(".out")
        if ok:
            request.write_text(json.dumps({"cells": cells, "failed_before": failed_before, "timeout": timeout,
                                           "results": str(results)}))
            with self.lock:
                try:
                    self.proc.stdin.write(f"{request}\n".encode())
                    self.proc.stdin.flush()
                except OSError:
                    ok = False
        deadline = time.monotonic() + len(cells) * (timeout + 5) + 30
        while ok and not results.exists() and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.05)
        if results.exists():
            return json.loads(results.read_text())
        why = ("the process that grades the answers could not start" if not ok else
               "the process that grades the answers stopped" if self.proc.poll() is not None else
               "grading the answers ran past its time limit")
        pid = request.with_suffix(".pid")
        if pid.exists():  # a handler that outlived every limit
            try:
                os.kill(int(pid.read_text()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        return {c["exercise"]: {"status": "not graded", "message": why} for c in cells}

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the server, its handlers and their children
        except ProcessLookupError:
            pass
        self.proc.wait()
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def serve(spec_path: str) -> int:
    """``python -m genimg_course.course.grading.answers serve SPEC``: the server's side (see ``Server``)."""
    spec = json.loads(Path(spec_path).read_text())
    limit_memory(spec["memory"])
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]  # nothing importable from the work folder
    setup = prepare(spec)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the system
    print("ready", flush=True)
    for line in sys.stdin:
        request = Path(line.strip())
        if os.fork() == 0:  # the handler: a copy of this process, still without any student code
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # so that it can wait for its own children
            try:
                request.with_suffix(".pid").write_text(str(os.getpid()))
                job = json.loads(request.read_text())
                results = grade_request(setup, job)
                out = Path(job["results"])
                out.with_suffix(".tmp").write_text(json.dumps(results))
                os.replace(out.with_suffix(".tmp"), out)
            finally:
                os._exit(0)
    return 0


def prepare(spec: dict) -> dict:
    """Import the course, load the instructor's tests, and record the expected values with the reference."""
    import torch

    from genimg_course.course import checks
    from genimg_course.course.exercises import EXERCISES, Tester, exercises_for
    from genimg_course.course.grading import kernel

    torch.set_num_threads(1)
    checks.load_all()
    extra: dict[str, list] = {}
    if spec.get("extra_tests"):  # the instructor's own tests: trusted code, loaded before any answer
        namespace: dict = {}
        exec(compile(spec["extra_tests"], "<instructor tests>", "exec"), namespace)
        for key, value in namespace.items():
            if key.startswith("test_") and callable(value):
                extra.setdefault(key[len("test_"):], []).append(value)
    context: dict = {}
    exec(compile(spec["context"], "<the released notebook's imports>", "exec"), context)
    expected = {}
    for ex in exercises_for(spec["lesson"]):  # 0. expected values, from the reference, before any student code
        tester = Tester(ex.name, record={})
        EXERCISES[ex.name].evaluate(ex.reference, tester=tester)
        expected[ex.name] = tester.record
    kernel.take_fingerprint()
    return {"context": context, "expected": expected, "extra": extra, "memory": spec["memory"]}


def grade_request(setup: dict, job: dict) -> dict[str, dict]:
    """One submission's answers, each in its own child; {exercise: {"status", "message"}}."""
    results: dict[str, dict] = {}
    failed = set(job.get("failed_before", []))
    cells = job["cells"]
    for i, cell in enumerate(cells):
        name = cell["exercise"]
        results[name] = _run_child(lambda: grade_answer(name, cells[: i + 1], setup["context"],
                                                        setup["expected"].get(name, {}), set(failed),
                                                        setup["extra"]), job["timeout"], setup["memory"])
        if results[name]["status"] != "passed":
            failed.add(name)
    return results


def main(argv: list[str]) -> int:
    """``serve SPEC`` (the grader's server), or ``SPEC`` alone: grade one request and write its results.

    A request (JSON): ``lesson``, ``context`` (the released notebook's import statements), ``extra_tests``
    (source or null), ``memory`` (MB), ``cells`` [{exercise, source}] in the notebook's order,
    ``failed_before`` (exercises already scored 0), ``timeout`` (seconds per answer), ``results`` (path).
    """
    if len(argv) == 2 and argv[0] == "serve":
        return serve(argv[1])
    spec = json.loads(Path(argv[0]).read_text())
    limit_memory(spec["memory"])
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    try:
        results = grade_request(prepare(spec), spec)
    except Exception as err:  # noqa: BLE001 - the grader's own failure: every answer 'not graded', with why
        results = {c["exercise"]: {"status": "not graded", "message": f"the grader failed: {type(err).__name__}: "
                                   f"{err}"} for c in spec["cells"]}
    out = Path(spec["results"])
    out.with_suffix(".tmp").write_text(json.dumps(results))
    os.replace(out.with_suffix(".tmp"), out)
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        print("usage: python -m genimg_course.course.grading.answers [serve] SPEC (the grader runs this)",
              file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
