"""Wall time and peak memory of every notebook, in a given profile.

    python benchmarks/bench_notebooks.py --profile ci        # what CI runs
    python benchmarks/bench_notebooks.py --profile cpu       # what a laptop / Binder student runs

Each notebook runs top to bottom in a fresh kernel (nbclient), with GENIMG_PROFILE set;
a thread samples the kernel's resident memory (psutil) every 50 ms for the peak.
Prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="ci", choices=["ci", "cpu", "gpu"])
    parser.add_argument("--folders", nargs="+", default=["notebooks", "solutions"])
    args = parser.parse_args()
    os.environ["GENIMG_PROFILE"] = args.profile
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    import torch

    print(f"machine: {platform.node()} | {platform.processor() or platform.machine()} | "
          f"{os.cpu_count()} CPUs | torch {torch.__version__} | "
          f"CUDA: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    print(f"profile: {args.profile}\n")
    print("| notebook | wall time (s) | peak kernel memory (MiB) |")
    print("|---|---:|---:|")
    for folder in args.folders:
        for path in sorted((ROOT / folder).glob("*.ipynb")):
            seconds, mib = run_notebook(path)
            print(f"| {folder}/{path.name} | {seconds:.1f} | {mib:.0f} |", flush=True)


if __name__ == "__main__":
    main()
