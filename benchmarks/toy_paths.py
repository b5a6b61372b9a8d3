"""Lesson 06, section 5: the toy's probability-flow paths, measured (issue 31).

    python benchmarks/toy_paths.py --record benchmarks/records/toy_paths.json

With the exact fields of the ring of 8 Gaussians (no training, deterministic), DDIM on DDPM's path and Euler on
the straight path integrate one ODE, d x̄ / dσ = E[ε | x̄] with x̄ = x / a_t and σ = b_t / a_t: their 500-step
endpoints from the same noise agree far more closely than any K-step endpoint agrees with them. What differs is
the σ grid each sampler steps on (printed for K = 5). Then the learned networks (lesson 06's toy, 2,000 steps,
seeds 0, 1, 2): the median straightness of their 50-step paths, and, for the ε-network, the same path with the
exact field in its first k steps (the high-noise steps), which tells where its extra bends come from.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from genimg_course import scores

Z_SEED, N = 1, 64  # lesson 06's 64 starting points, torch.randn(64, 2) with seed 1


def exact_first(k: int, learned):
    """ε for ``scores.trajectories``: the exact field in the first k steps of a path, ``learned`` after (the
    trajectory calls its output once per step, in order)."""
    calls = []

    def output(x, t):
        calls.append(t)
        return scores.exact_output("eps", x, t) if len(calls) <= k else learned(x, t)
    return output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--toy-steps", type=int, default=2000, help="the toy networks' training steps (lesson: 2,000)")
    parser.add_argument("--record", help="write the figures and their provenance to this JSON file")
    args = parser.parse_args()
    z = torch.randn(N, 2, generator=torch.Generator().manual_seed(Z_SEED))
    from genimg_course.course.cli import provenance

    rec = {"command": "python benchmarks/toy_paths.py " + " ".join(sys.argv[1:]), "z_seed": Z_SEED, "n": N,
           "toy_steps": args.toy_steps, "seeds": args.seeds, "clip": scores.CLIP, "T": scores.T, **provenance(),
           "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    exact = {}
    for objective in ("eps", "flow"):
        field = lambda x, t, o=objective: scores.exact_output(o, x, t)
        exact[objective] = {k: scores.trajectories(objective, field, z, steps=k) for k in (5, 20, 50, 500)}
    rec["exact"] = {o: {"straightness_500": float(scores.straightness(p[500]).median()),
                        "straightness_50": float(scores.straightness(p[50]).median()),
                        "error_to_500": {k: float((p[k][-1] - p[500][-1]).norm(dim=1).mean()) for k in (5, 20)}}
                    for o, p in exact.items()}
    rec["endpoints_500_ddim_vs_euler"] = float((exact["eps"][500][-1] - exact["flow"][500][-1]).norm(dim=1).mean())
    times = [int(k) for k in torch.linspace(scores.T, 0, 6).round().long()[:-1] - 1]
    rec["sigma_grid_k5"] = {"ddim_trailing": [b / a for a, b in (scores.path("eps", t) for t in times)] + [0.0],
                            "euler_uniform_t": [t / (1 - t) if t < 1 else float("inf")
                                                for t in torch.linspace(1, 0, 6).tolist()]}
    rec["learned"] = []
    for seed in args.seeds:
        toy = {o: scores.train_toy(o, steps=args.toy_steps, seed=seed)["net"] for o in scores.OBJECTIVES}
        row = {"seed": seed}
        for o in ("eps", "flow"):
            p = scores.trajectories(o, lambda x, t, o=o: scores.learned_output(toy[o], o, x, t), z, steps=50)
            row[f"straightness_{o}"] = float(scores.straightness(p).median())
        for k in (1, 5, 10):  # the exact ε in the first k of 50 steps, the learned one after
            p = scores.trajectories("eps", exact_first(k, lambda x, t: scores.learned_output(toy["eps"], "eps", x, t)),
                                    z, steps=50)
            row[f"straightness_eps_exact_first_{k}"] = float(scores.straightness(p).median())
        rec["learned"].append(row)
    print(json.dumps(rec, indent=1))
    if args.record:
        with open(args.record, "w") as f:
            json.dump(rec, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
