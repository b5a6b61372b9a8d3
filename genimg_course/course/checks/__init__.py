"""The exercise checks, one module per lesson: ``lesson01`` holds 01_preprocessing's, and so on.

A notebook imports its own lesson's module as ``check``
(``from genimg_course.course.checks import lesson03 as check``) and calls ``check.NAME(fn)`` after each
exercise. Importing a module declares its exercises in ``genimg_course.course.exercises.EXERCISES``;
``load_all()`` declares every lesson's (the grader and the notebook builder need them all).
"""

from __future__ import annotations

import importlib
import pkgutil


def modules() -> list[str]:
    """The checks modules' names, in lesson order: ["lesson01", "lesson02", ...]."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("lesson"))


def load_all() -> None:
    """Import every lesson's checks, which declares every exercise of the course."""
    for name in modules():
        importlib.import_module(f"{__name__}.{name}")
