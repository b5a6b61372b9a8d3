"""The conv VAE's FID against training length: does training longer give better samples? (issue 29)

    OMP_NUM_THREADS=1 python benchmarks/vae_curve.py --epochs 200 --at 5,10,20,35,50,100,150,200 \
        --record benchmarks/records/vae_curve.json

One run of the course's conv VAE on the 1,437 training digits, exactly as ``genimg train conv-vae --profile cpu``
trains it (zoo's configuration, batch 64, Adam 1e-3, shifts of up to 2 pixels, seed 0), scored after the epochs in
``--at``: 1,000 samples (sampling seed 0) with lesson 05's metrics against the 360 test digits, and the test
ELBO (nats per image, higher is better). The lesson's 30 s reach about 35 epochs on 2 idle cores; the shipped
model trained 100.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from genimg_course import metrics, vae
from genimg_course.common import data
from genimg_course.course.cli import provenance
from genimg_course.zoo import build_model, default_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--at", default="5,10,20,35,50,100,150,200")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record")
    args = parser.parse_args()
    at = {int(a) for a in args.at.split(",")}
    train, test = data.load_dataset("digits", split="train"), data.load_dataset("digits", split="test")
    torch.manual_seed(args.seed)
    config = default_config("conv-vae", tuple(train.images.shape[1:]))
    model = build_model("conv-vae", config)
    rows, start = [], time.perf_counter()

    def score(epoch: int, m) -> None:
        if epoch not in at:
            return
        m.eval()
        with torch.no_grad():
            x = m.sample(args.n, torch.Generator().manual_seed(0))  # the decoder means, in [-1, 1]
        r = metrics.evaluate_images(x, "digits")
        elbo = vae.evaluate_elbo(m, test.images)
        row = {"epoch": epoch, "steps": epoch * -(-len(train.images) // 64),
               "train_seconds": round(time.perf_counter() - start, 1), "test_elbo": round(elbo, 2),
               **{k: round(r[k], 3) for k in ("fid", "kid", "precision", "recall", "coverage")}}
        rows.append(row)
        print(json.dumps(row), flush=True)

    vae.train_vae(model, train.images, args.epochs, batch_size=64, seed=args.seed, augment_shift=2,
                  progress_bar=False, on_epoch=score)
    if args.record:
        with open(args.record, "w") as f:
            json.dump({"command": "python benchmarks/vae_curve.py " + " ".join(
                f"--{k} {v}" for k, v in vars(args).items() if k != "record" and v is not None),
                "config": dataclasses.asdict(model.config),
                "batch_size": 64, "augment_shift": 2, "lr": 1e-3, "threads": torch.get_num_threads(),
                **provenance(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
