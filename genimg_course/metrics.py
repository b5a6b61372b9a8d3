"""Lesson 05: evaluating generative models without downloads. See 05_evaluation.ipynb.

Every metric compares *features* of generated and real images. Offline, the features
are the penultimate layer of the course's small classifier (``classifier.py``); with
torchvision's Inception-v3 weights on disk, ``features="inception"`` uses those instead.

All functions take NumPy or torch arrays of shape (N, D) (any dtype or stride) and compute in float64;
bad input (NaN, mismatched dimensions, images outside [-1, 1], ...) is a ValueError naming the argument.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def _array(x, name: str, ndim: int | None = None) -> np.ndarray:
    """x as a contiguous float64 array (torch tensors of any dtype, bfloat16 included; NumPy arrays of any
    stride), checked to be finite and to have ndim dimensions. Errors name the argument."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()  # .double() first: NumPy has no bfloat16
    try:
        x = np.ascontiguousarray(x, dtype=np.float64)  # also copies a negative-stride view (x[::-1])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of numbers, got {type(x).__name__}: {err}") from None
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains {int(np.isnan(x).sum())} NaN and {int(np.isinf(x).sum())} infinite "
                         "values; every metric needs finite numbers")
    return x


def _np(x, name: str = "features") -> np.ndarray:
    """Features (N, D) as float64; see ``_array``."""
    x = _array(x, name)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected features of shape (N, D), got shape {x.shape}")
    if x.shape[1] == 0:
        raise ValueError(f"{name}: features of shape {x.shape} have no dimensions (D = 0); every metric needs at "
                         "least one feature per sample (an empty feature extractor, or a slice x[:, :0]?)")
    return x


def _pair(real, fake) -> tuple[np.ndarray, np.ndarray]:
    """Both feature sets, checked to have the same feature dimension D."""
    real, fake = _np(real, "real"), _np(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and fake features must have the same dimension D, got real {real.shape} and "
                         f"fake {fake.shape} (features of different extractors?)")
    return real, fake


def _check_gaussians(mu1, sigma1, mu2, sigma2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Means (D,) and covariances (D, D) for frechet_distance: float64, finite, matching, symmetric and PSD."""
    mu1, mu2 = _array(mu1, "mu1", ndim=1), _array(mu2, "mu2", ndim=1)
    sigma1, sigma2 = _array(sigma1, "sigma1", ndim=2), _array(sigma2, "sigma2", ndim=2)
    if mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 must have the same length D, got {mu1.shape} and {mu2.shape}")
    d = len(mu1)
    for name, s in (("sigma1", sigma1), ("sigma2", sigma2)):
        if s.shape != (d, d):
            hint = (" (the (N, N) covariance of the samples: use np.cov(x, rowvar=False) for the (D, D) one)"
                    if s.shape[0] == s.shape[1] else "")
            raise ValueError(f"{name} must be the (D, D) = ({d}, {d}) covariance of the means' D features, got "
                             f"shape {s.shape}{hint}")
        scale = max(np.abs(s).max(), 1e-300)
        if np.abs(s - s.T).max() > 1e-8 * scale:
            raise ValueError(f"{name} is not symmetric (max |Σ − Σᵀ| = {np.abs(s - s.T).max():.3g}): not a covariance")
        lowest = np.linalg.eigvalsh(s).min()
        if lowest < -1e-6 * scale:  # a covariance is PSD; rounding leaves eigenvalues of about -1e-16 · scale
            raise ValueError(f"{name} is not positive semi-definite (smallest eigenvalue {lowest:.3g}): "
                             "not a covariance")
    return mu1, sigma1, mu2, sigma2


# ----------------------------------------------------------------------------- FID
def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (eigenvalues clipped at 0: stays real)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """FID between N(μ1, Σ1) and N(μ2, Σ2) (eq. 1): ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½).

    Tr((Σ1 Σ2)^½) is computed as Σ √λ_i of the symmetric PSD matrix Σ1^½ Σ2 Σ1^½, which has the
    same eigenvalues as Σ1 Σ2: real and finite even when the covariances are singular (fewer
    samples than dimensions), where scipy's sqrtm returns complex parts and NaNs.
    """
    mu1, sigma1, mu2, sigma2 = _check_gaussians(mu1, sigma1, mu2, sigma2)
    s1 = _sqrtm_psd(sigma1)
    eig = np.linalg.eigvalsh(s1 @ sigma2 @ s1)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def fid(real, fake, frechet_distance_fn=None) -> float:
    """FID between two feature sets (N, D) and (M, D). Needs N, M ≥ 2.

    frechet_distance_fn: another implementation of eq. (1) with the signature of ``frechet_distance``
    (lesson 05 passes the student's); default: this module's.

    Small samples: FID is biased *upwards* (the bias shrinks like 1/N), so compare models only
    at the same number of samples, and read the real-vs-real value at that N as the floor.
    """
    real, fake = _pair(real, fake)
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(f"FID needs at least 2 samples per set, got {len(real)} and {len(fake)}")
    distance = frechet_distance_fn or frechet_distance
    return float(distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False)))


# ----------------------------------------------------------------------------- KID
def _positive_int(value, name: str, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{name} must be an integer ≥ {least}, got {value!r}")
    return int(value)


def kid(real, fake, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al., 2018): (mean, std) of the unbiased MMD² over subsets.

    Kernel k(x, y) = (xᵀy / D + 1)³. Unlike FID it is unbiased, so it can be compared across sample sizes.

    Subsets: each of the n_subsets draws subset_size real and subset_size fake samples without replacement
    (a fresh draw per subset, so subsets overlap), from ``np.random.default_rng(seed)``: torchmetrics and
    torch-fidelity do the same. subset_size larger than either set is an error, as in torchmetrics (there is
    no silent clamping). With subset_size equal to the size of both sets every subset is the whole data: the
    values are identical and the std is 0, so this warns; the std only measures something when subsets differ.
    """
    real, fake = _pair(real, fake)
    n_subsets = _positive_int(n_subsets, "n_subsets")
    m = _positive_int(subset_size, "subset_size", least=2)
    if m > len(real) or m > len(fake):
        raise ValueError(f"subset_size={m} is larger than the number of samples (real {len(real)}, fake "
                         f"{len(fake)}): pass subset_size ≤ {min(len(real), len(fake))}")
    if n_subsets > 1 and m == len(real) == len(fake):
        import warnings

        warnings.warn(f"kid: subset_size={m} is the size of both sets, so all {n_subsets} subsets are the whole data "
                      "and the std is 0; use a smaller subset_size for a meaningful std", stacklevel=2)
    rng = np.random.default_rng(seed)
    d = real.shape[1]
    values = []
    for _ in range(n_subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        k_xx, k_yy, k_xy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        # unbiased: the diagonals k(x_i, x_i) are left out of the within-set means
        mmd = ((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
               - 2 * k_xy.mean())
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values))


# ----------------------------------------------------------------------------- manifolds
# The k-NN metrics need the distances between every real and every fake sample: a full (N, M) float64
# matrix is 20 GB at N = M = 50,000. As torch-fidelity does, they are computed a block of rows at a time,
# at most BLOCK_ELEMENTS distances (128 MB) per block, and reduced at once (k-th smallest, counts, any).
BLOCK_ELEMENTS = 2**24


def _row_blocks(n_rows: int, n_cols: int):
    """Slices of rows such that each block of distances holds at most BLOCK_ELEMENTS numbers."""
    step = max(1, BLOCK_ELEMENTS // max(1, n_cols))
    return (slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step))


def _cdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(a), len(b)) by matrix products (‖a‖² + ‖b‖² − 2 a·b): fast, but rounded
    differently for different block shapes. Callers pass one block of rows and make the ties exact with
    ``_exact_near``."""
    return torch.cdist(torch.from_numpy(a), torch.from_numpy(b)).numpy()


def _exact_near(d: np.ndarray, a: np.ndarray, b: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """d = _cdist(a, b) with the entries close to radii[:, None] recomputed exactly, as √Σ(a_i − b_j)².

    The matrix-product distances carry rounding errors (up to ~1e-8 · ‖a‖ near 0) that depend on the block
    shape, so a tie (a duplicated sample, an exact copy, a point on a ball's boundary) would fall either way.
    Only the few entries within a generous bound of the threshold are recomputed exactly; every comparison
    with a radius is then exact and the same for every block size."""
    # the rounding error of d² is a few ε·(‖a_i‖² + ‖b_j‖²); 1e-9 · (‖a_i‖² + max ‖b‖²) bounds it with room to spare
    tol = 1e-9 * ((a**2).sum(1) + (b**2).sum(1).max()) + 1e-300  # (b,)
    gap = d * d  # (b, M), then |d² − r²| in place: the block is the largest array here
    gap -= (radii**2)[:, None]
    np.abs(gap, out=gap)
    ii, jj = np.nonzero(gap <= tol[:, None])
    for c in range(0, len(ii), 2**16):  # bounded memory even when every entry is a tie
        i, j = ii[c:c + 2**16], jj[c:c + 2**16]
        d[i, j] = np.sqrt(((a[i] - b[j]) ** 2).sum(1))
    return d


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of x to its k-th nearest neighbour in x (itself excluded), a block of rows at a time."""
    radii = np.empty(len(x))
    for rows in _row_blocks(len(x), len(x)):
        d = _cdist(x[rows], x)  # (b, N)
        # column 0 of the sorted distances is the point itself (distance 0), so the k-th neighbour is column k
        approx = np.partition(d, k, axis=1)[:, k]
        radii[rows] = np.partition(_exact_near(d, x[rows], x, approx), k, axis=1)[:, k]  # exact: see _exact_near
    return radii


def _balls(centres: np.ndarray, radii: np.ndarray, points: np.ndarray, closed: bool):
    """For the balls B(centres_i, radii_i), closed (‖p − c‖ ≤ r) or open (< r): how many balls hold each point
    (M,), and whether each ball holds at least one point (N,). Computed a block of centres at a time."""
    counts, holds = np.zeros(len(points), dtype=np.int64), np.empty(len(centres), dtype=bool)
    for rows in _row_blocks(len(centres), len(points)):
        d = _exact_near(_cdist(centres[rows], points), centres[rows], points, radii[rows])  # (b, M)
        inside = d <= radii[rows, None] if closed else d < radii[rows, None]
        counts += inside.sum(axis=0)
        holds[rows] = inside.any(axis=1)
    return counts, holds


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019) with k-NN manifolds.

    precision: the fraction of fake samples inside the real manifold (a ball of radius "distance to
    the k-th nearest real neighbour" around some real sample); recall: the fraction of real samples
    inside the fake manifold. Precision says "samples look real", recall "all of the data is covered".
    """
    real, fake = _pair(real, fake)
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set, "
                         f"got {len(real)} and {len(fake)}")
    r_real, r_fake = _knn_radii(real, k), _knn_radii(fake, k)
    precision = (_balls(real, r_real, fake, closed=True)[0] > 0).mean()  # fake inside some real ball
    recall = (_balls(fake, r_fake, real, closed=True)[0] > 0).mean()  # real inside some fake ball
    return float(precision), float(recall)


def density_coverage(real, fake, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al., 2020), robust versions of precision and recall.

    density = 1/(kM) Σ_j Σ_i 1[fake_j ∈ B(real_i, r_i)]: how many real neighbourhoods each sample falls
    in (≈ 1 for a good model, can exceed 1); coverage = fraction of real samples whose neighbourhood
    contains at least one fake sample. The balls are open (distance < r_i), as in the authors' code (prdc):
    an exact copy of the real set then scores density 1.0 and coverage 1.0 (with ≤ it would score (k+1)/k,
    the k-th neighbour on each ball's boundary counted too).
    """
    real, fake = _pair(real, fake)
    k = _positive_int(k, "k")
    if len(real) <= k or len(fake) < 1:
        raise ValueError(f"density/coverage with k={k} needs more than {k} real samples and at least 1 fake, "
                         f"got {len(real)} and {len(fake)}")
    r_real = _knn_radii(real, k)
    counts, holds = _balls(real, r_real, fake, closed=False)
    density = counts.sum() / (k * len(fake))
    coverage = holds.mean()
    return float(density), float(coverage)


# ----------------------------------------------------------------------------- classes
def inception_score(probs, splits: int = 10, seed: int = 2020) -> tuple[float, float]:
    """Classifier-based Inception Score: exp(E_x KL(p(y|x) ‖ p(y))), mean and std over splits.

    High when each sample is classified confidently (low-entropy p(y|x)) *and* the classes are
    varied (high-entropy p(y)). Its maximum is the number of classes.

    probs: (N, classes) probabilities, each row summing to 1 (apply softmax to logits first). Splits: the rows
    are shuffled with ``np.random.RandomState(seed).permutation`` and cut into ``splits`` consecutive parts of
    N // splits or so rows, exactly as torch-fidelity does (seed 2020 is its default), so the score does not
    depend on the order of the samples: without the shuffle, samples sorted by class (``genimg sample --label``)
    give splits of one class each, each with p(y) one-hot, and a score near 1.
    """
    p = _np(probs, "probs")
    splits = _positive_int(splits, "splits")
    if 2 * splits > len(p):
        raise ValueError(f"splits={splits} needs at least 2 samples per split, {2 * splits} in all; probs has "
                         f"{len(p)} (with one sample per split, p(y) is that sample's p(y|x) and every score is 1)")
    row_sums = p.sum(1)
    if p.min() < 0 or np.abs(row_sums - 1).max() > 1e-4:
        raise ValueError(f"probs must hold probabilities, each row ≥ 0 and summing to 1; got values in "
                         f"[{p.min():.3g}, {p.max():.3g}] and row sums in [{row_sums.min():.4g}, {row_sums.max():.4g}]"
                         " (logits? apply torch.softmax(logits, 1) first)")
    n = len(p)
    p = p[np.random.RandomState(seed).permutation(n)]
    scores = []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        py = part.mean(0, keepdims=True)
        kl = (part * (np.log(part + 1e-12) - np.log(py + 1e-12))).sum(1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def _labels(x, name: str, num_classes: int) -> np.ndarray:
    """Class indices as a 1-D int64 array, each in [0, num_classes)."""
    x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)
    if x.ndim != 1 or not (np.issubdtype(x.dtype, np.integer) or len(x) == 0):
        raise ValueError(f"{name} must be a 1-D array of class indices (integers), got dtype {x.dtype}, "
                         f"shape {x.shape}")
    if len(x) and (x.min() < 0 or x.max() >= num_classes):
        raise ValueError(f"{name} must hold classes 0 to {num_classes - 1} (num_classes={num_classes}), "
                         f"got values from {x.min()} to {x.max()}")
    return x.astype(np.int64)


def class_coverage(predicted, num_classes: int, asked=None) -> dict:
    """The histogram of predicted classes, how many classes appear, and (conditional models)
    the accuracy of "asked for class k, got class k"."""
    num_classes = _positive_int(num_classes, "num_classes")
    predicted = _labels(predicted, "predicted", num_classes)
    hist = np.bincount(predicted, minlength=num_classes)
    out = {"histogram": hist.tolist(), "classes_present": int((hist > 0).sum()),
           "largest_class_share": float(hist.max() / max(1, hist.sum()))}
    if asked is not None:
        asked = _labels(asked, "asked", num_classes)
        if len(asked) != len(predicted):
            raise ValueError(f"asked has {len(asked)} classes for {len(predicted)} predicted ones")
        out["conditional_accuracy"] = float((asked == predicted).mean())
    return out


# ----------------------------------------------------------------------------- memorisation
def _images(x, name: str) -> torch.Tensor:
    """Images (N, ...) as a float64 tensor (NumPy arrays and any torch dtype accepted), finite and about in
    [-1, 1]: values beyond ±2 are an error (images in [0, 255]?)."""
    if not isinstance(x, torch.Tensor):
        x = torch.from_numpy(_array(x, name))
    x = x.detach().cpu().double()
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"{name} must be a batch of images (N, C, H, W) with N ≥ 1, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains {int((~torch.isfinite(x)).sum())} NaN or infinite pixel values")
    if x.abs().max() > 2:
        raise ValueError(f"{name} has values in [{x.min():.4g}, {x.max():.4g}]; images are expected in [-1, 1] "
                         "(from [0, 255]: x / 127.5 - 1; from [0, 1]: 2 * x - 1)")
    return x


def _check_same_range(x: torch.Tensor, name: str, ref: torch.Tensor, ref_name: str) -> None:
    """Catch images in [0, 1] compared with images in [-1, 1]: one set has no negative pixel at all, but bright
    pixels (≥ 0.5) and about as many dark ones (≤ 0.25) as the other set has below -0.5 (its background at -1).
    A valid grey or washed-out sample in [-1, 1] (no dark pixels, or no bright ones) passes."""
    for a, a_name, b, b_name in ((x, name, ref, ref_name), (ref, ref_name, x, name)):
        dark_b = (b < -0.5).double().mean()
        if a.min() >= 0 and a.max() >= 0.5 and dark_b > 0.01 and (a <= 0.25).double().mean() >= dark_b / 2:
            raise ValueError(f"{a_name} has no negative value (in [{a.min():.3g}, {a.max():.3g}]) while "
                             f"{b_name} is in [-1, 1]: {a_name} looks like images in [0, 1]; pass 2 * x - 1")


def nearest_training(samples, train, batch: int = 256):
    """For each sample its nearest training image (in pixels): (indices, distances, ratios).

    samples (N, C, H, W) and train (T, C, H, W), T ≥ 2: tensors or NumPy arrays, both in [-1, 1].
    ratio = d(nearest) / d(second nearest). A copy of one training image has a ratio near 0
    (it is much closer to that image than to any other); a novel sample has a ratio near 1.
    """
    samples, train = _images(samples, "samples"), _images(train, "train")
    if tuple(samples.shape[1:]) != tuple(train.shape[1:]):
        raise ValueError(f"samples have shape {tuple(samples.shape[1:])} per image, train {tuple(train.shape[1:])}")
    if len(train) < 2:
        raise ValueError(f"train needs at least 2 images (for the ratio to the second nearest), got {len(train)}")
    _check_same_range(samples, "samples", train, "train")
    batch = _positive_int(batch, "batch")
    s, t = samples.flatten(1), train.flatten(1)
    idx, d1, d2 = [], [], []
    for chunk in s.split(batch):
        d = torch.cdist(chunk, t)  # (b, N)
        two = d.topk(2, dim=1, largest=False)
        idx.append(two.indices[:, 0])
        d1.append(two.values[:, 0])
        d2.append(two.values[:, 1])
    d1, d2 = torch.cat(d1), torch.cat(d2)
    return torch.cat(idx), d1, d1 / d2.clamp_min(1e-12)


# ----------------------------------------------------------------------------- everything at once
MIN_SAMPLES = 10  # below this the k-NN metrics (k = 3, 5) are meaningless


def reference_sets(dataset: str):
    """(real test images, training images) that samples of ``dataset`` are compared with."""
    from genimg_course.common.data import load_dataset

    kwargs = {"n": 1000} if dataset == "shapes" else {}
    test = load_dataset(dataset, split="test", **kwargs)
    train = load_dataset(dataset, split="train", **({"n": 5000} if dataset == "shapes" else {}))
    return test, train


MIN_REAL = 1000  # the real reference is the test split, or its first max(N, MIN_REAL) images when it is larger


def evaluate_images(samples: torch.Tensor, dataset: str = "digits", asked=None, features: str = "classifier",
                    frechet_distance_fn=None, precision_recall_fn=None) -> dict:
    """Every metric of the lesson for generated images (N, C, H, W) in [-1, 1], against the test split.

    The real reference is the whole test split (``digits``: 360 images) or, for a larger one (MNIST's and
    CIFAR-10's 10,000), its first max(N, 1,000) images: the k-NN metrics then compare sets of about equal
    size (their radii depend on it), and a student's all-pairs precision/recall stays within memory.

    asked: for a conditional model, the class each sample was asked to be (adds conditional accuracy).
    frechet_distance_fn, precision_recall_fn: your own versions of those two metrics (same signatures as
    ``frechet_distance`` and ``precision_recall``); lesson 05 passes the student's. Default: this module's.
    """
    precision_recall_fn = precision_recall_fn or precision_recall
    from genimg_course.classifier import classify

    test, train = reference_sets(dataset)
    if not isinstance(samples, torch.Tensor) or samples.ndim != 4:
        raise ValueError(f"samples must be a tensor (N, C, H, W), got {getattr(samples, 'shape', type(samples))}")
    real = test.images[: max(len(samples), MIN_REAL)]  # (n_real, C, H, W)
    if tuple(samples.shape[1:]) != tuple(real.shape[1:]):
        raise ValueError(f"samples have shape {tuple(samples.shape[1:])} per image, but {dataset!r} images are "
                         f"{tuple(real.shape[1:])}")
    if len(samples) < MIN_SAMPLES:
        raise ValueError(f"need at least {MIN_SAMPLES} samples for the k-NN metrics, got {len(samples)}")
    # NaN, [0, 255] or [0, 1] images give silent nonsense below: refuse them here (bfloat16 becomes float32)
    _check_same_range(_images(samples, "samples"), "samples", real.double(), f"the {dataset!r} test images")
    samples = samples.float()
    if features == "inception":
        real_f, fake_f = inception_features(real), inception_features(samples)
        _, fake_p = classify(samples, dataset)
    elif features == "classifier":
        real_f, _ = classify(real, dataset)
        fake_f, fake_p = classify(samples, dataset)
    else:
        raise ValueError(f"features must be 'classifier' or 'inception', got {features!r}")
    # subsets of half the smaller set, so that the 50 subsets differ and the std means something
    kid_mean, kid_std = kid(real_f, fake_f, n_subsets=50, subset_size=max(2, min(len(real_f), len(fake_f), 2000) // 2))
    precision, recall = (float(v) for v in precision_recall_fn(real_f, fake_f, 3))
    density, coverage = density_coverage(real_f, fake_f, k=5)
    is_mean, is_std = inception_score(fake_p, splits=max(1, min(10, len(fake_p) // 2)))  # ≥ 2 samples a split
    classes = class_coverage(fake_p.argmax(1), len(test.classes), asked)
    _, _, ratio = nearest_training(samples.float(), train.images)
    return {
        "n_samples": len(samples), "n_real": len(real), "features": features,
        "fid": fid(real_f, fake_f, frechet_distance_fn),
        "kid": kid_mean, "kid_std": kid_std,
        "precision": precision, "recall": recall, "density": density, "coverage": coverage,
        "inception_score": is_mean, "inception_score_std": is_std,
        **classes,
        "memorised_fraction": float((ratio < 0.5).float().mean()),  # samples much closer to one training image
        "nn_ratio_median": float(ratio.median()),
    }


def inception_features(images: torch.Tensor) -> np.ndarray:
    """2048-d pool features of torchvision's Inception-v3, if its weights are already on disk.

    These are torchvision's ImageNet classification weights (IMAGENET1K_V1), not the "FID Inception" weights
    (pt_inception-2015-12-05, ported from TensorFlow) that pytorch-fid, clean-fid and torch-fidelity use, and the
    resizing differs too: an FID on these features is not comparable with published FIDs, only with other
    models scored here at the same number of samples.
    """
    from torchvision.models import Inception_V3_Weights, inception_v3

    weights = Inception_V3_Weights.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cached.exists():
        raise FileNotFoundError(f"Inception-v3 weights are not on disk ({cached}); offline they cannot be "
                                "downloaded. Use features='classifier' (the default).")
    model = inception_v3(weights=weights, aux_logits=True).eval()
    model.fc = torch.nn.Identity()
    x = (images.float() + 1) / 2
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        return torch.cat([model(c) for c in x.split(64)]).double().numpy()
