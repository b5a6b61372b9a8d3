"""Every metric against an established implementation on the same features, plus its known behaviour."""

import numpy as np
import pytest
import torch

from genimg_course import classifier, metrics as M


@pytest.fixture(scope="module")
def feats():
    rng = np.random.default_rng(0)
    return rng.normal(size=(200, 16)), rng.normal(size=(150, 16)) * 1.3 + 0.2


class Identity(torch.nn.Module):
    """A 'feature extractor' for torchmetrics that returns its input features."""

    num_features = 16

    def forward(self, x):
        return x


def test_fid_matches_pytorch_fid_and_torchmetrics(feats):
    from pytorch_fid.fid_score import calculate_frechet_distance
    from torchmetrics.image.fid import FrechetInceptionDistance

    a, b = feats
    ours = M.fid(a, b)
    theirs = calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert ours == pytest.approx(theirs, rel=1e-9)
    tm = FrechetInceptionDistance(feature=Identity(), normalize=False)
    tm.update(torch.tensor(a), real=True)
    tm.update(torch.tensor(b), real=False)
    assert ours == pytest.approx(tm.compute().item(), rel=1e-6)


def test_kid_matches_torchmetrics_on_full_sets(feats):
    from torchmetrics.image.kid import KernelInceptionDistance

    a, b = feats
    b = b[:200] if len(b) >= 200 else np.concatenate([b, b[:50] + 0.01])
    tm = KernelInceptionDistance(feature=Identity(), subsets=1, subset_size=200, normalize=False)
    tm.update(torch.tensor(a), real=True)
    tm.update(torch.tensor(b), real=False)
    mean, _ = tm.compute()
    assert M.kid(a, b, n_subsets=1, subset_size=200)[0] == pytest.approx(mean.item(), rel=1e-6)


def test_precision_recall_density_coverage_match_prdc(feats):
    import prdc

    a, b = feats
    for k in (3, 5):
        ref = prdc.compute_prdc(a, b, nearest_k=k)
        assert M.precision_recall(a, b, k) == pytest.approx((ref["precision"], ref["recall"]))
        assert M.density_coverage(a, b, k) == pytest.approx((ref["density"], ref["coverage"]))


def test_fid_self_zero_shift_worse_and_small_sample_bias():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 8))
    assert abs(M.fid(x, x)) < 1e-8
    assert M.fid(x, x + 0.5) > M.fid(x, x + 0.1) > 0.01
    pool = rng.normal(size=(20000, 8))
    # the same distribution, fewer samples: FID is biased upwards, more so for small N
    small = np.mean([M.fid(pool[:5000], pool[5000 + i * 50:5000 + (i + 1) * 50]) for i in range(20)])
    large = np.mean([M.fid(pool[:5000], pool[5000 + i * 500:5000 + (i + 1) * 500]) for i in range(20)])
    assert small > large > 0


def test_fid_stays_real_and_finite_on_singular_covariances():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(10, 64)), rng.normal(size=(12, 64))  # fewer samples than dimensions
    value = M.fid(a, b)
    assert np.isfinite(value) and isinstance(value, float) and value > 0
    # oracle: with Σ1 = AᵀA, Σ2 = BᵀB, Tr((Σ1 Σ2)^½) is the sum of the singular values of A Bᵀ
    ca, cb = (a - a.mean(0)) / np.sqrt(len(a) - 1), (b - b.mean(0)) / np.sqrt(len(b) - 1)
    exact = (((a.mean(0) - b.mean(0)) ** 2).sum() + (ca**2).sum() + (cb**2).sum()
             - 2 * np.linalg.svd(ca @ cb.T, compute_uv=False).sum())
    assert value == pytest.approx(exact, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        M.fid(a[:1], b)


def test_kid_is_unbiased_across_sample_sizes():
    rng = np.random.default_rng(3)
    pool = rng.normal(size=(4000, 8))
    small = M.kid(pool[:2000], pool[2000:2100], n_subsets=50, subset_size=100)[0]
    assert abs(small) < 0.2  # near zero at small N (FID would not be)


def test_precision_recall_balls_are_closed():
    real, fake = np.array([[0.0], [1], [2], [3]]), np.array([[6.0], [7], [8], [9]])
    assert M.precision_recall(real, fake, 3) == (0.25, 0.25)  # 6 is exactly ρ_3(3) = 3 from 3, and 3 from 6


def test_evaluate_images_uses_the_functions_it_is_given():
    images = M.reference_sets("digits")[1].images[:20]
    r = M.evaluate_images(images, "digits", frechet_distance_fn=lambda m1, s1, m2, s2: np.float64(1.5),
                          precision_recall_fn=lambda real, fake, k: (0.25, 0.75))
    assert r["fid"] == 1.5 and isinstance(r["fid"], float) and (r["precision"], r["recall"]) == (0.25, 0.75)
    default = M.evaluate_images(images, "digits")
    test_feats, _ = classifier.classify(M.reference_sets("digits")[0].images, "digits")
    fake_feats, _ = classifier.classify(images, "digits")
    assert default["fid"] == pytest.approx(M.fid(test_feats, fake_feats))
    assert (default["precision"], default["recall"]) == pytest.approx(M.precision_recall(test_feats, fake_feats, 3))


def test_inception_score_and_class_coverage():
    confident = np.eye(10)[np.arange(100) % 10]
    assert M.inception_score(confident, splits=1)[0] == pytest.approx(10, rel=1e-6)
    collapsed = np.eye(10)[np.zeros(100, dtype=int)]
    assert M.inception_score(collapsed, splits=1)[0] == pytest.approx(1, rel=1e-6)
    cov = M.class_coverage(np.array([0, 0, 1, 3]), 4, asked=np.array([0, 1, 1, 3]))
    assert cov["histogram"] == [2, 1, 0, 1] and cov["classes_present"] == 3 and cov["conditional_accuracy"] == 0.75


def test_nearest_training_detects_copies():
    train = torch.rand(50, 1, 8, 8)
    copies = train[:5] + 0.001 * torch.randn(5, 1, 8, 8)
    novel = torch.rand(5, 1, 8, 8)
    idx, d, ratio = M.nearest_training(torch.cat([copies, novel]), train)
    assert idx[:5].tolist() == [0, 1, 2, 3, 4]
    assert (ratio[:5] < 0.1).all() and (ratio[5:] > 0.5).all()


def test_classifier_is_accurate_and_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("GENIMG_DATA", str(tmp_path))
    model, accuracy = classifier.train_classifier("digits", seed=0, verbose=False)
    assert accuracy > 0.95
    again, accuracy2 = classifier.train_classifier("digits", seed=0, verbose=False)
    assert accuracy2 == accuracy
    for p, q in zip(model.parameters(), again.parameters()):
        torch.testing.assert_close(p, q)
    monkeypatch.setattr(classifier, "_shipped_path", lambda dataset, seed: None)  # as for a set with none shipped
    cached = classifier.get_classifier("digits", verbose=False)  # trains and caches
    assert (tmp_path / "classifiers" / "digits-seed0.pt").exists()
    assert classifier.get_classifier("digits", verbose=False).head.out_features == cached.head.out_features
    with pytest.raises(ValueError, match="inception"):
        classifier.get_classifier("folder:my_photos")
    with pytest.raises(ValueError, match="Unknown dataset 'imagenet'"):
        classifier.get_classifier("imagenet")


def test_evaluate_images_orders_real_noise_and_memoriser():
    test, train = M.reference_sets("digits")
    real = M.evaluate_images(train.images[:360], "digits")
    noise = M.evaluate_images(torch.rand(360, 1, 28, 28) * 2 - 1, "digits")
    blurred = M.evaluate_images(torch.nn.functional.avg_pool2d(train.images[360:720], 3, 1, 1), "digits")
    assert real["fid"] < blurred["fid"] < noise["fid"]
    assert real["classes_present"] == 10 and noise["precision"] < 0.1 < real["precision"]
    assert real["memorised_fraction"] == 1.0  # training images are, by definition, copies
    with pytest.raises(ValueError, match="per image"):
        M.evaluate_images(torch.zeros(20, 3, 32, 32), "digits")
    with pytest.raises(ValueError, match="at least 10"):
        M.evaluate_images(torch.zeros(5, 1, 28, 28), "digits")


def test_inception_features_path():
    from pathlib import Path

    from torchvision.models import Inception_V3_Weights

    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(Inception_V3_Weights.IMAGENET1K_V1.url).name
    if not cached.exists():
        with pytest.raises(FileNotFoundError, match="not on disk"):
            M.inception_features(torch.zeros(2, 1, 28, 28))
        pytest.skip(f"Inception-v3 weights are not on disk ({cached}); offline they cannot be downloaded")
    feats = M.inception_features(torch.rand(4, 1, 28, 28) * 2 - 1)
    assert feats.shape == (4, 2048)


def test_first_use_trains_the_classifier_even_inside_no_grad(tmp_path, monkeypatch):
    """A fresh student's first evaluate_images() trains the classifier from inside classify()'s no_grad."""
    monkeypatch.setenv("GENIMG_DATA", str(tmp_path))
    monkeypatch.setattr(classifier, "_shipped_path", lambda dataset, seed: None)  # as for a set with none shipped
    real_train = classifier.train_classifier
    monkeypatch.setattr(classifier, "train_classifier", lambda dataset, seed=0, verbose=True:
                        real_train(dataset, seed, epochs=1, verbose=verbose))
    import torch

    feats, probs = classifier.classify(torch.zeros(3, 1, 28, 28), "digits")
    assert feats.shape == (3, 128) and probs.shape == (3, 10)
    assert (tmp_path / "classifiers" / "digits-seed0.pt").exists()
