"""Lesson 07's autoencoder with and without Stable Diffusion's adversarial term (issue 31), at equal training time.

    python benchmarks/ae_adversarial.py --seconds 120 --record benchmarks/records/ae_adversarial.json

On the lesson's default folder (the sample folder, 200 crops per class, duplicates dropped, the lesson's held-out
fifth), the same KL autoencoder (lesson 07's cpu configuration) trains twice from the same seed for --seconds of wall
time: once on eq. (1) alone, once with a PatchGAN trained from scratch beside it (``latent.train_autoencoder(...,
adversarial=W, adversarial_loss="hinge", adversarial_start=0.5)``). As in lesson 07's table, one set of training images (as many as
held out) is scored three ways against the held-out images (pyramid-feature FID, precision, recall): as they are (the
floor), blurred by a 3 × 3 box (the level the lesson's autoencoder sits at), and reconstructed by each autoencoder;
PSNR is on the held-out images. Nothing here measures the latent flow trained on top (not run: time).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--adversarial", type=float, default=0.5, help="the adversarial term's factor (SD: 0.5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record")
    args = parser.parse_args()
    from genimg_course import folder, latent, metrics
    from genimg_course.common import data
    from genimg_course.common.training import images_of, labels_of
    from genimg_course.course.cli import provenance

    root = folder.make_sample_folder(Path(tempfile.gettempdir()) / "genimg_sample_folder", 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = data.load_folder(root, image_size=32)
    x, y = latent.drop_duplicates(images_of(ds), labels_of(ds), f"folder:{root}", 32)
    train_idx, held_idx = latent.split_held_out(len(x), 0.2, args.seed, y)
    images, held = x[train_idx], x[held_idx]
    ref = latent.pyramid_features(images)
    feats = lambda v: latent.standardise(latent.pyramid_features(v), ref).double().numpy()
    f_held = feats(held)
    real = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(1))[:len(held)]]

    def score(v):
        p, r = metrics.precision_recall(f_held, feats(v), 3)
        return {"fid": metrics.fid(f_held, feats(v)), "precision": float(p), "recall": float(r)}

    rows = {"training images (floor)": score(real),
            "3 × 3 box blur of training images": score(F.avg_pool2d(F.pad(real, (1, 1, 1, 1), mode="replicate"), 3, 1))}
    config = latent.LatentFlowConfig(image_shape=(3, 32, 32), n_classes=len(ds.classes), width=32)
    runs = {}
    for name, adv in (("eq. (1) alone", 0.0), (f"eq. (1) + PatchGAN (hinge, × {args.adversarial:g} × adaptive)",
                                                 args.adversarial)):
        torch.manual_seed(args.seed)
        ae = latent.LatentFlow(config).autoencoder
        start = time.perf_counter()
        h = latent.train_autoencoder(ae, images, epochs=10**6, batch_size=32, seed=args.seed,
                                     max_seconds=args.seconds, progress_bar=False, adversarial=adv,
                                     adversarial_loss="hinge", adversarial_start=0.5)
        seconds = time.perf_counter() - start
        rec = ae.reconstruct(real)  # the floor's images, reconstructed: the same images as the floor and blur rows
        mse = F.mse_loss(ae.reconstruct(held), held).item()  # PSNR on the held-out images
        rows[f"reconstructions, {name}"] = score(rec) | {"psnr": 10 * torch.log10(torch.tensor(4 / mse)).item(),
                                                        "steps": len(h["loss"]), "seconds": round(seconds, 1),
                                                        "adversarial_steps": len(h.get("loss_d", []))}
        runs[name] = {"adversarial": adv, "autoencoder_config": vars(config.autoencoder_config())}
        print(name, json.dumps(rows[f"reconstructions, {name}"]), flush=True)
    print(f"\n{len(held)} held-out images; pyramid features (lesson 07)\n")
    print("| images | FID | precision | recall | PSNR (dB) | steps (adversarial) |\n|---|---:|---:|---:|---:|---|")
    for k, r in rows.items():
        print(f"| {k} | {r['fid']:.2f} | {r['precision']:.2f} | {r['recall']:.2f} | "
              f"{r.get('psnr', float('nan')):.1f} | {r.get('steps', '')} {'(' + str(r['adversarial_steps']) + ')' if 'steps' in r else ''} |")
    if args.record:
        with open(args.record, "w") as f:
            json.dump({"command": "python benchmarks/ae_adversarial.py " + " ".join(sys.argv[1:]), **provenance(),
                       "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": args.seconds, "seed": args.seed,
                       "n_held_out": len(held), "n_train": len(images), "runs": runs, "rows": rows}, f, indent=1,
                      default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
