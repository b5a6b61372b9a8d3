"""Lesson 05: evaluating generative models without downloads. See 05_evaluation.ipynb.

Every metric compares *features* of generated and real images. Offline, the features
are the penultimate layer of the course's small classifier (``classifier.py``); with
torchvision's Inception-v3 weights on disk, ``features="inception"`` uses those instead.

All functions take NumPy or torch arrays of shape (N, D) and compute in float64.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected features of shape (N, D), got shape {x.shape}")
    return x


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
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    s1 = _sqrtm_psd(sigma1)
    eig = np.linalg.eigvalsh(s1 @ sigma2 @ s1)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def fid(real, fake) -> float:
    """FID between two feature sets (N, D) and (M, D). Needs N, M ≥ 2.

    Small samples: FID is biased *upwards* (the bias shrinks like 1/N), so compare models only
    at the same number of samples, and read the real-vs-real value at that N as the floor.
    """
    real, fake = _np(real), _np(fake)
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(f"FID needs at least 2 samples per set, got {len(real)} and {len(fake)}")
    return frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))


# ----------------------------------------------------------------------------- KID
def kid(real, fake, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al., 2018): (mean, std) of the unbiased MMD² over subsets.

    Kernel k(x, y) = (xᵀy / D + 1)³. Unlike FID it is unbiased, so it can be compared across sample sizes.
    """
    real, fake = _np(real), _np(fake)
    m = min(subset_size, len(real), len(fake))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(real)} and {len(fake)}")
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
def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of x to its k-th nearest neighbour in x (itself excluded)."""
    return np.sort(_cdist(x, x), axis=1)[:, k]  # column 0 is the point itself (distance 0)


def _cdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return torch.cdist(torch.from_numpy(a), torch.from_numpy(b)).numpy()


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019) with k-NN manifolds.

    precision: the fraction of fake samples inside the real manifold (a ball of radius "distance to
    the k-th nearest real neighbour" around some real sample); recall: the fraction of real samples
    inside the fake manifold. Precision says "samples look real", recall "all of the data is covered".
    """
    real, fake = _np(real), _np(fake)
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set, "
                         f"got {len(real)} and {len(fake)}")
    r_real, r_fake = _knn_radii(real, k), _knn_radii(fake, k)
    d = _cdist(fake, real)  # (M, N)
    precision = (d <= r_real[None, :]).any(axis=1).mean()
    recall = (d.T <= r_fake[None, :]).any(axis=1).mean()
    return float(precision), float(recall)


def density_coverage(real, fake, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al., 2020), robust versions of precision and recall.

    density = 1/(kM) Σ_j Σ_i 1[fake_j ∈ B(real_i, r_i)]: how many real neighbourhoods each sample falls
    in (≈ 1 for a good model, can exceed 1); coverage = fraction of real samples whose neighbourhood
    contains at least one fake sample.
    """
    real, fake = _np(real), _np(fake)
    if len(real) <= k or len(fake) < 1:
        raise ValueError(f"density/coverage with k={k} needs more than {k} real samples, got {len(real)}")
    r_real = _knn_radii(real, k)
    d = _cdist(real, fake)  # (N, M)
    inside = d <= r_real[:, None]
    density = inside.sum() / (k * len(fake))
    coverage = (d.min(axis=1) <= r_real).mean()
    return float(density), float(coverage)


# ----------------------------------------------------------------------------- classes
def inception_score(probs, splits: int = 10) -> tuple[float, float]:
    """Classifier-based Inception Score: exp(E_x KL(p(y|x) ‖ p(y))), mean and std over splits.

    High when each sample is classified confidently (low-entropy p(y|x)) *and* the classes are
    varied (high-entropy p(y)). Its maximum is the number of classes.
    """
    p = _np(probs)
    scores = []
    for part in np.array_split(p, min(splits, len(p))):
        py = part.mean(0, keepdims=True)
        kl = (part * (np.log(part + 1e-12) - np.log(py + 1e-12))).sum(1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def class_coverage(predicted, num_classes: int, asked=None) -> dict:
    """The histogram of predicted classes, how many classes appear, and (conditional models)
    the accuracy of "asked for class k, got class k"."""
    predicted = np.asarray(predicted)
    hist = np.bincount(predicted, minlength=num_classes)
    out = {"histogram": hist.tolist(), "classes_present": int((hist > 0).sum()),
           "largest_class_share": float(hist.max() / max(1, hist.sum()))}
    if asked is not None:
        out["conditional_accuracy"] = float((np.asarray(asked) == predicted).mean())
    return out


# ----------------------------------------------------------------------------- memorisation
def nearest_training(samples: torch.Tensor, train: torch.Tensor, batch: int = 256):
    """For each sample its nearest training image (in pixels): (indices, distances, ratios).

    ratio = d(nearest) / d(second nearest). A copy of one training image has a ratio near 0
    (it is much closer to that image than to any other); a novel sample has a ratio near 1.
    """
    s, t = samples.flatten(1).double(), train.flatten(1).double()
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
    from genimg_course.data import load_dataset

    kwargs = {"n": 1000} if dataset == "shapes" else {}
    test = load_dataset(dataset, split="test", **kwargs)
    train = load_dataset(dataset, split="train", **({"n": 5000} if dataset == "shapes" else {}))
    return test, train


def evaluate_images(samples: torch.Tensor, dataset: str = "digits", asked=None, features: str = "classifier") -> dict:
    """Every metric of the lesson for generated images (N, C, H, W) in [-1, 1], against the test split.

    asked: for a conditional model, the class each sample was asked to be (adds conditional accuracy).
    """
    from genimg_course.classifier import classify

    test, train = reference_sets(dataset)
    if not isinstance(samples, torch.Tensor) or samples.ndim != 4:
        raise ValueError(f"samples must be a tensor (N, C, H, W), got {getattr(samples, 'shape', type(samples))}")
    if tuple(samples.shape[1:]) != tuple(test.images.shape[1:]):
        raise ValueError(f"samples have shape {tuple(samples.shape[1:])} per image, but {dataset!r} images are "
                         f"{tuple(test.images.shape[1:])}")
    if len(samples) < MIN_SAMPLES:
        raise ValueError(f"need at least {MIN_SAMPLES} samples for the k-NN metrics, got {len(samples)}")
    if features == "inception":
        real_f, fake_f = inception_features(test.images), inception_features(samples)
        _, fake_p = classify(samples, dataset)
    elif features == "classifier":
        real_f, _ = classify(test.images, dataset)
        fake_f, fake_p = classify(samples, dataset)
    else:
        raise ValueError(f"features must be 'classifier' or 'inception', got {features!r}")
    # subsets of half the smaller set, so that the 50 subsets differ and the std means something
    kid_mean, kid_std = kid(real_f, fake_f, n_subsets=50, subset_size=max(2, min(len(real_f), len(fake_f), 2000) // 2))
    precision, recall = precision_recall(real_f, fake_f, k=3)
    density, coverage = density_coverage(real_f, fake_f, k=5)
    is_mean, is_std = inception_score(fake_p)
    classes = class_coverage(fake_p.argmax(1), len(test.classes), asked)
    _, _, ratio = nearest_training(samples.float(), train.images)
    return {
        "n_samples": len(samples), "n_real": len(test), "features": features,
        "fid": fid(real_f, fake_f), "kid": kid_mean, "kid_std": kid_std,
        "precision": precision, "recall": recall, "density": density, "coverage": coverage,
        "inception_score": is_mean, "inception_score_std": is_std,
        **classes,
        "memorised_fraction": float((ratio < 0.5).float().mean()),  # samples much closer to one training image
        "nn_ratio_median": float(ratio.median()),
    }


def inception_features(images: torch.Tensor) -> np.ndarray:
    """2048-d pool features of torchvision's Inception-v3, if its weights are already on disk."""
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
