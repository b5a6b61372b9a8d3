"""The comparison table of lesson 05 on `digits` in the cpu profile, and the time to evaluate 1,000 samples.

    python benchmarks/bench_eval.py

Trains every model of the course with the cpu profile's settings (as `genimg train` and the
lessons do; training time measured), samples 360 images from each (the size of the test set,
as in the lesson: FID is only comparable at equal sample sizes), and runs
`metrics.evaluate_images` against the 360 test digits. Two reference rows: 360 real training
digits (the floor at this sample size) and uniform noise. Then it times the evaluation of
1,000 samples of the last model.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time

import torch

import genimg_course
from genimg_course import classifier, metrics
from genimg_course.common import data
from genimg_course.zoo import load_or_train

KEYS = ["fid", "kid", "precision", "recall", "density", "coverage", "inception_score", "classes_present",
        "memorised_fraction"]


def row(name, r, seconds=None):
    cells = [f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in KEYS]
    return f"| {name} | {'-' if seconds is None else f'{seconds:.0f}'} | {r['n_samples']} | " + " | ".join(cells) + " |"


def main():
    os.environ["GENIMG_PROFILE"] = "cpu"
    run = genimg_course.setup(seed=0)
    classifier.get_classifier("digits")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    print("| model | training time (s) | samples | " + " | ".join(KEYS) + " |")
    print("|---|---:|---:|" + "---:|" * len(KEYS))
    train = data.load_dataset("digits").images
    print(row("real training digits (floor)", metrics.evaluate_images(train[:360], "digits")))
    print(row("uniform noise", metrics.evaluate_images(torch.rand(360, 1, 28, 28) * 2 - 1, "digits")))
    with tempfile.TemporaryDirectory() as tmp:
        for family in ("mlp-mmd", "vae", "conv-vae", "dcgan", "cgan"):
            start = time.perf_counter()
            model = load_or_train(family, "digits", run, directory=tmp, verbose=False, progress_bar=False)
            seconds = time.perf_counter() - start
            samples = model.sample(360, generator=torch.Generator().manual_seed(1)).float()
            asked = torch.arange(360) % 10 if family == "cgan" else None  # cgan samples every class in turn
            result = metrics.evaluate_images(samples, "digits", asked=asked)
            print(row(family, result, seconds), flush=True)
            if asked is not None:
                conditional = f"{family}: asked-for class drawn {result['conditional_accuracy']:.1%} of the time"
    samples = model.sample(1000, generator=torch.Generator().manual_seed(2)).float()
    t0 = time.perf_counter()
    metrics.evaluate_images(samples, "digits")
    eval_seconds = time.perf_counter() - t0
    print(f"\n{conditional}")
    print(f"time to evaluate 1,000 samples (all metrics, classifier cached): {eval_seconds:.2f} s")


if __name__ == "__main__":
    main()
