"""How long the gpu profile's datasets take to fall back offline (issue #13; target: under 5 s).

    python benchmarks/bench_fallback.py

Runs with the real network probe (no monkeypatching), in a fresh, empty cache: ``setup()`` in the gpu
profile wants MNIST and CIFAR-10, cannot download them, and falls back to digits and shapes with one
line each. Also times ``load_dataset`` of each online set (the error a script gets) and the
``genimg train --dataset mnist`` error. Each figure is the median of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import tempfile
import time


def timed(fn, repeats: int) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(repeats):
        buffer = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            try:
                fn()
            except Exception as err:  # noqa: BLE001 - the error is what is being timed
                buffer.write(f"{type(err).__name__}: {str(err).splitlines()[0]}")
        times.append(time.perf_counter() - start)
        out = buffer.getvalue().strip().splitlines()
    return statistics.median(times), (out[-1] if out else "")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ["GENIMG_DATA"] = tempfile.mkdtemp(prefix="genimg-empty-cache-")
    os.environ["GENIMG_PROFILE"] = "gpu"
    import genimg_course
    from genimg_course import data
    from genimg_course.cli import main as genimg

    rows = [("setup() in the gpu profile (MNIST and CIFAR-10 wanted)", lambda: genimg_course.setup(device="cpu"))]
    rows += [(f"load_dataset({name!r})", lambda name=name: data.load_dataset(name)) for name in data.ONLINE_DATASETS]
    rows.append(("genimg train vae --dataset mnist", lambda: genimg(["train", "vae", "--dataset", "mnist", "--out",
                                                                     tempfile.mkdtemp()])))
    print(f"empty cache {os.environ['GENIMG_DATA']}; median of {args.repeats} runs\n")
    print("| what | seconds | last line printed |")
    print("|---|---:|---|")
    for name, fn in rows:
        seconds, line = timed(fn, args.repeats)
        print(f"| {name} | {seconds:.2f} | {line[:110]} |", flush=True)


if __name__ == "__main__":
    main()
