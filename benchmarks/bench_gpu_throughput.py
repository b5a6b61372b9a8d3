"""Training throughput of lesson 04's DCGAN and lesson 03's ConvVAE: the old loop against the GPU path (issue #13).

    python benchmarks/bench_gpu_throughput.py --device cuda --seconds 30      # on a GPU
    python benchmarks/bench_gpu_throughput.py --device cuda --batch 256       # the same, a larger batch
    python benchmarks/bench_gpu_throughput.py --device cpu --seconds 3        # a smoke test (the modes are the same loop there)

Modes (each trains a fresh model for --seconds with ``max_seconds``, after an untimed warm-up epoch of at most
--seconds: CUDA's start-up, cuDNN's choices and compiling, also for the smaller last batch of an epoch):
  before         fast=False: a DataLoader that copies each batch, noise drawn on the CPU and copied,
                 one ``.item()`` per number per step; the loop as it was before the GPU path
  after          fast=True: data, noise and each step's numbers on the GPU, fused Adam
  after+compile  fast=True, compile=True: also torch.compile
The VAE trains as ``genimg train conv-vae`` does in the gpu profile: mixed precision on CUDA, shifts of up
to 2 pixels on a small data set. Images: the `digits` training set, or --images N random ones.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from genimg_course import gan, vae

MODES = {"before": dict(fast=False), "after": dict(fast=True), "after+compile": dict(fast=True, compile=True)}


def images_seen(steps: int, n: int, batch: int, drop_last: bool) -> int:
    """Images in ``steps`` steps over n images: every epoch's last batch is smaller unless it is dropped."""
    if drop_last:
        return steps * batch
    per_epoch = -(-n // batch)
    epochs, rest = divmod(steps, per_epoch)
    return epochs * n + rest * batch


def train(name: str, images: torch.Tensor, seconds: float, batch: int, device: str, options: dict) -> dict:
    """Train a fresh model for an untimed epoch (at most ``seconds``), then for ``seconds``."""
    torch.manual_seed(0)
    cuda = torch.device(device).type == "cuda"
    if name == "dcgan":
        model = gan.DCGAN(gan.GANConfig(image_shape=(1, 28, 28)))
        run = lambda epochs: gan.train_gan(model, images, epochs, batch_size=batch, device=device,
                                           max_seconds=seconds, progress_bar=False, **options)["loss_d"]
    else:
        model = vae.ConvVAE(vae.VAEConfig(image_shape=(1, 28, 28), z_dim=16, hidden=256, likelihood="bernoulli"))
        run = lambda epochs: vae.train_vae(model, images, epochs, batch_size=batch, device=device,
                                           max_seconds=seconds, amp=cuda, augment_shift=2 if len(images) < 10_000 else 0,
                                           progress_bar=False, **options)["loss"]
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run(1)  # the warm-up epoch
    warm_up = time.perf_counter() - start
    start = time.perf_counter()
    steps = len(run(10**6))  # the history's length: one value per step, for ``seconds``
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    return {"steps/s": steps / wall, "images/s": images_seen(steps, len(images), batch, name == "dcgan") / wall,
            "warm-up s": warm_up, "peak GPU MiB": f"{torch.cuda.max_memory_allocated() / 2**20:,.0f}" if cuda else "–"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seconds", type=float, default=30.0, help="training time per model and mode")
    parser.add_argument("--batch", type=int, default=128, help="the lessons' GPU batch: 128")
    parser.add_argument("--images", type=int, default=0, help="N random images in [-1, 1] instead of `digits`")
    parser.add_argument("--models", nargs="+", default=["dcgan", "conv-vae"], choices=["dcgan", "conv-vae"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    args = parser.parse_args()

    if args.images:
        images, source = torch.rand(args.images, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1, "random"
    else:
        from genimg_course.common.data import load_dataset

        images, source = load_dataset("digits").images, "digits"
    where = torch.cuda.get_device_name(args.device) if torch.device(args.device).type == "cuda" else platform.processor() or "cpu"
    print(f"{where} | torch {torch.__version__} | {len(images)} {source} images | batch {args.batch} | "
          f"{args.seconds:g} s per run\n")
    print("| model | mode | steps/s | images/s | warm-up (s) | peak GPU MiB |")
    print("|---|---|---:|---:|---:|---:|")
    for name in args.models:
        for mode in args.modes:
            r = train(name, images, args.seconds, args.batch, args.device, MODES[mode])
            print(f"| {name} | {mode} | {r['steps/s']:,.1f} | {r['images/s']:,.0f} | {r['warm-up s']:.1f} | "
                  f"{r['peak GPU MiB']} |", flush=True)


if __name__ == "__main__":
    main()
