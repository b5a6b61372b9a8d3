"""Lesson 07's guidance scale, measured (issue 31: "w = 2 without a reason").

    python benchmarks/latent_guidance.py --record benchmarks/records/latent_guidance.json

The shipped latent flow (trained on the course's sample folder, 2 classes) samples n images per scale w, the
classes in turn, with its own sampler (Heun, 25 steps), for 3 sampling seeds; each set is scored by
``latent.evaluate_folder`` exactly as ``genimg eval`` does (pyramid features against the held-out fifth, with the
real-vs-real floor). Nothing is trained; every setting is spelled out in the record.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import torch

from genimg_course import folder, latent, pretrained
from genimg_course.common import data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0, 4.0])
    parser.add_argument("--n", type=int, default=250, help="samples per scale (lesson 07's cpu N_EVAL: 250)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--record")
    args = parser.parse_args()
    from genimg_course.course.cli import provenance

    info = pretrained.info("latent-flow")
    root = data.data_dir() / "sample_folder"
    path = folder.make_sample_folder(root, n_per_class=info["folder"]["n_per_class"])
    model = pretrained.load("latent-flow")
    labels = torch.arange(args.n) % model.config.n_classes
    rows = []
    for w in args.scales:
        for seed in args.seeds:
            x = model.sample(args.n, torch.Generator().manual_seed(seed), labels=labels, guidance=w)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = latent.evaluate_folder(model, x, f"folder:{path}", seed=info["seed"])
            rows.append({"w": w, "sample_seed": seed, **{k: round(v, 4) if isinstance(v, float) else v
                                                        for k, v in r.items()}})
            print(json.dumps(rows[-1]), flush=True)
    print("\n| w | FID (3 seeds) | precision | recall | floor |\n|---:|---|---|---|---:|")
    for w in args.scales:
        rs = [r for r in rows if r["w"] == w]
        fmt = lambda k, f: ", ".join(format(r[k], f) for r in rs)
        print(f"| {w:g} | {fmt('fid', '.1f')} | {fmt('precision', '.2f')} | {fmt('recall', '.2f')} | {rs[0]['fid_floor']:.1f} |")
    if args.record:
        with open(args.record, "w") as f:
            json.dump({"command": "python benchmarks/latent_guidance.py " + " ".join(sys.argv[1:]), **provenance(),
                       "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "model": "pretrained:latent-flow",
                       "model_sha256": info["sha256"], "model_config": info["config"], "folder": info["folder"],
                       "sampler": {"sampler": model.flow.config.sampler, "steps": model.flow.config.steps},
                       "n": args.n, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
