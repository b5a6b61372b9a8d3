"""Every exercise's check passes the reference, and fails wrong answers with specific feedback."""

import dataclasses

import pytest
import torch

import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

import numpy as np

from genimg_course import diffusion, gan, latent, metrics, mlp, preprocess, scores, vae
from genimg_course.course import checks
from genimg_course.course.checks import lesson01, lesson05
from genimg_course.course.exercises import EXERCISES, ExerciseFailed, compare_tensors, uses_of_forbidden

checks.load_all()  # declares every exercise of the course (EXERCISES)


def _luma_mean(x):
    w = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    g = (x * w).sum(-3, keepdim=True) if x.shape[-3] == 3 else x
    return g.mean(dim=(-3, -2, -1), keepdim=True)


def _not_done(*args, **kwargs):
    raise NotImplementedError()


def _step(detach=True, zero_d=True, zero_g=True, g_before_d=False, losses=False, d_loss=None):
    """train_step with one mistake switched on."""
    d_loss = d_loss or gan.discriminator_loss

    def step(G, D, opt_g, opt_d, real, z):
        fake = G(z)
        if g_before_d:  # G's loss through the old D
            loss_g = gan.generator_loss(D(fake))
        loss_d = d_loss(D(real), D(fake.detach() if detach else fake))
        if zero_d:
            opt_d.zero_grad()
        loss_d.backward(retain_graph=True)
        opt_d.step()
        if not g_before_d:
            loss_g = gan.generator_loss(D(fake))
        if zero_g:
            opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        return (loss_d, loss_g) if losses else (loss_d.item(), loss_g.item())
    return step


def _ema(swap=False, buffers=True, copy_only=False, new_tensors=False):
    def update(ema, model, decay):
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), model.parameters()):
                if copy_only:
                    pe.copy_(p)
                elif new_tensors:
                    pe = decay * pe + (1 - decay) * p  # rebinds the name only
                elif swap:
                    pe.copy_(decay * p + (1 - decay) * pe)
                else:
                    pe.lerp_(p, 1 - decay)
            if buffers:
                for be, b in zip(ema.buffers(), model.buffers()):
                    be.copy_(b)
    return update


def _precision_recall_open(real, fake, k=3):
    """precision_recall with open balls: d < ρ_k instead of d ≤ ρ_k."""
    def dist(a, b):
        return np.linalg.norm(a[:, None] - b[None], axis=-1)
    r_real, r_fake = np.sort(dist(real, real), 1)[:, k], np.sort(dist(fake, fake), 1)[:, k]
    d = dist(fake, real)
    return float((d < r_real[None]).any(1).mean()), float((d.T < r_fake[None]).any(1).mean())


def _no_grad(fn):
    """``fn`` run under torch.no_grad(): the right value, no gradient (training then fails at backward())."""
    def wrapped(*args, **kwargs):
        with torch.no_grad():
            return fn(*args, **kwargs)
    return wrapped


# Wrong answers a student could plausibly write: each must fail its check.
WRONG = {
    "adjust_contrast": {
        "mean of RGB instead of gray": lambda x, c: (x.mean() + c * (x - x.mean())).clamp(0, 1),
        "no clipping": lambda x, c: _luma_mean(x) + c * (x - _luma_mean(x)),
        "one mean for the whole batch": lambda x, c: (_luma_mean(x).mean() + c * (x - _luma_mean(x).mean())).clamp(0, 1),
        "forgot to return": lambda x, c: None,
        "in place": lambda x, c: x.mul_(c).clamp_(0, 1),
    },
    "contrast_stretch": {
        "global min/max instead of per channel": lambda x, low=0, high=100: (x - x.min()) / (x.max() - x.min()),
        "ignores the percentiles": lambda x, low=0, high=100: preprocess.contrast_stretch(x),
        "no clipping": lambda x, low=0, high=100: (x - torch.quantile(x.flatten(-2), low / 100, -1, True)[..., None])
        / (torch.quantile(x.flatten(-2), high / 100, -1, True) - torch.quantile(x.flatten(-2), low / 100, -1, True))[..., None],
        "no flat-channel guard (NaN)": lambda x, low=0, high=100: (
            (x - torch.quantile(x.flatten(-2), low / 100, -1, True)[..., None])
            / (torch.quantile(x.flatten(-2), high / 100, -1, True) - torch.quantile(x.flatten(-2), low / 100, -1, True))[..., None]
        ).clamp(0, 1),
        "flat channel set to 0": lambda x, low=0, high=100: (
            (x - torch.quantile(x.flatten(-2), low / 100, -1, True)[..., None])
            / (torch.quantile(x.flatten(-2), high / 100, -1, True) - torch.quantile(x.flatten(-2), low / 100, -1, True))[..., None]
        ).nan_to_num(0.0).clamp(0, 1),
    },
    "gray_world": {
        "identity": lambda x, eps=1e-6: x,
        "divides by the channel mean only": lambda x, eps=1e-6: (x / x.mean(dim=(-2, -1), keepdim=True)).clamp(0, 1),
        "means over the whole batch": lambda x, eps=1e-6: (x * x.mean() / x.mean(dim=(0, -2, -1) if x.ndim == 4 else (-2, -1),
                                                                              keepdim=True)).clamp(0, 1),
        "no clipping": lambda x, eps=1e-6: x * x.mean(dim=(-3, -2, -1), keepdim=True) / x.mean(dim=(-2, -1), keepdim=True),
        "drops a dimension": lambda x, eps=1e-6: preprocess.gray_world(x)[..., 0, :, :],
    },
    "normalize": {
        "to [0, 2]": lambda x, mean=0.5, std=0.5: x * 2,
        "ignores per-channel mean/std": lambda x, mean=0.5, std=0.5: (x - 0.5) / 0.5,
        "multiplies by std": lambda x, mean=0.5, std=0.5: (x - torch.as_tensor(mean).reshape(-1, 1, 1))
        * torch.as_tensor(std).reshape(-1, 1, 1),
        "returns an int tensor": lambda x, mean=0.5, std=0.5: ((x - 0.5) / 0.5).long(),
    },
    "mlp_forward": {
        "no ReLU": lambda x, W1, b1, W2, b2: (x @ W1.T + b1) @ W2.T + b2,
        "weights not transposed": lambda x, W1, b1, W2, b2: torch.relu(x @ W1 + b1) @ W2 + b2,
        "ReLU on the output too": lambda x, W1, b1, W2, b2: torch.relu(torch.relu(x @ W1.T + b1) @ W2.T + b2),
        "forgot the biases": lambda x, W1, b1, W2, b2: torch.relu(x @ W1.T) @ W2.T,
    },
    "reconstruction_loss": {
        "mean over everything (F.mse_loss)": lambda x_hat, x: F.mse_loss(x_hat, x),
        "sum over the batch too": lambda x_hat, x: (x_hat - x).pow(2).sum(),
        "absolute error": lambda x_hat, x: (x_hat - x).abs().flatten(1).sum(1).mean(),
        "detached with .item()": lambda x_hat, x: torch.tensor((x_hat - x).pow(2).flatten(1).sum(1).mean().item()),
        "computed under no_grad": lambda x_hat, x: _no_grad(mlp.reconstruction_loss)(x_hat, x),
    },
    "mmd2": {
        "computed under no_grad": lambda x, y, sigmas=(1.0,): _no_grad(mlp.mmd2)(x, y, sigmas),
        "only the first sigma": lambda x, y, sigmas=(1.0,): mlp.mmd2(x, y, sigmas[:1]),
        "distance instead of squared distance": lambda x, y, sigmas=(1.0,): sum(
            torch.exp(-torch.cdist(a.flatten(1), b.flatten(1)) / (2 * s**2)).mean() * c
            for s in sigmas for a, b, c in ((x, x, 1), (y, y, 1), (x, y, -2))),
        "plus instead of minus the cross term": lambda x, y, sigmas=(1.0,): sum(
            (mlp.gaussian_kernel(x.flatten(1), x.flatten(1), s).mean() + mlp.gaussian_kernel(y.flatten(1), y.flatten(1), s).mean()
             - mlp.gaussian_kernel(x.flatten(1), y.flatten(1), s).mean()) for s in sigmas),
        "not flattened": lambda x, y, sigmas=(1.0,): sum(
            torch.exp(-torch.cdist(a, b).pow(2) / (2 * s**2)).mean() * c
            for s in sigmas for a, b, c in ((x, x, 1), (y, y, 1), (x, y, -2))),
    },
    "reparameterize": {
        "variance instead of std": lambda mu, logvar: mu + logvar.exp() * torch.randn_like(mu),
        "logvar as std": lambda mu, logvar: mu + logvar * torch.randn_like(mu),
        "no noise": lambda mu, logvar: mu,
        "noise without gradient path": lambda mu, logvar: (mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)).detach(),
        # right mean and standard deviation, wrong distribution: caught by the Kolmogorov–Smirnov test
        "uniform noise of variance 1": lambda mu, logvar: mu + torch.exp(0.5 * logvar) * (torch.rand_like(mu) - 0.5) * 12**0.5,
        "Laplace noise of variance 1": lambda mu, logvar: mu + torch.exp(0.5 * logvar)
        * torch.distributions.Laplace(0.0, 0.5**0.5).sample(mu.shape),
        "torch.normal (no reparameterisation gradient)": lambda mu, logvar: torch.normal(mu, torch.exp(0.5 * logvar)),
    },
    "kl_divergence": {
        "summed over the batch": lambda mu, logvar: vae.kl_divergence(mu, logvar).sum(),
        "sign error": lambda mu, logvar: 0.5 * (mu.pow(2) + logvar.exp() + logvar - 1).sum(1),
        "missing the 1/2": lambda mu, logvar: (mu.pow(2) + logvar.exp() - logvar - 1).sum(1),
        "averaged over dimensions": lambda mu, logvar: 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).mean(1),
        "computed under no_grad": lambda mu, logvar: _no_grad(vae.kl_divergence)(mu, logvar),
        "logvar detached": lambda mu, logvar: vae.kl_divergence(mu, logvar.detach()),
    },
    "frechet_distance": {
        "elementwise square root": lambda m1, s1, m2, s2: float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2)
                                                               - 2 * np.trace(np.sqrt(np.abs(s1 @ s2)))),
        "forgot the means": lambda m1, s1, m2, s2: metrics.frechet_distance(m1, s1, m1, s2),
        "no factor 2": lambda m1, s1, m2, s2: metrics.frechet_distance(m1, s1, m2, s2)
        - np.trace(s1) - np.trace(s2) + 0.5 * (np.trace(s1) + np.trace(s2)),
        "means only": lambda m1, s1, m2, s2: float(((m1 - m2) ** 2).sum()),
        # right on full-rank covariances; complex on singular ones
        "scipy sqrtm of the product, complex result": lambda m1, s1, m2, s2: ((m1 - m2) ** 2).sum() + np.trace(
            s1 + s2 - 2 * __import__("scipy.linalg").linalg.sqrtm(s1 @ s2)),
        # right on full-rank covariances; NaN on singular ones (tiny negative eigenvalues)
        "sqrt of the eigenvalues of Σ1Σ2, unclipped": lambda m1, s1, m2, s2: float(((m1 - m2) ** 2).sum() + np.trace(
            s1) + np.trace(s2) - 2 * np.sqrt(np.linalg.eigvals(s1 @ s2).real).sum()),
    },
    "precision_recall": {
        "swapped": lambda real, fake, k=3: metrics.precision_recall(fake, real, k),
        "k-th neighbour counting itself": lambda real, fake, k=3: metrics.precision_recall(real, fake, k - 1),
        "ignores k": lambda real, fake, k=3: metrics.precision_recall(real, fake, 3),
        "returns a list": lambda real, fake, k=3: list(metrics.precision_recall(real, fake, k)) + [0.0],
        "open balls (< instead of <=)": lambda real, fake, k=3: _precision_recall_open(real, fake, k),
    },
    "discriminator_loss": {
        "log of sigmoid (unstable)": lambda r, f: -(torch.log(torch.sigmoid(r)).mean() + torch.log(1 - torch.sigmoid(f)).mean()),
        "labels swapped": lambda r, f: F.softplus(r).mean() + F.softplus(-f).mean(),
        "sum instead of mean": lambda r, f: F.softplus(-r).sum() + F.softplus(f).sum(),
        "one mean over both": lambda r, f: torch.cat([F.softplus(-r), F.softplus(f)]).mean(),
        "Wasserstein critic": lambda r, f: f.mean() - r.mean(),
        "fake logits detached": lambda r, f: gan.discriminator_loss(r, f.detach()),
    },
    "generator_loss": {
        "minimax (saturating)": lambda f: -F.softplus(f).mean(),
        "log of sigmoid (unstable)": lambda f: -torch.log(torch.sigmoid(f)).mean(),
        "returns a float": lambda f: F.softplus(-f).mean().item(),
        "sum instead of mean": lambda f: F.softplus(-f).sum(),
    },
    "train_step": {
        "no detach": _step(detach=False, zero_g=False),
        "no zero_grad for D": _step(zero_d=False),
        "G's loss through the old D": _step(g_before_d=True),
        "returns tensors": _step(losses=True),
        "hinge loss for D": _step(d_loss=gan.hinge_discriminator_loss),
        "only D trained": lambda G, D, og, od, real, z: (
            gan.train_step(G, D, torch.optim.SGD(G.parameters(), lr=0.0), od, real, z)),
    },
    "ema_update": {
        "decay on the wrong side": _ema(swap=True),
        "buffers not copied": _ema(buffers=False),
        "plain copy": _ema(copy_only=True),
        "rebinds instead of updating in place": _ema(new_tensors=True),
        "also moves the model": lambda ema, model, decay: [p.lerp_(pe, 1 - decay) for pe, p in
                                                           zip(ema.parameters(), model.parameters())] and None,
    },
    "conditional_input": {
        "one_hot without n_classes": lambda z, y, k: torch.cat([z, F.one_hot(y).float()], 1),
        "label as one number": lambda z, y, k: torch.cat([z, y[:, None].float()], 1),
        "one-hot first": lambda z, y, k: torch.cat([F.one_hot(y, k).float(), z], 1),
        "integer one-hot": lambda z, y, k: torch.cat([z.long(), F.one_hot(y, k)], 1),
        "added instead of concatenated": lambda z, y, k: z + y[:, None].float(),
    },
    "elbo": {
        "plus the KL": lambda x, l, mu, lv, likelihood="bernoulli", sigma=0.1:
            vae.log_likelihood(x, l, likelihood, sigma) + vae.kl_divergence(mu, lv),
        "no Gaussian constant (MSE only)": lambda x, l, mu, lv, likelihood="bernoulli", sigma=0.1:
            (vae.log_likelihood(x, l, likelihood, sigma) if likelihood == "bernoulli" else
             -((x - torch.sigmoid(l)) ** 2 / (2 * sigma**2)).flatten(1).sum(1)) - vae.kl_divergence(mu, lv),
        "bernoulli for everything": lambda x, l, mu, lv, likelihood="bernoulli", sigma=0.1:
            vae.log_likelihood(x, l, "bernoulli") - vae.kl_divergence(mu, lv),
        "probabilities passed as logits": lambda x, l, mu, lv, likelihood="bernoulli", sigma=0.1:
            -F.binary_cross_entropy(torch.sigmoid(l).clamp(1e-6, 1 - 1e-6), x, reduction="none").flatten(1).sum(1) * 0.5
            - vae.kl_divergence(mu, lv),
        "mean over pixels": lambda x, l, mu, lv, likelihood="bernoulli", sigma=0.1:
            (-F.binary_cross_entropy_with_logits(l, x, reduction="none").flatten(1).mean(1)) - vae.kl_divergence(mu, lv),
        "decoder's logits detached": lambda x, l, mu, lv, likelihood="bernoulli", sigma=0.1:
            vae.elbo(x, l.detach(), mu, lv, likelihood, sigma),
        "log of sigmoid (−inf at logits ±40)": lambda x, l, mu, lv, likelihood="bernoulli", sigma=0.1:
            ((x * torch.log(torch.sigmoid(l)) + (1 - x) * torch.log(1 - torch.sigmoid(l))).flatten(1).sum(1)
             if likelihood == "bernoulli" else vae.log_likelihood(x, l, likelihood, sigma)) - vae.kl_divergence(mu, lv),
        "probabilities clamped by F.binary_cross_entropy": lambda x, l, mu, lv, likelihood="bernoulli", sigma=0.1:
            (-F.binary_cross_entropy(torch.sigmoid(l), x, reduction="none").flatten(1).sum(1)
             if likelihood == "bernoulli" else vae.log_likelihood(x, l, likelihood, sigma)) - vae.kl_divergence(mu, lv),
    },
}



def _per(v, x):
    return v.reshape(-1, *([1] * (x.dim() - 1)))


def _ddim(clip=True, recompute=False, prev_scale=True, clip_output=False):
    def step(x, eps, a_t, a_s):
        a_t, a_s = _per(a_t, x), _per(a_s, x)
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        if clip:
            x0 = x0.clamp(-1, 1)
        e = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt() if recompute else eps
        a = a_s if prev_scale else a_t
        out = a.sqrt() * x0 + (1 - a).sqrt() * e
        return out.clamp(-1, 1) if clip_output else out
    return step


WRONG.update({
    "q_sample": {
        "reseeds the global generator": lambda x0, t, n, ab: (torch.manual_seed(0), diffusion.q_sample(x0, t, n, ab))[1],
        "variances instead of scales": lambda x0, t, n, ab: _per(ab[t], x0) * x0 + (1 - _per(ab[t], x0)) * n,
        "one t for the whole batch": lambda x0, t, n, ab: ab[t[0]].sqrt() * x0 + (1 - ab[t[0]]).sqrt() * n,
        "noise and image swapped": lambda x0, t, n, ab: _per(ab[t], x0).sqrt() * n + (1 - _per(ab[t], x0)).sqrt() * x0,
        "only works for one channel": lambda x0, t, n, ab: (ab[t].sqrt()[:, None, None, None] * x0[:, :1]
                                                            + (1 - ab[t]).sqrt()[:, None, None, None] * n[:, :1]),
    },
    "ddpm_loss": {
        "predicts x0": lambda m, x0, t, n, ab, labels=None: F.mse_loss(m(diffusion.q_sample(x0, t, n, ab), t, labels), x0),
        "network sees x0": lambda m, x0, t, n, ab, labels=None: F.mse_loss(m(x0, t, labels), n),
        "sum instead of mean": lambda m, x0, t, n, ab, labels=None: F.mse_loss(
            m(diffusion.q_sample(x0, t, n, ab), t, labels), n, reduction="sum"),
        "drops the labels": lambda m, x0, t, n, ab, labels=None: F.mse_loss(m(diffusion.q_sample(x0, t, n, ab), t), n),
        "time as a fraction": lambda m, x0, t, n, ab, labels=None: F.mse_loss(
            m(diffusion.q_sample(x0, t, n, ab), t / len(ab), labels), n),
        "time reshaped to (B, 1, 1, 1) for the network": lambda m, x0, t, n, ab, labels=None: F.mse_loss(
            m(diffusion.q_sample(x0, t, n, ab), t.reshape(-1, 1, 1, 1), labels), n),
        "computed under no_grad": lambda m, x0, t, n, ab, labels=None: _no_grad(diffusion.ddpm_loss)(
            m, x0, t, n, ab, labels),
        "prediction detached": lambda m, x0, t, n, ab, labels=None: F.mse_loss(
            m(diffusion.q_sample(x0, t, n, ab), t, labels).detach(), n),
        "fresh noise instead of the given one": lambda m, x0, t, n, ab, labels=None: diffusion.ddpm_loss(
            m, x0, t, torch.randn_like(n), ab, labels),
    },
    "ddim_step": {
        "no clipping": _ddim(clip=False),
        "clips x_s instead of x̂0": _ddim(clip=False, clip_output=True),
        "rescales with ᾱ_t": _ddim(prev_scale=False),
        "adds fresh noise": lambda x, eps, a_t, a_s: _ddim()(x, eps, a_t, a_s) + 0.1 * torch.randn_like(x),
    },
    "flow_matching_loss": {
        "velocity sign flipped": lambda m, x0, t, n, labels=None: F.mse_loss(
            m(diffusion.flow_interpolate(x0, n, t), t, labels), x0 - n),
        "image and noise swapped in x_t": lambda m, x0, t, n, labels=None: F.mse_loss(
            m(diffusion.flow_interpolate(n, x0, t), t, labels), n - x0),
        "predicts the noise": lambda m, x0, t, n, labels=None: F.mse_loss(
            m(diffusion.flow_interpolate(x0, n, t), t, labels), n),
        "drops the labels": lambda m, x0, t, n, labels=None: F.mse_loss(m(diffusion.flow_interpolate(x0, n, t), t), n - x0),
        "time reshaped to (B, 1, 1, 1) for the network": lambda m, x0, t, n, labels=None: F.mse_loss(
            m(diffusion.flow_interpolate(x0, n, t), t.reshape(-1, 1, 1, 1), labels), n - x0),
        "computed under no_grad": lambda m, x0, t, n, labels=None: _no_grad(diffusion.flow_matching_loss)(
            m, x0, t, n, labels),
        "prediction detached": lambda m, x0, t, n, labels=None: F.mse_loss(
            m(diffusion.flow_interpolate(x0, n, t), t, labels).detach(), n - x0),
    },
    "guided": {
        "around cond": lambda c, u, w: c + w * (c - u),
        "Ho & Salimans' w": lambda c, u, w: (1 + w) * c - w * u,
        "averages": lambda c, u, w: (c + w * u) / (1 + w),
    },
    "from_eps": {
        "score with the wrong sign": lambda e, x, ab: _from_eps(e, x, ab, score_sign=1),
        "score divided by the variance": lambda e, x, ab: _from_eps(e, x, ab, score_power=1.0),
        "v with the roles swapped": lambda e, x, ab: _from_eps(e, x, ab, v_swapped=True),
        "x0 with variances instead of scales": lambda e, x, ab: _from_eps(e, x, ab, x0_variances=True),
        "only for images (B, C, H, W)": lambda e, x, ab: _from_eps(e, x, ab, image_only=True),
        "returns a list": lambda e, x, ab: list(scores.from_eps(e, x, ab)),
    },
})


def _from_eps(eps, x_t, ab, score_sign=-1, score_power=0.5, v_swapped=False, x0_variances=False, image_only=False):
    a = ab[:, None, None, None] if image_only else ab.reshape(-1, *([1] * (x_t.dim() - 1)))
    x0 = (x_t - (1 - a) * eps) / a if x0_variances else (x_t - (1 - a).sqrt() * eps) / a.sqrt()
    v = (1 - a).sqrt() * x0 - a.sqrt() * eps if v_swapped else a.sqrt() * eps - (1 - a).sqrt() * x0
    return x0, v, score_sign * eps / (1 - a) ** score_power

def _channel_stats(z, dims=(0, 2, 3), inverse=True, unbiased=True):
    mean, std = z.mean(dims), z.std(dims, unbiased=unbiased)
    return mean, (1 / std if inverse else std)


def _topk_ratio(q, r, squared=False, swap=False, farthest=False, indices_of_second=False):
    d = torch.cdist(q, r) ** (2 if squared else 1)
    s = d.sort(1)
    first, second = s.values[:, 0], (s.values[:, -1] if farthest else s.values[:, 1])
    ratio = second / first if swap else first / second
    return (s.indices[:, 1] if indices_of_second else s.indices[:, 0]), ratio


WRONG.update({
    "latent_normalisation": {
        "std instead of 1 / std": lambda z: _channel_stats(z, inverse=False),
        "one number for every channel": lambda z: (z.mean().expand(z.shape[1]), (1 / z.std()).expand(z.shape[1])),
        "statistics per position, not per channel": lambda z: (z.mean((0, 1))[0], 1 / z.std((0, 1))[0]),
        "mean over the images only": lambda z: (z.mean(0).mean((1, 2)), 1 / z.std(0).mean((1, 2))),
        "returns a list": lambda z: list(_channel_stats(z)),
        "scale is 1 / variance": lambda z: (z.mean((0, 2, 3)), 1 / z.var((0, 2, 3))),
    },
    "kl_autoencoder_loss": {
        "sums instead of means": lambda x, xh, mu, lv, b: (lambda r, k: (r + b * k, r, k))(
            (xh - x).pow(2).sum(), 0.5 * (mu.pow(2) + lv.exp() - 1 - lv).sum()),
        "one mean over images and latents": lambda x, xh, mu, lv, b: (lambda r, k: (r + b * k, r, k))(
            (xh - x).pow(2).sum() / (x.numel() + mu.numel()), 0.5 * (mu.pow(2) + lv.exp() - 1 - lv).sum() / (x.numel() + mu.numel())),
        "KL without the ½": lambda x, xh, mu, lv, b: (lambda r, k: (r + b * k, r, k))(
            F.mse_loss(xh, x), (mu.pow(2) + lv.exp() - 1 - lv).mean()),
        "logvar taken as σ²": lambda x, xh, mu, lv, b: (lambda r, k: (r + b * k, r, k))(
            F.mse_loss(xh, x), 0.5 * (mu.pow(2) + lv - 1 - lv.abs().clamp_min(1e-6).log()).mean()),
        "β on the reconstruction": lambda x, xh, mu, lv, b: (lambda r, k: (b * r + k, r, k))(
            F.mse_loss(xh, x), 0.5 * (mu.pow(2) + lv.exp() - 1 - lv).mean()),
        "no β": lambda x, xh, mu, lv, b: (lambda r, k: (r + k, r, k))(
            F.mse_loss(xh, x), 0.5 * (mu.pow(2) + lv.exp() - 1 - lv).mean()),
        "absolute error": lambda x, xh, mu, lv, b: (lambda r, k: (r + b * k, r, k))(
            (xh - x).abs().mean(), 0.5 * (mu.pow(2) + lv.exp() - 1 - lv).mean()),
        "reconstruction detached": lambda x, xh, mu, lv, b: (lambda r, k: (r + b * k, r, k))(
            F.mse_loss(xh.detach(), x), 0.5 * (mu.pow(2) + lv.exp() - 1 - lv).mean()),
        "μ detached in the KL": lambda x, xh, mu, lv, b: (lambda r, k: (r + b * k, r, k))(
            F.mse_loss(xh, x), 0.5 * (mu.detach().pow(2) + lv.exp() - 1 - lv).mean()),
        "only the loss": lambda x, xh, mu, lv, b: latent.kl_autoencoder_loss(x, xh, mu, lv, b)[0],
    },
    "nn_ratio": {
        "squared distances": lambda q, r: _topk_ratio(q, r, squared=True),
        "second over first": lambda q, r: _topk_ratio(q, r, swap=True),
        "nearest over farthest": lambda q, r: _topk_ratio(q, r, farthest=True),
        "index of the second nearest": lambda q, r: _topk_ratio(q, r, indices_of_second=True),
        "only the ratios": lambda q, r: _topk_ratio(q, r)[1],
        "ratio against the nearest of the other queries": lambda q, r: _topk_ratio(q, torch.cat([q, r]))[0:2],
        "distances by broadcasting (N, M, D)": lambda q, r: (lambda d: (d.topk(2, 1, largest=False).indices[:, 0],
                                                                        d.topk(2, 1, largest=False).values[:, 0]
                                                                        / d.topk(2, 1, largest=False).values[:, 1]))(
            (q[:, None] - r[None]).pow(2).sum(-1).sqrt()),
    },
})


def test_every_exercise_has_wrong_answers_to_fail():
    assert set(WRONG) == set(EXERCISES), "add wrong answers here for every new exercise"


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_reference_passes(name, capsys):
    ex = EXERCISES[name]
    fn = EXERCISES[name].check
    assert fn(ex.reference, strict=True) is ex.reference
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize("name,label", [(n, w) for n in sorted(WRONG) for w in WRONG[n]])
def test_wrong_answer_fails(name, label, capsys):
    ex, wrong = EXERCISES[name], WRONG[name][label]
    result = ex.evaluate(wrong)
    assert result.status == "failed", f"{name}: wrong answer '{label}' passed the check"
    assert all(m.startswith("input: ") for m in result.failures)
    # the notebook goes on with the reference, saying so
    assert EXERCISES[name].check(wrong, strict=False) is ex.reference
    out = capsys.readouterr().out
    assert "❌" in out and "reference implementation" in out
    with pytest.raises(ExerciseFailed, match=name):
        EXERCISES[name].check(wrong, strict=True)


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_not_done_returns_reference_or_raises_in_strict_mode(name, capsys, monkeypatch):
    ex = EXERCISES[name]
    assert EXERCISES[name].check(_not_done, strict=False) is ex.reference
    assert "not done yet" in capsys.readouterr().out
    assert ex.evaluate(_not_done).status == "not attempted"
    monkeypatch.setenv("GENIMG_STRICT", "1")
    with pytest.raises(ExerciseFailed):
        EXERCISES[name].check(_not_done)


def test_feedback_is_specific(capsys):
    lesson01.gray_world(WRONG["gray_world"]["drops a dimension"])
    out = capsys.readouterr().out
    assert "expected shape (3, 6, 6), got shape (6, 6)" in out
    lesson01.adjust_contrast(WRONG["adjust_contrast"]["forgot to return"])
    assert "None (did you forget to `return` the result?)" in capsys.readouterr().out
    lesson01.adjust_contrast(WRONG["adjust_contrast"]["in place"])
    assert "changed its input tensor in place" in capsys.readouterr().out
    lesson01.normalize(lambda x, mean=0.5, std=0.5: 1 / 0)
    assert "raised ZeroDivisionError" in capsys.readouterr().out
    # a one-number result (a loss) that is wrong: the value, not an error of the check
    EXERCISES["generator_loss"].check(lambda fake_logits: -torch.log(torch.sigmoid(fake_logits)).mean(), strict=False)
    out = capsys.readouterr().out
    assert "a D that rejects every fake" in out and "expected 200.0000, got inf" in out, out


def test_feedback_names_the_05_loopholes(capsys):
    lesson05.precision_recall(_precision_recall_open)
    out = capsys.readouterr().out
    assert "exactly ρ_3(3)" in out and "use <=, not <" in out and "use the k you are given" not in out
    lesson05.frechet_distance(WRONG["frechet_distance"]["sqrt of the eigenvalues of Σ1Σ2, unclipped"])
    out = capsys.readouterr().out
    assert "singular 16x16" in out and "clip its eigenvalues at 0" in out


def test_compare_tensors_messages():
    e = torch.zeros(2, 3)
    assert compare_tensors(e.clone(), e) is None
    assert "expected shape (2, 3), got shape (3, 2)" in compare_tensors(torch.zeros(3, 2), e)
    got = e.clone()
    got[1, 2] = 0.5
    msg = compare_tensors(got, e)
    assert "1 of 6 positions" in msg and "index (1, 2): expected 0.0000, got 0.5000" in msg
    assert "NaN" in compare_tensors(torch.full((2, 3), float("nan")), e)
    assert "expected a tensor" in compare_tensors([0.0], e)


def test_points_are_declared():
    assert all(isinstance(ex.points, int) and ex.points > 0 for ex in EXERCISES.values())
    assert sum(ex.points for ex in EXERCISES.values() if ex.lesson == "01_preprocessing") == 7
    assert {ex.lesson for ex in EXERCISES.values()} == {"01_preprocessing", "02_mlp_generator", "03_vae",
                                                          "04_gans", "05_evaluation", "06_diffusion",
                                                          "07_your_images"}
    assert sum(ex.points for ex in EXERCISES.values() if ex.lesson == "06_diffusion") == 12
    assert sum(ex.points for ex in EXERCISES.values() if ex.lesson == "07_your_images") == 7


# Answers that hand the whole exercise to a library: they pass every numeric test (the library is
# the check's oracle), so the check must refuse them by name (Exercise.forbidden).
def _tv_adjust_contrast(x, factor):
    from torchvision.transforms.v2 import functional as TF
    return TF.adjust_contrast(x, factor)


def _pil_adjust_contrast(x, factor):
    from PIL import ImageEnhance
    return ImageEnhance.Contrast(x).enhance(factor)


def _tv_autocontrast(x, low=0.0, high=100.0):
    import torchvision
    return torchvision.transforms.v2.functional.autocontrast(x)


def _tv_normalize(x, mean=0.5, std=0.5):
    import torchvision.transforms.functional as TF1
    c = x.shape[-3]
    return TF1.normalize(x, torch.as_tensor(mean).expand(c).tolist(), torch.as_tensor(std).expand(c).tolist())


def _tv_normalize_class(x, mean=0.5, std=0.5):
    from torchvision.transforms import v2
    c = x.shape[-3]
    return v2.Normalize(torch.as_tensor(mean).expand(c).tolist(), torch.as_tensor(std).expand(c).tolist())(x)


def _torch_kl(mu, logvar):
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    return torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1)


def _torch_kl_submodule(mu, logvar):
    from torch.distributions import Normal, kl
    return kl.kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(1)


def _torch_rsample(mu, logvar):
    return torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).rsample()


LIBRARY_ONLY = {
    "adjust_contrast": {"torchvision adjust_contrast": (_tv_adjust_contrast, "TF.adjust_contrast"),
                        "PIL ImageEnhance": (_pil_adjust_contrast, "ImageEnhance.Contrast")},
    "contrast_stretch": {"torchvision autocontrast": (_tv_autocontrast, "autocontrast")},
    "normalize": {"torchvision normalize": (_tv_normalize, "TF1.normalize"),
                  "torchvision Normalize": (_tv_normalize_class, "v2.Normalize"),
                  # a lambda inside a dict: its source cannot be parsed alone, the compiled code is read instead
                  "lambda with TF.normalize": (lambda x, mean=0.5, std=0.5: TF.normalize(x, [mean] * 3, [std] * 3),
                                               "TF.normalize")},
    "kl_divergence": {"torch.distributions": (_torch_kl, "torch.distributions.kl_divergence"),
                      "torch.distributions.kl": (_torch_kl_submodule, "kl.kl_divergence")},
    "reparameterize": {"Normal(...).rsample()": (_torch_rsample, "torch.distributions.Normal")},
}


@pytest.mark.parametrize("name,label", [(n, w) for n in sorted(LIBRARY_ONLY) for w in LIBRARY_ONLY[n]])
def test_library_only_answer_fails_by_name(name, label, capsys):
    ex = EXERCISES[name]
    fn, call = LIBRARY_ONLY[name][label]
    result = ex.evaluate(fn)
    assert result.status == "library used", f"{name}: '{label}' was not refused"
    assert f"`{call}`" in result.failures[0] and "may not be used" in result.failures[0]
    assert EXERCISES[name].check(fn, strict=False) is ex.reference
    out = capsys.readouterr().out
    assert "❌" in out and call in out and "reference implementation" in out
    with pytest.raises(ExerciseFailed, match=name):
        EXERCISES[name].check(fn, strict=True)


def test_without_the_rule_library_answers_would_pass():
    # the loophole the rule closes: torchvision's own functions are the checks' oracles
    for name, fn in [("adjust_contrast", _tv_adjust_contrast), ("normalize", _tv_normalize),
                     ("kl_divergence", _torch_kl), ("reparameterize", _torch_rsample)]:
        assert dataclasses.replace(EXERCISES[name], forbidden=()).evaluate(fn).ok, name


def test_forbidden_matches_objects_not_names():
    def l2_normalize(x, mean=0.5, std=0.5):  # torch.nn.functional.normalize is another function
        return F.normalize(x, dim=-1)

    assert uses_of_forbidden(l2_normalize, EXERCISES["normalize"].forbidden) == []
    assert EXERCISES["normalize"].evaluate(l2_normalize).status == "failed"
    namespace = {"TF": TF}  # a function whose source cannot be read (built by exec)
    exec("def normalize(x, mean=0.5, std=0.5):\n    return TF.normalize(x, [mean] * 3, [std] * 3)\n", namespace)
    assert uses_of_forbidden(namespace["normalize"], EXERCISES["normalize"].forbidden) == [
        ("TF.normalize", "torchvision.transforms.v2.functional.normalize")]


def test_ddim_step_accepts_glides_clipped_epsilon_and_names_it(capsys):
    """ε re-derived from the clipped x̂0 (GLIDE; diffusers' use_clipped_model_output=True) is a right answer: it
    passes, and the check says which variant it is. Without the clip it is still wrong."""
    ex = EXERCISES["ddim_step"]
    result = ex.evaluate(_ddim(recompute=True))
    assert result.ok, result.failures
    assert any("GLIDE" in note for note in result.notes)
    ex.check(_ddim(recompute=True), strict=True)
    assert "use_clipped_model_output" in capsys.readouterr().out
    assert not ex.evaluate(_ddim(clip=False, recompute=True)).ok
    assert ex.evaluate(_ddim()).notes == []  # eq. (5) as written: no note


def test_latent_normalisation_accepts_the_population_standard_deviation_and_says_so(capsys):
    ex = EXERCISES["latent_normalisation"]
    population = lambda z: (z.mean((0, 2, 3)), 1 / z.transpose(0, 1).flatten(1).std(1, correction=0))
    result = ex.evaluate(population)
    assert result.ok, result.failures
    assert any("population standard deviation" in note for note in result.notes)
    assert ex.evaluate(ex.reference).notes == []


def test_nn_ratio_by_matrix_product_passes_the_memory_test():
    """‖q‖² − 2 q·r + ‖r‖² builds only (N, M) and (N or M, D) tensors: right, and as cheap as cdist."""
    def by_matmul(q, r):
        d = ((q * q).sum(1)[:, None] - 2 * q @ r.T + (r * r).sum(1)[None]).clamp_min(0).sqrt()
        two = d.topk(2, 1, largest=False)
        return two.indices[:, 0], two.values[:, 0] / two.values[:, 1]
    result = EXERCISES["nn_ratio"].evaluate(by_matmul)
    assert result.ok, result.failures
    broadcast = EXERCISES["nn_ratio"].evaluate(WRONG["nn_ratio"]["distances by broadcasting (N, M, D)"])
    assert [f for f in broadcast.failures if "GiB" in f and "(N, M, D)" in f], broadcast.failures
