"""Time and peak memory to grade 30 submissions of one lesson with -j 2.

    python benchmarks/bench_grading.py [--n 30] [--jobs 2] [--lesson 01_preprocessing]

The submissions are built from the released and solved notebooks: a third fully solved,
a third with one wrong exercise, a third untouched. The grader runs as `genimg grade` in
a subprocess; a thread samples the resident memory of it and all its children (workers
and kernels) every 100 ms, so "peak" is the most the whole grading used at one time.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from grading_fixtures import released, solved_submission, write  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--lesson", default="01_preprocessing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs"
        for i in range(args.n):
            kind = i % 3
            nb = (solved_submission(args.lesson) if kind == 0 else released(args.lesson) if kind == 2 else
                  solved_submission(args.lesson, **{(name := _first_exercise(args.lesson)):
                                                      f"def {name}(*args, **kwargs):\n    return args[0]\n"}))
            write(nb, subs / f"student{i:02d}_{args.lesson[:2]}.ipynb")
        cmd = [sys.executable, "-m", "genimg_course.course.cli", "grade", str(subs), "--out", str(Path(tmp) / "out"),
               "-j", str(args.jobs), "--root", str(ROOT)]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        peak = [0]

        def sample():
            p = psutil.Process(proc.pid)
            while proc.poll() is None:
                try:
                    rss = p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
                    peak[0] = max(peak[0], rss)
                except psutil.Error:
                    pass
                time.sleep(0.1)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        out, _ = proc.communicate()
        seconds = time.perf_counter() - start
        t.join()
    lines = out.strip().splitlines()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"graded {args.n} submissions of {args.lesson} with -j {args.jobs} in {seconds:.1f} s "
          f"({seconds / args.n:.1f} s each); peak memory of the grader and its workers/kernels: "
          f"{peak[0] / 2**20:.0f} MiB; exit status {proc.returncode}")
    print("\n".join(lines[:4] + ["..."] + lines[-3:]))


def _first_exercise(lesson):
    from genimg_course.course import checks

    checks.load_all()  # declares every exercise
    from genimg_course.course.exercises import exercises_for

    return exercises_for(lesson)[0].name


if __name__ == "__main__":
    main()
