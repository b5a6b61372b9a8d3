"""The grader's side inside a student's kernel. Not for students: ``genimg grade`` injects calls to it.

``begin()`` runs before any student code and fingerprints the course's code (the checks,
the exercises' tests, the reference implementations) and the torch/numpy functions the
tests rely on. ``grade(name, token)`` runs after a student's answer cell: it checks that
nothing was monkeypatched, runs the exercise's tests (plus any instructor-only tests) on
the student's function, notices a function that only calls the reference implementation
(or, through the check, a library function the exercise forbids), and prints one result
line ``<token> <json>`` for the grader to read.

This makes cheating visible; it is not a sandbox (see INSTRUCTORS.md, "Threat model").
"""

from __future__ import annotations

import json
import sys
import types

_FINGERPRINT: dict[str, tuple] = {}
_EXTRA: dict[str, list] = {}
WATCHED_MODULES = ("torch", "torch.nn.functional", "torch.testing", "torch.distributions", "numpy", "builtins")
VOLATILE = {"builtins.input", "builtins.raw_input", "builtins.getpass"}  # ipykernel rebinds these every cell


def _watched():
    import genimg_course

    names = [m for m in list(sys.modules) if m == "genimg_course" or m.startswith("genimg_course.")]
    names += [m for m in WATCHED_MODULES if m in sys.modules]
    return [(n, sys.modules[n]) for n in sorted(set(names)) if n != __name__ and sys.modules.get(n)] + [
        ("genimg_course", genimg_course)]


def _fingerprint() -> dict[str, tuple]:
    """Identity of every public callable of the watched modules, and of the code inside each."""
    from genimg_course.course.exercises import EXERCISES, Exercise, Tester

    prints: dict[str, tuple] = {}
    for mod_name, module in _watched():
        for attr, value in list(vars(module).items()):
            if attr.startswith("__") or isinstance(value, types.ModuleType):
                continue
            if callable(value) and f"{mod_name}.{attr}" not in VOLATILE:
                prints[f"{mod_name}.{attr}"] = (id(value), id(getattr(value, "__code__", None)))
    for cls in (Tester, Exercise):
        for attr, value in vars(cls).items():
            prints[f"{cls.__name__}.{attr}"] = (id(value), id(getattr(value, "__code__", None)))
    import torch

    for attr in ("__eq__", "allclose", "equal", "__sub__", "abs", "max"):
        value = getattr(torch.Tensor, attr, None)
        prints[f"torch.Tensor.{attr}"] = (id(value),)
    for name, ex in EXERCISES.items():
        prints[f"EXERCISES[{name!r}]"] = (id(ex), id(ex.tests), id(ex.tests.__code__), id(ex.reference),
                                          id(getattr(ex.reference, "__code__", None)), ex.points)
    prints["sys.stdout.write"] = (id(type(sys.stdout)),)
    return prints


def begin(extra_tests_source: str | None = None) -> None:
    """Fingerprint the course's code before any student code runs; load instructor-only tests."""
    import importlib

    from genimg_course.course import checks

    checks.load_all()  # declares every exercise

    for name in WATCHED_MODULES:  # import them now, so a later import is not mistaken for a change
        importlib.import_module(name)

    if extra_tests_source:
        namespace: dict = {}
        exec(compile(extra_tests_source, "<instructor tests>", "exec"), namespace)
        for key, value in namespace.items():
            if key.startswith("test_") and callable(value):
                _EXTRA.setdefault(key[len("test_"):], []).append(value)
    _FINGERPRINT.clear()
    _FINGERPRINT.update(_fingerprint())


def _tampered() -> list[str]:
    """What changed since ``begin()``: replaced or deleted functions, and functions added to torch/numpy."""
    now = _fingerprint()
    changed = [k for k in _FINGERPRINT if now.get(k) != _FINGERPRINT[k]]
    added = [k for k in now if k not in _FINGERPRINT and not k.startswith("genimg_course.")]
    return sorted(changed + added)


class _ReferenceUsed(BaseException):
    """Raised (past the tests' ``except Exception``) when the student's code calls the reference."""


def _guard_reference(module, attr: str, reference, student_file: str):
    """Replace module.attr by a wrapper that notices calls made from the student's own code."""

    def guarded(*args, **kwargs):
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename == student_file:
                raise _ReferenceUsed()
            frame = frame.f_back
        return reference(*args, **kwargs)

    setattr(module, attr, guarded)
    return lambda: setattr(module, attr, reference)


def grade(name: str, token: str, namespace: dict) -> None:
    """Grade the student's function ``namespace[name]`` and print ``<token> <json result>``."""
    result = _grade(name, namespace)
    sys.stdout.flush()
    print(f"\n{token} {json.dumps(result)}", flush=True)


def _grade(name: str, namespace: dict) -> dict:
    from genimg_course.course.exercises import EXERCISES

    ex = EXERCISES[name]
    changed = _tampered()
    if changed:
        return {"status": "tampering", "message": "the notebook changed the course's code, so this exercise was "
                "not graded: " + ", ".join(changed[:5])}
    fn = namespace.get(name)
    if fn is None:
        return {"status": "missing", "message": f"no function `{name}` was defined (was the cell run? was it renamed?)"}
    if fn is ex.reference or getattr(fn, "exercise", None) is not None:
        return {"status": "reference used", "message": f"`{name}` is the course's reference implementation "
                "(or a check), not your own code"}
    if not isinstance(fn, types.FunctionType):
        return {"status": "failed", "message": f"`{name}` is a {type(fn).__name__}, not a function"}
    student_file = fn.__code__.co_filename
    module = sys.modules[ex.reference.__module__]
    restore = _guard_reference(module, ex.reference.__name__, ex.reference, student_file)
    try:
        result = ex.evaluate(fn)
        extra_failures = []
        if result.ok:
            for test in _EXTRA.get(name, []):
                try:
                    test(fn)
                except _ReferenceUsed:
                    raise
                except Exception as err:  # noqa: BLE001 - an instructor test failed, for whatever reason
                    extra_failures.append(f"instructor test {test.__name__}: {type(err).__name__}: {err}")
    except _ReferenceUsed:
        return {"status": "reference used", "message": f"`{name}` calls the reference implementation "
                f"{ex.reference.__module__}.{ex.reference.__name__}; write the computation yourself"}
    finally:
        restore()
    if result.ok and not extra_failures:
        return {"status": "passed", "message": f"all {result.total} tests passed"}
    if result.status == "library used":  # the check found a call to a library doing the whole exercise
        return {"status": "library used", "message": result.failures[0]}
    if result.status == "not attempted":
        return {"status": "not attempted", "message": "the function still raises NotImplementedError"}
    failures = result.failures + extra_failures
    return {"status": "failed", "message": f"{len(failures)} test(s) failed: " + " | ".join(
        f.replace("\n    ", " — ") for f in failures[:3])}
