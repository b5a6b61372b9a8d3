"""One DCGAN configuration on `digits` for a fixed wall time, with moving averages of several decays.

How lesson 04's recipe was chosen (see benchmarks/RESULTS.md). Examples:

    python benchmarks/gan_ablation.py --width 32 --batch 32 --set lr_g=4e-4 lr_d=8e-4 "betas=(0.0, 0.99)"
    python benchmarks/gan_ablation.py --width 64 --batch 64 --tutorial
    python benchmarks/gan_ablation.py --set augment=translation,cutout
    python benchmarks/gan_ablation.py --set d_kernel=4 --seed 1    # D's kernels as in the PyTorch tutorial

Prints the steps reached and FID / precision / recall / classes present (1,000 samples,
lesson 05's metrics) of the last generator and of its moving averages with decays 0.99,
0.995 and 0.999 (kept alongside, warm-up (1+t)/(10+t)).
"""

from __future__ import annotations

import argparse
import ast
import copy
import time

import torch

from genimg_course import gan, metrics
from genimg_course.common import data

DECAYS = (0.99, 0.995, 0.999)


class Averages:
    """A 'dashboard' that keeps extra moving averages of G (train_gan calls update after each step)."""

    def __init__(self):
        self.copies = None

    def update(self, step, history, model):
        if self.copies is None:
            self.copies = {d: copy.deepcopy(model.generator).requires_grad_(False) for d in DECAYS}
        for decay, ema in self.copies.items():
            gan.ema_update(ema, model.generator, min(decay, (1 + step) / (10 + step)))

    def close(self):
        pass


def parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare string such as translation,cutout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tutorial", action="store_true", help="start from gan.TUTORIAL_RECIPE")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="GANConfig fields")
    args = parser.parse_args()
    overrides = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
    base = dict(gan.TUTORIAL_RECIPE) if args.tutorial else {}
    cfg = gan.GANConfig(image_shape=(1, 28, 28), width=args.width, **{**base, "ema_decay": 0.0, **overrides})
    torch.manual_seed(args.seed)
    model = gan.DCGAN(cfg)
    images = data.load_dataset("digits", split="train").images
    averages = Averages()
    start = time.perf_counter()
    history = gan.train_gan(model, images, epochs=10**6, batch_size=args.batch, seed=args.seed,
                            max_seconds=args.seconds, dashboard=averages)
    print(f"{cfg}\nbatch {args.batch}: {len(history['loss_d'])} steps in {time.perf_counter() - start:.0f} s")
    for name, G in [("last G", model.generator), *((f"EMA {d}", e) for d, e in averages.copies.items())]:
        model.generator_ema = G
        result = metrics.evaluate_images(model.sample(1000, torch.Generator().manual_seed(1)), "digits")
        print(f"  {name:<10} FID {result['fid']:6.1f}  precision {result['precision']:.3f}  recall "
              f"{result['recall']:.3f}  classes {result['classes_present']}")


if __name__ == "__main__":
    main()
