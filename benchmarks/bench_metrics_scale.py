"""Issue 15: time and peak memory of lesson 05's feature-space metrics at 10,000 and 50,000 samples.

Features: class-structured 128-d Gaussians (128 is the dimension of the course classifier's features):
10 class means drawn from N(0, 3² I), each sample its class mean + N(0, I); the "fake" set is the same
mixture scaled by 1.1 and shifted by 0.1. Class probabilities for the Inception Score: softmax of
4 · one-hot(class) + N(0, 1) noise. N real and N fake samples; the metrics are called with the
parameters evaluate_images uses (KID: 50 subsets of 1000; precision/recall k = 3; density/coverage k = 5).

Each N runs in a fresh process so that its peak resident memory (ru_maxrss) is its own.

    nice -n 10 .venv/bin/python benchmarks/bench_metrics_scale.py 10000      # all the work
    nice -n 10 .venv/bin/python benchmarks/bench_metrics_scale.py 50000:2    # 2 row blocks per distance pass

N:B computes only the first B row blocks of every k-NN distance pass (the rest of the radii stay unset, so
precision/recall/density/coverage values are not reported): the blocks have the same size as in the full
run, so the peak memory is the full run's, and the time of those passes is extrapolated from the blocks done
(blocks are independent and equal in size, so the time is linear in their number).
"""

import json
import resource
import subprocess
import sys
import time


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def one(n: int, blocks: int | None = None, d: int = 128) -> dict:
    import itertools

    import numpy as np
    import torch

    from genimg_course import metrics as M

    done = {"blocks": 0, "total": 0}
    if blocks:
        full_blocks = M._row_blocks

        def first_blocks(n_rows, n_cols):
            every = list(full_blocks(n_rows, n_cols))
            done["total"] += len(every)
            done["blocks"] += min(blocks, len(every))
            return itertools.islice(every, blocks)

        M._row_blocks = first_blocks

    rng = np.random.default_rng(0)
    means = rng.normal(size=(10, d)) * 3
    labels_real, labels_fake = rng.integers(0, 10, n), rng.integers(0, 10, n)
    real = means[labels_real] + rng.normal(size=(n, d))
    fake = (means[labels_fake] + rng.normal(size=(n, d))) * 1.1 + 0.1
    probs = torch.softmax(torch.tensor(4 * np.eye(10)[labels_fake] + rng.normal(size=(n, 10))), 1).numpy()
    out = {"n": n, "d": d, "threads": torch.get_num_threads(), "rss_after_data_mb": round(rss_mb())}
    total = time.perf_counter()
    for name, fn in [("fid", lambda: M.fid(real, fake)),
                     ("kid", lambda: M.kid(real, fake, n_subsets=50, subset_size=1000)),
                     ("precision_recall", lambda: M.precision_recall(real, fake, 3)),
                     ("density_coverage", lambda: M.density_coverage(real, fake, 5)),
                     ("inception_score", lambda: M.inception_score(probs))]:
        start, done["blocks"], done["total"] = time.perf_counter(), 0, 0
        value = fn()
        seconds = time.perf_counter() - start
        out[name] = {"seconds": round(seconds, 1),
                     "value": [round(float(v), 4) for v in (value if isinstance(value, tuple) else (value,))]}
        if done["blocks"] < done["total"]:
            out[name] = {"blocks_done": done["blocks"], "blocks_total": done["total"], "seconds": round(seconds, 1),
                         "seconds_extrapolated": round(seconds * done["total"] / done["blocks"])}
    out["total_seconds"] = round(time.perf_counter() - total, 1)
    out["peak_rss_mb"] = round(rss_mb())
    out["one_full_distance_matrix_mb"] = round(n * n * 8 / 2**20)  # what one unbatched (N, N) float64 matrix needs
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        n, _, blocks = sys.argv[2].partition(":")
        print(json.dumps(one(int(n), int(blocks) if blocks else None)))
        sys.exit(0)
    for arg in sys.argv[1:] or ["10000", "50000:2"]:
        result = subprocess.run([sys.executable, __file__, "--child", arg], capture_output=True, text=True)
        print(result.stdout.strip() or result.stderr[-2000:], flush=True)
