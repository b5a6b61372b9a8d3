"""Wall time of `genimg --help` (issue 14): 5 runs after one warm-up, median and min.

    .venv/bin/python benchmarks/bench_cli_help.py                      # the installed console script
    git show HEAD:genimg_course/course/cli.py > /tmp/cli_head.py              # optionally, an older cli.py beside it,
    .venv/bin/python benchmarks/bench_cli_help.py /tmp/cli_head.py     # interleaved (same machine load)
"""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
cmds = {"genimg --help": [str(BIN / "genimg"), "--help"]}
if len(sys.argv) > 1:
    cmds = {f"{sys.argv[1]} --help": [sys.executable, sys.argv[1], "--help"], **cmds}
times = {k: [] for k in cmds}
for cmd in cmds.values():
    subprocess.run(cmd, capture_output=True, check=True)
for _ in range(5):
    for name, cmd in cmds.items():
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times[name].append(time.perf_counter() - start)
print(f"load average {os.getloadavg()[0]:.2f}")
for name, ts in times.items():
    print(f"{name:32s} median {statistics.median(ts):.3f} s, min {min(ts):.3f} s; runs " + " ".join(f"{t:.3f}" for t in ts))
