"""Wall time and peak memory of every notebook, in a given profile.

    python benchmarks/bench_notebooks.py --profile ci        # what CI runs
    python benchmarks/bench_notebooks.py --profile cpu       # what a laptop / Binder student runs
    python benchmarks/bench_notebooks.py --profile gpu --folders solutions   # on a GPU machine
    python benchmarks/bench_notebooks.py --profile gpu --folders solutions --fake-data 60000   # no network

--fake-data N writes fake MNIST, Fashion-MNIST (N training images each) and CIFAR-10 files (tests/fakedata.py,
the formats torchvision reads) into a temporary GENIMG_DATA, so that the gpu profile's datasets load with no
network; the timings then are those of real-sized sets, but the images (and every quality figure) are not real.

In the ci profile each notebook first runs under nbval exactly as `make test` runs it
(pytest wall time, kernel start included). Then it runs top to bottom in a fresh kernel
(nbclient) with GENIMG_PROFILE set, while a thread samples the kernel's resident memory
(psutil) every 50 ms for the peak.
Prints a Markdown table for benchmarks/RESULTS.md. A notebook that fails gets a row saying where
and why, the others still run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

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


class BudgetSpent(Exception):
    """Raised between cells once a notebook has run longer than --budget seconds."""


FAKE_CIFAR_CELL = f"""# benchmark only: torchvision checks CIFAR-10's MD5s, which fake files cannot match
import json, os, sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from fakedata import trust_fake_cifar
trust_fake_cifar(json.loads(os.environ["GENIMG_FAKE_CIFAR_MD5"]))"""
GPU_PEAK_CELL = """import torch
print("GPU_PEAK_MIB", torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0)"""


def write_fake_data(n_train: int) -> None:
    """Fake MNIST, Fashion-MNIST and CIFAR-10 of real sizes in a temporary GENIMG_DATA (see the module doc)."""
    import json
    import tempfile

    sys.path.insert(0, str(ROOT / "tests"))
    from fakedata import write_cifar, write_mnist

    root = Path(tempfile.mkdtemp(prefix="genimg-fake-data-"))
    write_mnist(root, "MNIST", n_train, n_train // 6)
    write_mnist(root, "FashionMNIST", n_train, n_train // 6, seed=5)
    md5 = write_cifar(root, n_train * 5 // 6 // 5 * 5, n_train // 6)
    os.environ.update(GENIMG_DATA=str(root), GENIMG_FAKE_CIFAR_MD5=json.dumps(md5))
    print(f"fake data: {n_train:,} MNIST / Fashion-MNIST and {n_train * 5 // 6 // 5 * 5:,} CIFAR-10 training "
          f"images in {root} (not real images)")


def run_notebook(path: Path, budget: float | None = None, cell_log: Path | None = None,
                 save_to: Path | None = None) -> tuple[float, float, float]:
    """(seconds, peak MiB, peak GPU MiB) to execute one notebook in a fresh kernel.

    budget: stop (BudgetSpent) after the first cell that ends past it; cell_log: append each code
    cell's seconds and first line to this file, as they finish (so a stopped run still says where
    the time went).
    """
    nb = nbformat.read(path, as_version=4)
    if "GENIMG_FAKE_CIFAR_MD5" in os.environ:
        nb.cells.insert(0, nbformat.v4.new_code_cell(FAKE_CIFAR_CELL))
    nb.cells.append(nbformat.v4.new_code_cell(GPU_PEAK_CELL))
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    monitor: dict[str, PeakMemory] = {}
    clock = {"start": time.perf_counter(), "cell": 0.0}

    def started(**kwargs):
        monitor["m"] = PeakMemory(client.km.provisioner.process.pid)
        monitor["m"].start()

    def cell_started(cell, cell_index, **kwargs):
        clock["cell"] = time.perf_counter()

    def cell_done(cell, cell_index, **kwargs):
        now = time.perf_counter()
        if cell_log is not None:
            lines = [l for l in cell.source.splitlines() if l.strip() and not l.startswith("#")]
            first = (lines or [""])[0][:90]
            with open(cell_log, "a") as f:
                peak = monitor["m"].peak / 2**20 if "m" in monitor else 0.0
                f.write(f"{path.name} cell {cell_index}: {now - clock['cell']:.1f} s, peak so far {peak:.0f} MiB"
                        f" | {first}\n")
        if budget is not None and now - clock["start"] > budget:
            raise BudgetSpent(f"stopped after cell {cell_index}: {now - clock['start']:.0f} s > budget {budget:.0f} s")

    client.on_notebook_start, client.on_cell_start, client.on_cell_executed = started, cell_started, cell_done
    clock["start"] = time.perf_counter()
    try:
        client.execute()
    finally:
        if "m" in monitor:
            monitor["m"].running = False
        if save_to is not None:  # the executed notebook, outputs and all (to read a run's numbers afterwards)
            save_to.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, save_to / path.name)
    seconds = time.perf_counter() - clock["start"]
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    gpu_mib = float(re.search(r"GPU_PEAK_MIB ([0-9.]+)", printed).group(1))
    return seconds, monitor["m"].peak / 2**20, gpu_mib


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
    parser.add_argument("--no-nbval", action="store_true", help="in the ci profile, skip the nbval timing")
    parser.add_argument("--budget", type=float, help="stop a notebook after the first cell that ends past this many seconds")
    parser.add_argument("--cell-log", type=Path, help="append every code cell's time to this file")
    parser.add_argument("--save-executed", type=Path, help="write each executed notebook (with outputs) to this folder")
    parser.add_argument("--fake-data", type=int, metavar="N",
                        help="fake MNIST / Fashion-MNIST / CIFAR-10 files of N training images (no network needed)")
    args = parser.parse_args()
    os.environ["GENIMG_PROFILE"] = args.profile
    if args.fake_data:
        write_fake_data(args.fake_data)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    import torch

    print(f"machine: {platform.node()} | {platform.processor() or platform.machine()} | "
          f"{os.cpu_count()} CPUs | torch {torch.__version__} | "
          f"CUDA: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    print(f"profile: {args.profile} | GENIMG_DATASET={os.environ.get('GENIMG_DATASET', '(profile default)')}\n")
    print("| notebook | nbval wall time (s) | execution time (s) | peak kernel memory (MiB) | peak GPU memory (MiB) |")
    print("|---|---:|---:|---:|---:|")
    failed = []
    for folder in args.folders:
        for path in sorted((ROOT / folder).glob("*.ipynb")):
            if args.only and args.only not in path.name:
                continue
            try:
                nbval = f"{run_nbval(path):.1f}" if args.profile == "ci" and not args.no_nbval else "-"
                seconds, mib, gpu_mib = run_notebook(path, args.budget, args.cell_log, args.save_executed)
            except (CellExecutionError, SystemExit, BudgetSpent) as error:
                failed.append(path)
                last = re.sub(r"\x1b\[[0-9;]*m", "", str(error).strip().splitlines()[-1])  # without terminal colours
                print(f"| {folder}/{path.name} | FAILED: {last[:200]} | | | |", flush=True)
                print(str(error)[-4000:], file=sys.stderr, flush=True)
                continue
            gpu = f"{gpu_mib:.0f}" if gpu_mib else "-"
            print(f"| {folder}/{path.name} | {nbval} | {seconds:.1f} | {mib:.0f} | {gpu} |", flush=True)
    if failed:
        raise SystemExit(f"{len(failed)} notebook(s) failed: {', '.join(p.name for p in failed)}")


if __name__ == "__main__":
    main()
