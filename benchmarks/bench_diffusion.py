"""Lesson 06's diffusion and flow models against the course's GAN and conv VAE, at equal training wall time.

    python benchmarks/bench_diffusion.py                    # 180 s of training each, on `digits`, CPU
    python benchmarks/bench_diffusion.py --seconds 60 --models ddpm flow
    python benchmarks/bench_diffusion.py --device cuda      # on a GPU: also prints images/s of training
    python benchmarks/bench_diffusion.py --full-ddpm        # adds DDPM's 1,000 ancestral steps (10 min on 2 cores)
    # lesson 06, second pass: equal steps (55 epochs of 23 steps), every setting pinned, a record per seed
    python benchmarks/bench_diffusion.py --models ddpm-eps ddpm-v flow-uniform flow-ln --second-pass --epochs 55 \
        --seed 0 --record benchmarks/records/second_pass/seed0.json
    python benchmarks/bench_diffusion.py --table benchmarks/records/second_pass/seed*.json   # RESULTS' tables

A variant (``ddpm-eps``, ``ddpm-v``, ``ddpm-v-zsnr``, ``flow-uniform``, ``flow-ln``) is its family with every
setting that tells it apart pinned (``VARIANTS``): the prediction target, zero terminal SNR, the flow's time
sampling; ``--second-pass`` refuses the bare ``ddpm`` and ``flow``, whose defaults have changed before.

Each model trains in its own process (so its peak memory is its own) on the whole `digits` training set, with the
lesson's configuration (zoo defaults), for ``--seconds`` of wall time, then draws 1,000 samples per sampler
setting; every setting is timed and judged with lesson 05's metrics against the 360 test digits (classifier
features; at n = 1,000 the real-vs-real floor is the first row). Prints one JSON object per model and a Markdown
table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

N_SAMPLES = int(os.environ.get("BENCH_N_SAMPLES", 1000))  # fewer only to try the script out
DEFAULT_MODELS = ("ddpm", "flow", "cflow", "dcgan", "cgan", "conv-vae")
# sampler settings per family: (label, keyword arguments of model.sample)
SETTINGS = {
    # lesson 06, second pass: every sampler at about 50 network evaluations, on both timestep grids. Every keyword
    # is spelled out (sampler, steps, spacing, eta, clipping): a default that changes cannot relabel a row (issue 30:
    # "DDIM 50, linspace" once ran with the config's new default spacing, trailing)
    "ddpm-v": [("DDIM 50, linspace", {"sampler": "ddim", "steps": 50, "spacing": "linspace", "eta": 0.0,
                                      "clipped_model_output": False}),
               ("DDIM 50, trailing", {"sampler": "ddim", "steps": 50, "spacing": "trailing", "eta": 0.0,
                                      "clipped_model_output": False}),
               ("DDIM 50, trailing, clipped ε", {"sampler": "ddim", "steps": 50, "spacing": "trailing", "eta": 0.0,
                                                  "clipped_model_output": True}),
               ("ancestral 50, trailing", {"sampler": "ddpm", "steps": 50, "spacing": "trailing",
                                           "clipped_model_output": False}),
               ("Heun 25 (49 evaluations), trailing", {"sampler": "heun", "steps": 25, "spacing": "trailing",
                                                       "clipped_model_output": False})],
    "flow-ln": [("Euler, 50 steps", {"sampler": "euler", "steps": 50}),
                ("Heun 25 (49 evaluations)", {"sampler": "heun", "steps": 25})],
    "ddpm": [("DDIM, 10 steps", {"sampler": "ddim", "steps": 10}), ("DDIM, 20 steps", {"sampler": "ddim", "steps": 20}),
             ("DDIM, 50 steps", {"sampler": "ddim", "steps": 50}),
             ("DDPM ancestral, 50 steps", {"sampler": "ddpm", "steps": 50})],
    "flow": [("Euler, 5 steps", {"steps": 5}), ("Euler, 10 steps", {"steps": 10}), ("Euler, 20 steps", {"steps": 20}),
             ("Euler, 50 steps", {"steps": 50})],
    "cflow": [("w = 1, 20 steps", {"guidance": 1.0, "steps": 20}), ("w = 2, 20 steps", {"guidance": 2.0, "steps": 20}),
              ("w = 4, 20 steps", {"guidance": 4.0, "steps": 20})],
    "cddpm": [("w = 1, DDIM 20", {"guidance": 1.0, "steps": 20}), ("w = 2, DDIM 20", {"guidance": 2.0, "steps": 20}),
              ("w = 4, DDIM 20", {"guidance": 4.0, "steps": 20})],
    "dcgan": [("one pass of G", {})],
    "cgan": [("one pass of G", {})],
    "conv-vae": [("one pass of the decoder", {})],
}


SETTINGS["ddpm-v-zsnr"] = SETTINGS["ddpm-eps"] = SETTINGS["ddpm-v"]
SETTINGS["flow-uniform"] = SETTINGS["flow-ln"]
SECOND_PASS = {"ddpm": SETTINGS["ddpm-v"], "flow": SETTINGS["flow-ln"]}  # --second-pass: these for ddpm and flow
# variant: (family, configuration overrides). Every setting that tells the variants apart is pinned, so that a
# change of zoo.DIFFUSION_DEFAULTS (v-prediction and logit-normal t became the defaults on 2026-12-02) cannot turn
# one variant into another; the record stores the full configuration as used.
VARIANTS = {"ddpm-eps": ("ddpm", {"prediction": "eps", "zero_terminal_snr": False}),
            "ddpm-v": ("ddpm", {"prediction": "v", "zero_terminal_snr": False}),
            "ddpm-v-zsnr": ("ddpm", {"prediction": "v", "zero_terminal_snr": True}),
            "flow-uniform": ("flow", {"time_sampling": "uniform"}),
            "flow-ln": ("flow", {"time_sampling": "logit-normal"})}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_one(name: str, seconds: float | None, seed: int, device: str, full_ddpm: bool, second_pass: bool = False,
              epochs: int | None = None) -> dict:
    import torch

    from genimg_course import metrics
    from genimg_course.common import data
    from genimg_course.common.runtime import setup
    from genimg_course.zoo import MODELS, build_model, default_config

    run = setup(seed=seed, profile="gpu" if device == "cuda" else "cpu", device=device, verbose=False)
    train = data.load_dataset("digits", split="train")
    family, overrides = VARIANTS.get(name, (name, {}))
    model = build_model(family, {**default_config(family, tuple(train.images.shape[1:]), n_classes=10,
                                                  profile=run.profile), **overrides})
    start = time.perf_counter()
    history = MODELS[family].train(model, train.images, run, epochs or 10**6, seed,
                                   max_seconds=None if epochs else seconds, progress_bar=False, labels=train.labels)
    if device == "cuda":
        torch.cuda.synchronize()
    train_seconds = time.perf_counter() - start
    steps = len(history["loss"] if "loss" in history else history["loss_d"])  # optimiser steps
    batch = run.batch_size if hasattr(model, "ema") and hasattr(model, "alpha_bar") else None  # diffusion: the profile's
    import dataclasses

    result = {"model": name, "family": family, "config": dataclasses.asdict(model.config), "seed": seed,
              "device": device, "budget": {"epochs": epochs} if epochs else {"seconds": seconds},
              "threads": torch.get_num_threads(), "torch": str(torch.__version__),
              "train_seconds": round(train_seconds, 1), "steps": steps, "batch": batch,
              "train_images_per_second": round(steps * batch / train_seconds, 1) if batch else None,
              "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad), "settings": []}
    model = model.eval()
    settings = list(SECOND_PASS.get(name, SETTINGS[name]) if second_pass else SETTINGS[name])
    if family == "ddpm" and full_ddpm:
        settings.append(("DDPM ancestral, 1000 steps", {"sampler": "ddpm", "steps": 1000}))
    conditional = getattr(model.config, "n_classes", 0)
    asked = torch.arange(N_SAMPLES) % 10 if conditional else None
    for label, kwargs in settings:
        start = time.perf_counter()
        chunks, g = [], torch.Generator().manual_seed(1000 + seed)
        for i in range(0, N_SAMPLES, 500):  # bounded memory, as genimg sample does
            extra = {"labels": asked[i:i + 500]} if conditional else {}
            chunks.append(model.sample(min(500, N_SAMPLES - i), g, **extra, **kwargs).float().cpu())
        if device == "cuda":
            torch.cuda.synchronize()
        sample_seconds = time.perf_counter() - start
        r = metrics.evaluate_images(torch.cat(chunks), "digits", asked=asked)
        row = {"setting": label, "sample_kwargs": kwargs, "n": N_SAMPLES, "sample_seed": 1000 + seed,
               "sample_seconds": round(sample_seconds, 1),
               "images_per_second": round(N_SAMPLES / sample_seconds, 1)}
        row |= {k: round(r[k], 3) for k in ("fid", "kid", "precision", "recall", "density", "coverage")}
        if conditional:
            row["conditional_accuracy"] = round(r["conditional_accuracy"], 3)
        result["settings"].append(row)
    result["peak_rss_mib"] = round(peak_rss_mib())
    if device == "cuda":
        result["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return result


def floor_row() -> dict:
    import torch

    from genimg_course import metrics
    from genimg_course.common import data

    train = data.load_dataset("digits", split="train")
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:N_SAMPLES]
    r = metrics.evaluate_images(train.images[idx], "digits")
    return {k: round(r[k], 3) for k in ("fid", "kid", "precision", "recall", "density", "coverage")}


def table(paths: list[str]) -> int:
    """The second pass's tables from its records: one row per (model, sampler) with each seed's FID and steps,
    the mean over seeds; every row's label comes from the record's pinned settings, never from a name."""
    import statistics

    records = [json.load(open(p)) for p in paths]
    print("Records: " + ", ".join(f"`{p}` (seed {r['results'][0]['seed']}, commit {str(r['commit'])[:7]}, "
                                  f"{r['machine']})" for p, r in zip(paths, records)) + "\n")
    budgets = sorted({json.dumps(m["budget"], sort_keys=True) for r in records for m in r["results"]})
    print(f"Training budget of every model: {', '.join(budgets)}\n")
    print(f"Floor (1,000 real training digits): FID " + ", ".join(f"{r['floor']['fid']:.2f}" for r in records) + "\n")
    seeds = [r["results"][0]["seed"] for r in records]
    print("| model | configuration | sampler (pinned keywords) | " + " | ".join(f"FID seed {s}" for s in seeds)
          + " | mean | steps per seed |")
    print("|---|---|---|" + "---:|" * (len(seeds) + 2))
    keys = [(m["model"], s["setting"]) for m in records[0]["results"] for s in m["settings"]]
    for model, setting in keys:
        fids, steps, config, kwargs = [], [], None, None
        for r in records:
            m = next(x for x in r["results"] if x["model"] == model)
            row = next(x for x in m["settings"] if x["setting"] == setting)
            fids.append(row["fid"])
            steps.append(m["steps"])
            keys = ("time_sampling",) if m["config"]["objective"] == "flow" else ("prediction", "zero_terminal_snr")
            config = ", ".join(f"{k} {m['config'][k]}" for k in keys)
            kwargs = row.get("sample_kwargs")
        print(f"| {model} | {config} | {setting}: `{kwargs}` | " + " | ".join(f"{f:.1f}" for f in fids)
              + f" | {statistics.mean(fids):.1f} | {', '.join(map(str, steps))} |")
    comparisons(records)
    return 0


# one factor at a time: (what changes, (model, setting) of the first row, (model, setting) of the second)
ONE_FACTOR = [
    ("target ε → v, DDIM 50 (trailing)", ("ddpm-eps", "DDIM 50, trailing"), ("ddpm-v", "DDIM 50, trailing")),
    ("target ε → v, ancestral 50", ("ddpm-eps", "ancestral 50, trailing"), ("ddpm-v", "ancestral 50, trailing")),
    ("target ε → v, Heun 25", ("ddpm-eps", "Heun 25 (49 evaluations), trailing"),
     ("ddpm-v", "Heun 25 (49 evaluations), trailing")),
    ("η 0 → 1 (ε-model: DDIM with clipped ε → ancestral)", ("ddpm-eps", "DDIM 50, trailing, clipped ε"),
     ("ddpm-eps", "ancestral 50, trailing")),
    ("η 0 → 1 (v-model: DDIM with clipped ε → ancestral)", ("ddpm-v", "DDIM 50, trailing, clipped ε"),
     ("ddpm-v", "ancestral 50, trailing")),
    ("ε carried → ε re-derived from the clipped x̂0, DDIM 50 (ε-model)", ("ddpm-eps", "DDIM 50, trailing"),
     ("ddpm-eps", "DDIM 50, trailing, clipped ε")),
    ("ε carried → ε re-derived from the clipped x̂0, DDIM 50 (v-model)", ("ddpm-v", "DDIM 50, trailing"),
     ("ddpm-v", "DDIM 50, trailing, clipped ε")),
    ("grid linspace → trailing, DDIM 50 (ε-model)", ("ddpm-eps", "DDIM 50, linspace"), ("ddpm-eps", "DDIM 50, trailing")),
    ("grid linspace → trailing, DDIM 50 (v-model)", ("ddpm-v", "DDIM 50, linspace"), ("ddpm-v", "DDIM 50, trailing")),
    ("DDIM 50 → Heun 25 (v-model)", ("ddpm-v", "DDIM 50, trailing"), ("ddpm-v", "Heun 25 (49 evaluations), trailing")),
    ("flow t uniform → logit-normal, Euler 50", ("flow-uniform", "Euler, 50 steps"), ("flow-ln", "Euler, 50 steps")),
    ("flow t uniform → logit-normal, Heun 25", ("flow-uniform", "Heun 25 (49 evaluations)"),
     ("flow-ln", "Heun 25 (49 evaluations)")),
    ("flow Euler 50 → Heun 25 (logit-normal)", ("flow-ln", "Euler, 50 steps"), ("flow-ln", "Heun 25 (49 evaluations)")),
]


def comparisons(records: list[dict]) -> None:
    """ONE_FACTOR from the records: each pair's FIDs per seed (first → second), the change, and the mean change
    (negative: the second is better). Pairs whose rows a record lacks are left out."""
    import statistics

    def fid(r, model, setting):
        m = next((x for x in r["results"] if x["model"] == model), None)
        row = m and next((x for x in m["settings"] if x["setting"] == setting), None)
        return row["fid"] if row else None

    seeds = [r["results"][0]["seed"] for r in records]
    print("\nOne factor at a time (FID first → second per seed; the change; negative: the second is better):\n")
    print("| what changes | " + " | ".join(f"seed {s}" for s in seeds) + " | mean change |")
    print("|---|" + "---|" * len(seeds) + "---:|")
    for what, a, b in ONE_FACTOR:
        pairs = [(fid(r, *a), fid(r, *b)) for r in records]
        if any(x is None or y is None for x, y in pairs):
            continue
        cells = [f"{x:.1f} → {y:.1f} ({y - x:+.1f})" for x, y in pairs]
        print(f"| {what} | " + " | ".join(cells) + f" | {statistics.mean(y - x for x, y in pairs):+.1f} |")


def budget_words(args) -> str:
    """The training budget as run: --epochs wins over --seconds (a header once said "180 s" for a run of 55 epochs)."""
    return f"{args.epochs} epochs" if args.epochs else f"{args.seconds:.0f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=list(SETTINGS))
    parser.add_argument("--seconds", type=float, default=180.0, help="training wall time per model (default 180)")
    parser.add_argument("--epochs", type=int, help="train for this many epochs (equal steps, whatever the machine's "
                        "speed) instead of --seconds")
    parser.add_argument("--record", help="write every model's result (full configuration, budget, steps, "
                        "sampler settings, metrics) and the run's provenance to this JSON file")
    parser.add_argument("--table", nargs="+", help="print RESULTS.md's tables from these --record files "
                        "(one per seed) and exit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--full-ddpm", action="store_true", help="also sample DDPM with all 1,000 ancestral steps")
    parser.add_argument("--second-pass", action="store_true",
                        help="ddpm and flow: the second pass's sampler settings (about 50 network evaluations each)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one model in this process
    args = parser.parse_args()
    if args.table:
        return table(args.table)
    if args.second_pass and not args.one and (bare := [m for m in args.models if m in ("ddpm", "flow")]):
        parser.error(f"--second-pass needs pinned variants, not {bare}: use ddpm-eps or ddpm-v, flow-uniform or "
                     "flow-ln")
    if args.one:
        print(json.dumps(train_one(args.one, args.seconds, args.seed, args.device, args.full_ddpm, args.second_pass,
                                   args.epochs)))
        return 0
    import torch

    print(f"# {platform.node()} | {platform.processor() or platform.machine()} | torch {torch.__version__} | "
          f"threads {torch.get_num_threads()} | device {args.device} | {budget_words(args)} of training each")
    results = []
    for family in args.models:
        cmd = [sys.executable, __file__, "--one", family, "--seconds", str(args.seconds), "--seed", str(args.seed),
               "--device", args.device] + (["--epochs", str(args.epochs)] if args.epochs else []) + \
            (["--full-ddpm"] if args.full_ddpm else []) + \
            (["--second-pass"] if args.second_pass else [])
        out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
        if out.returncode:
            print(out.stderr[-3000:], file=sys.stderr)
            return out.returncode
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps(result), flush=True)
        results.append(result)
    floor = floor_row()
    if args.record:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from genimg_course.course.cli import provenance

        with open(args.record, "w") as f:
            json.dump({"command": "python benchmarks/bench_diffusion.py " + " ".join(sys.argv[1:]),
                       **provenance(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "floor": floor,
                       "results": results}, f, indent=1, ensure_ascii=False)
    print(f"\n{N_SAMPLES} samples per row against the 360 test digits (classifier features); "
          f"{budget_words(args)} of training each on {args.device}.\n")
    print("| model | sampler | train steps | sampling (s) | images/s | fid | kid | precision | recall | coverage | "
          "class accuracy |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| 1,000 real training digits (floor) | - | - | - | - | {floor['fid']} | {floor['kid']} | "
          f"{floor['precision']} | {floor['recall']} | {floor['coverage']} | - |")
    for r in results:
        for s in r["settings"]:
            print(f"| {r['model']} | {s['setting']} | {r['steps']} | {s['sample_seconds']} | {s['images_per_second']} | "
                  f"{s['fid']} | {s['kid']} | {s['precision']} | {s['recall']} | {s['coverage']} | "
                  f"{s.get('conditional_accuracy', '-')} |")
    print("\n| model | parameters | train steps | train images/s | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['model']} | {r['parameters']:,} | {r['steps']} | {r['train_images_per_second']} | "
              f"{r['peak_rss_mib']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
