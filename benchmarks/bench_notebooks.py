"""Wall time and peak memory of every notebook, in a given profile.

    python benchmarks/bench_notebooks.py --profile ci        # what CI runs
    python benchmarks/bench_notebooks.py --profile cpu       # what a laptop / Binder student runs

In the ci profile each notebook first runs under nbval exactly as `make test` runs it
(pytest wall time, kernel start included). Then it runs top to bottom in a fresh kernel
(nbclient) with GENIMG_PROFILE set, while a thread samples the kernel's resident memory
(psutil) every 50 ms for the peak.
Prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


class PeakMemory(threading.Thread):
    """Polls a process (and its children) for its peak resident memory."""

    def __init__(self, pid: int, every: float = 0.05):
        super().__init__(daemon=True)
        self.process, self.every, self.peak, self.running = psutil.Process(pid), every, 0, True

    def run(self):
        while self.running:
            try:
                rss = self.process.memory_info().rss + sum(c.memory_info().rss for c in self.process.children(True))
                self.peak = max(self.peak, rss)
            except psutil.Error:
                return
            time.sleep(self.every)


def run_notebook(path: Path) -> tuple[float, float]:
    """(seconds, peak MiB) to execute one notebook in a fresh kernel."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    monitor: dict[str, PeakMemory] = {}

    def started(**kwargs):
        monitor["m"] = PeakMemory(client.km.provisioner.process.pid)
        monitor["m"].start()

    client.on_notebook_start = started
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    monitor["m"].running = False
    return seconds, monitor["m"].peak / 2**20


def run_nbval(path: Path) -> float:
    """Seconds for pytest --nbval-lax on one notebook, as `make test` runs it (kernel start included)."""
    env = dict(os.environ, GENIMG_STRICT="1" if path.parent.name == "solutions" else "0")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
           "--nbval-cell-timeout=120", "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"), str(path)]
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"nbval failed on {path}:\n{result.stdout[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="ci", choices=["ci", "cpu", "gpu"])
    parser.add_argument("--folders", nargs="+", default=["notebooks", "solutions"])
    parser.add_argument("--only", help="only notebooks whose name contains this, e.g. 04_gans")
    args = parser.parse_args()
    os.environ["GENIMG_PROFILE"] = args.profile
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    import torch

    print(f"machine: {platform.node()} | {platform.processor() or platform.machine()} | "
          f"{os.cpu_count()} CPUs | torch {torch.__version__} | "
          f"CUDA: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    print(f"profile: {args.profile}\n")
    print("| notebook | nbval wall time (s) | execution time (s) | peak kernel memory (MiB) |")
    print("|---|---:|---:|---:|")
    for folder in args.folders:
        for path in sorted((ROOT / folder).glob("*.ipynb")):
            if args.only and args.only not in path.name:
                continue
            nbval = f"{run_nbval(path):.1f}" if args.profile == "ci" else "-"
            seconds, mib = run_notebook(path)
            print(f"| {folder}/{path.name} | {nbval} | {seconds:.1f} | {mib:.0f} |", flush=True)


if __name__ == "__main__":
    main()
