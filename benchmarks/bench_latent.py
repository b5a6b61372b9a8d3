"""Lesson 07's figures: the latent flow model against the same flow model in pixel space, at equal training time,
on the lesson's default folder (the sample folder of scikit-learn's two photographs, 200 crops per class).

    python benchmarks/bench_latent.py                       # the cpu profile's sizes: 32 × 32, 150 s + 240 s
    python benchmarks/bench_latent.py --ae-seconds 20 --flow-seconds 30    # a quick look
    python benchmarks/bench_latent.py --adversarial 0 0.5 --record benchmarks/records/latent_adversarial.json

Prints: the autoencoder's reconstruction error on the held-out images; for each model, training images per
second, steps, seconds to sample 1,000 images (25 Heun steps), and lesson 07's offline evaluation
(``latent.evaluate_folder``: FID in the encoder's features against the held-out images, with the real-vs-real
floor, precision/recall, the memorised fraction). The pixel model trains for the latent model's whole time
(autoencoder + flow), so the comparison is at equal wall time. Same split, duplicates dropped, as in the lesson.
``--adversarial W ...`` trains one latent model per factor W (0: eq. (1) alone; W > 0: with
``latent.train_autoencoder``'s PatchGAN term, hinge loss, from half-way, × W × the adaptive weight), from the same
seed, and the pixel model for the longest of their times.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ae-seconds", type=float, default=150.0)
    parser.add_argument("--flow-seconds", type=float, default=240.0)
    parser.add_argument("--n-per-class", type=int, default=200)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--adversarial", type=float, nargs="+", default=[0.0],
                        help="one latent model per factor of the autoencoder's PatchGAN term (0: none)")
    parser.add_argument("--record", help="write the settings, the machine and every row to this JSON file")
    args = parser.parse_args()

    from genimg_course import diffusion, folder, latent
    from genimg_course.course.cli import provenance
    from genimg_course.common import data
    from genimg_course.common.training import images_of, labels_of

    torch.manual_seed(args.seed)
    root = folder.make_sample_folder(Path(tempfile.gettempdir()) / "genimg_sample_folder", args.n_per_class)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = data.load_folder(root, image_size=32)
    x, y = latent.drop_duplicates(images_of(ds), labels_of(ds), f"folder:{root}", 32)
    train_idx, held_idx = latent.split_held_out(len(x), 0.2, args.seed, y)
    images, labels, held = x[train_idx], y[train_idx], x[held_idx]
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"folder: {len(x)} images after dropping duplicates, {len(images)} train, {len(held)} held out, "
          f"classes {ds.classes}")

    config = latent.LatentFlowConfig(image_shape=(3, 32, 32), n_classes=len(ds.classes), width=32)
    runs = []  # (name, sampler, flow steps, seconds, flow seconds, autoencoder facts)
    for adv in args.adversarial:
        torch.manual_seed(args.seed)
        model = latent.LatentFlow(config)
        start = time.perf_counter()
        h = latent.train_latent_flow(model, images, 10**6, 10**6, labels=labels, batch_size=32, seed=args.seed,
                                     ae_seconds=args.ae_seconds, flow_seconds=args.flow_seconds, progress_bar=False,
                                     adversarial=adv)
        latent_seconds = time.perf_counter() - start
        mse = F.mse_loss(model.autoencoder.reconstruct(held), held).item()
        psnr = 10 * torch.log10(torch.tensor(4 / mse)).item()
        name = "latent flow" + (f", autoencoder + PatchGAN × {adv:g}" if adv else "")
        print(f"{name}: autoencoder {len(h['ae_loss'])} steps in {h['ae_seconds'][0]:.0f} s; held-out squared "
              f"error per pixel {mse:.4f}, PSNR {psnr:.1f} dB", flush=True)
        runs.append((name, model, len(h["loss"]), latent_seconds, h["flow_seconds"][0],
                     {"adversarial": adv, "ae_steps": len(h["ae_loss"]), "held_out_mse": mse, "psnr": psnr}))

    pixel = diffusion.DiffusionModel(diffusion.DiffusionConfig(**{**vars(config.flow_config()),
                                                                  "image_shape": (3, 32, 32)}))
    ph = diffusion.train_diffusion(pixel, torch.cat([images, images.flip(-1)]), 10**6,
                                   labels=torch.cat([labels, labels]), batch_size=32, seed=args.seed,
                                   max_seconds=max(r[3] for r in runs), progress_bar=False)
    pixel_seconds = ph["seconds"][-1]
    runs.append(("pixel flow", pixel, len(ph["loss"]), pixel_seconds, pixel_seconds, {}))

    asked = torch.arange(args.samples) % len(ds.classes)
    print("| model | training s | flow steps | training images/s (flow) | sample 1,000 s | FID | floor | precision "
          "| recall | median NN ratio | memorised |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for name, sampler, steps, seconds, flow_seconds, facts in runs:
        g = torch.Generator().manual_seed(args.seed + 1)
        t0 = time.perf_counter()
        samples = torch.cat([sampler.sample(len(a), g, labels=a) for a in asked.split(250)]).clamp(-1, 1)
        sample_seconds = time.perf_counter() - t0
        r = latent.evaluate_folder(runs[0][1], samples, f"folder:{root}", seed=args.seed)  # the same features for all
        print(f"| {name} | {seconds:.0f} | {steps} | {steps * 32 / flow_seconds:.0f} | {sample_seconds:.1f} | "
              f"{r['fid']:.2f} | {r['fid_floor']:.2f} | {r['precision']:.2f} | {r['recall']:.2f} | "
              f"{r['nn_ratio_median']:.2f} | {r['memorised_fraction']:.1%} |", flush=True)
        rows.append({"model": name, "training_seconds": seconds, "flow_steps": steps, "flow_seconds": flow_seconds,
                     "sample_seconds": sample_seconds, **facts,
                     **{k: v for k, v in r.items() if isinstance(v, (int, float, str))}})
    if args.record:
        with open(args.record, "w") as f:
            json.dump({"command": "python benchmarks/bench_latent.py " + " ".join(sys.argv[1:]), **provenance(),
                       "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                       "settings": vars(args), "config": vars(config), "n_train": len(images), "n_held_out": len(held),
                       "sampler": "the models' default: 25 Heun steps", "rows": rows}, f, indent=1, default=str)
    print(f"peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
