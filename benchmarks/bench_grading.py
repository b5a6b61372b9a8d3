"""Time and peak memory to grade 30 submissions of one lesson with -j 2; with --sandbox-cost, what the sandbox costs.

    python benchmarks/bench_grading.py [--n 30] [--jobs 2] [--lesson 01_preprocessing]
    python benchmarks/bench_grading.py --sandbox-cost --n 8 --repeats 3 --record benchmarks/records/grading_sandbox.json

The submissions are built from the released and solved notebooks: a third fully solved,
a third with one wrong exercise, a third untouched. The grader runs as `genimg grade` in
a subprocess; a thread samples the resident memory of it and all its children (workers
and kernels) every 100 ms, so "peak" is the most the whole grading used at one time.

--sandbox-cost (issue 33): the same batch (half solved, half with one wrong answer) graded without the sandbox
(GENIMG_SANDBOX=0, the grader before issue 33 plus its watchdog) and inside bubblewrap, alternately, --repeats times
each, so that a machine that slows down or warms up weighs on both routes. It prints each batch's wall time, the
seconds per submission (the batch's time / its submissions: with -j 2 a submission's own time is about twice that)
and the sandbox's cost per submission, the difference of the medians. The goal: at most 1 s per submission on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
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
    parser.add_argument("--sandbox-cost", action="store_true", help="compare the routes with and without the sandbox")
    parser.add_argument("--repeats", type=int, default=3, help="--sandbox-cost: batches per route")
    parser.add_argument("--record", help="--sandbox-cost: write settings, machine and timings to this JSON file")
    args = parser.parse_args()
    if args.sandbox_cost:
        return sandbox_cost(args)
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


def sandbox_cost(args) -> int:
    """The same batch without and with the sandbox, alternately (see the module's docstring)."""
    from genimg_course.course.cli import provenance
    from genimg_course.course.grading import sandbox

    if not sandbox.detect().sandboxed:
        print(f"no sandbox on this machine ({sandbox.detect().line}): nothing to compare", file=sys.stderr)
        return 1
    folder = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    name = _first_exercise(args.lesson)
    wrong = {name: f"def {name}(*args, **kwargs):\n    return args[0]\n"}
    for i in range(args.n):
        write(solved_submission(args.lesson) if i % 2 == 0 else solved_submission(args.lesson, **wrong),
              folder / "subs" / f"student{i:02d}" / f"{args.lesson}.ipynb")
    command = [sys.executable, "-m", "genimg_course", "grade", str(folder / "subs"), "--lesson", args.lesson,
               "--root", str(ROOT), "-j", str(args.jobs)]
    seconds: dict[str, list[float]] = {"no sandbox": [], "bubblewrap": []}
    totals: dict[str, list[str]] = {"no sandbox": [], "bubblewrap": []}
    for r in range(args.repeats):
        for route in seconds:
            env = {**os.environ, sandbox.ENV: "0" if route == "no sandbox" else "1"}
            out = folder / f"out-{route.replace(' ', '-')}-{r}"
            start = time.perf_counter()
            done = subprocess.run([*command, "--out", str(out)], env=env, capture_output=True, text=True)
            took = time.perf_counter() - start
            line = next((l for l in done.stderr.splitlines() if l.startswith("genimg grade: ")), "")
            rows = [l for l in (out / "grades.csv").read_text().splitlines() if ",TOTAL," in l]
            totals[route].append(",".join(sorted(l.split(",")[3] for l in rows)))
            seconds[route].append(took)
            print(f"{route:<11} run {r}: {took:6.1f} s for {args.n} submissions (exit {done.returncode}); "
                  f"{line[:90]}", flush=True)
    print(f"\n| route | batch seconds (each run) | median | per submission |\n|---|---|---:|---:|")
    median = {k: statistics.median(v) for k, v in seconds.items()}
    for route, values in seconds.items():
        print(f"| {route} | {', '.join(f'{v:.1f}' for v in values)} | {median[route]:.1f} | "
              f"{median[route] / args.n:.2f} |")
    cost = (median["bubblewrap"] - median["no sandbox"]) / args.n
    same = len(set(totals["no sandbox"] + totals["bubblewrap"])) == 1
    print(f"\nthe sandbox's cost: {cost:+.2f} s per submission (difference of the medians / {args.n}); "
          f"the same grades on both routes: {same}")
    if args.record:
        Path(args.record).write_text(json.dumps({
            "command": "python benchmarks/bench_grading.py " + " ".join(sys.argv[1:]), **provenance(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "settings": vars(args), "grade_command": command[2:],
            "bwrap": sandbox.detect().bwrap, "seconds": seconds, "median": median,
            "cost_per_submission": cost, "same_grades": same, "totals": totals}, indent=1))
    return 0


def _first_exercise(lesson):
    from genimg_course.course import checks

    checks.load_all()  # declares every exercise
    from genimg_course.course.exercises import exercises_for

    return exercises_for(lesson)[0].name


if __name__ == "__main__":
    sys.exit(main())
