"""Issue 15, the "before" row: precision/recall and density/coverage as committed before the change
(full (N, N) distance matrices and np.sort), on the features of bench_metrics_scale.py.

    git show <commit before issue 15>:genimg_course/metrics.py > /tmp/metrics_before15.py
    nice -n 10 .venv/bin/python benchmarks/bench_metrics_scale_before.py /tmp/metrics_before15.py 10000
"""

import importlib.util
import json
import resource
import sys
import time

import numpy as np

spec = importlib.util.spec_from_file_location("metrics_before", sys.argv[1])
M = importlib.util.module_from_spec(spec)
spec.loader.exec_module(M)
n, d = int(sys.argv[2]), 128
rng = np.random.default_rng(0)  # the same features as bench_metrics_scale.one()
means = rng.normal(size=(10, d)) * 3
labels_real, labels_fake = rng.integers(0, 10, n), rng.integers(0, 10, n)
real = means[labels_real] + rng.normal(size=(n, d))
fake = (means[labels_fake] + rng.normal(size=(n, d))) * 1.1 + 0.1
out = {"n": n, "rss_after_data_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
for name, fn in [("precision_recall", lambda: M.precision_recall(real, fake, 3)),
                 ("density_coverage", lambda: M.density_coverage(real, fake, 5))]:
    start = time.perf_counter()
    value = fn()
    out[name] = {"seconds": round(time.perf_counter() - start, 1), "value": [round(float(v), 4) for v in value]}
out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(out))
