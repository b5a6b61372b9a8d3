"""The exercise system: each exercise's tests, points and reference implementation.

An exercise is a function the student completes in a notebook. The check cell
after it calls ``genimg_course.check.NAME(student_function)``, which

1. runs the exercise's tests (the same ones our unit tests use) and prints
   specific feedback: which input, expected vs got, the shapes;
2. returns the student's function when every test passes, and the reference
   implementation when it fails or is not done yet (saying so), so the rest
   of the notebook runs either way;
3. raises ``ExerciseFailed`` instead when ``GENIMG_STRICT=1`` (CI runs the
   solved notebooks that way, so a broken solution cannot go unnoticed).

Points are declared here, once, next to the tests; the student notebooks'
nbgrader metadata and the grader read them from ``EXERCISES``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

STRICT_ENV = "GENIMG_STRICT"


class ExerciseFailed(AssertionError):
    """A check failed in strict mode (``GENIMG_STRICT=1``)."""


class NotDone(Exception):
    """The student's function still raises ``NotImplementedError``."""


def strict_mode() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class CheckResult:
    """What one check found: ``status`` is "passed", "failed" or "not attempted"."""

    exercise: str
    status: str
    passed: int  # tests passed
    total: int  # tests run
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "passed"


def describe(value: Any) -> str:
    """A short description of a value for feedback: a tensor's shape and dtype, else its type."""
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if value is None:
        return "None (did you forget to `return` the result?)"
    return f"{type(value).__name__} {value!r}"[:120]


class Tester:
    """Collects the results of one exercise's tests, with feedback a student can act on."""

    def __init__(self, name: str):
        self.name = name
        self.passed = 0
        self.failures: list[str] = []

    def fail(self, input: str, message: str) -> None:
        self.failures.append(f"input: {input}\n    {message}")

    def call(self, fn: Callable, args: tuple, input: str, kwargs: dict | None = None):
        """Call ``fn(*args)``; returns (ok, result). Records a failure if it raises or mutates its input."""
        kwargs = kwargs or {}
        before = [a.clone() if isinstance(a, torch.Tensor) else None for a in args]
        try:
            out = fn(*args, **kwargs)
        except NotImplementedError:
            raise NotDone from None
        except Exception as err:  # noqa: BLE001 - the student's code may raise anything
            self.fail(input, f"{self.name} raised {type(err).__name__}: {err}")
            return False, None
        for a, b in zip(args, before):
            if b is not None and not torch.equal(a, b):
                self.fail(input, f"{self.name} changed its input tensor in place; compute a new tensor instead "
                                 f"(for example `y = x * 2`, not `x *= 2`)")
                return False, None
        return True, out

    def close(self, fn: Callable, args: tuple, expected: torch.Tensor, input: str,
              kwargs: dict | None = None, atol: float = 1e-4, rtol: float = 1e-4, hint: str = "") -> bool:
        """The test: ``fn(*args)`` returns a tensor of ``expected``'s shape and values (within tolerance)."""
        ok, got = self.call(fn, args, input, kwargs)
        if not ok:
            return False
        message = compare_tensors(got, expected, atol=atol, rtol=rtol)
        if message:
            self.fail(input, message + (f"\n    hint: {hint}" if hint else ""))
            return False
        self.passed += 1
        return True

    def expect(self, condition: bool, input: str, message: str) -> bool:
        """A property test: ``condition`` must hold, else ``message`` says what is wrong."""
        if condition:
            self.passed += 1
        else:
            self.fail(input, message)
        return bool(condition)


def compare_tensors(got: Any, expected: torch.Tensor, atol: float = 1e-4, rtol: float = 1e-4) -> str | None:
    """None if ``got`` matches ``expected``; else one line saying how it differs."""
    if not isinstance(got, torch.Tensor):
        return f"expected a tensor of shape {tuple(expected.shape)}, got {describe(got)}"
    if tuple(got.shape) != tuple(expected.shape):
        return f"expected shape {tuple(expected.shape)}, got shape {tuple(got.shape)}"
    if not got.is_floating_point():
        return f"expected a float tensor, got dtype {got.dtype}"
    got = got.detach().to(expected.device, expected.dtype)
    if torch.isnan(got).any() and not torch.isnan(expected).any():
        return f"the result contains NaN at {int(torch.isnan(got).sum())} position(s) (a division by zero?)"
    if torch.allclose(got, expected, atol=atol, rtol=rtol):
        return None
    diff = (got - expected).abs()
    idx = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0])
    n_wrong = int((diff > atol + rtol * expected.abs()).sum())
    return (f"values differ at {n_wrong} of {expected.numel()} positions; the largest difference is at "
            f"index {idx}: expected {expected[idx].item():.4f}, got {got[idx].item():.4f}")


@dataclass
class Exercise:
    """One exercise: its tests, its points, and the reference the notebook falls back to."""

    name: str  # the function the student writes; also its nbgrader grade_id
    lesson: str  # the notebook it belongs to, e.g. "01_preprocessing"
    points: int
    reference: Callable
    tests: Callable[[Tester, Callable], None]
    summary: str = ""

    def evaluate(self, fn: Callable) -> CheckResult:
        """Run the tests on ``fn`` without printing anything (the grader uses this)."""
        t = Tester(self.name)
        if not callable(fn):
            return CheckResult(self.name, "failed", 0, 1, [f"expected a function, got {describe(fn)}"])
        try:
            with torch.random.fork_rng(devices=[]):  # a check never changes the notebook's random stream
                self.tests(t, fn)
        except NotDone:
            return CheckResult(self.name, "not attempted", t.passed, t.passed + len(t.failures) + 1,
                               ["the function still raises NotImplementedError"])
        except Exception as err:  # noqa: BLE001 - a result so unexpected that a later test could not use it
            t.failures.append(f"input: the tests after the last one reported\n    the check could not use your "
                              f"result ({type(err).__name__}: {err})")
        status = "failed" if t.failures else "passed"
        return CheckResult(self.name, status, t.passed, t.passed + len(t.failures), t.failures)

    def check(self, fn: Callable, strict: bool | None = None) -> Callable:
        """Run the tests, print feedback, and return the function the notebook should go on with."""
        result = self.evaluate(fn)
        strict = strict_mode() if strict is None else strict
        ref = f"{self.reference.__module__}.{self.reference.__name__}"
        if result.ok:
            print(f"✅ {self.name}: all {result.total} tests passed ({self.points} point{'s' * (self.points != 1)}).")
            return fn
        if result.status == "not attempted":
            print(f"⏭️  {self.name}: not done yet (it raises NotImplementedError).")
        else:
            print(f"❌ {self.name}: {len(result.failures)} of {result.total} tests failed.")
            for message in result.failures[:3]:
                print(f"  • {message}")
            if len(result.failures) > 3:
                print(f"  … and {len(result.failures) - 3} more.")
        if strict:
            raise ExerciseFailed(f"{self.name}: {result.status} ({STRICT_ENV}=1)\n" + "\n".join(result.failures))
        print(f"   The rest of this notebook uses the reference implementation {ref} instead.")
        return self.reference


EXERCISES: dict[str, Exercise] = {}


def exercise(lesson: str, points: int, reference: Callable):
    """Register a test function as an exercise's check; the decorated name is the check to call."""

    def register(tests: Callable[[Tester, Callable], None]) -> Callable[[Callable], Callable]:
        ex = Exercise(name=tests.__name__, lesson=lesson, points=points, reference=reference, tests=tests,
                      summary=(tests.__doc__ or "").strip().splitlines()[0] if tests.__doc__ else "")
        if ex.name in EXERCISES:
            raise ValueError(f"exercise {ex.name!r} is declared twice")
        EXERCISES[ex.name] = ex

        def check(fn: Callable, strict: bool | None = None) -> Callable:
            return ex.check(fn, strict=strict)

        check.__name__ = check.__qualname__ = ex.name
        check.__doc__ = f"Check your `{ex.name}` ({lesson}, {points} points). {ex.summary}"
        check.exercise = ex
        return check

    return register


def exercises_for(lesson: str) -> list[Exercise]:
    """The exercises of one lesson, in the order they are declared."""
    return [ex for ex in EXERCISES.values() if ex.lesson == lesson]
