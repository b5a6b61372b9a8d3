"""Remake the pretrained models shipped in ``genimg_course/pretrained/`` (issue 29).

Each model is one ``genimg train`` command (``RECIPES`` below: every setting spelled out, no preset whose
default may change), run with one CPU thread so that two can train side by side on a 2-core machine:

    python benchmarks/make_pretrained.py train dcgan flow        # runs/pretrained/NAME/: model.pt, history.json
    python benchmarks/make_pretrained.py ship dcgan flow         # half precision, sha256, the band, manifest.json
    python benchmarks/make_pretrained.py curve                   # FID against training time (lesson 06)

``ship`` writes ``genimg_course/pretrained/NAME.pt`` (the weights in float16: half the size, and the
samples score the same within the band) and its entry in ``genimg_course/pretrained/manifest.json``: the
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
SHIP = ROOT / "genimg_course" / "pretrained"
SAMPLE_FOLDER = RUNS / "sample_folder"  # lesson 07's default folder: make_sample_folder(n_per_class=200, seed=0)
# the times at which --snapshots saves the model: FID against training time, from one run (lesson 06)
CURVE = "60,120,240,480,900,1200,1800"

# name -> the arguments of `genimg train` (the profile fixes the architecture: U-Net width 16, batch 64)
RECIPES = {
    "dcgan": ["dcgan", "--dataset", "digits", "--profile", "cpu", "--seed", "0", "--seconds", "1800",
              "--snapshots", CURVE],
    "flow": ["flow", "--dataset", "digits", "--profile", "cpu", "--seed", "0", "--seconds", "1800",
             "--time-sampling", "logit-normal", "--snapshots", CURVE],
    "ddpm": ["ddpm", "--dataset", "digits", "--profile", "cpu", "--seed", "0", "--seconds", "1080",
             "--prediction", "v"],
    "cflow": ["cflow", "--dataset", "digits", "--profile", "cpu", "--seed", "0", "--seconds", "1080",
              "--time-sampling", "logit-normal"],
    "cddpm": ["cddpm", "--dataset", "digits", "--profile", "cpu", "--seed", "0", "--seconds", "900",
              "--prediction", "v"],
    "cgan": ["cgan", "--dataset", "digits", "--profile", "cpu", "--seed", "0", "--seconds", "720"],
    "conv-vae": ["conv-vae", "--dataset", "digits", "--profile", "cpu", "--seed", "0", "--seconds", "720"],
    "latent-flow": ["latent-flow", "--dataset", f"folder:{SAMPLE_FOLDER}", "--profile", "cpu", "--seed", "0",
                    "--seconds", "900"],
}
# the short end of the time curve, more seeds (not shipped)
SEEDS = {f"{m}-seed{s}": [m, "--dataset", "digits", "--profile", "cpu", "--seed", str(s), "--seconds", "120",
                          "--snapshots", "60,120"] + (["--time-sampling", "logit-normal"] if m == "flow" else [])
         for m in ("dcgan", "flow") for s in (1, 2)}


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["train", "ship", "curve"])
    p.add_argument("names", nargs="*")
    args = p.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)
    if args.what == "train":
        train(args.names or list(RECIPES))


if __name__ == "__main__":
    main()
