"""Lesson 08's first measurements (issue 34): how well the attribute reader reads drawn scenes, and how far a
text-conditioned flow gets in a few CPU minutes, read back by that reader.

    python benchmarks/bench_text2img.py --reader-seconds 120 --flow-seconds 240 --record benchmarks/records/text2img_first.json

1. The reader (``captions.AttributeReader``) trains on --reader-n drawn scenes of every combination ("reader" split)
   for --reader-seconds (whole epochs until the time is spent); its accuracy per attribute is measured on drawn
   test scenes and on drawn held-out combinations: the ceiling a generative model can reach in this judge.
2. The text flow (``text2img.TextFlow``, --width) trains on --flow-n training scenes (held-out combinations left
   out) for --flow-seconds; then --samples images are generated from the full captions of test scenes and of
   held-out scenes (25 Heun steps), at each guidance scale of --guidance, and read back.
Everything is printed and, with --record, written with the settings, the commit and the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reader-n", type=int, default=20000)
    parser.add_argument("--reader-seconds", type=float, default=120)
    parser.add_argument("--flow-n", type=int, default=20000)
    parser.add_argument("--flow-seconds", type=float, default=240)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record")
    args = parser.parse_args()
    from genimg_course import captions as C
    from genimg_course import text2img as T
    from genimg_course.course.cli import provenance

    torch.manual_seed(args.seed)
    out: dict = {"command": "python benchmarks/bench_text2img.py " + " ".join(sys.argv[1:]), **provenance(),
                 "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                 "settings": vars(args)}
    x, a, _ = C.dataset("reader", args.reader_n, seed=args.seed)
    reader = C.AttributeReader()
    start, epochs, losses = time.perf_counter(), 0, []
    while time.perf_counter() - start < args.reader_seconds:
        losses += C.train_reader(reader, x, a, epochs=1, seed=args.seed + epochs)
        epochs += 1
    xt, at, tt = C.dataset("test", 2000, seed=args.seed)
    xh, ah, th = C.dataset("held-out", 1000, seed=args.seed)
    out["reader"] = {"epochs": epochs, "steps": len(losses), "seconds": time.perf_counter() - start,
                     "test": C.accuracy(reader, xt, at), "held_out": C.accuracy(reader, xh, ah)}
    print(f"reader: {epochs} epochs ({len(losses)} steps) in {out['reader']['seconds']:.0f} s")
    for split in ("test", "held_out"):
        print(f"  drawn {split}: " + ", ".join(f"{k} {v:.3f}" for k, v in out["reader"][split].items()), flush=True)

    xf, _, texts = C.dataset("train", args.flow_n, seed=args.seed)
    model = T.TextFlow(T.TextFlowConfig(width=args.width))
    h = T.train_text_flow(model, xf, texts, batch_size=args.batch_size, seed=args.seed, max_seconds=args.flow_seconds)
    steps = len(h["loss"])
    out["flow"] = {"config": h["config"], "parameters": sum(p.numel() for p in model.parameters()), "steps": steps,
                   "seconds": h["seconds"], "images_per_second": steps * args.batch_size / h["seconds"],
                   "loss_first_100": sum(h["loss"][:100]) / min(100, steps),
                   "loss_last_100": sum(h["loss"][-100:]) / min(100, steps)}
    print(f"text flow: {out['flow']['parameters']:,} parameters, {steps} steps in {h['seconds']:.0f} s "
          f"({out['flow']['images_per_second']:.0f} images/s), loss {out['flow']['loss_first_100']:.3f} → "
          f"{out['flow']['loss_last_100']:.3f}", flush=True)
    out["generated"] = {}
    for w in args.guidance:
        for split, attrs, prompts in (("test", at, tt), ("held_out", ah, th)):
            n = args.samples
            t0 = time.perf_counter()
            g = torch.Generator().manual_seed(args.seed + 1)
            images = torch.cat([model.sample(prompts[i:i + 50], g, guidance=w) for i in range(0, n, 50)])
            acc = C.accuracy(reader, images.clamp(-1, 1), attrs[:n])
            out["generated"][f"w={w:g} {split}"] = {**acc, "seconds": time.perf_counter() - t0}
            print(f"  generated, w = {w:g}, {split} captions: " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items())
                  + f" ({time.perf_counter() - t0:.0f} s for {n})", flush=True)
    if args.record:
        with open(args.record, "w") as f:
            json.dump(out, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
