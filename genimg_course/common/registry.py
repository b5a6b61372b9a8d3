"""The claims registry: ``genimg_course/registry/NN_slug.json``, one file per lesson (issue 30).

Read by the lessons at run time (``genimg_course.claims``) and by the notebook builder
(``genimg_course.course.prose``); it sits here, below both, so that neither imports the other's layer.
"""

from __future__ import annotations

import json
from pathlib import Path

REGISTRY = Path(__file__).resolve().parent.parent / "registry"  # one NN_slug.json per lesson


class ClaimsError(ValueError):
    """A marker names a claim or field the registry does not have, or a registry file is broken; the message
    names the file, lesson or cell."""


def load_registry(folder: Path = REGISTRY) -> dict:
    """All lessons' claims and constants: ``{"claims": {name: claim}, "constants": {lesson: {token: source}}}``
    (claim names start with the lesson's number, "06.fid_flow", so they never collide)."""
    merged: dict = {"claims": {}, "constants": {}}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            part = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ClaimsError(f"{path}: not valid JSON ({err})") from None
        lesson = part.get("lesson", path.stem)
        for name, c in part.get("claims", {}).items():
            if not name.startswith(lesson[:2] + "."):
                raise ClaimsError(f"{path}: claim {name!r} must start with {lesson[:2]}. (its lesson's number)")
            merged["claims"][name] = {**c, "lesson": lesson}
        merged["constants"][lesson] = part.get("constants", {})
    return merged


def format_value(value, fmt: str) -> str:
    """A claim's value (or a band, [lo, hi]) as the prose and the printed lines show it."""
    return "–".join(format(v, fmt) for v in value) if isinstance(value, (list, tuple)) else format(value, fmt)
