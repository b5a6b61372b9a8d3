"""Training throughput of lesson 06's U-Net on 2 CPU cores: images per second of one training step, by variant.

    python benchmarks/bench_diffusion_throughput.py [--seconds 20] [--batch 64] [--width 16]

The step is the lesson's (`DiffusionModel.loss`, AdamW, gradient clipping, EMA update) on digits-sized images
(1 × 28 × 28), the `cpu` profile's U-Net. Each variant runs 5 warm-up steps, then as many steps as fit in
`--seconds`; images/s = batch × steps / seconds. Variants change how the step runs, never what it computes:

* eager: as `train_diffusion` runs it today;
* channels_last: the U-Net's weights and inputs in NHWC memory format;
* compile: `torch.compile(model.net)` (inductor; the first steps compile, excluded from the timing);
* batch 128: the same step on twice the images (more images per second is not more learning per second).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from genimg_course import diffusion
from genimg_course.diffusion import DiffusionConfig, DiffusionModel


def steps_per_second(model, batch, seconds, memory_format=torch.contiguous_format, net=None):
    opt = torch.optim.AdamW(model.net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(batch, 1, 28, 28, generator=g) * 2 - 1).contiguous(memory_format=memory_format)
    if net is not None:
        model.predict = lambda x, t, labels=None, net_=None: net(x, model.network_time(t), labels)

    def step():
        loss = model.loss(x0, None, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.net.parameters(), 1.0)
        opt.step()
        diffusion.ema_update(model.ema, model.net, 0.99)

    for _ in range(5):
        step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    return n / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=16)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")

    def fresh():
        torch.manual_seed(0)
        return DiffusionModel(DiffusionConfig(width=args.width))

    rows = []
    rows.append(("eager", args.batch, steps_per_second(fresh(), args.batch, args.seconds)))
    model = fresh()
    model.net.to(memory_format=torch.channels_last)
    rows.append(("channels_last", args.batch,
                 steps_per_second(model, args.batch, args.seconds, memory_format=torch.channels_last)))
    try:
        model = fresh()
        compiled = torch.compile(model.net)
        rows.append(("compile", args.batch, steps_per_second(model, args.batch, args.seconds, net=compiled)))
    except Exception as err:  # noqa: BLE001 - no C++ compiler, or inductor unsupported here: say so
        print(f"compile: not available here ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
    rows.append(("eager, batch 2x", 2 * args.batch, steps_per_second(fresh(), 2 * args.batch, args.seconds)))
    print("| variant | batch | steps/s | images/s |\n|---|---:|---:|---:|")
    for name, batch, rate in rows:
        print(f"| {name} | {batch} | {rate:.2f} | {rate * batch:.0f} |")


if __name__ == "__main__":
    main()
