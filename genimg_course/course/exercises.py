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
import sys
import textwrap
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch

from genimg_course.common.runtime import STRICT_ENV, strict_mode  # noqa: F401 - the checks' strict mode


class ExerciseFailed(AssertionError):
    """A check failed in strict mode (``GENIMG_STRICT=1``)."""


class NotDone(Exception):
    """The student's function still raises ``NotImplementedError``."""


@dataclass
class CheckResult:
    """What one check found: ``status`` is "passed", "failed", "not attempted" or "library used"."""

    exercise: str
    status: str
    passed: int  # tests passed
    total: int  # tests run
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a passing answer should know (an accepted variant)

    @property
    def ok(self) -> bool:
        return self.status == "passed"


# ----------------------------------------------------------------------------- plain values
# Captured when this module is imported, before any answer runs. A check looks at what an answer returns only
# through these: the C functions of torch's tensor base class and NumPy's ufuncs, which no Python code can
# replace, called on objects of exactly the types below. It never calls a method of the returned object (a
# tensor subclass could answer a comparison itself), and never a Python-level library function that an
# answer could patch while its tests run (torch.allclose, np.allclose).
_type, _float, _isinstance = type, float, isinstance
_TensorBase = torch._C.TensorBase
_TENSOR = torch.Tensor
_detach, _to, _cpu, _numpy = _TensorBase.detach, _TensorBase.to, _TensorBase.cpu, _TensorBase.numpy
_shape_of, _dtype_of = _TensorBase.shape.__get__, _TensorBase.dtype.__get__
_is_float = _TensorBase.is_floating_point
_F64 = torch.float64
_ndarray, _array, _f8 = np.ndarray, np.array, np.float64
_absolute, _subtract, _multiply, _add = np.absolute, np.subtract, np.multiply, np.add
_isnan, _less_equal, _equal, _not_equal = np.isnan, np.less_equal, np.equal, np.not_equal
_all, _any, _sum = np.logical_and.reduce, np.logical_or.reduce, np.add.reduce
_argmax, _broadcast = np.argmax, np.broadcast_shapes
_type_name = type.__dict__["__name__"].__get__  # a class's own name, whatever its metaclass says
_SCALARS = (bool, int, float, np.float64, np.float32, np.float16, np.int64, np.int32, np.bool_)
# what an answer may return (complex numbers too, so that a check can say why they are wrong)
PLAIN_TYPES = (_TENSOR, tuple, list, type(None), str, _ndarray, complex, np.complex128, np.complex64) + _SCALARS


class NotPlain(TypeError):
    """A value of a type the checks do not look into (a tensor subclass, an object of the answer's own class)."""


def is_tensor(value: Any) -> bool:
    """True for a plain ``torch.Tensor`` (not a subclass, whose methods could be anything)."""
    return _type(value) is _TENSOR


def plain(value: Any) -> np.ndarray:
    """``value`` as a float64 NumPy array: a tensor, a NumPy array or scalar, a number, or a tuple/list of them."""
    kind = _type(value)
    if kind is _TENSOR:
        return _numpy(_cpu(_to(_detach(value), _F64)))
    if kind is _ndarray or kind in _SCALARS:
        return _array(value, dtype=_f8)
    if kind is tuple or kind is list:
        return _array([plain(v) for v in value], dtype=_f8)
    raise NotPlain(f"a value of type {_type_name(kind)}")


def plain_shape(value: Any) -> tuple:
    """The shape of a plain tensor (through the C getter, not the object's ``.shape``)."""
    return tuple(_shape_of(value))


def allclose(a: Any, b: Any, atol: float = 1e-8, rtol: float = 1e-5) -> bool:
    """|a − b| ≤ atol + rtol |b| everywhere (NaN is never close), on plain values; False for other types."""
    try:
        x, y = plain(a), plain(b)
        _broadcast(x.shape, y.shape)
    except (NotPlain, ValueError):
        return False
    return bool(_all(_less_equal(_absolute(_subtract(x, y)), _add(atol, _multiply(rtol, _absolute(y)))), axis=None))


def equal(a: Any, b: Any) -> bool:
    """Same shape and the same values, on plain values (``torch.equal``'s meaning); False for other types."""
    try:
        x, y = plain(a), plain(b)
    except NotPlain:
        return False
    return x.shape == y.shape and bool(_all(_equal(x, y), axis=None))


def describe(value: Any) -> str:
    """A short description of a value for feedback: a tensor's shape and dtype, else its type (no code of its own runs)."""
    kind = _type(value)
    if kind is _TENSOR:
        return f"tensor of shape {plain_shape(value)} and dtype {_dtype_of(value)}"
    if value is None:
        return "None (did you forget to `return` the result?)"
    if kind in _SCALARS or kind is str:
        return f"{_type_name(kind)} {value!r}"[:120]
    if kind is tuple or kind is list:
        return f"{_type_name(kind)} of {len(value)}: " + ", ".join(describe(v) for v in value[:3])[:100]
    return f"an object of type {_type_name(kind)}"


class Tester:
    """Collects the results of one exercise's tests, with feedback a student can act on.

    ``expected`` (optional) holds each ``close`` test's expected value, computed with the reference before
    any answer ran (the grader records them so: ``Tester(name, record={})``, then the reference's run fills
    ``record``); a test then compares with that value, not with what its oracle returns now.
    """

    def __init__(self, name: str, expected: dict | None = None, record: dict | None = None):
        self.name = name
        self.passed = 0
        self.failures: list[str] = []
        self.notes: list[str] = []  # said even when every test passes: which accepted variant the answer is
        self.expected, self.record = expected, record
        self.random_ok = False  # set by Exercise.evaluate: may the function draw from torch's global generator?
        self._seen: dict[str, int] = {}

    def fail(self, input: str, message: str) -> None:
        self.failures.append(f"input: {input}\n    {message}")

    def call(self, fn: Callable, args: tuple, input: str, kwargs: dict | None = None):
        """Call ``fn(*args)``; returns (ok, result). Records a failure if it raises, mutates its input, or
        returns something other than tensors, numbers and tuples of them."""
        kwargs = kwargs or {}
        before = [_clone(a) if is_tensor(a) else None for a in args]
        rng = _rng_state()
        try:
            out = fn(*args, **kwargs)
        except NotImplementedError:
            raise NotDone from None
        except Exception as err:  # noqa: BLE001 - the student's code may raise anything
            self.fail(input, f"{self.name} raised {_type_name(_type(err))}: {_message(err)}")
            return False, None
        for a, b in zip(args, before):
            if b is not None and not equal(a, b):
                self.fail(input, f"{self.name} changed its input tensor in place; compute a new tensor instead "
                                 f"(for example `y = x * 2`, not `x *= 2`)")
                return False, None
        if not self.random_ok and not equal(_rng_state(), rng):
            self.fail(input, f"{self.name} changed torch's global random state (a random draw, or "
                             "torch.manual_seed): it should use only the inputs it is given")
            return False, None
        odd = _not_plain(out)
        if odd:
            self.fail(input, f"{self.name} returned {odd}; return a torch.Tensor (or numbers, or a tuple of them), "
                             "not a subclass or an object of your own")
            return False, None
        return True, out

    def close(self, fn: Callable, args: tuple, expected: torch.Tensor, input: str,
              kwargs: dict | None = None, atol: float = 1e-4, rtol: float = 1e-4, hint: str = "") -> bool:
        """The test: ``fn(*args)`` returns a tensor of ``expected``'s shape and values (within tolerance)."""
        key = f"{input}#{self._seen.setdefault(input, 0)}"
        self._seen[input] += 1
        if self.record is not None:
            self.record[key] = plain(expected)
        elif self.expected is not None and key in self.expected:
            expected = self.expected[key]
        ok, got = self.call(fn, args, input, kwargs)
        if not ok:
            return False
        message = compare_tensors(got, expected, atol=atol, rtol=rtol)
        if message:
            self.fail(input, message + (f"\n    hint: {hint}" if hint else ""))
            return False
        self.passed += 1
        return True

    def gradient(self, fn: Callable, args: tuple, wrt: int, reference: Callable, input: str, what: str) -> bool:
        """The test: gradients flow from ``fn(*args)`` back to ``args[wrt]`` (``what``), and equal the reference's.

        A loss computed under ``torch.no_grad()``, or from ``.detach()``-ed or ``.item()`` values, passes a
        value test and then breaks training at ``loss.backward()``; this test catches it.
        """
        def leaf():
            return _detach(args[wrt]).clone().requires_grad_(True)

        mine, theirs = leaf(), leaf()
        ok, out = self.call(fn, args[:wrt] + (mine,) + args[wrt + 1:], input)
        if not ok:
            return False
        if not is_tensor(out) or not out.requires_grad:
            self.fail(input, f"the result does not depend on {what} through autograd; compute it with torch "
                             "operations, without torch.no_grad(), .detach(), .item() or NumPy: training calls "
                             "backward() on it")
            return False
        (got,) = torch.autograd.grad(out.sum(), mine, allow_unused=True)
        (want,) = torch.autograd.grad(reference(*(args[:wrt] + (theirs,) + args[wrt + 1:])).sum(), theirs)
        if got is None or not allclose(got, want, atol=1e-4, rtol=1e-3):
            how = "it is zero" if got is None else \
                f"the largest difference is {float(_absolute(_subtract(plain(got), plain(want))).max()):.3g}"
            self.fail(input, f"the gradient with respect to {what} differs from the reference's ({how}): part of "
                             "the computation is cut off from autograd (.detach(), .data, or a value rebuilt from "
                             "numbers)")
            return False
        self.passed += 1
        return True

    def expect(self, condition: bool, input: str, message: str) -> bool:
        """A property test: ``condition`` must hold, else ``message`` says what is wrong."""
        if condition is True or (_type(condition) in _SCALARS and bool(condition)):
            self.passed += 1
            return True
        self.fail(input, message)
        return False


_clone = _TensorBase.clone
_rng_state = torch._C.default_generator.get_state  # the global CPU generator's state, a plain uint8 tensor


def _message(err: BaseException) -> str:
    """An exception's text, read without calling code of the answer's own exception classes."""
    args = BaseException.__dict__["args"].__get__(err)
    return str(args[0]) if len(args) == 1 and _type(args[0]) is str else ", ".join(
        describe(a) if _type(a) is not str else a for a in args)


def _not_plain(value: Any, depth: int = 0) -> str | None:
    """None when ``value`` is made of plain types only; else what it is, for the feedback."""
    kind = _type(value)
    if kind is tuple or kind is list:
        if depth > 3:
            return "a nest of tuples too deep to check"
        return next((odd for v in value if (odd := _not_plain(v, depth + 1))), None)
    return None if kind in PLAIN_TYPES else f"an object of type {_type_name(kind)}"


def compare_tensors(got: Any, expected: Any, atol: float = 1e-4, rtol: float = 1e-4) -> str | None:
    """None if ``got`` matches ``expected`` (a tensor or its plain array); else one line saying how it differs.

    Only plain values are compared (``plain``): ``got`` must be a ``torch.Tensor`` of a floating dtype.
    """
    want = plain(expected)
    if not is_tensor(got):
        return f"expected a tensor of shape {want.shape}, got {describe(got)}"
    if plain_shape(got) != want.shape:
        return f"expected shape {want.shape}, got shape {plain_shape(got)}"
    if not _is_float(got):
        return f"expected a float tensor, got dtype {_dtype_of(got)}"
    have = plain(got)
    if _any(_isnan(have), axis=None) and not _any(_isnan(want), axis=None):
        return f"the result contains NaN at {int(_sum(_isnan(have), axis=None))} position(s) (a division by zero?)"
    diff = _array(_absolute(_subtract(have, want)), dtype=_f8)  # an array even for 0-d values (a loss)
    wrong = ~_less_equal(diff, _add(atol, _multiply(rtol, _absolute(want))))
    if not _any(wrong, axis=None):
        return None
    diff[_isnan(diff)] = np.inf
    idx = np.unravel_index(int(_argmax(diff, axis=None)), diff.shape) if diff.ndim else ()
    return (f"values differ at {int(_sum(wrong, axis=None))} of {want.size} positions; the largest difference is at "
            f"index {tuple(int(i) for i in idx)}: expected {float(want[idx]):.4f}, got {float(have[idx]):.4f}")


def random_image(shape, seed: int, low: float = 0.1, high: float = 0.9) -> torch.Tensor:
    """A reproducible random image (or batch) with values in [low, high]: the checks' test input."""
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(shape, generator=g)


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
    draws_random: bool = False  # the function draws from torch's global generator (reparameterize's ε)

    def forbidden_message(self, uses: list[tuple[str, str]]) -> str:
        """The feedback for an answer that hands the exercise to a library: which call, and what to do instead."""
        calls = ", ".join(f"`{text}` ({path})" for text, path in uses)
        what = "a library function that does" if len(uses) == 1 else "library functions that do"
        return f"your function uses {calls}, {what} this exercise's whole job; write it yourself. {self.instead}"

    def evaluate(self, fn: Callable, tester: Tester | None = None, wrap: Callable | None = None) -> CheckResult:
        """Run the tests on ``fn`` without printing anything (the grader uses this).

        The grader passes a ``tester`` holding the expected values it recorded before any answer ran, and
        ``wrap``, which watches every call of ``fn`` (the tests call ``wrap(fn)``; the source checked for
        forbidden library calls is ``fn``'s).
        """
        t = tester or Tester(self.name)
        t.random_ok = self.draws_random
        if not callable(fn):
            return CheckResult(self.name, "failed", 0, 1, [f"expected a function, got {describe(fn)}"])
        uses = uses_of_forbidden(fn, self.forbidden)
        if uses:
            return CheckResult(self.name, "library used", 0, 1, [self.forbidden_message(uses)])
        try:
            with torch.random.fork_rng(devices=[]):  # a check never changes the notebook's random stream
                self.tests(t, wrap(fn) if wrap else fn)
        except NotDone:
            return CheckResult(self.name, "not attempted", t.passed, t.passed + len(t.failures) + 1,
                               ["the function still raises NotImplementedError"])
        except Exception as err:  # noqa: BLE001 - a result so unexpected that a later test could not use it
            t.failures.append(f"input: the tests after the last one reported\n    the check could not use your "
                              f"result ({_type_name(_type(err))}: {_message(err)})")
        status = "failed" if t.failures else "passed"
        return CheckResult(self.name, status, t.passed, t.passed + len(t.failures), t.failures, t.notes)

    def check(self, fn: Callable, strict: bool | None = None) -> Callable:
        """Run the tests, print feedback, and return the function the notebook should go on with."""
        result = self.evaluate(fn)
        strict = strict_mode() if strict is None else strict
        ref = f"{self.reference.__module__}.{self.reference.__name__}"
        if result.ok:
            print(f"✅ {self.name}: all {result.total} tests passed ({self.points} point{'s' * (self.points != 1)}).")
            for note in result.notes:
                print(f"   note: {note}")
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


def exercise(lesson: str, points: int, reference: Callable, forbidden: Iterable[str] = (), instead: str = "",
             draws_random: bool = False):
    """Register a test function as an exercise's check; the decorated name is the check to call.

    ``forbidden`` names the library functions (dotted paths, e.g.
    ``"torchvision.transforms.v2.functional.adjust_contrast"``) that would do the whole exercise: an
    answer that uses one fails its check, and the grader scores it 0 ("library used"). ``instead``
    says what the student may use.
    """

    def register(tests: Callable[[Tester, Callable], None]) -> Callable[[Callable], Callable]:
        ex = Exercise(name=tests.__name__, lesson=lesson, points=points, reference=reference, tests=tests,
                      summary=(tests.__doc__ or "").strip().splitlines()[0] if tests.__doc__ else "",
                      forbidden=tuple(forbidden), instead=instead, draws_random=draws_random)
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
