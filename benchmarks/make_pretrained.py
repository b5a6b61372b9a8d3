"""Remake the pretrained models shipped in ``genimg_course/weights/`` (issue 29).

Each model is one ``genimg train`` command (``RECIPES`` below: every setting spelled out, no preset whose
default may change), run with one CPU thread so that two can train side by side on a 2-core machine:

    python benchmarks/make_pretrained.py train dcgan flow        # runs/pretrained/NAME/: model.pt, history.json
    python benchmarks/make_pretrained.py ship dcgan flow         # half precision, sha256, the band, manifest.json
    python benchmarks/make_pretrained.py curve                   # FID against training time (lesson 06)
    python benchmarks/make_pretrained.py report                  # the tables of benchmarks/RESULTS.md

``ship`` writes ``genimg_course/weights/NAME.pt`` (the weights in float16: half the size, and the
samples score the same within the band) and its entry in ``genimg_course/weights/manifest.json``: the
command, seed, budget, steps reached, training time, threads, commit, machine, sha256, and the metrics of
its samples at the test's small n over several sampling seeds (the band the unit test checks).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs" / "pretrained"
SHIP = ROOT / "genimg_course" / "weights"
SAMPLE_FOLDER = RUNS / "sample_folder"  # lesson 07's default folder: make_sample_folder(n_per_class=200, seed=0)
# the times at which --snapshots saves the model: FID against training time, from one run (lesson 06)
CURVE = "60,120,240,480,900,1200,1800"

# name -> the arguments of `genimg train` (the profile fixes the architecture: U-Net width 16, batch 64). dcgan and
# flow train for 30 minutes of wall time with snapshots (lesson 06's curve); the others for a number of epochs, so
# that a rerun on a busier or faster machine makes the same model (the recorded time is what it took here).
RECIPES = {
    "dcgan": ["dcgan", "--dataset", "digits", "--profile", "cpu", "--seed", "0", "--seconds", "1800",
              "--snapshots", CURVE],
    "flow": ["flow", "--dataset", "digits", "--profile", "cpu", "--seed", "0", "--seconds", "1800",
             "--time-sampling", "logit-normal", "--snapshots", CURVE],
    "ddpm": ["ddpm", "--dataset", "digits", "--profile", "cpu", "--seed", "0", "--epochs", "80", "--prediction", "v"],
    "cflow": ["cflow", "--dataset", "digits", "--profile", "cpu", "--seed", "0", "--epochs", "80",
              "--time-sampling", "logit-normal"],
    "cddpm": ["cddpm", "--dataset", "digits", "--profile", "cpu", "--seed", "0", "--epochs", "200", "--prediction", "v"],
    "cgan": ["cgan", "--dataset", "digits", "--profile", "cpu", "--seed", "0", "--epochs", "200"],
    # the conv VAE's samples are best at about 50 epochs and worsen after, while its ELBO keeps improving (FID 87.1
    # at 50, 96.8 at 100, 115.2 at 200; test ELBO −67.7, −62.6, −60.9: benchmarks/records/vae_curve.json, made by
    # benchmarks/vae_curve.py): the shipped one stops at the best FID measured
    "conv-vae": ["conv-vae", "--dataset", "digits", "--profile", "cpu", "--seed", "0", "--epochs", "50"],
    "latent-flow": ["latent-flow", "--dataset", f"folder:{SAMPLE_FOLDER}", "--profile", "cpu", "--seed", "0",
                    "--epochs", "600"],
}
# the short end of the time curve, more seeds (not shipped): as many epochs as seed 0 had done at its 60 s snapshot
# (dcgan 1,373 steps = 31 epochs of 44 steps; flow 268 steps = 12 epochs of 22), at equal steps, not equal seconds:
# seed 0's run shared the machine less than these did
SEEDS = {f"{m}-seed{s}": [m, "--dataset", "digits", "--profile", "cpu", "--seed", str(s), "--epochs", epochs]
         + (["--time-sampling", "logit-normal"] if m == "flow" else [])
         for m, epochs in (("dcgan", "31"), ("flow", "12")) for s in (1, 2)}


def genimg() -> list[str]:
    return [sys.executable, "-m", "genimg_course"]


def train(names: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GENIMG_DASHBOARD": "text"}
    for name in names:
        argv = {**RECIPES, **SEEDS}[name]
        if name == "latent-flow" and not SAMPLE_FOLDER.exists():
            from genimg_course import folder

            folder.make_sample_folder(SAMPLE_FOLDER, n_per_class=200, seed=0)
        out = RUNS / name
        cmd = genimg() + ["train", *argv, "--out", str(out)]
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(cmd[3:])}", flush=True)
        with open(RUNS / f"{name}.log", "w") as log:
            subprocess.run(cmd, env=env, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        print(f"[{time.strftime('%H:%M:%S')}] {name}: done", flush=True)


def half_precision(payload: dict) -> dict:
    """The checkpoint with its parameters in float16 (half the file); buffers (a diffusion schedule's ᾱ_t, whose
    values near 0 and 1 float16 cannot tell apart, batch-norm statistics, latent scales) stay float32."""
    from genimg_course.zoo import build_model

    model = build_model(payload["family"], payload["config"])
    params = {name for name, _ in model.named_parameters()}
    state = {k: v.half() if k in params and v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    return {**payload, "state_dict": state}


def read_run(path: Path) -> dict:
    """A checkpoint written by `genimg train`; the runs made before the fix of 2026-12-07 stored torch's version as
    a TorchVersion object, which weights_only=True refuses unless allowed (it is a str): allowed here, and stored
    as a plain str in what is shipped."""
    import torch
    from torch.torch_version import TorchVersion

    from genimg_course.common.checkpoint import read_checkpoint

    with torch.serialization.safe_globals([TorchVersion]):
        payload = read_checkpoint(path)
    extra = payload.get("extra", {})
    if "torch" in extra:
        extra["torch"] = str(extra["torch"])
    return payload


def ship(names: list[str]) -> None:
    import torch

    from genimg_course import pretrained

    SHIP.mkdir(parents=True, exist_ok=True)
    manifest_path = SHIP / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    for name in names:
        run = RUNS / name
        payload = half_precision(read_run(run / "model.pt"))
        record = json.loads((run / "history.json").read_text())
        if name == "latent-flow":  # a path on this machine means nothing elsewhere: name the course's folder
            payload["dataset"] = pretrained.SAMPLE_FOLDER
        path = SHIP / f"{name}.pt"
        torch.save(payload, path)
        entry = {
            "file": path.name, "family": payload["family"], "dataset": payload["dataset"],
            "sha256": pretrained.sha256(path), "bytes": path.stat().st_size,
            "command": " ".join(record["argv"][:-2] + ["--out", f"runs/pretrained/{name}"]).replace(
                str(SAMPLE_FOLDER), "runs/pretrained/sample_folder"),  # paths relative to the repository
            "seed": record["seed"], "budget_seconds": record["budget_seconds"], "train_seconds": record["seconds"],
            "steps": record["steps"], "threads": record["threads"], "profile": record["profile"],
            "config": payload["config"], "commit": record["commit"], "course_version": record["course_version"],
            "torch": record["torch"], "machine": record["machine"], "python": record["python"],
            "trained_on": time.strftime("%Y-%m-%d", time.localtime(run.joinpath("model.pt").stat().st_mtime)),
        }
        if name == "latent-flow":
            entry["folder"] = {"n_per_class": 200, "seed": 0}
        if "commit_note" in record:
            entry["commit_note"] = record["commit_note"]
        manifest[name] = entry
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        # the band: the check's scores over five sampling seeds (pretrained.check_scores, as the test runs it)
        start = time.perf_counter()
        scores = [pretrained.check_scores(name, seed=seed) for seed in range(5)]
        band = {key: [round(min(s[key] for s in scores), 4), round(max(s[key] for s in scores), 4)]
                for key in scores[0]}
        entry["check"] = {"n": pretrained.CHECK_N, "steps": pretrained.CHECK_STEPS, "seeds": [0, 1, 2, 3, 4],
                          "band": band, "seconds_per_check": round((time.perf_counter() - start) / 5, 1)}
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        print(f"{name}: {entry['bytes'] / 1e6:.2f} MB, sha256 {entry['sha256'][:12]}…, {entry['steps']} steps in "
              f"{entry['train_seconds']:.0f} s; check band {band}", flush=True)


def curve(n: int = 1000) -> None:
    """FID against training time for the DCGAN and flow matching (issue 29, section 3): every snapshot of the
    seed-0 runs and of the short runs of seeds 1 and 2, 1,000 samples each (flow: Heun, 25 steps, 49 network
    evaluations), lesson 05's metrics against the 360 test digits; the floor is 1,000 real training digits.
    Writes genimg_course/weights/time_curve.json (every row with its run's configuration) and prints a table."""
    import torch

    from genimg_course import metrics
    from genimg_course.common.checkpoint import read_checkpoint
    from genimg_course.common.data import load_dataset
    from torch.torch_version import TorchVersion

    from genimg_course.zoo import load_checkpoint

    torch.set_num_threads(2)
    rows = []
    train_digits = load_dataset("digits", split="train").images
    pick = torch.randperm(len(train_digits), generator=torch.Generator().manual_seed(0))[:n]
    floor = metrics.evaluate_images(train_digits[pick], "digits")
    print(f"floor (1,000 real training digits): FID {floor['fid']:.2f}", flush=True)
    for model in ("dcgan", "flow"):
        for name in (model, f"{model}-seed1", f"{model}-seed2"):
            snaps = sorted((RUNS / name / "snapshots").glob("model_*s.pt"),
                           key=lambda p: float(p.stem.split("_")[1][:-1]))
            if not snaps:  # a short run of another seed: its final model
                snaps = [RUNS / name / "model.pt"]
            for path in snaps:
                with torch.serialization.safe_globals([TorchVersion]):
                    net, payload = load_checkpoint(path)
                start = time.perf_counter()
                with torch.no_grad():
                    samples = torch.cat([net.sample(min(500, n - i), torch.Generator().manual_seed(i)).float()
                                         for i in range(0, n, 500)])
                sampling = time.perf_counter() - start
                result = metrics.evaluate_images(samples, "digits")
                history = json.loads((RUNS / name / "history.json").read_text())
                row = {"model": model, "run": name, "seed": payload["extra"]["seed"],
                       "budget_seconds": (float(path.stem.split("_")[1][:-1]) if path.stem != "model"
                                          else history["budget_seconds"]), "epochs": history.get("epochs"),
                       "seconds": payload["extra"]["seconds"], "steps": payload["extra"]["steps"],
                       "n": n, "sampler": "one pass of G" if model == "dcgan" else "Heun 25 (49 evaluations)",
                       "sampling_seconds": round(sampling, 1),
                       **{k: round(float(result[k]), 4) for k in ("fid", "kid", "precision", "recall", "coverage")},
                       "config": payload["config"], "argv": history["argv"], "commit": history["commit"],
                       "machine": history["machine"], "threads": history["threads"], "torch": history["torch"]}
                rows.append(row)
                print(f"{name:<12} {row['seconds']:>6.0f} s {row['steps']:>6} steps  FID {row['fid']:7.2f}  "
                      f"precision {row['precision']:.3f} recall {row['recall']:.3f}", flush=True)
    out = SHIP / "time_curve.json"  # package data: lesson 06 plots it (pretrained.time_curve())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"floor_fid": round(float(floor["fid"]), 4), "n": n, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


def classifiers() -> None:
    """Ship lesson 05's feature classifiers of digits and shapes (seed 0): trained here as on first use
    (``classifier.train_classifier``), saved to ``weights/classifier_DATASET-seed0.pt``, sha256 in classifiers.json."""
    import torch

    from genimg_course import classifier, pretrained

    index = {}
    for dataset in ("digits", "shapes"):
        start = time.perf_counter()
        model, accuracy = classifier.train_classifier(dataset, seed=0)
        path = SHIP / f"classifier_{dataset}-seed0.pt"
        torch.save({"state_dict": model.state_dict(), "accuracy": accuracy, "num_classes": model.head.out_features,
                    "image_shape": list(model.image_shape)}, path)
        index[path.name] = {"sha256": pretrained.sha256(path), "accuracy": accuracy,
                            "train_seconds": round(time.perf_counter() - start, 1), "torch": str(torch.__version__),
                            "threads": torch.get_num_threads(), "bytes": path.stat().st_size}
        print(f"{path.name}: test accuracy {accuracy:.1%}, {index[path.name]['bytes'] / 1e6:.2f} MB", flush=True)
    (SHIP / "classifiers.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")


def report() -> None:
    """Markdown tables for benchmarks/RESULTS.md, generated from the records (manifest.json, time_curve.json), so
    that a row cannot say what its run was not."""
    manifest = json.loads((SHIP / "manifest.json").read_text())
    print("| model | command | steps | trained (s) | threads | MB | sha256 | check: FID, n = 200 (5 seeds) | commit |")
    print("|---|---|---:|---:|---:|---:|---|---|---|")
    for name, e in sorted(manifest.items()):
        lo, hi = e["check"]["band"]["fid"]
        extra = f", {e['check']['steps']} steps" if e["family"] not in ("dcgan", "cgan", "conv-vae") else ""
        print(f"| {name} | `{e['command']}` | {e['steps']:,} | {e['train_seconds']:.0f} | {e['threads']} | "
              f"{e['bytes'] / 1e6:.2f} | `{e['sha256'][:12]}…` | {lo:.1f}–{hi:.1f}{extra} | `{e['commit'][:7]}{'+' if 'uncommitted' in e['commit'] else ''}` |")
    total = sum(e["bytes"] for e in manifest.values())
    print(f"\n{len(manifest)} files, {total / 1e6:.1f} MB in all.\n")
    path = SHIP / "time_curve.json"
    if path.exists():
        curve = json.loads(path.read_text())
        print(f"FID against training time, {curve['n']:,} samples against the 360 test digits; floor (1,000 real "
              f"training digits): {curve['floor_fid']:.2f}\n")
        print("| run | seed | wall time (s) | steps | sampler | FID | precision | recall | coverage |")
        print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
        for r in curve["rows"]:
            print(f"| {r['run']} | {r['seed']} | {r['seconds']:.0f} | {r['steps']:,} | {r['sampler']} | {r['fid']:.2f} | "
                  f"{r['precision']:.3f} | {r['recall']:.3f} | {r['coverage']:.3f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["train", "ship", "curve", "report", "classifiers"])
    p.add_argument("names", nargs="*")
    p.add_argument("--runs", help="the folder of the training runs (default runs/pretrained)")
    args = p.parse_args()
    if args.runs:
        global RUNS
        RUNS = Path(args.runs).resolve()
    RUNS.mkdir(parents=True, exist_ok=True)
    if args.what == "train":
        train(args.names or list(RECIPES))
    elif args.what == "ship":
        ship(args.names or list(RECIPES))
    elif args.what == "curve":
        curve()
    elif args.what == "classifiers":
        classifiers()
    else:
        report()


if __name__ == "__main__":
    main()
