"""Lesson 04's DCGAN against the PyTorch DCGAN tutorial's recipe, at equal wall time on `digits`.

    python benchmarks/bench_gan.py                 # 180 s each, seed 0
    python benchmarks/bench_gan.py --seconds 60 --seeds 0 1
    python benchmarks/bench_gan.py --toy            # lesson 04's ring of Gaussians: modes covered, with/without R1
    python benchmarks/bench_gan.py --collapse       # lesson 04's collapsing setting, seeds 0 1 2
    python benchmarks/bench_gan.py --device cuda --seconds 60   # on a GPU (the lesson's batch is 128 there)

Each run trains in its own process (so peak memory is its own), on the whole `digits` training
set, with the threads torch picks. The tutorial's recipe: BCE loss, Adam(2e-4,
β1 = 0.5), BatchNorm in G and D, transposed convolutions, width 64 (ngf = ndf = 64), no moving
average. Both are judged with lesson 05's metrics on 1,000 samples against the 360 test digits
(classifier-feature FID; the floor is 1,000 real training digits).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import time

RECIPES = {
    "tutorial": "the PyTorch DCGAN tutorial (BCE, BatchNorm in D, width 64, batch 64, no EMA)",
    "lesson": "lesson 04's DCGAN (zoo default: hinge, spectral norm, EMA, ...)",
}


def train_one(recipe: str, seconds: float, seed: int, device: str) -> dict:
    import torch

    from genimg_course import gan, metrics
    from genimg_course.common import data
    from genimg_course.zoo import build_model, default_config

    torch.manual_seed(seed)
    images = data.load_dataset("digits", split="train").images
    if recipe == "tutorial":
        model = gan.DCGAN(gan.GANConfig(image_shape=(1, 28, 28), width=64, **gan.TUTORIAL_RECIPE))
    else:
        model = build_model("dcgan", default_config("dcgan", images.shape[1:]))
    start = time.perf_counter()
    batch = 64 if recipe == "tutorial" else gan.batch_size_for(device)  # the lesson's: 32 on a CPU, 128 on a GPU
    history = gan.train_gan(model, images, epochs=10**6, batch_size=batch, device=device, seed=seed,
                            max_seconds=seconds, progress_bar=False)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    train_seconds = time.perf_counter() - start
    samples = model.sample(1000, torch.Generator().manual_seed(1000 + seed)).cpu()
    result = metrics.evaluate_images(samples, "digits")
    peak_gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.device(device).type == "cuda" else 0.0
    return {"recipe": recipe, "seed": seed, "steps": len(history["loss_d"]), "train_seconds": train_seconds,
            "batch": batch, "images_per_second": len(history["loss_d"]) * batch / train_seconds, "peak_gpu_mib": peak_gpu,
            "params_g": sum(p.numel() for p in model.generator.parameters()),
            "params_d": sum(p.numel() for p in model.discriminator.parameters()),
            "config": dataclasses.asdict(model.config),
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # this process's peak (KiB on Linux)
            **{k: result[k] for k in ("fid", "kid", "precision", "recall", "classes_present", "largest_class_share",
                                       "memorised_fraction", "histogram")}}


def toy(seeds, steps: int = 2000) -> None:
    """Modes of the 8-Gaussian ring covered after ``steps`` steps, plain GAN vs R1 (as in the lesson)."""
    import torch

    from genimg_course import gan

    print(f"ring of 8 Gaussians, {steps} steps, batch 256, Adam(1e-3, β1 = 0.5), MLPs 3 × 128 (as in lesson 04)")
    print("| seed | R1 γ | modes covered (≥ 1% of 1,000 samples) | samples on a mode (within 4σ) | seconds |")
    print("|---:|---:|---:|---:|---:|")
    for seed in seeds:
        for gamma in (0.0, 0.1):
            torch.manual_seed(seed)
            G, D = gan.toy_mlp(2, 2), gan.toy_mlp(2, 1)
            start = time.perf_counter()
            gan.train_toy_gan(G, D, steps, r1_gamma=gamma, seed=seed, progress_bar=False)
            with torch.no_grad():
                points = G(torch.randn(1000, 2, generator=torch.Generator().manual_seed(seed)))
            modes, on_mode = gan.mode_coverage(points)
            print(f"| {seed} | {gamma} | {modes}/8 | {on_mode:.0%} | {time.perf_counter() - start:.1f} |", flush=True)


# Lesson 04's two collapsing settings (MLPs 3 × 128 as in the lesson; steps: the cpu/gpu profiles', then ci's).
COLLAPSE = {
    "slow G": dict(z_dim=256, batch_size=64, lr=1e-4, lr_d=1e-3, steps=(2000, 800)),
    "greedy G": dict(z_dim=16, batch_size=64, lr=1e-3, lr_d=1e-4, g_steps=5, steps=(1000, 400)),
}


def collapse(seeds) -> None:
    """Lesson 04's collapsing settings: which modes G sits on at 40 snapshots, how many it covers, and
    the spread of its samples, with and without R1, at the step counts of the cpu/gpu and ci profiles."""
    import torch

    from genimg_course import gan

    for name, setting in COLLAPSE.items():
        options = {k: v for k, v in setting.items() if k != "steps"}
        print(f"\n{name}: {options}, ring of 8 Gaussians, MLPs 3 × 128 (lesson 04)")
        print("snapshots every steps/40; 'sat on' = the modes holding ≥ 10% of 1,000 samples at each snapshot "
              "('-' = on no mode); spread = RMS distance from the samples' mean (the ring: 2.0, one mode: 0.07)")
        print("| steps | seed | R1 γ | modes sat on, snapshots 1–40 | most modes covered (≥ 1%) at one snapshot "
              "| snapshots with ≥ 50% on a mode | median spread | seconds |")
        print("|---:|---:|---:|---|---:|---:|---:|---:|")
        for steps in setting["steps"]:
            for seed in seeds:
                for gamma in (0.0, 0.1):
                    torch.manual_seed(seed)
                    G, D = gan.toy_mlp(options["z_dim"], 2), gan.toy_mlp(2, 1)
                    start = time.perf_counter()
                    h = gan.train_toy_gan(G, D, steps, r1_gamma=gamma, seed=seed, snapshot_every=steps // 40,
                                          progress_bar=False, **options)
                    snaps = [p for _, p in h["snapshots"][1:]]
                    held = ["".join(map(str, gan.modes_held(p))) or "-" for p in snaps]
                    on_data = sum(gan.mode_coverage(p)[1] >= 0.5 for p in snaps)
                    spreads = sorted(gan.spread(p) for p in snaps)
                    print(f"| {steps} | {seed} | {gamma} | {' '.join(held)} | "
                          f"{max(gan.mode_coverage(p)[0] for p in snaps)} | {on_data}/{len(snaps)} | "
                          f"{spreads[len(spreads) // 2]:.2f} | {time.perf_counter() - start:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--toy", action="store_true", help="the 2-D toy of lesson 04 instead")
    parser.add_argument("--collapse", action="store_true", help="lesson 04's collapsing 2-D setting instead")
    parser.add_argument("--device", default="cpu", help="cpu (the figure the issue asks for) or cuda")
    parser.add_argument("--one", choices=list(RECIPES), help=argparse.SUPPRESS)  # internal: one run
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.collapse:
        collapse(args.seeds if args.seeds != [0] else [0, 1, 2])
        return
    if args.toy:
        toy(args.seeds if args.seeds != [0] else list(range(6)))
        return
    if args.one:
        print(json.dumps(train_one(args.one, args.seconds, args.seed, args.device)))
        return

    import torch

    from genimg_course import metrics
    from genimg_course.common import data

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; device {args.device}"
          f"{' (' + torch.cuda.get_device_name(0) + ')' if args.device.startswith('cuda') else ''}; "
          f"{args.seconds:.0f} s of training per run")
    real = data.load_dataset("digits", split="train").images
    floor = metrics.evaluate_images(real[torch.randperm(len(real), generator=torch.Generator().manual_seed(0))[:1000]],
                                    "digits")
    rows = []
    for seed in args.seeds:
        for recipe in RECIPES:
            out = subprocess.run([sys.executable, __file__, "--one", recipe, "--seconds", str(args.seconds),
                                  "--seed", str(seed), "--device", args.device], capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"the {recipe} run (seed {seed}) failed:\n{out.stderr[-3000:]}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(r)
            print(f"  {recipe} seed {seed}: {r['steps']} steps, FID {r['fid']:.1f}", flush=True)
    print()
    print("| recipe | seed | steps in the time | batch | images/s | G / D parameters | peak memory (MiB) | "
          "peak GPU memory (MiB) | FID ↓ | KID ↓ | precision | recall | classes present | largest class share |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| real training digits (floor) | - | - | - | - | - | - | - | {floor['fid']:.1f} | {floor['kid']:.4f} | "
          f"{floor['precision']:.3f} | {floor['recall']:.3f} | {floor['classes_present']} | "
          f"{floor['largest_class_share']:.3f} |")
    for r in rows:
        print(f"| {r['recipe']} | {r['seed']} | {r['steps']} | {r['batch']} | {r['images_per_second']:,.0f} | "
              f"{r['params_g']:,} / {r['params_d']:,} | {r['peak_mib']:.0f} | {r['peak_gpu_mib']:.0f} | {r['fid']:.1f} | {r['kid']:.4f} | {r['precision']:.3f} | {r['recall']:.3f} | "
              f"{r['classes_present']} | {r['largest_class_share']:.3f} |")
    for seed in args.seeds:
        fid = {r["recipe"]: r["fid"] for r in rows if r["seed"] == seed}
        print(f"seed {seed}: lesson / tutorial FID = {fid['lesson'] / fid['tutorial']:.2f}")
    lesson = next(r for r in rows if r["recipe"] == "lesson")
    print(f"lesson's recipe: {lesson['config']}")


if __name__ == "__main__":
    main()
