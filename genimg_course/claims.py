"""Claims: the numbers a lesson's text quotes from its own run, each with the band a normal run falls in.

A claim is recorded once, in ``genimg_course/registry/NN_slug.json``: the value of the recorded run (the ``cpu``
profile, seed 0, full budget), what made it (command, commit, machine), and a band per profile:

* ``ci``: around the value of the deterministic ``ci`` run (the tolerance each claim states);
* ``cpu``: the range of at least 3 training seeds at the lesson's budget *and* at half of it (a machine twice
  as slow), widened by a quarter of that range on each side;
* ``gpu``: when one has been measured.

Where a lesson prints such a number it calls ``show``, which prints where the student's value falls::

    >>> claims.show("06.fid_flow", 44.8)
    FID of your flow model 44.8: the recorded run had 42.3; 3 seeds on 2 cores, full or half budget: 33–52:
    yours is normal.

``benchmarks/claims.py`` reruns a lesson and rewrites the values and bands; ``genimg notebooks`` writes each
claim's value into the lessons' Markdown (``genimg_course.course.prose``). With ``GENIMG_CLAIMS_OUT=FILE``
every ``show`` appends its value to FILE (one JSON line), which is how the benchmark reads a run. In the ``ci``
profile under ``GENIMG_STRICT=1`` (CI's nbval) a value outside its ``ci`` band is an error naming the claim.
"""

from __future__ import annotations

import json
import os
import time
from functools import lru_cache

from genimg_course.common.registry import REGISTRY, format_value

OUT_ENV = "GENIMG_CLAIMS_OUT"
CPU_EVIDENCE = "{n} seeds on 2 cores, full or half budget"
REASONS = {  # the likeliest reasons a value falls outside its band, by what the claim measures
    "budget": "your machine reached fewer (or more) training steps than the recorded one in the same seconds "
              "(a slower or busier machine, another profile); compare the steps line printed above",
    "code": "your exercise code differs from the reference (its check above should say so)",
    "settings": "a setting in this notebook was changed (a seed, a budget, a dataset)",
}


class ClaimOutsideBand(AssertionError):
    """In the ``ci`` profile under ``GENIMG_STRICT=1``: a claim's value left its ``ci`` band."""


@lru_cache(maxsize=1)
def registry() -> dict:
    from genimg_course.common.registry import load_registry

    return load_registry(REGISTRY)


def claim(name: str) -> dict:
    claims = registry()["claims"]
    if name not in claims:
        lesson = name.split(".")[0]
        same = sorted(n for n in claims if n.split(".")[0] == lesson)
        raise KeyError(f"No claim {name!r} in genimg_course/registry/; lesson {lesson}'s claims: {', '.join(same) or 'none'}")
    return claims[name]


def _profile() -> str:
    from genimg_course.common import runtime

    return runtime.current_profile()


def verdict(name: str, value: float, profile: str | None = None) -> tuple[str, bool | None]:
    """The line ``show`` prints, and whether ``value`` is inside the profile's band (None: no band measured)."""
    c, profile = claim(name), profile or _profile()
    spec, what = c.get("fmt", ".3g"), c["what"]
    if c.get("value") is None:
        return f"{what} {format_value(value, spec)} (no recorded run yet: benchmarks/claims.py records one).", None
    line = f"{what} {format_value(value, spec)}: the recorded run had {format_value(c['value'], spec)}"
    band = c.get("bands", {}).get(profile)
    if band is None:
        measured = ", ".join(p for p in c.get("bands", {}))
        return line + f"; no band measured for the {profile} profile yet (measured: {measured or 'none'}).", None
    lo, hi = band
    if profile == "ci":
        evidence = f"the ci profile's recorded run had {format_value(c['recorded']['ci'], spec)}, band"
    elif profile == "cpu":
        evidence = CPU_EVIDENCE.format(n=len({r['seed'] for r in c.get('runs', {}).get('cpu', [])}))
    else:
        evidence = f"measured on {c.get('machines', {}).get(profile, 'a ' + profile + ' machine')}"
    inside = lo <= value <= hi
    line += f"; {evidence}: {format_value(lo, spec)}–{format_value(hi, spec)}: "
    if inside:
        return line + "yours is normal.", True
    side = "below" if value < lo else "above"
    reasons = "; ".join(REASONS[r] for r in c.get("reasons", ["budget", "code", "settings"]))
    return line + f"yours is {side} it. Likeliest reasons: {reasons}.", False


def show(name: str, value: float, profile: str | None = None) -> bool | None:
    """Print where ``value`` falls against claim ``name``'s band (see the module); return whether inside."""
    profile = profile or _profile()
    line, inside = verdict(name, float(value), profile)
    print(("" if inside is not False else "⚠️ ") + line)
    if out := os.environ.get(OUT_ENV):
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps({"name": name, "value": float(value), "profile": profile,
                                "seed": int(os.environ.get("GENIMG_SEED", "0") or 0),
                                "budget_scale": float(os.environ.get("GENIMG_BUDGET_SCALE", "1") or 1),
                                "time": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
    if inside is False and profile == "ci" and _strict():
        raise ClaimOutsideBand(f"claim {name!r} (lesson {claim(name)['lesson']}): {line}")
    return inside


def record(kind: str, **fields) -> None:
    """With ``GENIMG_CLAIMS_OUT`` set: append one JSON line of what made a run (a model's family, its full
    configuration as used, budget, steps, seed), beside the claims' values. Otherwise nothing."""
    if out := os.environ.get(OUT_ENV):
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps({"record": kind, **fields}, default=str) + "\n")


def model_config(model) -> dict:
    """A model's configuration dataclass as a dict (what ``record`` stores), or {} when it has none."""
    import dataclasses

    config = getattr(model, "config", None)
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {}


def _strict() -> bool:
    from genimg_course.common.runtime import strict_mode

    return strict_mode()
