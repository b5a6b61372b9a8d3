"""How long the gpu profile's datasets take to fall back offline (issue #13; target: under 5 s).

    python benchmarks/bench_fallback.py

Runs with the real network probe (no monkeypatching), in a fresh, empty cache: ``setup()`` in the gpu
profile wants MNIST and CIFAR-10, cannot download them, and falls back to digits and shapes with one
line each. Also times ``load_dataset`` of each online set (the error a script gets) and the
``genimg train --dataset mnist`` error. "first" is the first call in this fresh process (it imports
torchvision and does the first DNS look-up), "median" the median of ``--repeats`` further calls.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import tempfile
import time


def timed(fn, repeats: int) -> tuple[float, float, str]:
    times, out = [], ""
    for _ in range(repeats + 1):
        buffer = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            try:
                fn()
            except Exception as err:  # noqa: BLE001 - the error is what is being timed
                buffer.write(f"{type(err).__name__}: {str(err).splitlines()[0]}")
        times.append(time.perf_counter() - start)
        out = buffer.getvalue().strip().splitlines()
    return times[0], statistics.median(times[1:]) if repeats else float("nan"), (out[-1] if out else "")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ["GENIMG_DATA"] = tempfile.mkdtemp(prefix="genimg-empty-cache-")
    os.environ["GENIMG_PROFILE"] = "gpu"
    import genimg_course
    from genimg_course.common import data
    from genimg_course.course.cli import main as genimg

    rows = [("setup() in the gpu profile (MNIST and CIFAR-10 wanted)", lambda: genimg_course.setup(device="cpu"))]
    rows += [(f"load_dataset({name!r})", lambda name=name: data.load_dataset(name)) for name in data.ONLINE_DATASETS]
    rows.append(("genimg train vae --dataset mnist", lambda: genimg(["train", "vae", "--dataset", "mnist", "--out",
                                                                     tempfile.mkdtemp()])))
    print(f"empty cache {os.environ['GENIMG_DATA']}\n")
    print("| what | first (s) | median (s) | last line printed |")
    print("|---|---:|---:|---|")
    for name, fn in rows:
        first, median, line = timed(fn, args.repeats)
        print(f"| {name} | {first:.3f} | {median:.3f} | {line[:110]} |", flush=True)
    # the worst case, simulated: a network that never answers (DNS hangs), where each probe waits out its timeout
    import socket

    def silent(*args, **kwargs):
        time.sleep(60)

    socket.create_connection = silent
    data._SILENT_UNTIL = 0.0
    first, _, line = timed(lambda: genimg_course.setup(device="cpu"), 0)
    print(f"| setup(), gpu profile, simulated silent network (a probe never answers) | {first:.3f} | – | "
          f"{line[:110]} |")


if __name__ == "__main__":
    main()
