"""Lesson 07's exercise checks (07_your_images.ipynb): a latent flow model on your own images.

Each check is its exercise's specification: tests on small inputs, compared with an oracle, with
feedback that names the input, the expected and the actual result. The notebook calls them after
each exercise (``check.latent_normalisation(latent_normalisation)``); ``genimg_course.course.exercises``
says how a check reports and what it returns.
"""

from __future__ import annotations

import torch

from genimg_course import latent
from genimg_course.course.handin import before_hand_in  # noqa: F401 (the lesson's last cell)
from genimg_course.course.exercises import Tester, allclose, compare_tensors, describe, exercise


@exercise(lesson="07_your_images", points=2, reference=latent.kl_autoencoder_loss)
def kl_autoencoder_loss(t: Tester, fn):
    """kl_autoencoder_loss(x, x_hat, mu, logvar, beta): (recon + β kl, recon, kl), recon the squared error per image
    number, kl the closed-form KL per latent number."""
    g = torch.Generator().manual_seed(70)
    # images (2, 3, 4, 4): P = 48 numbers each; latents (2, 2, 2, 2): L = 8. P ≠ L, so a sum where a mean belongs,
    # or one mean over both, gives another number; μ and log σ² far from 0, so every term of the KL counts
    x, x_hat = torch.rand(2, 3, 4, 4, generator=g) * 2 - 1, torch.rand(2, 3, 4, 4, generator=g) * 2 - 1
    mu, logvar = torch.randn(2, 2, 2, 2, generator=g), torch.randn(2, 2, 2, 2, generator=g) - 1
    beta = 0.25
    where = "x, x_hat (2, 3, 4, 4) in [−1, 1]; mu, logvar (2, 2, 2, 2); beta = 0.25"
    ok, got = t.call(fn, (x, x_hat, mu, logvar, beta), input=where)
    if not ok:
        return
    if not (isinstance(got, tuple) and len(got) == 3):
        t.fail(where, f"expected a tuple (loss, recon, kl) of three 0-dim tensors, got {describe(got)}")
        return
    loss, recon, kl = latent.kl_autoencoder_loss(x, x_hat, mu, logvar, beta)
    sq = (x_hat - x).pow(2)
    terms = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)
    for name, have, want, hints in (
            ("recon", got[1], recon, [(sq.sum(), "the squared error summed: eq. (1) averages it over the P numbers "
                                                "of the images (F.mse_loss's default)"),
                                      (sq.sum() / len(x), "summed per image: average over every number instead (÷ P "
                                                          "as well as over the batch)"),
                                      ((x_hat - x).abs().mean(), "the absolute error: eq. (1) squares it")]),
            ("kl", got[2], kl, [(terms.sum(), "the KL summed: eq. (1) averages it over the L latent numbers"),
                                (2 * kl, "the KL of two Gaussians has a factor ½"),
                                (0.5 * (mu.pow(2) + logvar - 1 - logvar.log().nan_to_num()).mean(),
                                 "logvar is log σ²: σ² is logvar.exp()"),
                                (0.5 * (mu.pow(2) + logvar.exp() - 1 + logvar).mean(),
                                 "the KL subtracts log σ²: ½ (μ² + σ² − 1 − log σ²)")]),
            ("loss", got[0], loss, [(recon + kl, "multiply the KL by beta"),
                                    (beta * recon + kl, "beta multiplies the KL, not the squared error"),
                                    (recon + beta * terms.sum() / len(x), "the KL per latent number, as in (1)")])):
        message = compare_tensors(have, want, atol=1e-5)
        if message:
            hint = next((h for value, h in hints if isinstance(have, torch.Tensor) and have.shape == ()
                         and allclose(have, value, atol=1e-5)), "")
            t.fail(where, f"{name}: " + message + (f"\n    hint: {hint}" if hint else ""))
        else:
            t.passed += 1
    t.gradient(lambda *a: fn(*a)[0], (x, x_hat, mu, logvar, beta), 1, lambda *a: latent.kl_autoencoder_loss(*a)[0],
               input=where + ", x_hat requiring grad", what="x_hat (the decoder's output)")
    for wrt, what in ((2, "mu"), (3, "logvar")):  # both of the encoder's outputs
        t.gradient(lambda *a: fn(*a)[0], (x, x_hat, mu, logvar, beta), wrt,
                   lambda *a: latent.kl_autoencoder_loss(*a)[0], input=f"{where}, {what} requiring grad",
                   what=f"{what} (the encoder's output)")


@exercise(lesson="07_your_images", points=2, reference=latent.latent_normalisation)
def latent_normalisation(t: Tester, fn):
    """latent_normalisation(latents): per-channel (shift, scale) = (mean, 1 / standard deviation) over images and positions."""
    g = torch.Generator().manual_seed(71)
    # 3 channels with very different means and spreads, as an autoencoder's latents have
    z = torch.randn(6, 3, 4, 4, generator=g) * torch.tensor([0.5, 2.0, 8.0]).view(1, 3, 1, 1) \
        + torch.tensor([1.0, -3.0, 0.0]).view(1, 3, 1, 1)
    where = "latents (6, 3, 4, 4): channel means about (1, −3, 0), standard deviations about (0.5, 2, 8)"
    ok, got = t.call(fn, (z,), input=where)
    if not ok:
        return
    if not (isinstance(got, tuple) and len(got) == 2):
        t.fail(where, f"expected a tuple (shift, scale) of two tensors of shape (3,), got {describe(got)}")
        return
    shift, scale = latent.latent_normalisation(z)
    message = compare_tensors(got[0], shift, atol=1e-4)
    if message:
        hint = ("one mean per channel: average over the images, the rows and the columns (dims 0, 2, 3), not over "
                "the channels" if isinstance(got[0], torch.Tensor) and got[0].numel() != 3 else
                "the shift is each channel's mean over every image and every position")
        t.fail(where, "shift: " + message + f"\n    hint: {hint}")
    else:
        t.passed += 1
    message = compare_tensors(got[1], scale, atol=1e-3, rtol=1e-3)
    population = 1 / z.transpose(0, 1).flatten(1).std(1, correction=0)  # dividing by N, not N − 1: also right
    if message and compare_tensors(got[1], population, atol=1e-3, rtol=1e-3) is None:
        message = None
        t.notes.append("your scale uses the population standard deviation (dividing by N); the reference divides by "
                       "N − 1, torch's default. Both are right: with thousands of latent values per channel they "
                       "differ by well under 0.1%")
    if message:
        std = z.transpose(0, 1).flatten(1).std(1)
        hint = ("that is the standard deviation itself; the scale multiplies the latents, so it is 1 / std"
                if isinstance(got[1], torch.Tensor) and got[1].shape == std.shape and allclose(got[1], std, atol=1e-3)
                else "one number per channel: 1 / (standard deviation over dims 0, 2, 3)")
        t.fail(where, "scale: " + message + f"\n    hint: {hint}")
    else:
        t.passed += 1
    ok, got = t.call(fn, (z,), input=where + ", then (latents − shift) · scale")
    if ok and isinstance(got, tuple) and len(got) == 2 and all(isinstance(v, torch.Tensor) and v.shape == (3,)
                                                                 for v in got):
        normed = (z - got[0].view(1, 3, 1, 1)) * got[1].view(1, 3, 1, 1)
        per_channel = normed.transpose(0, 1).flatten(1)
        t.expect(allclose(per_channel.mean(1), torch.zeros(3), atol=1e-4)
                 and (allclose(per_channel.std(1), torch.ones(3), atol=1e-3)
                      or allclose(per_channel.std(1, correction=0), torch.ones(3), atol=1e-3)),
                 where + ", then (latents − shift) · scale",
                 f"the normalised latents must have mean 0 and standard deviation 1 in every channel; got means "
                 f"{[round(v, 3) for v in per_channel.mean(1).tolist()]} and standard deviations "
                 f"{[round(v, 3) for v in per_channel.std(1).tolist()]}")
    big = torch.randn(2, 4, 8, 8, generator=g) * 3
    _pair(t, fn, big)


def _pair(t: Tester, fn, z: torch.Tensor) -> None:
    where = f"latents {tuple(z.shape)}"
    ok, got = t.call(fn, (z,), input=where)
    if not ok:
        return
    shift, scale = latent.latent_normalisation(z)
    population = 1 / z.transpose(0, 1).flatten(1).std(1, correction=0)
    good = (isinstance(got, tuple) and len(got) == 2 and compare_tensors(got[0], shift) is None
            and (compare_tensors(got[1], scale, atol=1e-3, rtol=1e-3) is None
                 or compare_tensors(got[1], population, atol=1e-3, rtol=1e-3) is None))
    t.expect(good, where, f"expected (shift, scale), each of shape ({z.shape[1]},), for any number of channels; got "
             f"{describe(got)}")


@exercise(lesson="07_your_images", points=3, reference=latent.nn_ratio)
def nn_ratio(t: Tester, fn):
    """nn_ratio(queries, reference): each query's nearest reference point and d(nearest) / d(second nearest)."""
    reference = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0], [10.0, 10.0]])
    queries = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [10.0, 9.0]])
    where = ("reference points (0, 0), (4, 0), (0, 3), (10, 10); queries (0, 0) (a copy), (1, 0), (2, 0) "
             "(half-way between two), (10, 9)")
    ok, got = t.call(fn, (queries, reference), input=where)
    if not ok:
        return
    if not (isinstance(got, tuple) and len(got) == 2):
        t.fail(where, f"expected a tuple (indices, ratios), each of shape (4,), got {describe(got)}")
        return
    idx, ratio = latent.nn_ratio(queries, reference)  # (0, 0, 0 or 1, 3), (0, 1/√10, 1, 1/√(10² + ...))
    got_idx = got[0]
    if not (isinstance(got_idx, torch.Tensor) and got_idx.shape == (4,)):
        t.fail(where, f"indices: expected a tensor of shape (4,), got {describe(got_idx)}")
    elif not (got_idx[[0, 1, 3]].long().tolist() == [0, 0, 3] and int(got_idx[2]) in (0, 1)):
        t.fail(where, f"indices: expected the nearest reference point of each query, [0, 0, 0 or 1, 3], got "
               f"{got_idx.tolist()}")
    else:
        t.passed += 1
    message = compare_tensors(got[1], ratio, atol=1e-4)
    if message:
        r = got[1]
        hint = "ratio = distance to the nearest / distance to the second nearest, each query on its own"
        if isinstance(r, torch.Tensor) and r.shape == (4,):
            d = torch.cdist(queries, reference).sort(1).values
            if allclose(r, d[:, 0] / d[:, 1] ** 2, atol=1e-4) or allclose(r, (d[:, 0] / d[:, 1]) ** 2, atol=1e-4):
                hint = "Euclidean distances, not squared ones"
            elif allclose(r, d[:, 1] / d[:, 0].clamp_min(1e-12), atol=1e-4) or not torch.isfinite(r).all():
                hint = "nearest over second nearest (a copy has ratio 0), not the other way round"
            elif allclose(r, d[:, 0] / d[:, -1], atol=1e-4):
                hint = "divide by the *second* nearest distance, not the farthest"
        t.fail(where, "ratios: " + message + f"\n    hint: {hint}")
    else:
        t.passed += 1
    g = torch.Generator().manual_seed(72)
    images, ref_images = torch.rand(5, 3, 4, 4, generator=g), torch.rand(7, 3, 4, 4, generator=g)
    want = latent.nn_ratio(images.flatten(1), ref_images.flatten(1))[1]
    where = "queries (5, 48) and reference (7, 48): flattened 3 × 4 × 4 images"
    ok, got = t.call(fn, (images.flatten(1), ref_images.flatten(1)), input=where)
    if ok:
        t.expect(isinstance(got, tuple) and len(got) == 2 and compare_tensors(got[1], want) is None, where,
                 f"expected ratios {[round(v, 4) for v in want.tolist()]}, got "
                 + (str([round(v, 4) for v in got[1].tolist()]) if isinstance(got, tuple) and len(got) == 2
                    and isinstance(got[1], torch.Tensor) else describe(got))
                 + "\n    hint: the same code must work in any number of dimensions")
    _memory(t, fn)


class _LargestTensor(torch.overrides.TorchFunctionMode):
    """Records the most numbers any torch operation called inside it returned (an intermediate the caller never
    sees: the (N, M, D) difference tensor of a broadcast distance)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(o, torch.Tensor):
                self.largest = max(self.largest, o.numel())
        return out


def _memory(t: Tester, fn) -> None:
    """The lesson compares a few hundred samples with a thousand images of 3,072 pixels: a function that builds
    the (N, M, D) differences by broadcasting needs gigabytes there (Binder has 2). Checked by the shapes the
    function computes, at a size that costs megabytes."""
    g = torch.Generator().manual_seed(73)
    n, m, d = 16, 64, 3 * 32 * 32
    queries, reference = torch.rand(n, d, generator=g), torch.rand(m, d, generator=g)
    where = f"queries ({n}, {d}) and reference ({m}, {d}): 32 × 32 colour images, as in the lesson"
    with _LargestTensor() as mode:
        ok, got = t.call(fn, (queries, reference), input=where)
    if not ok:
        return
    limit = n * m + (n + m) * d  # the distances, and a copy of each input (squares, a cast)
    t.expect(mode.largest <= limit, where,
             f"your function builds a tensor of {mode.largest:,} numbers, {mode.largest * 4 / 2**20:.1f} MiB here "
             f"(at most {limit:,} are needed): the differences of every query with every reference point, "
             f"(N, M, D). For 200 samples against a folder of 1,000 images of {d:,} numbers that is "
             f"{200 * 1000 * d * 4 / 2**30:.1f} GiB for one such tensor, more than Binder's memory\n    hint: torch.cdist(queries, "
             "reference), or ‖q‖² − 2 q·r + ‖r‖² with a matrix product (q @ r.T), never (q[:, None] − r[None])")
