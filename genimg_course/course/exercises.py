"""The exercise system: each exercise's tests, points and reference implementation.

An exercise is a function the student completes in a notebook. The check cell
after it calls ``check.NAME(student_function)`` (``check`` is the lesson's
checks module, ``genimg_course.course.checks.lessonNN``), which

1. runs the exercise's tests (the same ones our unit tests use) and prints
   specific feedback: which input, expected vs got, the shapes;
2. returns the student's function when every test passes, and the reference
   implementation when it fails or is not done yet (saying so), so the rest
   of the notebook runs either way;
3. raises ``ExerciseFailed`` instead when ``GENIMG_STRICT=1`` (CI runs the
   solved notebooks that way, so a broken solution cannot go unnoticed).

Points are declared once, next to the tests in the checks modules; the student notebooks'
nbgrader metadata and the grader read them from ``EXERCISES``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import sys
import textwrap
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

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
    """What one check found: ``status`` is "passed", "failed", "not attempted" or "library used"."""

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


def random_image(shape, seed: int, low: float = 0.1, high: float = 0.9) -> torch.Tensor:
    """A reproducible random image (or batch) with values in [low, high]: the checks' test input."""
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(shape, generator=g)


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
    forbidden: tuple[str, ...] = ()  # dotted names of library functions that do the exercise's whole job
    instead: str = ""  # what may be used instead: shown when an answer calls a forbidden function

    def forbidden_message(self, uses: list[tuple[str, str]]) -> str:
        """The feedback for an answer that hands the exercise to a library: which call, and what to do instead."""
        calls = ", ".join(f"`{text}` ({path})" for text, path in uses)
        what = "a library function that does" if len(uses) == 1 else "library functions that do"
        return f"your function uses {calls}, {what} this exercise's whole job; write it yourself. {self.instead}"

    def evaluate(self, fn: Callable) -> CheckResult:
        """Run the tests on ``fn`` without printing anything (the grader uses this)."""
        t = Tester(self.name)
        if not callable(fn):
            return CheckResult(self.name, "failed", 0, 1, [f"expected a function, got {describe(fn)}"])
        uses = uses_of_forbidden(fn, self.forbidden)
        if uses:
            return CheckResult(self.name, "library used", 0, 1, [self.forbidden_message(uses)])
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
        elif result.status == "library used":
            print(f"❌ {self.name}: {result.failures[0]}")
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


# ----------------------------------------------------------------------------- forbidden library calls
def import_object(path: str):
    """The object a dotted path names (``"torch.distributions.kl_divergence"``), or None if there is none."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        except Exception:  # noqa: BLE001 - a module that fails to import names nothing
            return None
        for part in parts[i:]:
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj
    return None


def forbidden_objects(paths: Iterable[str]) -> dict[int, str]:
    """{id(object): dotted path} for the forbidden names that exist in the installed libraries."""
    found: dict[int, str] = {}
    for path in paths:
        obj = import_object(path)
        if obj is not None:
            found.setdefault(id(obj), path)
    return found


def import_aliases(tree: ast.AST) -> dict[str, str]:
    """{local name: dotted path} for every ``import``/``from ... import`` statement in ``tree``."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def _chain(node: ast.AST) -> list[str] | None:
    """``a.b.c`` as ["a", "b", "c"]; None for anything that is not a plain dotted name."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id] + names[::-1]


def forbidden_uses(tree: ast.AST, forbidden: dict[int, str], namespace: dict,
                   aliases: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(source text, dotted path) of every dotted name in ``tree`` that resolves to a forbidden object.

    A name is resolved through the imports in ``tree`` and ``aliases`` (only for the packages the
    forbidden names come from, so nothing else is ever imported), else through ``namespace``;
    then attribute by attribute, through modules and classes only (no code of other objects runs).
    """
    roots = {path.split(".")[0] for path in forbidden.values()}
    aliases = {**(aliases or {}), **import_aliases(tree)}
    uses: dict[str, str] = {}
    for node in ast.walk(tree):
        names = _chain(node) if isinstance(getattr(node, "ctx", None), ast.Load) else None
        if not names:
            continue
        if names[0] in aliases:
            path = aliases[names[0]]
            obj = import_object(path) if path.split(".")[0] in roots else None
        else:
            obj = namespace.get(names[0])
        for attr in names[1:]:
            if obj is None or not isinstance(obj, (types.ModuleType, type)):
                obj = None
                break
            obj = getattr(obj, attr, None)
        if obj is not None and id(obj) in forbidden:
            uses.setdefault(".".join(names), forbidden[id(obj)])
    return sorted(uses.items())


def _code_names(code: types.CodeType) -> set[str]:
    """Every global and attribute name a code object (and the code nested in it) uses."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def uses_of_forbidden(fn: Callable, paths: Iterable[str]) -> list[tuple[str, str]]:
    """Which forbidden library functions ``fn``'s code uses: [(source text, dotted path)].

    Reads ``fn``'s source with ``inspect.getsource`` and resolves its names in ``fn``'s globals and
    closure, so ``TF.adjust_contrast`` is found under whatever name the notebook imported it. When the
    source cannot be read or parsed (a lambda inside a larger expression, code built by ``exec``), it
    falls back to the names in the compiled code: every name and attribute ``fn`` uses, looked up in
    its globals.
    """
    forbidden = forbidden_objects(paths) if paths else {}
    code = getattr(fn, "__code__", None)
    if not forbidden or not isinstance(code, types.CodeType):
        return []
    namespace = dict(getattr(fn, "__globals__", {}))
    for name, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
        try:
            namespace[name] = cell.cell_contents
        except ValueError:  # an empty cell
            pass
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError, IndentationError):
        tree = None
    if tree is not None:
        return forbidden_uses(tree, forbidden, namespace)
    names = _code_names(code)
    roots = [(n, namespace[n]) for n in names if n in namespace]
    roots += [(n, sys.modules[n]) for n in names if n in sys.modules]  # modules imported inside fn
    uses, seen, frontier = {}, set(), roots
    while frontier:  # follow attributes the code names through modules and classes, a few levels deep
        text, obj = frontier.pop()
        if id(obj) in forbidden:
            uses.setdefault(text, forbidden[id(obj)])
        if isinstance(obj, (types.ModuleType, type)) and id(obj) not in seen and text.count(".") < 5:
            seen.add(id(obj))
            frontier += [(f"{text}.{n}", getattr(obj, n)) for n in names if getattr(obj, n, None) is not None]
    return sorted(uses.items())


EXERCISES: dict[str, Exercise] = {}


def exercise(lesson: str, points: int, reference: Callable, forbidden: Iterable[str] = (), instead: str = ""):
    """Register a test function as an exercise's check; the decorated name is the check to call.

    ``forbidden`` names the library functions (dotted paths, e.g.
    ``"torchvision.transforms.v2.functional.adjust_contrast"``) that would do the whole exercise: an
    answer that uses one fails its check, and the grader scores it 0 ("library used"). ``instead``
    says what the student may use.
    """

    def register(tests: Callable[[Tester, Callable], None]) -> Callable[[Callable], Callable]:
        ex = Exercise(name=tests.__name__, lesson=lesson, points=points, reference=reference, tests=tests,
                      summary=(tests.__doc__ or "").strip().splitlines()[0] if tests.__doc__ else "",
                      forbidden=tuple(forbidden), instead=instead)
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
