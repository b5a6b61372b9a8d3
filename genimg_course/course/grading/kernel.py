"""Fingerprints of the course's and the libraries' functions: has anything been replaced?

Used in two places. Inside a student's kernel (``genimg grade`` runs the whole notebook there for the
feedback page), ``begin()`` runs before any student code, and ``report(name, token)`` after each answer
cell prints one line ``<token> <json>`` saying what the notebook has replaced so far. In the process that
grades an answer (``answers``), ``fingerprint()``/``tampered()`` are compared after every call of the
student's function, so a change made while the tests run is seen even when it is undone afterwards.

This makes cheating visible; it is not a sandbox (see INSTRUCTORS.md, "Threat model").
"""

from __future__ import annotations

import json
import sys
import types

_FINGERPRINT: dict[str, tuple] = {}
WATCHED_MODULES = ("torch", "torch.nn.functional", "torch.testing", "torch.distributions", "torch.autograd",
                   "numpy", "numpy.linalg", "scipy.linalg", "builtins", "torchvision.transforms.v2.functional")
VOLATILE = {"builtins.input", "builtins.raw_input", "builtins.getpass"}  # ipykernel rebinds these every cell
# caches Python itself writes into a class: copyreg stores __slotnames__ the first time an instance is pickled or
# copied (torch.save(tensor), copy.copy(tensor)): a solved lesson 06 was marked 'tampering' for it
CLASS_CACHES = {"__slotnames__"}


def _watched():
    names = [m for m in list(sys.modules) if m == "genimg_course" or m.startswith("genimg_course.")]
    names += [m for m in WATCHED_MODULES if m in sys.modules]
    return [(n, sys.modules[n]) for n in sorted(set(names)) if n != __name__ and sys.modules.get(n)]


def fingerprint() -> dict[str, tuple]:
    """Identity of every public callable of the watched modules and classes, and of the code inside each."""
    import numpy as np
    import torch

    from genimg_course.course.exercises import EXERCISES, Exercise, Tester

    prints: dict[str, tuple] = {}
    for mod_name, module in _watched():
        for attr, value in list(vars(module).items()):
            if attr.startswith("__") or isinstance(value, types.ModuleType):
                continue
            if callable(value) and f"{mod_name}.{attr}" not in VOLATILE:
                prints[f"{mod_name}.{attr}"] = (id(value), id(getattr(value, "__code__", None)))
    # every method of the classes a check computes with (torch.Tensor's are Python and can be replaced)
    for cls in (Tester, Exercise, torch.Tensor, torch.nn.Module, torch.optim.Optimizer, np.random.Generator):
        for attr, value in list(vars(cls).items()):
            if attr in CLASS_CACHES:
                continue
            prints[f"{cls.__qualname__}.{attr}"] = (id(value), id(getattr(value, "__code__", None)))
    for name, ex in EXERCISES.items():
        prints[f"EXERCISES[{name!r}]"] = (id(ex), id(ex.tests), id(ex.tests.__code__), id(ex.reference),
                                          id(getattr(ex.reference, "__code__", None)), ex.points)
    prints["sys.stdout.write"] = (id(type(sys.stdout)),)
    return prints


def take_fingerprint() -> None:
    """Remember the fingerprint now (before any student code runs)."""
    import importlib

    from genimg_course.course import checks

    checks.load_all()  # declares every exercise
    for name in WATCHED_MODULES:  # import them now, so a later import is not mistaken for a change
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    _FINGERPRINT.clear()
    _FINGERPRINT.update(fingerprint())


def tampered() -> list[str]:
    """What changed since ``take_fingerprint()``: replaced or deleted functions, and functions added to libraries."""
    now = fingerprint()
    changed = [k for k in _FINGERPRINT if now.get(k) != _FINGERPRINT[k]]
    added = [k for k in now if k not in _FINGERPRINT and not k.startswith("genimg_course.")]
    return sorted(changed + added)


# ----------------------------------------------------------------------------- inside the student's kernel
def begin() -> None:
    """The grader's first hidden cell: fingerprint the course before any student code runs."""
    take_fingerprint()


def report(name: str, token: str) -> None:
    """The hidden cell after answer ``name``: print ``<token> {"tampered": [...]}`` for the grader."""
    sys.stdout.flush()
    print(f"\n{token} {json.dumps({'tampered': tampered()[:5]})}", flush=True)
