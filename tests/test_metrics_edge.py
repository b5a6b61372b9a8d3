"""Issue 15: the metrics on ties, sorted input and bad input, and the row-blocked distances."""

import contextlib
import io

import numpy as np
import pytest
import torch

from genimg_course import metrics as M


def prdc_ref(real, fake, k):
    import prdc

    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        return prdc.compute_prdc(real, fake, nearest_k=k)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(size=(120, 8))


# ----------------------------------------------------------------------------- ties: density and coverage as prdc
def tie_cases(x):
    perm = np.random.default_rng(1).permutation(len(x))
    twice = np.concatenate([x, x])
    return {
        "exact copy": (x, x.copy()),
        "permuted copy": (x, x[perm]),
        "duplicated rows (both sets)": (twice, twice.copy()),
        "duplicated real, fake a copy of part": (twice, x[perm][:80]),
        "fake duplicated": (x, np.concatenate([x[:60], x[:60]])),
        "integer grid (many equal distances)": (np.indices((6, 6)).reshape(2, -1).T.astype(float),
                                                np.indices((4, 5)).reshape(2, -1).T + 0.5),
    }


@pytest.mark.parametrize("block", [2**24, 7])
def test_density_coverage_match_prdc_on_ties(x, block, monkeypatch):
    monkeypatch.setattr(M, "BLOCK_ELEMENTS", block)
    for name, (real, fake) in tie_cases(x).items():
        for k in (3, 5):
            ref = prdc_ref(real, fake, k)
            assert M.density_coverage(real, fake, k) == pytest.approx((ref["density"], ref["coverage"]),
                                                                       abs=1e-12), (name, k)


def test_density_of_exact_copies_is_one_and_duplicates_point_eight(x):
    # the numbers of issue 15: with <= these were 1.2 and 1.6
    assert M.density_coverage(x, x.copy(), 5) == (1.0, 1.0)
    twice = np.concatenate([x, x])
    assert M.density_coverage(twice, twice.copy(), 5)[0] == pytest.approx(0.8)


def test_blocked_distances_equal_the_unblocked_ones(x, monkeypatch):
    real, fake = np.concatenate([x, x[:30]]), x[::-1][:90] + 0.0
    one_block = (M._knn_radii(real, 5), M.density_coverage(real, fake, 5), M.precision_recall(real, fake, 3))
    for block in (1, 7, 500):
        monkeypatch.setattr(M, "BLOCK_ELEMENTS", block)
        radii, dc, pr = M._knn_radii(real, 5), M.density_coverage(real, fake, 5), M.precision_recall(real, fake, 3)
        assert np.array_equal(radii, one_block[0]) and dc == one_block[1] and pr == one_block[2], block
    # and the exact radii agree with a plain sort of the full distance matrix
    full = np.sqrt(((real[:, None] - real[None]) ** 2).sum(-1))
    np.testing.assert_allclose(one_block[0], np.sort(full, 1)[:, 5], rtol=1e-12)


def test_blocks_bound_the_memory(monkeypatch):
    seen = []
    real_cdist = M._cdist
    monkeypatch.setattr(M, "BLOCK_ELEMENTS", 1000)
    monkeypatch.setattr(M, "_cdist", lambda a, b: seen.append(len(a) * len(b)) or real_cdist(a, b))
    rng = np.random.default_rng(2)
    M.density_coverage(rng.normal(size=(300, 4)), rng.normal(size=(200, 4)), 5)
    assert max(seen) <= 1000


# ----------------------------------------------------------------------------- Inception Score
def torch_fidelity_isc(logits, splits=10, rng_seed=2020):
    """torch_fidelity.metric_isc.isc_features_to_metric (v0.3), copied: the oracle for the order and the splits."""
    feature = torch.as_tensor(logits)
    n = feature.shape[0]
    feature = feature[np.random.RandomState(rng_seed).permutation(n), :].double()
    p, log_p = feature.softmax(dim=1), feature.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        p_chunk, log_p_chunk = p[i * n // splits:(i + 1) * n // splits], log_p[i * n // splits:(i + 1) * n // splits]
        q_chunk = p_chunk.mean(dim=0, keepdim=True)
        scores.append((p_chunk * (log_p_chunk - q_chunk.log())).sum(dim=1).mean().exp().item())
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_matches_torch_fidelity_and_ignores_order():
    rng = np.random.default_rng(3)
    labels = np.sort(rng.integers(0, 10, 1003))  # sorted by class, as genimg sample --label writes them
    logits = 4 * np.eye(10)[labels] + rng.normal(size=(1003, 10))
    probs = torch.softmax(torch.tensor(logits), 1).numpy()
    ours = M.inception_score(probs)
    assert ours == pytest.approx(torch_fidelity_isc(logits), rel=1e-9)
    shuffled = M.inception_score(probs[rng.permutation(len(probs))])
    assert ours[0] == pytest.approx(shuffled[0], rel=0.02)
    # in order, without the shuffle, each split holds one or two classes: the score would collapse
    unshuffled = np.mean([np.exp((part * np.log(part / part.mean(0))).sum(1).mean())
                          for part in np.array_split(probs, 10)])
    assert unshuffled < 0.6 * ours[0]
    assert M.inception_score(probs, seed=1) != ours and M.inception_score(probs, seed=1)[0] == pytest.approx(
        ours[0], rel=0.02)


@pytest.mark.parametrize("bad, match", [
    (np.random.default_rng(0).normal(size=(20, 10)), "logits"),  # logits, not probabilities
    (np.full((20, 10), 0.2), "sum"),  # rows summing to 2
    (np.eye(10)[np.arange(20) % 10] * 2 - 0.5, "probabilities"),
    (np.full((20, 10), np.nan), "NaN"),
])
def test_inception_score_rejects_what_is_not_probabilities(bad, match):
    with pytest.raises(ValueError, match=match):
        M.inception_score(bad)


def test_inception_score_bad_splits():
    probs = np.eye(10)[np.arange(20) % 10]
    for splits in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="splits"):
            M.inception_score(probs, splits=splits)
    with pytest.raises(ValueError, match="splits=30 needs at least 2 samples per split, 60 in all; probs has 20"):
        M.inception_score(probs, splits=30)
    with pytest.raises(ValueError, match="splits=11 needs at least 2 samples per split"):  # 1.8 per split
        M.inception_score(probs, splits=11)
    assert M.inception_score(probs, splits=10)[0] > 1.5  # 2 per split is enough to see the classes differ


@pytest.mark.parametrize("call", [
    lambda a, b: M.fid(a, b), lambda a, b: M.kid(a, b, subset_size=10), lambda a, b: M.precision_recall(a, b),
    lambda a, b: M.density_coverage(a, b)])
def test_features_without_dimensions_are_an_error_naming_the_argument(call):
    empty, fine = np.zeros((20, 0)), np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match=r"real: features of shape \(20, 0\) have no dimensions"):
        call(empty, empty)
    with pytest.raises(ValueError, match=r"fake: features of shape \(20, 0\) have no dimensions"):
        call(fine, empty)


# ----------------------------------------------------------------------------- KID
@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_kid_subset_size_larger_than_the_sets_is_an_error_as_in_torchmetrics():
    from torchmetrics.image.kid import KernelInceptionDistance

    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(200, 8))
    with pytest.raises(ValueError, match=r"subset_size=1000 is larger than the number of samples \(real 300, fake 200"):
        M.kid(a, b)
    tm = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=2, subset_size=250)
    tm.update(torch.tensor(a), real=True)
    tm.update(torch.tensor(b), real=False)
    with pytest.raises(ValueError, match="subset_size"):  # the anchor: torchmetrics raises too
        tm.compute()
    mean, std = M.kid(a, b, n_subsets=20, subset_size=100)
    assert np.isfinite(mean) and std > 0  # the subsets differ, so the std measures something


def test_kid_warns_when_every_subset_is_the_whole_set():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    with pytest.warns(UserWarning, match="std is 0"):
        mean, std = M.kid(a, b, n_subsets=5, subset_size=50)
    assert std == pytest.approx(0, abs=1e-15)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_subsets": 0}, "n_subsets must be an integer ≥ 1, got 0"),
    ({"n_subsets": -3}, "n_subsets"),
    ({"n_subsets": 2.0}, "n_subsets"),
    ({"subset_size": 1}, "subset_size must be an integer ≥ 2"),
    ({"subset_size": 0}, "subset_size"),
    ({"subset_size": 10.5}, "subset_size"),
])
def test_kid_invalid_parameters(kwargs, match):
    rng = np.random.default_rng(6)
    with pytest.raises(ValueError, match=match):
        M.kid(rng.normal(size=(40, 4)), rng.normal(size=(40, 4)), **{"subset_size": 20, **kwargs})


# ----------------------------------------------------------------------------- bad features
def with_value(x, value):
    x = x.copy()
    x[3, 1] = value
    return x


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_named(x, value):
    bad = with_value(x, value)
    calls = {"fid": lambda r, f: M.fid(r, f), "kid": lambda r, f: M.kid(r, f, 2, 50),
             "precision_recall": M.precision_recall, "density_coverage": M.density_coverage}
    for name, fn in calls.items():
        with pytest.raises(ValueError, match="^fake contains"):
            fn(x, bad)
        with pytest.raises(ValueError, match="^real contains"):
            fn(bad, x)


def test_mismatched_feature_dimensions(x):
    for fn in (M.fid, M.precision_recall, M.density_coverage, lambda r, f: M.kid(r, f, 2, 50)):
        with pytest.raises(ValueError, match=r"same dimension D, got real \(120, 8\) and fake \(120, 6\)"):
            fn(x, x[:, :6])


def test_frechet_distance_rejects_what_is_not_a_covariance(x):
    mu, sigma = x.mean(0), np.cov(x, rowvar=False)
    with pytest.raises(ValueError, match=r"sigma1 .* got shape \(120, 120\) \(the \(N, N\) covariance"):
        M.frechet_distance(mu, np.cov(x), mu, sigma)  # np.cov without rowvar=False
    with pytest.raises(ValueError, match=r"sigma2 .* got shape \(8, 7\)"):
        M.frechet_distance(mu, sigma, mu, sigma[:, :7])
    with pytest.raises(ValueError, match="sigma2 is not positive semi-definite"):
        M.frechet_distance(mu, sigma, mu, sigma - 2 * np.eye(8) * np.linalg.eigvalsh(sigma).max())
    asym = sigma.copy()
    asym[0, 1] += 1
    with pytest.raises(ValueError, match="sigma1 is not symmetric"):
        M.frechet_distance(mu, asym, mu, sigma)
    with pytest.raises(ValueError, match="mu1 and mu2 must have the same length"):
        M.frechet_distance(mu, sigma, mu[:7], sigma)
    with pytest.raises(ValueError, match="mu2 must have 1 dimension"):
        M.frechet_distance(mu, sigma, mu[None], sigma)
    with pytest.raises(ValueError, match="sigma1 contains 1 NaN"):
        M.frechet_distance(mu, with_value(sigma, np.nan), mu, sigma)
    # singular (but PSD) covariances of fewer samples than dimensions stay valid
    few = np.random.default_rng(7).normal(size=(5, 16))
    assert np.isfinite(M.frechet_distance(few.mean(0), np.cov(few, rowvar=False), np.zeros(16), np.eye(16)))


def test_negative_strides_and_bfloat16_work(x):
    y = x[::-1] * 1.1 + 0.1
    assert M.fid(x[::-1], y) == pytest.approx(M.fid(x[::-1].copy(), y.copy()))
    assert M.density_coverage(x[::-1], y[::2]) == M.density_coverage(x[::-1].copy(), y[::2].copy())
    assert M.precision_recall(x[:, ::-1], y[:, ::-1]) == M.precision_recall(x[:, ::-1].copy(), y[:, ::-1].copy())
    xb, yb = torch.tensor(x).bfloat16(), torch.tensor(y).bfloat16()
    assert M.fid(xb, yb) == pytest.approx(M.fid(xb.float().numpy(), yb.float().numpy()))
    assert M.kid(xb, yb, 3, 50) == pytest.approx(M.kid(xb.float(), yb.float(), 3, 50))
    assert M.density_coverage(xb, yb) == M.density_coverage(xb.float(), yb.float())
    probs = torch.softmax(torch.randn(30, 10), 1)
    assert M.inception_score(probs.bfloat16().float() / probs.bfloat16().float().sum(1, keepdim=True), 3) \
        == pytest.approx(M.inception_score(probs, 3), rel=0.05)


def test_class_coverage_rejects_unknown_classes():
    with pytest.raises(ValueError, match="predicted must hold classes 0 to 3 .* got values from 0 to 4"):
        M.class_coverage(np.array([0, 1, 4]), 4)
    with pytest.raises(ValueError, match="predicted must hold classes"):
        M.class_coverage(np.array([-1, 1]), 4)
    with pytest.raises(ValueError, match="asked must hold classes"):
        M.class_coverage(np.array([0, 1]), 4, asked=np.array([0, 7]))
    with pytest.raises(ValueError, match="integers"):
        M.class_coverage(np.array([0.0, 1.5]), 4)
    with pytest.raises(ValueError, match="asked has 3 classes for 2"):
        M.class_coverage(np.array([0, 1]), 4, asked=np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="num_classes"):
        M.class_coverage(np.array([0, 1]), 0)
    cov = M.class_coverage(torch.tensor([0, 0, 3]), 4, asked=torch.tensor([0, 1, 3]))  # torch tensors work
    assert cov["histogram"] == [2, 0, 0, 1] and cov["conditional_accuracy"] == pytest.approx(2 / 3)


# ----------------------------------------------------------------------------- images
def test_nearest_training_takes_numpy_and_any_dtype():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(30, 1, 6, 6, generator=g) * 2 - 1
    samples = train[:4] + 0.01
    idx, d, ratio = M.nearest_training(samples, train)
    assert idx.tolist() == [0, 1, 2, 3]
    for s, t in ((samples.numpy(), train.numpy()), (samples.bfloat16(), train), (samples, train.double())):
        i2, d2, r2 = M.nearest_training(s, t)
        assert i2.tolist() == idx.tolist()
        torch.testing.assert_close(d2, d, atol=0.05, rtol=0)  # bfloat16 keeps about 3 digits
    i3, _, _ = M.nearest_training(samples.numpy()[::-1], train.numpy()[::-1])  # negative strides
    assert i3.tolist() == [29 - i for i in idx.tolist()[::-1]]


def test_nearest_training_rejects_images_in_the_wrong_range():
    train = torch.rand(30, 1, 6, 6) * 2 - 1
    with pytest.raises(ValueError, match=r"samples has values in \[.*\]; images are expected in \[-1, 1\]"):
        M.nearest_training((train[:4] + 1) * 127.5, train)  # [0, 255]
    with pytest.raises(ValueError, match=r"samples has no negative value .* looks like images in \[0, 1\]"):
        M.nearest_training((train[:4] + 1) / 2, train)
    with pytest.raises(ValueError, match=r"train has no negative value"):
        M.nearest_training(train[:4], (train + 1) / 2)
    with pytest.raises(ValueError, match="samples contains 1 NaN"):
        M.nearest_training(torch.where(torch.arange(36).view(1, 1, 6, 6) == 5, float("nan"), train[:1]), train)
    with pytest.raises(ValueError, match=r"per image, train \(1, 6, 6\)"):
        M.nearest_training(torch.zeros(2, 1, 5, 5), train)
    with pytest.raises(ValueError, match="at least 2 images"):
        M.nearest_training(train[:2], train[:1])


def test_evaluate_images_rejects_images_in_the_wrong_range():
    real = M.reference_sets("digits")[1].images[:12]
    with pytest.raises(ValueError, match=r"samples has values in \[0, 255\]"):
        M.evaluate_images((real + 1) * 127.5, "digits")
    with pytest.raises(ValueError, match=r"looks like images in \[0, 1\]; pass 2 \* x - 1"):
        M.evaluate_images((real + 1) / 2, "digits")
    with pytest.raises(ValueError, match="NaN"):
        M.evaluate_images(real * float("nan"), "digits")


def test_valid_grey_samples_are_not_mistaken_for_unit_range_images():
    train = torch.rand(30, 1, 6, 6) * 2 - 1
    grey = torch.full((3, 1, 6, 6), 0.1)  # a washed-out model: no negative pixel, but valid [-1, 1] images
    idx, d, ratio = M.nearest_training(grey, train)
    assert len(idx) == 3 and torch.isfinite(ratio).all()
    white = torch.ones(3, 1, 6, 6)
    assert len(M.nearest_training(white, train)[0]) == 3
