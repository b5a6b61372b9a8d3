"""The checks that notebook cells call after each exercise: ``check.gray_world(gray_world)``.

Each check is the exercise's specification: tests on small inputs, compared with
an oracle (torchvision where it has the operation, else our reference), with
feedback that names the input, the expected and the actual result. See
``genimg_course.exercises`` for how a check reports and what it returns.
"""

from __future__ import annotations

import torch
from torchvision.transforms.v2 import functional as TF

from genimg_course import diffusion, gan, metrics, mlp, preprocess, vae
from genimg_course.exercises import Tester, compare_tensors, describe, exercise


def _image(shape, seed: int, low: float = 0.1, high: float = 0.9) -> torch.Tensor:
    """A reproducible random image (or batch) with values in [low, high]."""
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(shape, generator=g)


# ------------------------------------------------------------------ 01_preprocessing
_TV, _TV1 = "torchvision.transforms.v2", "torchvision.transforms"  # torchvision's two transforms APIs


@exercise(lesson="01_preprocessing", points=2, reference=preprocess.adjust_contrast,
          forbidden=(f"{_TV}.functional.adjust_contrast", f"{_TV}.functional.adjust_contrast_image",
                     f"{_TV1}.functional.adjust_contrast", f"{_TV}.ColorJitter", f"{_TV1}.ColorJitter",
                     "PIL.ImageEnhance.Contrast"),
          instead="Use tensor operations (arithmetic, `.sum`, `.mean`, `.clamp`); torchvision's `adjust_contrast` "
                  "and `ColorJitter` and PIL's `ImageEnhance.Contrast` may not be used.")
def adjust_contrast(t: Tester, fn):
    """adjust_contrast(x, factor): x' = clip(μ + c (x − μ)) with μ the image's mean gray level."""
    # torchvision weighs red by 0.2989 where we (and PIL) use 0.299: a difference below 1e-3.
    x = _image((3, 6, 5), seed=1)
    t.close(fn, (x, 1.5), TF.adjust_contrast(x, 1.5), atol=1e-3, input="a (3, 6, 5) RGB image, factor=1.5 (compared with "
            "torchvision's adjust_contrast)", hint="μ is the mean of the *grayscale* image "
            "(0.299 R + 0.587 G + 0.114 B), one number per image")
    t.close(fn, (x, 0.0), TF.adjust_contrast(x, 0.0), atol=1e-3, input="the same image, factor=0 (a flat gray image)")
    t.close(fn, (x, 3.0), TF.adjust_contrast(x, 3.0), atol=1e-3, input="the same image, factor=3 (values must be clipped "
            "to [0, 1])", hint="clip with .clamp(0, 1)")
    g = _image((1, 4, 4), seed=2)
    t.close(fn, (g, 2.0), TF.adjust_contrast(g, 2.0), atol=1e-3, input="a (1, 4, 4) grayscale image, factor=2")
    b = _image((2, 3, 4, 4), seed=3)
    t.close(fn, (b, 0.5), TF.adjust_contrast(b, 0.5), atol=1e-3, input="a batch (2, 3, 4, 4), factor=0.5: "
            "each image uses its own mean", hint="take the mean over dims (-3, -2, -1) with keepdim=True")


@exercise(lesson="01_preprocessing", points=2, reference=preprocess.contrast_stretch,
          forbidden=(f"{_TV}.functional.autocontrast", f"{_TV}.functional.autocontrast_image",
                     f"{_TV1}.functional.autocontrast", f"{_TV}.RandomAutocontrast", f"{_TV1}.RandomAutocontrast",
                     "PIL.ImageOps.autocontrast"),
          instead="Use tensor operations (`torch.quantile`, `torch.where`, arithmetic, `.clamp`); torchvision's "
                  "`autocontrast` and PIL's `ImageOps.autocontrast` may not be used.")
def contrast_stretch(t: Tester, fn):
    """contrast_stretch(x, low, high): map each channel's low/high percentiles to 0 and 1."""
    x = _image((3, 8, 8), seed=4, low=0.3, high=0.6)
    t.close(fn, (x,), TF.autocontrast(x), input="a dull (3, 8, 8) image with values in [0.3, 0.6], "
            "low=0, high=100 (compared with torchvision's autocontrast)",
            hint="each channel separately: (x − min_c) / (max_c − min_c)")
    t.close(fn, (x, 5.0, 95.0), preprocess.contrast_stretch(x, 5.0, 95.0),
            input="the same image, low=5, high=95", hint="torch.quantile(x_c, 0.05) is the 5th percentile; clip "
            "the result to [0, 1]")
    b = _image((2, 1, 5, 5), seed=5, low=0.2, high=0.5)
    t.close(fn, (b,), TF.autocontrast(b), input="a batch (2, 1, 5, 5): each image stretched on its own")
    flat = x.clone()
    flat[1] = 0.4  # a flat green channel: max = min, nothing to stretch
    t.close(fn, (flat,), TF.autocontrast(flat), input="a (3, 8, 8) image whose green channel is flat (all 0.4), "
            "low=0, high=100: the flat channel must come back unchanged, as torchvision's autocontrast returns it",
            hint="where p_high − p_low is 0, dividing by it gives NaN (0/0); return such a channel unchanged "
            "with torch.where")
    t.close(fn, (flat, 5.0, 95.0), preprocess.contrast_stretch(flat, 5.0, 95.0), input="the same image with a flat "
            "green channel, low=5, high=95", hint="guard the flat channel for any percentiles, not only min/max")
    ok, out = t.call(fn, (x,), input="a (3, 8, 8) image")
    if ok and isinstance(out, torch.Tensor) and out.shape == x.shape:
        lo, hi = out.amin(dim=(-2, -1)), out.amax(dim=(-2, -1))
        t.expect(torch.allclose(lo, torch.zeros(3), atol=1e-4) and torch.allclose(hi, torch.ones(3), atol=1e-4),
                 "a (3, 8, 8) image, low=0, high=100",
                 f"every channel should span exactly [0, 1]; got minima {lo.tolist()} and maxima {hi.tolist()}")


@exercise(lesson="01_preprocessing", points=2, reference=preprocess.gray_world)
def gray_world(t: Tester, fn):
    """gray_world(x): scale each channel so its mean equals the mean of all three channels."""
    gray = _image((3, 6, 6), seed=6)
    x = preprocess.color_cast(gray, (1.0, 0.8, 0.5))
    t.close(fn, (x,), preprocess.gray_world(x), input="a (3, 6, 6) image with a warm colour cast "
            "(gains R 1.0, G 0.8, B 0.5)", hint="x_c · μ / μ_c, where μ_c is channel c's mean and μ their average")
    ok, out = t.call(fn, (x,), input="the same image")
    if ok and isinstance(out, torch.Tensor) and out.shape == x.shape:
        means = out.mean(dim=(-2, -1))
        t.expect(bool((means.max() - means.min()) < 1e-3), "the same image",
                 f"after gray-world the three channel means should be equal; got {[round(m, 4) for m in means.tolist()]}")
    b = preprocess.color_cast(_image((2, 3, 4, 4), seed=7), (0.6, 0.9, 1.0))
    t.close(fn, (b,), preprocess.gray_world(b), input="a batch (2, 3, 4, 4) with a cool cast: each image "
            "balanced with its own channel means", hint="take means over dims (-2, -1) with keepdim=True")
    # a weak red channel with a few strong pixels: balancing multiplies red by about 5, so some exceed 1
    bright = torch.cat([0.5 * _image((1, 4, 4), seed=8, low=0.0, high=1.0) ** 4,
                        _image((2, 4, 4), seed=9, low=0.7, high=1.0)])
    t.close(fn, (bright,), preprocess.gray_world(bright), input="a bright image whose balanced values "
            "exceed 1 (must be clipped to [0, 1])", hint="finish with .clamp(0, 1)")


@exercise(lesson="01_preprocessing", points=1, reference=preprocess.normalize,
          forbidden=(f"{_TV}.functional.normalize", f"{_TV}.functional.normalize_image", f"{_TV1}.functional.normalize",
                     f"{_TV}.Normalize", f"{_TV1}.Normalize"),
          instead="Use tensor operations (`torch.as_tensor`, `.reshape`, `-`, `/`); torchvision's `normalize` and "
                  "`Normalize` may not be used.")
def normalize(t: Tester, fn):
    """normalize(x, mean=0.5, std=0.5): x' = (x − mean) / std per channel; defaults map [0, 1] to [-1, 1]."""
    x = _image((3, 4, 4), seed=9, low=0.0, high=1.0)
    t.close(fn, (x,), TF.normalize(x, [0.5] * 3, [0.5] * 3), input="a (3, 4, 4) image in [0, 1], default "
            "mean and std", hint="0 should map to -1 and 1 to +1")
    ends = torch.tensor([0.0, 1.0]).view(1, 1, 2)
    t.close(fn, (ends,), torch.tensor([-1.0, 1.0]).view(1, 1, 2), input="the values 0 and 1 as a (1, 1, 2) image")
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    t.close(fn, (x, mean, std), TF.normalize(x, mean, std), input="per-channel ImageNet mean and std "
            "(lists of 3 numbers)", hint="turn mean and std into tensors of shape (C, 1, 1) so they broadcast")
    b = _image((2, 3, 4, 4), seed=10, low=0.0, high=1.0)
    t.close(fn, (b, mean, std), TF.normalize(b, mean, std), input="a batch (2, 3, 4, 4) with per-channel mean/std")
    ok, out = t.call(fn, (x,), input="a (3, 4, 4) image, then denormalize")
    if ok and isinstance(out, torch.Tensor) and out.shape == x.shape and out.is_floating_point():
        back = preprocess.denormalize(out)
        t.expect(torch.allclose(back, x, atol=1e-5), "a (3, 4, 4) image, then denormalize",
                 "denormalize(normalize(x)) should give x back; the largest error is "
                 f"{(back - x).abs().max().item():.4f}")


# ------------------------------------------------------------------ 02_mlp_generator
def _mlp_weights(d_in: int, hidden: int, d_out: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(hidden, d_in, generator=g) / d_in**0.5, torch.randn(hidden, generator=g) * 0.1,
            torch.randn(d_out, hidden, generator=g) / hidden**0.5, torch.randn(d_out, generator=g) * 0.1)


@exercise(lesson="02_mlp_generator", points=2, reference=mlp.mlp_forward)
def mlp_forward(t: Tester, fn):
    """mlp_forward(x, W1, b1, W2, b2): h = ReLU(x W1ᵀ + b1), y = h W2ᵀ + b2."""
    W1, b1, W2, b2 = _mlp_weights(6, 5, 4, seed=11)
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(12))
    oracle = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 4))
    with torch.no_grad():
        oracle[0].weight.copy_(W1), oracle[0].bias.copy_(b1), oracle[2].weight.copy_(W2), oracle[2].bias.copy_(b2)
        expected = oracle(x)
    t.close(fn, (x, W1, b1, W2, b2), expected, input="x (3, 6), W1 (5, 6), b1 (5,), W2 (4, 5), b2 (4,) "
            "(compared with torch.nn.Linear → ReLU → Linear)", hint="x @ W1.T has shape (3, 5); nn.Linear stores "
            "its weight as (out_features, in_features)")
    t.close(fn, (x[:1], W1, b1, W2, b2), expected[:1], input="a batch of one: x (1, 6)")
    W1n = -W1.abs()  # every pre-activation negative for x >= 0 and b1 <= 0: ReLU must zero them all
    xp, b1n = x.abs(), -b1.abs()
    t.close(fn, (xp, W1n, b1n, W2, b2), b2.expand(3, 4).clone(), input="weights that make every hidden "
            "pre-activation negative: the output must be just b2", hint="apply torch.relu to the hidden layer")


@exercise(lesson="02_mlp_generator", points=1, reference=mlp.reconstruction_loss)
def reconstruction_loss(t: Tester, fn):
    """reconstruction_loss(x_hat, x): squared error summed over pixels, averaged over the batch."""
    g = torch.Generator().manual_seed(13)
    x, x_hat = torch.rand(4, 1, 3, 3, generator=g), torch.rand(4, 1, 3, 3, generator=g)
    expected = torch.nn.functional.mse_loss(x_hat, x, reduction="sum") / 4
    t.close(fn, (x_hat, x), expected, input="x_hat and x of shape (4, 1, 3, 3)",
            hint="sum over the pixels of each image, then the mean over the 4 images: a 0-dim tensor")
    t.close(fn, (x, x), torch.tensor(0.0), input="x_hat equal to x: the loss must be 0")
    y = torch.zeros(2, 3, 2, 2)
    t.close(fn, (y + 0.5, y), torch.tensor(12 * 0.25), input="colour images (2, 3, 2, 2) all off by 0.5: "
            "12 pixel values × 0.25 = 3.0 per image")
    ok, out = t.call(fn, (x_hat.requires_grad_(), x), input="x_hat that requires grad")
    if ok and isinstance(out, torch.Tensor):
        t.expect(out.requires_grad, "x_hat that requires grad",
                 "the loss does not depend on x_hat through autograd: use torch operations, not .item() or numpy")


def _mmd2_by_loops(x, y, sigmas):
    """The MMD² definition written with explicit sums (an oracle independent of any vectorised code)."""
    x, y = x.flatten(1).double(), y.flatten(1).double()

    def k(a, b):
        d2 = ((a - b) ** 2).sum()
        return sum(torch.exp(-d2 / (2 * s**2)) for s in sigmas)

    kxx = sum(k(a, b) for a in x for b in x) / len(x) ** 2
    kyy = sum(k(a, b) for a in y for b in y) / len(y) ** 2
    kxy = sum(k(a, b) for a in x for b in y) / (len(x) * len(y))
    return (kxx + kyy - 2 * kxy).float()


@exercise(lesson="02_mlp_generator", points=2, reference=mlp.mmd2)
def mmd2(t: Tester, fn):
    """mmd2(x, y, sigmas): mean k(x,x') + mean k(y,y') − 2 mean k(x,y) with k a sum of Gaussian kernels."""
    g = torch.Generator().manual_seed(14)
    x, y = torch.randn(5, 3, generator=g), torch.randn(4, 3, generator=g) + 1.0
    t.close(fn, (x, y, (1.0,)), _mmd2_by_loops(x, y, (1.0,)), input="x (5, 3), y (4, 3), sigmas=(1.0,) "
            "(compared with the definition written as explicit sums)",
            hint="k(a, b) = exp(−‖a − b‖² / (2σ²)); torch.cdist(x, y) gives all the distances ‖a − b‖")
    t.close(fn, (x, y, (0.5, 2.0)), _mmd2_by_loops(x, y, (0.5, 2.0)), input="the same, sigmas=(0.5, 2.0): "
            "the kernel is the *sum* of one Gaussian kernel per σ")
    t.close(fn, (x, x, (1.0,)), torch.tensor(0.0), input="x against itself: MMD² must be 0")
    imgs_x, imgs_y = torch.rand(3, 1, 2, 2, generator=g), torch.rand(3, 1, 2, 2, generator=g)
    t.close(fn, (imgs_x, imgs_y, (1.0,)), _mmd2_by_loops(imgs_x, imgs_y, (1.0,)),
            input="images (3, 1, 2, 2): flatten each image to a vector first", hint="x.flatten(1)")


# ------------------------------------------------------------------ 03_vae
def _ks_normal(u: torch.Tensor) -> float:
    """Kolmogorov–Smirnov statistic of a 1-D sample against N(0, 1): max |empirical CDF − Φ|."""
    u, n = u.sort().values, len(u)
    cdf = torch.distributions.Normal(0.0, 1.0).cdf(u.double())
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return max((i / n - cdf).abs().max().item(), (cdf - (i - 1) / n).abs().max().item())


@exercise(lesson="03_vae", points=2, reference=vae.reparameterize,
          forbidden=("torch.distributions.Normal", "torch.distributions.MultivariateNormal"),
          instead="Draw ε with `torch.randn_like(mu)` and transform it; `torch.distributions.Normal(...).rsample()` "
                  "may not be used (it is this exercise).")
def reparameterize(t: Tester, fn):
    """reparameterize(mu, logvar): z = μ + σ ε with σ = exp(½ log σ²), ε ~ N(0, I)."""
    n = 20_000
    mu = torch.tensor([2.0, -1.0]).repeat(n, 1)
    logvar = torch.log(torch.tensor([0.25, 4.0])).repeat(n, 1)
    torch.manual_seed(15)
    ok, z = t.call(fn, (mu, logvar), input=f"mu = (2, −1), log σ² = (log 0.25, log 4), {n} rows")
    if not ok:
        return
    if not t.expect(isinstance(z, torch.Tensor) and z.shape == mu.shape, "mu, logvar of shape (20000, 2)",
                    f"expected a tensor of shape {tuple(mu.shape)}, got {describe(z)}"):
        return
    mean, std = z.mean(0), z.std(0)
    t.expect(torch.allclose(mean, torch.tensor([2.0, -1.0]), atol=0.05), f"the same {n} rows",
             f"the sample mean should be μ = [2.0, -1.0]; got {[round(v, 3) for v in mean.tolist()]}")
    t.expect(torch.allclose(std, torch.tensor([0.5, 2.0]), atol=0.05), f"the same {n} rows",
             f"the sample standard deviation should be σ = exp(½ log σ²) = [0.5, 2.0]; got "
             f"{[round(v, 3) for v in std.tolist()]}. (exp(log σ²) is the variance, not σ.)")
    # two moments are not a distribution: (z − μ)/σ must be N(0, 1) (a uniform ε of variance 1 has the moments)
    eps = (z.detach().double() - mu.double()) / torch.tensor([0.5, 2.0], dtype=torch.float64)  # (n, 2)
    ks = max(_ks_normal(eps[:, j]) for j in range(2))
    q = torch.quantile(eps[:, 0], torch.tensor([0.001, 0.5, 0.999], dtype=torch.float64))
    t.expect(ks < 0.02, f"the same {n} rows, standardised: ε = (z − μ)/σ",
             f"ε should be N(0, 1), but its CDF is up to {ks:.3f} away from the normal CDF Φ (Kolmogorov–Smirnov "
             f"statistic; a normal sample of this size stays below 0.02). Its 0.1%, 50%, 99.9% quantiles are "
             f"{[round(v, 2) for v in q.tolist()]}, N(0, 1)'s are [-3.09, 0.0, 3.09]. Draw ε with torch.randn_like "
             f"(torch.rand_like is uniform)")
    m = torch.zeros(3, 2, requires_grad=True)
    lv = torch.zeros(3, 2, requires_grad=True)
    ok, z = t.call(fn, (m, lv), input="mu, logvar (3, 2) that require grad")
    if ok and isinstance(z, torch.Tensor) and z.requires_grad:
        z.sum().backward()
        # z = μ + exp(½ log σ²) ε  ⇒  ∂z/∂μ = 1 and ∂z/∂log σ² = ½ σ ε = ½ (z − μ)
        t.expect(m.grad is not None and torch.allclose(m.grad, torch.ones(3, 2)) and lv.grad is not None
                 and torch.allclose(lv.grad, 0.5 * (z.detach() - m.detach()), atol=1e-5),
                 "mu, logvar (3, 2) that require grad",
                 "gradients must flow to μ (∂z/∂μ = 1) and to log σ² (∂z/∂log σ² = ½ σ ε): build z from mu and "
                 "logvar with torch ops (torch.normal(mu, std) passes no gradient)")
    elif ok:
        t.fail("mu, logvar (3, 2) that require grad", "z does not depend on mu and logvar through autograd")


@exercise(lesson="03_vae", points=2, reference=vae.kl_divergence,
          forbidden=("torch.distributions.kl_divergence", "torch.distributions.kl._kl_normal_normal"),
          instead="Use tensor operations (`.pow`, `.exp`, `.sum`); `torch.distributions.kl_divergence` may not be "
                  "used (the check uses it as the oracle).")
def kl_divergence(t: Tester, fn):
    """kl_divergence(mu, logvar): ½ Σ_j (μ² + σ² − log σ² − 1), one number per example."""
    g = torch.Generator().manual_seed(16)
    mu, logvar = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum(1)
    t.close(fn, (mu, logvar), expected, input="mu, logvar (4, 3) (compared with torch.distributions."
            "kl_divergence)", hint="sum over the latent dimensions (dim=1), not over the batch: shape (4,)")
    t.close(fn, (torch.zeros(2, 5), torch.zeros(2, 5)), torch.zeros(2), input="μ = 0, log σ² = 0: q equals "
            "the prior, so KL = 0")
    t.close(fn, (torch.ones(1, 2) * 3, torch.zeros(1, 2)), torch.tensor([9.0]), input="μ = (3, 3), σ = 1: "
            "KL = ½ (9 + 9) = 9")


@exercise(lesson="03_vae", points=2, reference=vae.elbo)
def elbo(t: Tester, fn):
    """elbo(x, x_logits, mu, logvar, likelihood, sigma): log p(x|z) − KL, per example."""
    g = torch.Generator().manual_seed(17)
    x = (torch.rand(3, 1, 4, 4, generator=g) > 0.5).float()
    logits = torch.randn(3, 1, 4, 4, generator=g)
    mu, logvar = torch.randn(3, 2, generator=g), torch.randn(3, 2, generator=g) * 0.3
    kl = torch.distributions.kl_divergence(torch.distributions.Normal(mu, torch.exp(0.5 * logvar)),
                                           torch.distributions.Normal(0.0, 1.0)).sum(1)
    log_px = torch.distributions.Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    t.close(fn, (x, logits, mu, logvar, "bernoulli"), log_px - kl, input="binary x (3, 1, 4, 4), "
            "likelihood='bernoulli' (compared with torch.distributions.Bernoulli(logits=...).log_prob)",
            hint="log p(x|z) = −F.binary_cross_entropy_with_logits(x_logits, x, reduction='none') summed "
            "over pixels; then subtract the KL")
    xg = torch.rand(3, 1, 4, 4, generator=g)
    log_px_g = torch.distributions.Normal(torch.sigmoid(logits), 0.2).log_prob(xg).flatten(1).sum(1)
    t.close(fn, (xg, logits, mu, logvar, "gaussian", 0.2), log_px_g - kl, input="gray x in [0, 1], "
            "likelihood='gaussian', sigma=0.2 (compared with torch.distributions.Normal(sigmoid(x_logits), 0.2))",
            hint="the decoder's mean is sigmoid(x_logits); don't forget the −log(σ√(2π)) per pixel")
    # confident decoders: logits ±40, half of the pixels wrong. sigmoid(40) rounds to 1 in float32, so
    # log(1 − sigmoid(40)) = log 0 = −inf: the log-likelihood must come from the logits themselves.
    x_sure = torch.tensor([[1.0, 0.0, 1.0, 0.0]]).view(1, 1, 2, 2)
    logits_sure = torch.tensor([[40.0, -40.0, -40.0, 40.0]]).view(1, 1, 2, 2)
    zero = torch.zeros(1, 2)
    expected = torch.distributions.Bernoulli(logits=logits_sure).log_prob(x_sure).flatten(1).sum(1)  # −80
    where = "x = (1, 0, 1, 0), x_logits = (40, −40, −40, 40), μ = 0, log σ² = 0, likelihood='bernoulli'"
    ok, got = t.call(fn, (x_sure, logits_sure, zero, zero, "bernoulli"), input=where)
    if ok and isinstance(got, torch.Tensor) and not torch.isfinite(got.detach()).all():
        t.fail(where, f"expected {expected.tolist()} (finite), got {got.tolist()}: log(sigmoid(ℓ)) underflows at "
               f"|ℓ| = 40 (sigmoid(40) is 1.0 in float32, so log(1 − p) = log 0). Compute log p(x|z) from the "
               f"logits: −F.binary_cross_entropy_with_logits(x_logits, x, reduction='none')")
    elif ok:
        message = compare_tensors(got, expected)
        if message:
            t.fail(where, message + "\n    hint: a wrong pixel at |ℓ| = 40 costs 40 nats; probabilities clamped "
                   "before the log (F.binary_cross_entropy clamps at −100) give the wrong number")
        else:
            t.passed += 1


# ------------------------------------------------------------------ 04_gans
def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@exercise(lesson="04_gans", points=2, reference=gan.discriminator_loss)
def discriminator_loss(t: Tester, fn):
    """discriminator_loss(real_logits, fake_logits): −mean log σ(D(x)) − mean log(1 − σ(D(G(z))))."""
    g = torch.Generator().manual_seed(18)
    real, fake = torch.randn(8, generator=g), torch.randn(8, generator=g)
    t.close(fn, (real, fake), _bce(real, 1) + _bce(fake, 0), input="real_logits, fake_logits of 8 images each "
            "(compared with F.binary_cross_entropy_with_logits: real → 1, fake → 0)",
            hint="−log σ(t) = softplus(−t) and −log(1 − σ(t)) = softplus(t); average each over its batch")
    t.close(fn, (torch.full((4,), 20.0), torch.full((4,), -20.0)), _bce(torch.full((4,), 20.0), 1) * 2,
            atol=1e-6, input="a confident, correct D (real logits +20, fake −20): the loss is ≈ 0")
    wrong = torch.tensor([-60.0, 60.0])
    t.close(fn, (wrong, -wrong), _bce(wrong, 1) + _bce(-wrong, 0), input="logits ±60 (a D that is sure and "
            "half wrong): the loss is 60", hint="torch.log(torch.sigmoid(-60.)) is −inf in float32; "
            "F.softplus or F.binary_cross_entropy_with_logits stay finite")
    r3, f3 = torch.randn(6, generator=g), torch.randn(3, generator=g)
    t.close(fn, (r3, f3), _bce(r3, 1) + _bce(f3, 0), input="6 real logits and 3 fake logits",
            hint="take the mean of each term over its own batch, then add the two means")


@exercise(lesson="04_gans", points=2, reference=gan.generator_loss)
def generator_loss(t: Tester, fn):
    """generator_loss(fake_logits): the non-saturating loss −mean log σ(D(G(z)))."""
    g = torch.Generator().manual_seed(19)
    fake = torch.randn(8, generator=g)
    t.close(fn, (fake,), _bce(fake, 1), input="fake_logits of 8 images (compared with "
            "F.binary_cross_entropy_with_logits(fake_logits, ones))",
            hint="the non-saturating loss is −log σ(D(G(z))) = softplus(−D(G(z))), not log(1 − σ(D(G(z))))")
    rejected = torch.full((4,), -200.0)
    t.close(fn, (rejected,), torch.tensor(200.0), input="a D that rejects every fake (logits −200): the loss is 200",
            hint="here the minimax loss log(1 − σ(t)) is flat (no gradient for G); −log σ(t) is steep. "
            "Use F.softplus(-t): σ(−200) is 0 in float32, and log(0) = −inf")
    x = torch.tensor([-8.0, 0.0], requires_grad=True)
    ok, loss = t.call(fn, (x,), input="logits (−8, 0) that require grad")
    if ok and isinstance(loss, torch.Tensor) and loss.requires_grad:
        (grad,) = torch.autograd.grad(loss, x)
        expected = -torch.sigmoid(-x.detach()) / 2
        t.expect(torch.allclose(grad, expected, atol=1e-4), "logits (−8, 0) that require grad",
                 f"the gradient w.r.t. the logits should be −σ(−t)/B = {[round(v, 4) for v in expected.tolist()]}; "
                 f"got {[round(v, 4) for v in grad.tolist()]}")
    elif ok:
        t.fail("logits (−8, 0) that require grad", "the loss must be a tensor connected to the logits by autograd, "
               f"got {describe(loss)}")


def _tiny_gan(seed: int):
    torch.manual_seed(seed)
    G = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    D = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1), torch.nn.Flatten(0))
    opts = (torch.optim.SGD(G.parameters(), lr=0.5), torch.optim.SGD(D.parameters(), lr=0.5))
    return G, D, opts


def _max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


@exercise(lesson="04_gans", points=3, reference=gan.train_step)
def train_step(t: Tester, fn):
    """train_step(G, D, opt_g, opt_d, real, z): a D step on real vs G(z).detach(), then a G step."""
    G, D, (opt_g, opt_d) = _tiny_gan(20)
    G_ref, D_ref, (opt_g_ref, opt_d_ref) = _tiny_gan(20)
    g = torch.Generator().manual_seed(21)
    for step in (1, 2):
        real, z = torch.randn(5, 3, generator=g), torch.randn(5, 2, generator=g)
        D_before, G_before = [p.detach().clone() for p in D.parameters()], [p.detach().clone() for p in G.parameters()]
        where = f"step {step} of a tiny G (2 → 3) and D (3 → 1) with SGD(lr=0.5), real (5, 3), z (5, 2)"
        ok, got = t.call(fn, (G, D, opt_g, opt_d, real, z), input=where)
        want = gan.train_step(G_ref, D_ref, opt_g_ref, opt_d_ref, real, z)
        if not ok:
            return
        if not t.expect(isinstance(got, tuple) and len(got) == 2 and all(isinstance(v, float) for v in got), where,
                        f"expected (loss_d, loss_g) as two floats (use .item()), got {describe(got)}"):
            return
        if not t.expect(abs(got[0] - want[0]) < 1e-4, where, f"loss_d: expected {want[0]:.5f}, got {got[0]:.5f} "
                        "(D's loss on real vs G(z), computed before D's update)"):
            return
        if any(torch.equal(p, q) for p, q in zip(D.parameters(), D_before)):
            t.fail(where, "D's parameters did not change: call loss_d.backward() and opt_d.step()")
            return
        d_diff, g_diff = _max_diff(D, D_ref), _max_diff(G, G_ref)
        if not t.expect(d_diff < 1e-5, where, f"D's parameters after the step differ from a correct step by up to "
                        f"{d_diff:.3g}\n    hint: opt_d.zero_grad() before loss_d.backward(), so that gradients of "
                        "G's loss (or of the last step) are not added to D's"):
            return
        if not t.expect(abs(got[1] - want[1]) < 1e-4, where, f"loss_g: expected {want[1]:.5f}, got {got[1]:.5f}"
                        "\n    hint: compute G's loss with the *updated* D, after opt_d.step()"):
            return
        if any(torch.equal(p, q) for p, q in zip(G.parameters(), G_before)):
            t.fail(where, "G's parameters did not change: call loss_g.backward() and opt_g.step() (and do not detach "
                   "G(z) in the generator's loss)")
            return
        if not t.expect(g_diff < 1e-5, where, f"G's parameters after the step differ from a correct step by up to "
                        f"{g_diff:.3g}\n    hint: D's step must not reach G: use G(z).detach() in D's loss, and "
                        "call opt_g.zero_grad() before loss_g.backward()"):
            return


@exercise(lesson="04_gans", points=2, reference=gan.ema_update)
def ema_update(t: Tester, fn):
    """ema_update(ema, model, decay): θ_ema ← decay θ_ema + (1 − decay) θ in place; buffers copied."""
    import copy

    torch.manual_seed(22)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = copy.deepcopy(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    model(torch.randn(16, 3))  # training mode: BatchNorm's running statistics move
    for decay in (0.9, 0.0, 1.0):
        where = f"decay={decay}, a Linear(3, 4) + BatchNorm1d(4) whose weights moved after the copy"
        mine, ref = copy.deepcopy(ema), copy.deepcopy(ema)
        model_before = copy.deepcopy(model.state_dict())
        gan.ema_update(ref, model, decay)
        ok, _ = t.call(fn, (mine, model, decay), input=where)
        if not ok:
            return
        for (name, p), (_, q) in zip(model.state_dict().items(), model_before.items()):
            if not torch.equal(p, q):
                t.fail(where, f"the model itself changed ({name}); only ema may be updated")
                return
        for (name, got), (_, want) in zip(mine.state_dict().items(), ref.state_dict().items()):
            if not torch.allclose(got.float(), want.float(), atol=1e-6):
                is_buffer = name.rsplit(".", 1)[-1].startswith(("running_", "num_batches"))
                hint = ("copy the buffers (BatchNorm's running mean and variance) from model: "
                        "for b_ema, b in zip(ema.buffers(), model.buffers()): b_ema.copy_(b)") if is_buffer else (
                        f"θ_ema = {decay} · θ_ema + {1 - decay:.1f} · θ; update ema's parameters in place "
                        "(p_ema.mul_(decay).add_(p, alpha=1 - decay), or p_ema.lerp_(p, 1 - decay)) under torch.no_grad()")
                t.fail(where, f"{name}: expected {[round(v, 4) for v in want.float().flatten()[:4].tolist()]}…, got "
                       f"{[round(v, 4) for v in got.float().flatten()[:4].tolist()]}…\n    hint: {hint}")
                return
        t.passed += 1


@exercise(lesson="04_gans", points=2, reference=gan.conditional_input)
def conditional_input(t: Tester, fn):
    """conditional_input(z, labels, n_classes): [z, one_hot(labels)] of shape (B, Z + K)."""
    g = torch.Generator().manual_seed(23)
    z = torch.randn(4, 3, generator=g)
    labels = torch.tensor([2, 0, 1, 2])
    t.close(fn, (z, labels, 5), gan.conditional_input(z, labels, 5), input="z (4, 3), labels (2, 0, 1, 2), "
            "n_classes=5: expected shape (4, 8)", hint="torch.cat([z, F.one_hot(labels, n_classes).float()], dim=1): "
            "z first, then one column per class (all K of them, even if a class is missing from the batch)")
    z1 = torch.randn(10, 2, generator=g)
    every = torch.arange(10)
    ok, got = t.call(fn, (z1, every, 10), input="z (10, 2), labels 0..9, n_classes=10")
    if ok and isinstance(got, torch.Tensor) and got.shape == (10, 12):
        t.expect(got.dtype == z1.dtype, "z (10, 2), labels 0..9, n_classes=10",
                 f"expected dtype {z1.dtype} (the generator's Linear layer needs floats), got {got.dtype}")
        t.expect(torch.equal(got[:, 2:], torch.eye(10)), "z (10, 2), labels 0..9, n_classes=10",
                 "the last 10 columns should be the identity matrix (row i is the one-hot code of class i)")
    elif ok:
        t.fail("z (10, 2), labels 0..9, n_classes=10", f"expected a tensor of shape (10, 12), got {describe(got)}")


# ------------------------------------------------------------------ 05_evaluation
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
        t.expect(isinstance(got, tuple) and len(got) == 2 and np.allclose([float(v) for v in got], expected),
                 "fake: a narrow cluster inside the real cloud, k=3",
                 f"expected (precision, recall) = ({expected[0]:.4f}, {expected[1]:.4f}), got {got!r}\n    hint: the "
                 "radius of each point is the distance to its k-th nearest neighbour in its *own* set (not itself); "
                 "a narrow cluster has high precision and low recall")
    left, right = np.array([[0.0], [1], [2], [3]]), np.array([[6.0], [7], [8], [9]])  # ρ_3 = 3 for the ends
    ok, got = t.call(fn, (left, right, 3), input="1-D real points 0-3, fake 6-9, k=3: 6 is exactly ρ_3(3) = 3 from 3")
    if ok:
        t.expect(isinstance(got, tuple) and len(got) == 2 and np.allclose([float(v) for v in got], (0.25, 0.25)),
                 "1-D real points 0-3, fake 6-9, k=3: 6 is exactly ρ_3(3) = 3 from 3",
                 f"expected (0.2500, 0.2500), got {got!r}\n    hint: the balls are closed: a point at distance "
                 "exactly ρ_k lies inside (use <=, not <), so 6 is in the ball of 3 and 3 in the ball of 6")
    line = np.array([[0.0], [1], [2], [3], [10], [11], [12], [13]])  # real points on a line
    probe = np.array([[5.5], [20], [21], [22], [23]])  # 5.5 is 2.5 from the point 3, whose ρ_3 is 3 (but ρ_2 is 2)
    expected_line = metrics.precision_recall(line, probe, 3)
    ok, got = t.call(fn, (line, probe, 3), input="1-D real points 0-3 and 10-13, fake 5.5 and 20-23, k=3")
    if ok:
        t.expect(isinstance(got, tuple) and len(got) == 2 and np.allclose([float(v) for v in got], expected_line),
                 "1-D real points 0-3 and 10-13, fake 5.5 and 20-23, k=3",
                 f"expected ({expected_line[0]:.4f}, {expected_line[1]:.4f}), got {got!r}\n    hint: 5.5 lies "
                 "inside the ball around 3 only if its radius is the distance to the 3rd neighbour (0), not the 2nd")
    probe5 = np.array([[7.0], [20.5], [21.5], [22.5], [23.5], [24.5]])  # 7 is 4 from 3: inside ρ_5 = 8, not ρ_3 = 3
    expected5 = metrics.precision_recall(line, probe5, 5)
    ok, got = t.call(fn, (line, probe5, 5), input="the same real points, fake 7 and 20.5-24.5, k=5")
    if ok:
        t.expect(isinstance(got, tuple) and len(got) == 2 and np.allclose([float(v) for v in got], expected5),
                 "the same real points, fake 7 and 20.5-24.5, k=5",
                 f"expected ({expected5[0]:.4f}, {expected5[1]:.4f}), got {got!r} (use the k you are given)")


# ------------------------------------------------------------------ 06_diffusion
def _schedule(T: int = 10) -> torch.Tensor:
    """ᾱ of a short cosine schedule: small numbers a student can print and follow."""
    return torch.cumprod(1 - diffusion.cosine_betas(T), 0).float()


class _Recorder(torch.nn.Module):
    """A stand-in network for the loss checks: a fixed function of (x, t, labels) that remembers its inputs."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, labels=None):
        self.calls.append((x.detach().clone(), t.detach().clone(), None if labels is None else labels.clone()))
        shift = t.float().reshape(-1, *([1] * (x.dim() - 1))) / 10
        bonus = 0.0 if labels is None else labels.float().reshape(-1, *([1] * (x.dim() - 1))) / 7
        return 0.5 * x - shift + bonus


@exercise(lesson="06_diffusion", points=2, reference=diffusion.q_sample)
def q_sample(t: Tester, fn):
    """q_sample(x0, t, noise, alpha_bar): √ᾱ_t x0 + √(1 − ᾱ_t) ε, one t per image."""
    g = torch.Generator().manual_seed(61)
    ab = _schedule(10)
    x0, noise = torch.rand(4, 1, 3, 3, generator=g) * 2 - 1, torch.randn(4, 1, 3, 3, generator=g)
    steps = torch.tensor([0, 3, 6, 9])
    t.close(fn, (x0, steps, noise, ab), diffusion.q_sample(x0, steps, noise, ab),
            input="x0, noise (4, 1, 3, 3), t = (0, 3, 6, 9), ᾱ of a 10-step cosine schedule",
            hint="ab = alpha_bar[t] has shape (4,); reshape it to (4, 1, 1, 1) so that each image gets its own "
                 "ᾱ_t, then ab.sqrt() * x0 + (1 - ab).sqrt() * noise (square roots: these are standard deviations "
                 "and scales, not variances)")
    same = torch.tensor([5, 5, 5, 5])
    t.close(fn, (x0, same, noise, ab), diffusion.q_sample(x0, same, noise, ab),
            input="the same images, all at t = 5")
    rgb, n_rgb = torch.rand(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    t.close(fn, (rgb, torch.tensor([1, 8]), n_rgb, ab), diffusion.q_sample(rgb, torch.tensor([1, 8]), n_rgb, ab),
            input="RGB images (2, 3, 4, 4), t = (1, 8)", hint="the same code must work for any (B, C, H, W)")


@exercise(lesson="06_diffusion", points=2, reference=diffusion.ddpm_loss)
def ddpm_loss(t: Tester, fn):
    """ddpm_loss(model, x0, t, noise, alpha_bar, labels=None): mean of (model(x_t, t, labels) − ε)²."""
    g = torch.Generator().manual_seed(62)
    ab = _schedule(10)
    x0, noise = torch.rand(3, 1, 4, 4, generator=g) * 2 - 1, torch.randn(3, 1, 4, 4, generator=g)
    steps = torch.tensor([2, 5, 9])
    where = "a stand-in network f(x, t) = 0.5 x − t/10, x0 and ε (3, 1, 4, 4), t = (2, 5, 9)"
    model = _Recorder()
    ok, got = t.call(fn, (model, x0, steps, noise, ab), input=where)
    if not ok:
        return
    x_t = diffusion.q_sample(x0, steps, noise, ab)
    if not model.calls:
        t.fail(where, "the network was never called: the loss compares model(x_t, t) with the noise")
        return
    seen_x, seen_t, _ = model.calls[0]
    if seen_x.shape == x_t.shape and not torch.allclose(seen_x, x_t, atol=1e-5):
        hint = ("you passed x0 itself: the network sees the *noised* image x_t = q_sample(x0, t, noise, alpha_bar)"
                if torch.allclose(seen_x, x0) else "the network's input must be x_t = q_sample(x0, t, noise, alpha_bar)")
        t.fail(where, f"the network was called with the wrong image\n    hint: {hint}")
        return
    if not torch.equal(seen_t.long(), steps):
        t.fail(where, f"the network was called with times {seen_t.tolist()}, expected the steps t = {steps.tolist()}")
        return
    expected = diffusion.ddpm_loss(_Recorder(), x0, steps, noise, ab)
    message = compare_tensors(got, expected, atol=1e-5)
    if message:
        target_x0 = torch.nn.functional.mse_loss(_Recorder()(x_t, steps), x0)
        hint = ("the target is the noise ε, not the clean image x0" if isinstance(got, torch.Tensor)
                and got.shape == () and torch.allclose(got, target_x0) else
                "F.mse_loss(prediction, noise): the *mean* over every pixel of every image, one number")
        t.fail(where, message + f"\n    hint: {hint}")
    else:
        t.passed += 1
    labels = torch.tensor([4, 0, 9])
    model = _Recorder()
    t.close(fn, (model, x0, steps, noise, ab, labels), diffusion.ddpm_loss(_Recorder(), x0, steps, noise, ab, labels),
            atol=1e-5, input=where + ", labels (4, 0, 9) (a conditional network)",
            hint="pass the labels on: model(x_t, t, labels)")
    oracle_x0 = x0.clone()

    def oracle(x, s, labels=None):  # predicts the exact noise of this x0
        a = ab[s].reshape(-1, 1, 1, 1)
        return (x - a.sqrt() * oracle_x0) / (1 - a).sqrt()

    ok, got = t.call(fn, (oracle, x0, steps, noise, ab), input="a network that predicts the exact noise")
    if ok:
        t.expect(isinstance(got, torch.Tensor) and got.numel() == 1 and float(got) < 1e-8,
                 "a network that predicts the exact noise", f"expected a loss of 0, got {describe(got)}"
                 + (f" = {float(got):.4g}" if isinstance(got, torch.Tensor) and got.numel() == 1 else ""))


@exercise(lesson="06_diffusion", points=3, reference=diffusion.ddim_step)
def ddim_step(t: Tester, fn):
    """ddim_step(x_t, eps, alpha_bar_t, alpha_bar_prev): x̂0 clipped to [−1, 1], then √ᾱ_s x̂0 + √(1 − ᾱ_s) ε."""
    g = torch.Generator().manual_seed(63)
    ab = _schedule(10)
    x0, noise = torch.rand(3, 1, 4, 4, generator=g) * 1.6 - 0.8, torch.randn(3, 1, 4, 4, generator=g)
    t_now, t_prev = torch.tensor([9, 6, 3]), torch.tensor([6, 3, 0])
    x_t = diffusion.q_sample(x0, t_now, noise, ab)
    t.close(fn, (x_t, noise, ab[t_now], ab[t_prev]), diffusion.q_sample(x0, t_prev, noise, ab), atol=1e-4,
            input="x_t = q_sample(x0, t, ε) with the *exact* ε, t = (9, 6, 3) → s = (6, 3, 0): the step must land "
                  "on q_sample(x0, s, ε)",
            hint="x̂0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t, then x_s = √ᾱ_s x̂0 + √(1 − ᾱ_s) ε; the ᾱ are (B,) "
                 "tensors: reshape them to (B, 1, 1, 1)")
    t.close(fn, (x_t, noise, ab[t_now], torch.ones(3)), x0, atol=1e-4,
            input="the same x_t, last step (ᾱ_s = 1): the step returns x̂0 itself")
    eps = torch.randn(3, 1, 4, 4, generator=g) * 1.5  # a poor prediction: x̂0 falls outside [−1, 1]
    t.close(fn, (x_t, eps, ab[t_now], ab[t_prev]), diffusion.ddim_step(x_t, eps, ab[t_now], ab[t_prev]), atol=1e-4,
            input="the same x_t with a poor noise prediction, whose x̂0 falls outside [−1, 1]",
            hint="clip x̂0 to [−1, 1] (x0_hat.clamp(-1, 1)) before using it: near t = T, ᾱ_t ≈ 0 and the division "
                 "by √ᾱ_t turns small errors of ε into huge values")


@exercise(lesson="06_diffusion", points=2, reference=diffusion.flow_matching_loss)
def flow_matching_loss(t: Tester, fn):
    """flow_matching_loss(model, x0, t, noise, labels=None): mean of (model(x_t, t, labels) − (ε − x0))²."""
    g = torch.Generator().manual_seed(64)
    x0, noise = torch.rand(3, 1, 4, 4, generator=g) * 2 - 1, torch.randn(3, 1, 4, 4, generator=g)
    times = torch.tensor([0.1, 0.5, 0.9])
    where = "a stand-in network f(x, t) = 0.5 x − t/10, x0 and ε (3, 1, 4, 4), t = (0.1, 0.5, 0.9)"
    model = _Recorder()
    ok, got = t.call(fn, (model, x0, times, noise), input=where)
    if not ok:
        return
    x_t = diffusion.flow_interpolate(x0, noise, times)
    if not model.calls:
        t.fail(where, "the network was never called: the loss compares model(x_t, t) with the velocity ε − x0")
        return
    seen_x, seen_t, _ = model.calls[0]
    if seen_x.shape == x_t.shape and not torch.allclose(seen_x, x_t, atol=1e-5):
        backwards = diffusion.flow_interpolate(noise, x0, times)
        hint = ("x_t = (1 − t) x0 + t ε: at t = 0 the image, at t = 1 the noise (you have them the other way round)"
                if torch.allclose(seen_x, backwards, atol=1e-5) else "the network's input is x_t = (1 − t) x0 + t ε, "
                "with t reshaped to (B, 1, 1, 1)")
        t.fail(where, f"the network was called with the wrong image\n    hint: {hint}")
        return
    expected = diffusion.flow_matching_loss(_Recorder(), x0, times, noise)
    message = compare_tensors(got, expected, atol=1e-5)
    if message:
        flipped = torch.nn.functional.mse_loss(_Recorder()(x_t, times), x0 - noise)
        hint = ("the velocity is d x_t / d t = ε − x0 (from the image towards the noise), not x0 − ε"
                if isinstance(got, torch.Tensor) and got.shape == () and torch.allclose(got, flipped)
                else "F.mse_loss(prediction, noise - x0): the mean over every pixel of every image")
        t.fail(where, message + f"\n    hint: {hint}")
    else:
        t.passed += 1
    labels = torch.tensor([1, 2, 3])
    t.close(fn, (_Recorder(), x0, times, noise, labels), diffusion.flow_matching_loss(_Recorder(), x0, times, noise,
            labels), atol=1e-5, input=where + ", labels (1, 2, 3)", hint="pass the labels on: model(x_t, t, labels)")


@exercise(lesson="06_diffusion", points=1, reference=diffusion.guided)
def guided(t: Tester, fn):
    """guided(cond, uncond, w): uncond + w (cond − uncond)."""
    g = torch.Generator().manual_seed(65)
    cond, uncond = torch.randn(2, 1, 3, 3, generator=g), torch.randn(2, 1, 3, 3, generator=g)
    t.close(fn, (cond, uncond, 0.0), uncond, input="w = 0: the label is ignored, the result is uncond")
    t.close(fn, (cond, uncond, 1.0), cond, input="w = 1: the plain conditional prediction, cond")
    t.close(fn, (cond, uncond, 3.0), uncond + 3 * (cond - uncond), input="w = 3: three times as far from uncond, "
            "in the direction the label adds", hint="uncond + w · (cond − uncond)")
