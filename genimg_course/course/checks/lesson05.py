"""Lesson 05's exercise checks (05_evaluation.ipynb): evaluating generative models.

Each check is its exercise's specification: tests on small inputs, compared with an oracle, with
feedback that names the input, the expected and the actual result. The notebook calls them after
each exercise (``check.frechet_distance(frechet_distance)``); ``genimg_course.course.exercises`` says how a check
reports and what it returns.
"""

from __future__ import annotations


from genimg_course import metrics
from genimg_course.course.handin import before_hand_in  # noqa: F401 (the lesson's last cell)
from genimg_course.course.exercises import Tester, allclose, describe, exercise


def _close_number(t: Tester, fn, args: tuple, expected: float, input: str, rel: float = 1e-6, abs_: float = 1e-6,
                  hint: str = "") -> None:
    """The test: fn(*args) returns one number (a float or a 0-dim array) close to ``expected``."""
    ok, got = t.call(fn, args, input)
    if not ok:
        return
    if isinstance(got, complex) or getattr(getattr(got, "dtype", None), "kind", "") == "c":
        t.fail(input, f"expected a real number (a float), got the complex number {complex(got):.6g}"
               + (f"\n    hint: {hint}" if hint else ""))
        return
    try:
        value = float(got)
    except (TypeError, ValueError):
        t.fail(input, f"expected one number, got {describe(got)}")
        return
    if value != value or abs(value - expected) > abs_ + rel * abs(expected):  # NaN or too far
        t.fail(input, f"expected {expected:.6g}, got {value:.6g}" + (f"\n    hint: {hint}" if hint else ""))
    else:
        t.passed += 1


@exercise(lesson="05_evaluation", points=3, reference=metrics.frechet_distance)
def frechet_distance(t: Tester, fn):
    """frechet_distance(mu1, sigma1, mu2, sigma2): ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½)."""
    import numpy as np
    from scipy import linalg

    mu, sigma = np.array([1.0, 2.0]), np.array([[2.0, 0.3], [0.3, 1.0]])
    _close_number(t, fn, (mu, sigma, mu, sigma), 0.0, "the same Gaussian twice: the distance is 0", abs_=1e-5)
    _close_number(t, fn, (np.array([0.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]])), 10.0,
                  "1-D: μ 0 vs 3, σ² 4 vs 1: (0 − 3)² + (2 − 1)² = 10",
                  hint="for 1-D Gaussians the formula is (μ1 − μ2)² + (σ1 − σ2)²")
    a, b = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    _close_number(t, fn, (np.zeros(3), a, np.ones(3), b), 3.0 + 1.0 + 0.0 + 4.0,
                  "diagonal covariances diag(1, 4, 9) vs diag(4, 4, 1), means 0 vs 1: Σ (√a − √b)² + 3 = 8")
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(50, 4)), rng.normal(size=(60, 4)) * 1.5 + 0.3
    m1, s1, m2, s2 = x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))
    _close_number(t, fn, (m1, s1, m2, s2), expected, "full 4x4 covariances of random features (compared with "
                  "scipy.linalg.sqrtm)", rel=1e-5, hint="the trace term is Tr(Σ1) + Tr(Σ2) − 2 Tr((Σ1 Σ2)^½)")
    # singular covariances (fewer samples than dimensions): the case the lesson's stable square root is for.
    # Oracle: with Σ1 = AᵀA, Σ2 = BᵀB (A, B the centred samples / √(n − 1)), the square roots of the
    # eigenvalues of Σ1 Σ2 are the singular values of A Bᵀ, so Tr((Σ1 Σ2)^½) is their sum.
    x, y = rng.normal(size=(5, 16)), rng.normal(size=(6, 16)) + 0.5
    m1, s1, m2, s2 = x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
    a, b = (x - m1) / np.sqrt(len(x) - 1), (y - m2) / np.sqrt(len(y) - 1)
    expected = float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2)
                     - 2 * np.linalg.svd(a @ b.T, compute_uv=False).sum())
    _close_number(t, fn, (m1, s1, m2, s2), expected, "singular 16x16 covariances of 5 and 6 samples (rank 4 and 5)",
                  rel=1e-5, hint="with singular covariances Σ1 Σ2 has eigenvalues that are 0 up to rounding, some "
                  "slightly negative or complex: sqrtm returns complex numbers and np.sqrt NaNs. Use the symmetric "
                  "matrix Σ1^½ Σ2 Σ1^½ (np.linalg.eigh) and clip its eigenvalues at 0, as the lesson says")


@exercise(lesson="05_evaluation", points=3, reference=metrics.precision_recall)
def precision_recall(t: Tester, fn):
    """precision_recall(real, fake, k): fractions of fake in the real k-NN manifold and of real in the fake one."""
    import numpy as np

    rng = np.random.default_rng(6)
    real = rng.normal(size=(40, 3))
    ok, got = t.call(fn, (real, real.copy(), 3), input="fake = real (40 points in 3-D), k=3")
    if ok:
        t.expect(isinstance(got, tuple) and len(got) == 2 and all(abs(float(v) - 1) < 1e-9 for v in got),
                 "fake = real (40 points in 3-D), k=3", f"expected (precision, recall) = (1.0, 1.0), got {got!r}")
    far = real + 100.0
    ok, got = t.call(fn, (real, far, 3), input="fake = real shifted by 100: no overlap")
    if ok:
        t.expect(isinstance(got, tuple) and len(got) == 2 and all(abs(float(v)) < 1e-9 for v in got),
                 "fake = real shifted by 100: no overlap", f"expected (0.0, 0.0), got {got!r}")
    fake = rng.normal(size=(30, 3)) * 0.3 + 0.5
    ok, got = t.call(fn, (real, fake, 3), input="fake: a narrow cluster inside the real cloud, k=3")
    if ok:
        expected = metrics.precision_recall(real, fake, 3)
        t.expect(isinstance(got, tuple) and len(got) == 2 and allclose([float(v) for v in got], expected),
                 "fake: a narrow cluster inside the real cloud, k=3",
                 f"expected (precision, recall) = ({expected[0]:.4f}, {expected[1]:.4f}), got {got!r}\n    hint: the "
                 "radius of each point is the distance to its k-th nearest neighbour in its *own* set (not itself); "
                 "a narrow cluster has high precision and low recall")
    left, right = np.array([[0.0], [1], [2], [3]]), np.array([[6.0], [7], [8], [9]])  # ρ_3 = 3 for the ends
    ok, got = t.call(fn, (left, right, 3), input="1-D real points 0-3, fake 6-9, k=3: 6 is exactly ρ_3(3) = 3 from 3")
    if ok:
        t.expect(isinstance(got, tuple) and len(got) == 2 and allclose([float(v) for v in got], (0.25, 0.25)),
                 "1-D real points 0-3, fake 6-9, k=3: 6 is exactly ρ_3(3) = 3 from 3",
                 f"expected (0.2500, 0.2500), got {got!r}\n    hint: the balls are closed: a point at distance "
                 "exactly ρ_k lies inside (use <=, not <), so 6 is in the ball of 3 and 3 in the ball of 6")
    line = np.array([[0.0], [1], [2], [3], [10], [11], [12], [13]])  # real points on a line
    probe = np.array([[5.5], [20], [21], [22], [23]])  # 5.5 is 2.5 from the point 3, whose ρ_3 is 3 (but ρ_2 is 2)
    expected_line = metrics.precision_recall(line, probe, 3)
    ok, got = t.call(fn, (line, probe, 3), input="1-D real points 0-3 and 10-13, fake 5.5 and 20-23, k=3")
    if ok:
        t.expect(isinstance(got, tuple) and len(got) == 2 and allclose([float(v) for v in got], expected_line),
                 "1-D real points 0-3 and 10-13, fake 5.5 and 20-23, k=3",
                 f"expected ({expected_line[0]:.4f}, {expected_line[1]:.4f}), got {got!r}\n    hint: 5.5 lies "
                 "inside the ball around 3 only if its radius is the distance to the 3rd neighbour (0), not the 2nd")
    probe5 = np.array([[7.0], [20.5], [21.5], [22.5], [23.5], [24.5]])  # 7 is 4 from 3: inside ρ_5 = 8, not ρ_3 = 3
    expected5 = metrics.precision_recall(line, probe5, 5)
    ok, got = t.call(fn, (line, probe5, 5), input="the same real points, fake 7 and 20.5-24.5, k=5")
    if ok:
        t.expect(isinstance(got, tuple) and len(got) == 2 and allclose([float(v) for v in got], expected5),
                 "the same real points, fake 7 and 20.5-24.5, k=5",
                 f"expected ({expected5[0]:.4f}, {expected5[1]:.4f}), got {got!r} (use the k you are given)")
