"""Lesson 03's exercise checks (03_vae.ipynb): the variational autoencoder.

Each check is its exercise's specification: tests on small inputs, compared with an oracle, with
feedback that names the input, the expected and the actual result. The notebook calls them after
each exercise (``check.reparameterize(reparameterize)``); ``genimg_course.course.exercises`` says how a check
reports and what it returns.
"""

from __future__ import annotations

import torch

from genimg_course import vae
from genimg_course.course.handin import before_hand_in  # noqa: F401 (the lesson's last cell)
from genimg_course.course.exercises import Tester, allclose, compare_tensors, describe, exercise


def _ks_normal(u: torch.Tensor) -> float:
    """Kolmogorov–Smirnov statistic of a 1-D sample against N(0, 1): max |empirical CDF − Φ|."""
    u, n = u.sort().values, len(u)
    cdf = torch.distributions.Normal(0.0, 1.0).cdf(u.double())
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return max((i / n - cdf).abs().max().item(), (cdf - (i - 1) / n).abs().max().item())


@exercise(lesson="03_vae", points=2, reference=vae.reparameterize, draws_random=True,
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
    t.expect(allclose(mean, torch.tensor([2.0, -1.0]), atol=0.05), f"the same {n} rows",
             f"the sample mean should be μ = [2.0, -1.0]; got {[round(v, 3) for v in mean.tolist()]}")
    t.expect(allclose(std, torch.tensor([0.5, 2.0]), atol=0.05), f"the same {n} rows",
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
        t.expect(m.grad is not None and allclose(m.grad, torch.ones(3, 2)) and lv.grad is not None
                 and allclose(lv.grad, 0.5 * (z.detach() - m.detach()), atol=1e-5),
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
    for wrt, what in ((0, "mu"), (1, "logvar")):  # the VAE's encoder learns through both
        t.gradient(fn, (mu, logvar), wrt, vae.kl_divergence, input=f"mu, logvar (4, 3), {what} requiring grad",
                   what=what)


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
    t.gradient(fn, (x, logits, mu, logvar, "bernoulli"), 1, vae.elbo, input="binary x (3, 1, 4, 4), x_logits "
               "requiring grad (the decoder learns through them)", what="x_logits")
