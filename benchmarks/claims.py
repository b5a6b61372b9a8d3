"""Rerun a lesson, record its claims, rewrite their values and bands, report each against its band (issue 30).

    python benchmarks/claims.py run 02_mlp_generator 03_vae 04_gans 05_evaluation 06_diffusion 07_your_images \
        --profile cpu --seeds 0,1,2 --scales 1,0.5          # each (seed, scale): the lessons in order
    python benchmarks/claims.py run 06_diffusion --profile ci                            # the deterministic run
    python benchmarks/claims.py update 06_diffusion      # genimg_course/registry/06_diffusion.json from the records
    python benchmarks/claims.py report [06_diffusion]    # each claim of the latest records against its band
    python benchmarks/claims.py table [06_diffusion]     # RESULTS.md's tables, from the registry and the records

``run`` executes the lessons in order (each in a fresh kernel) once per (seed, budget scale), in a scratch copy
of ``solutions/`` with one fresh data folder, so that a lesson finds what the earlier ones saved, as a student's
does, with ``GENIMG_SEED``, ``GENIMG_BUDGET_SCALE`` and ``GENIMG_CLAIMS_OUT`` set, and writes
``benchmarks/records/claims/LESSON/PROFILE-seedS-scaleX.json``: every claim's value, every trained model's
full configuration, budget and steps, the printed text of every cell, the seconds and peak memory, and the
commit, machine, threads and torch of the run. Run it on an idle machine: a budget in seconds is spent on
whatever else runs.

``update`` sets, for each claim of the lesson: ``value`` (the cpu run with seed 0 at the full budget: the
recorded run the text quotes), ``recorded`` (that value per profile), ``bands.ci`` (the ci value ± the claim's
``ci_tol``, relative, default 0.1, or ``ci_abs``), ``bands.cpu`` (min to max over the cpu runs, widened by a
quarter of that range on each side, inside the claim's ``range``), ``runs`` and ``records`` (the files).
Then run ``genimg notebooks`` so that the lessons' Markdown says the new values.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT / "benchmarks" / "records" / "claims"
REGISTRY = ROOT / "genimg_course" / "registry"
sys.path.insert(0, str(ROOT / "benchmarks"))


def record_path(lesson: str, profile: str, seed: int, scale: float) -> Path:
    return RECORDS / lesson / f"{profile}-seed{seed}-scale{scale:g}.json"


def run(lessons: list[str], profile: str, seeds: list[int], scales: list[float]) -> None:
    """Each (seed, scale): the lessons in order, in one scratch copy of solutions/ with one data folder, as a
    student runs them (lesson 05 scores the models lessons 02-04 saved in checkpoints/)."""
    import shutil

    import nbformat

    from bench_notebooks import run_notebook
    from genimg_course.course.cli import provenance

    for lesson in lessons:
        if not (ROOT / "solutions" / f"{lesson}.ipynb").exists():
            names = ", ".join(p.stem for p in sorted((ROOT / "solutions").glob("*.ipynb")))
            raise SystemExit(f"No solutions/{lesson}.ipynb; lessons: {names}")
    for seed in seeds:
        for scale in scales:
            with tempfile.TemporaryDirectory() as data, tempfile.TemporaryDirectory() as folder:
                for lesson in lessons:
                    shutil.copy(ROOT / "solutions" / f"{lesson}.ipynb", folder)
                for lesson in lessons:
                    _run_one(lesson, Path(folder) / f"{lesson}.ipynb", profile, seed, scale, data, lessons,
                             run_notebook, provenance, nbformat)


def _run_one(lesson, path, profile, seed, scale, data, lessons, run_notebook, provenance, nbformat) -> None:
    out = path.parent / "executed"
    values = path.parent / f"{lesson}.claims.jsonl"
    env = {"GENIMG_PROFILE": profile, "GENIMG_SEED": str(seed), "GENIMG_BUDGET_SCALE": str(scale),
           "GENIMG_CLAIMS_OUT": str(values), "GENIMG_DATA": data, "GENIMG_DASHBOARD": "text", "MPLBACKEND": "Agg"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    print(f"[{time.strftime('%H:%M:%S')}] {lesson} {profile} seed {seed} scale {scale:g}", flush=True)
    try:
        seconds, peak, _ = run_notebook(path, save_to=out)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    lines = [json.loads(l) for l in values.read_text().splitlines()] if values.exists() else []
    executed = nbformat.read(out / path.name, as_version=4)
    printed = {i: "".join(o.get("text", "") for o in c.get("outputs", []) if o.get("output_type") == "stream")
               for i, c in enumerate(executed.cells) if c.cell_type == "code"}
    rec = {"lesson": lesson, "profile": profile, "seed": seed, "budget_scale": scale,
           "command": f"python benchmarks/claims.py run {' '.join(lessons)} --profile {profile} --seeds {seed} "
                      f"--scales {scale:g}",
           "after": lessons[:lessons.index(lesson)],
           "seconds": round(seconds, 1), "peak_mib": round(peak), "threads": _threads(),
           **provenance(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "claims": {l["name"]: l["value"] for l in lines if "name" in l and "record" not in l},
           "models": [l for l in lines if l.get("record") == "model"],
           "printed": {str(i): t for i, t in printed.items() if t}}
    target = record_path(lesson, profile, seed, scale)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(rec, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"  {seconds:.0f} s, peak {peak:.0f} MiB, {len(rec['claims'])} claims → {target.relative_to(ROOT)}",
          flush=True)


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _records(lesson: str) -> list[dict]:
    return [json.loads(p.read_text()) | {"file": str(p.relative_to(ROOT))}
            for p in sorted((RECORDS / lesson).glob("*.json"))]


def update(lesson: str) -> None:
    path = REGISTRY / f"{lesson}.json"
    part = json.loads(path.read_text(encoding="utf-8"))
    records = _records(lesson)
    if not records:
        raise SystemExit(f"No records in {RECORDS / lesson}: run `python benchmarks/claims.py run {lesson}` first")
    for name, c in part["claims"].items():
        got = {(r["profile"], r["seed"], r["budget_scale"]): (r["claims"][name], r) for r in records
               if name in r["claims"]}
        recorded, bands, runs, files = {}, {}, {}, {}
        if ("ci", 0, 1.0) in got:
            v, r = got[("ci", 0, 1.0)]
            tol = max(abs(v) * c.get("ci_tol", 0.1), c.get("ci_abs", 0.0))
            recorded["ci"], bands["ci"], files["ci"] = v, _clip([v - tol, v + tol], c), r["file"]
        cpu = [(k, v) for k, (v, _) in got.items() if k[0] == "cpu"]
        if cpu:
            values = [v for _, v in cpu]
            lo, hi = min(values), max(values)
            margin = 0.25 * (hi - lo) or 0.02 * abs(values[0])
            bands["cpu"] = _clip([lo - margin, hi + margin], c)
            runs["cpu"] = [{"seed": k[1], "budget_scale": k[2], "value": v} for k, v in sorted(cpu)]
        if ("cpu", 0, 1.0) in got:
            v, r = got[("cpu", 0, 1.0)]
            recorded["cpu"], files["cpu"] = v, r["file"]
            c["value"] = v
            c["provenance"] = {k: r[k] for k in ("commit", "machine", "threads", "torch", "date", "command")}
        c.update(recorded=recorded, bands={**c.get("bands", {}), **bands}, runs=runs, records=files)
    path.write_text(json.dumps(part, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{path.relative_to(ROOT)}: {len(part['claims'])} claims from {len(records)} records; "
          "now run `genimg notebooks`")


def _clip(band: list[float], claim: dict) -> list[float]:
    lo, hi = claim.get("range", [None, None])
    return [max(band[0], lo) if lo is not None else band[0], min(band[1], hi) if hi is not None else band[1]]


def report(lessons: list[str]) -> int:
    from genimg_course import claims

    claims.registry.cache_clear()
    outside = 0
    for lesson in lessons:
        for r in _records(lesson):
            print(f"{lesson} {r['profile']} seed {r['seed']} scale {r['budget_scale']:g} ({r['file']}):")
            for name, value in r["claims"].items():
                line, inside = claims.verdict(name, value, r["profile"])
                outside += inside is False
                print(f"  {'ok ' if inside else ('OUT' if inside is False else ' ? ')} {name}: {line}")
    return outside


def table(lessons: list[str]) -> None:
    """RESULTS.md's tables, from the registry and the records: per lesson, each claim's recorded value, its ci
    value and band, the cpu runs (seed/scale: value) and the cpu band; then each run's seconds and peak memory."""
    from genimg_course.course.prose import load_registry

    registry = load_registry()
    for lesson in lessons:
        claims = {n: c for n, c in registry["claims"].items() if c["lesson"] == lesson}
        if not claims:
            continue
        records = _records(lesson)
        print(f"\n**{lesson}** ({len(claims)} claims; records in `benchmarks/records/claims/{lesson}/`)\n")
        cpu = sorted({(r["seed"], r["budget_scale"]) for r in records if r["profile"] == "cpu"})
        print("| claim | recorded (cpu, seed 0) | ci: value, band | " + " | ".join(f"s{s} ×{b:g}" for s, b in cpu)
              + " | cpu band |")
        print("|---|---:|---|" + "---:|" * len(cpu) + "---|")
        for name, c in claims.items():
            fmt = c.get("fmt", ".3g")
            f = (lambda v: format(v, fmt) if v is not None else "–")
            runs = {(r["seed"], r["budget_scale"]): r["value"] for r in c.get("runs", {}).get("cpu", [])}
            ci = c.get("recorded", {}).get("ci")
            ci_band = c.get("bands", {}).get("ci")
            band = c.get("bands", {}).get("cpu")
            print(f"| `{name}` | {f(c.get('value'))} | {f(ci)}, {f(ci_band[0]) + '–' + f(ci_band[1]) if ci_band else '–'} | "
                  + " | ".join(f(runs.get(k)) for k in cpu)
                  + f" | {f(band[0]) + '–' + f(band[1]) if band else '–'} |")
        print("\n| run | seconds | peak MiB | commit | machine | threads |\n|---|---:|---:|---|---|---:|")
        for r in sorted(records, key=lambda r: (r["profile"], r["seed"], -r["budget_scale"])):
            print(f"| {r['profile']} seed {r['seed']} ×{r['budget_scale']:g} | {r['seconds']} | {r['peak_mib']} | "
                  f"`{str(r['commit'])[:7]}{'+' if '+' in str(r['commit']) else ''}` | {r['machine']} | {r['threads']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("run")
    p.add_argument("lessons", nargs="+", help="run in this order, in one folder (as a student does)")
    p.add_argument("--profile", default="cpu", choices=["ci", "cpu", "gpu"])
    p.add_argument("--seeds", default="0")
    p.add_argument("--scales", default="1")
    sub.add_parser("update").add_argument("lesson")
    sub.add_parser("report").add_argument("lesson", nargs="?")
    sub.add_parser("table").add_argument("lessons", nargs="*")
    args = parser.parse_args()
    if args.what == "run":
        run(args.lessons, args.profile, [int(s) for s in args.seeds.split(",")],
            [float(s) for s in args.scales.split(",")])
    elif args.what == "update":
        update(args.lesson)
    elif args.what == "table":
        table(args.lessons or sorted(p.name for p in RECORDS.iterdir() if p.is_dir()))
    else:
        lessons = [args.lesson] if args.lesson else sorted(p.name for p in RECORDS.iterdir() if p.is_dir())
        sys.exit(1 if report(lessons) else 0)


if __name__ == "__main__":
    main()
