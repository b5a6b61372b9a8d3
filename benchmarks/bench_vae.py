"""Lesson 03's conv VAE against the tutorial-standard MLP VAE, at equal wall time, on `digits`.

    python benchmarks/bench_vae.py                 # both budgets below, cpu profile settings
    python benchmarks/bench_vae.py --budgets 60    # one budget of 60 s

Reference ("what most tutorials use", the PyTorch VAE example): MLP VAE 784-400-20,
Bernoulli decoder, Adam lr 1e-3, batch 128, no augmentation.
Ours (lesson 03 / `genimg train conv-vae`): conv VAE z=16, Bernoulli decoder, Adam lr 1e-3,
batch 64 (the cpu profile's), random shifts of up to 2 pixels.

Both see the same binarized training digits (1,437) and are scored on the 360 test digits:
test ELBO (nats per image, one z sample) and the IWAE estimate of the test NLL with k = 100.
Budget "lesson" is the wall time the lesson's conv VAE takes in the cpu profile (its epochs
from genimg_course.zoo.EPOCHS); each further budget trains both for that many seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from genimg_course import vae
from genimg_course.common import data
from genimg_course.zoo import EPOCHS


def train_and_score(model, images, test, seconds=None, epochs=10_000, **kwargs):
    torch.manual_seed(0)
    start = time.perf_counter()
    history = vae.train_vae(model, images, epochs=epochs, max_seconds=seconds, progress_bar=False, **kwargs)
    wall = time.perf_counter() - start
    train_elbo = vae.evaluate_elbo(model, images[:360])
    return {"seconds": wall, "steps": len(history["loss"]), "train_elbo": train_elbo,
            "test_elbo": vae.evaluate_elbo(model, test), "test_nll": vae.evaluate_nll(model, test, k=100)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--budgets", nargs="+", default=["lesson", "180"])
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    images = data.load_dataset("digits").images
    test = data.load_dataset("digits", split="test").images
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}")
    print("| budget | model | wall time (s) | steps | train ELBO | test ELBO | test NLL (IWAE k=100) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for budget in args.budgets:
        if budget == "lesson":
            ours = train_and_score(vae.ConvVAE(), images, test, epochs=EPOCHS["cpu"]["conv-vae"], batch_size=64,
                                   augment_shift=2)
            seconds = ours["seconds"]
        else:
            seconds = float(budget)
            ours = train_and_score(vae.ConvVAE(), images, test, seconds, batch_size=64, augment_shift=2)
        ref = train_and_score(vae.MLPVAE(vae.VAEConfig(z_dim=20, hidden=400)), images, test, seconds,
                              batch_size=128)
        label = f"{budget} ({seconds:.0f} s)" if budget == "lesson" else f"{seconds:.0f} s"
        for name, r in [("ours: conv VAE + shifts", ours), ("reference: MLP VAE 784-400-20", ref)]:
            print(f"| {label} | {name} | {r['seconds']:.1f} | {r['steps']} | {r['train_elbo']:.1f} | "
                  f"{r['test_elbo']:.1f} | {r['test_nll']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
