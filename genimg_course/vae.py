"""Lesson 03: the variational autoencoder. See 03_vae.ipynb.

Generative model: z ~ p(z) = N(0, I), x ~ p_θ(x | z) (the decoder).
Inference model: q_φ(z | x) = N(μ_φ(x), diag σ²_φ(x)) (the encoder).
Training maximises the evidence lower bound (ELBO), eq. (1):

    log p_θ(x) ≥ ELBO(x) = E_{z~q}[log p_θ(x | z)] − KL(q_φ(z | x) ‖ p(z))

All log-likelihoods are in **nats per image**. The models work on images in
[0, 1] (Bernoulli: binarized {0, 1}); ``sample()`` returns [-1, 1] like every
generator of the course.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from genimg_course.common.training import (Deadline, StepLog, adam_options, autocast, batches, grad_scaler, maybe_compile,
                                    noise_generator, progress, to_device, use_amp)

LIKELIHOODS = ("bernoulli", "gaussian")


# ----------------------------------------------------------------------------- the three formulas
def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None):
    """z = μ + σ ⊙ ε with ε ~ N(0, I) and σ = exp(½ log σ²) (eq. 3): a sample that gradients flow through."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype,  # (B, Z), drawn where the generator lives
                      device=None if generator is None else generator.device).to(mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ_j (μ_j² + σ_j² − log σ_j² − 1) per example (eq. 4): (B, Z) → (B,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(dim=1)


def log_likelihood(x: torch.Tensor, x_logits: torch.Tensor, likelihood: str = "bernoulli",
                   sigma: float = 0.1) -> torch.Tensor:
    """log p(x | z) summed over pixels, per example (eq. 5): (B, C, H, W) → (B,).

    bernoulli: x ∈ {0, 1}, p = sigmoid(logits): Σ x log p + (1 − x) log(1 − p).
    gaussian:  x ∈ [0, 1], mean = sigmoid(logits), fixed σ: Σ −(x − mean)²/(2σ²) − log(σ√(2π)).
    """
    if likelihood == "bernoulli":
        return -F.binary_cross_entropy_with_logits(x_logits, x, reduction="none").flatten(1).sum(1)
    if likelihood == "gaussian":
        mean = torch.sigmoid(x_logits)
        log_norm = math.log(sigma * math.sqrt(2 * math.pi))
        return (-(x - mean).pow(2) / (2 * sigma**2) - log_norm).flatten(1).sum(1)
    raise ValueError(f"Unknown likelihood {likelihood!r}. Valid likelihoods: {', '.join(LIKELIHOODS)}.")


def elbo(x: torch.Tensor, x_logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
         likelihood: str = "bernoulli", sigma: float = 0.1) -> torch.Tensor:
    """ELBO per example (eq. 1), one-sample estimate: log p(x | z) − KL(q(z | x) ‖ p(z)). Shape (B,)."""
    return log_likelihood(x, x_logits, likelihood, sigma) - kl_divergence(mu, logvar)


def binarize(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] → {0, 1} by thresholding at mid-gray (a fixed, "static" binarization)."""
    return (images > 0).float()


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] → [0, 1]."""
    return (images + 1) / 2


# ----------------------------------------------------------------------------- models
@dataclass
class VAEConfig:
    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W) of the data
    z_dim: int = 20  # latent dimension
    hidden: int = 400  # MLP: width of the hidden layer; conv: width of the dense layer
    channels: int = 32  # conv only: channels of the first conv layer (doubled in the second)
    likelihood: str = "bernoulli"  # decoder: "bernoulli" (binary images) or "gaussian" (gray/colour)
    sigma: float = 0.1  # gaussian only: the decoder's fixed standard deviation, in [0, 1] pixel units


class VAE(nn.Module):
    """What every VAE shares: encode → (μ, log σ²), reparameterise, decode → logits."""

    family = "vae"

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, reparameterize_fn=None):
        """x (B, C, H, W) in [0, 1] → (x_logits (B, C, H, W), μ (B, Z), log σ² (B, Z)).

        reparameterize_fn(mu, logvar): the sampler of eq. (3) to use (default ``reparameterize``;
        the notebook passes the student's). ``generator`` only applies to the default.
        """
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, generator) if reparameterize_fn is None else reparameterize_fn(mu, logvar)
        return self.decode(z), mu, logvar

    def losses(self, x: torch.Tensor, elbo_fn=None, kl_fn=None, reparameterize_fn=None, beta: float = 1.0):
        """(objective, reconstruction, KL), each averaged over the batch, in nats per image.

        reconstruction = −log p(x | z) = −ELBO − KL;  objective = reconstruction + β · KL
        (β = 1: the negative ELBO of eq. 1; β ≠ 1: the β-VAE objective of section 10).
        """
        x_logits, mu, logvar = self(x, reparameterize_fn=reparameterize_fn)
        mu, logvar = mu.float(), logvar.float()
        neg_elbo = -(elbo_fn or elbo)(x, x_logits.float(), mu, logvar, self.config.likelihood, self.config.sigma)
        kl = (kl_fn or kl_divergence)(mu, logvar)  # (B,)
        recon = neg_elbo - kl  # (B,) −log p(x | z)
        return (recon + beta * kl).mean(), recon.mean(), kl.mean()

    def loss(self, x: torch.Tensor, elbo_fn=None) -> torch.Tensor:
        """The negative ELBO averaged over the batch, in nats per image."""
        return self.losses(x, elbo_fn)[0]

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n, C, H, W) in [-1, 1]: the decoder's mean at z ~ N(0, I)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.config.z_dim, generator=generator).to(device)
        return torch.sigmoid(self.decode(z)) * 2 - 1

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's mean at z = μ(x): x (B, C, H, W) in [0, 1] → (B, C, H, W) in [0, 1]."""
        mu, _ = self.encode(x)
        return torch.sigmoid(self.decode(mu))


class MLPVAE(VAE):
    """Encoder x → hidden (ReLU) → (μ, log σ²); decoder z → hidden (ReLU) → logits. Kingma & Welling's."""

    family = "vae"

    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        self.config = cfg = config or VAEConfig()
        d = math.prod(cfg.image_shape)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(d, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 2 * cfg.z_dim))
        self.decoder = nn.Sequential(nn.Linear(cfg.z_dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, d))

    def encode(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=1)  # (B, Z) each
        return mu, logvar

    def decode(self, z):
        return self.decoder(z).view(-1, *self.config.image_shape)  # (B, C, H, W) logits


class ConvVAE(VAE):
    """Two stride-2 convolutions down (H → H/4), a dense bottleneck, two transposed convolutions up."""

    family = "conv-vae"

    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        self.config = cfg = config or VAEConfig(z_dim=16, hidden=256)
        c, h, w = cfg.image_shape
        if h % 4 or w % 4:
            raise ValueError(f"ConvVAE needs H and W divisible by 4, got image_shape={cfg.image_shape}")
        ch, self.low = cfg.channels, (2 * cfg.channels, h // 4, w // 4)
        self.encoder = nn.Sequential(
            nn.Conv2d(c, ch, 4, 2, 1), nn.SiLU(),  # (B, ch, H/2, W/2)
            nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.SiLU(),  # (B, 2ch, H/4, W/4)
            nn.Flatten(), nn.Linear(math.prod(self.low), cfg.hidden), nn.SiLU(),
            nn.Linear(cfg.hidden, 2 * cfg.z_dim),  # (B, 2Z)
        )
        self.decoder_dense = nn.Sequential(
            nn.Linear(cfg.z_dim, cfg.hidden), nn.SiLU(), nn.Linear(cfg.hidden, math.prod(self.low)), nn.SiLU())
        self.decoder_conv = nn.Sequential(
            nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1), nn.SiLU(),  # (B, ch, H/2, W/2)
            nn.ConvTranspose2d(ch, c, 4, 2, 1),  # (B, C, H, W) logits
        )

    def encode(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=1)  # (B, Z) each
        return mu, logvar

    def decode(self, z):
        h = self.decoder_dense(z).view(-1, *self.low)  # (B, 2ch, H/4, W/4)
        return self.decoder_conv(h)


# ----------------------------------------------------------------------------- training
def vae_targets(images: torch.Tensor, likelihood: str) -> torch.Tensor:
    """Dataset images in [-1, 1] → what the decoder models: {0, 1} (bernoulli) or [0, 1] (gaussian)."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"Unknown likelihood {likelihood!r}. Valid likelihoods: {', '.join(LIKELIHOODS)}.")
    return binarize(images) if likelihood == "bernoulli" else to_unit(images)


def train_vae(model: VAE, images: torch.Tensor, epochs: int, batch_size: int = 128, lr: float = 1e-3,
              device="cpu", seed: int = 0, amp: bool = False, max_seconds: float | None = None,
              augment_shift: int = 0, weight_decay: float = 0.0, progress_bar: bool = True, elbo_fn=None,
              kl_fn=None, reparameterize_fn=None, beta: float = 1.0, fast: bool = True, compile: bool = False,
              on_epoch=None):
    """Maximise the ELBO with Adam. images: (N, C, H, W) in [-1, 1].

    Returns a history with one value per step: "loss" (the objective: −ELBO when β = 1),
    "recon" (−log p(x | z)) and "kl" (KL(q(z | x) ‖ p(z))), each in nats per image.
    augment_shift: shift each training image by up to this many pixels (a regulariser for
    small datasets such as ``digits``, whose 1,437 images an unregularised VAE soon memorises).
    elbo_fn, kl_fn, reparameterize_fn: the formulas to use (default: this module's; the notebook
    passes the student's). beta: the weight of the KL term (1: the ELBO).
    batch_size: 128 on a GPU too (the zoo passes the profile's), not more: the lessons train for a number
    of epochs, and a larger batch at the same learning rate makes fewer updates per epoch.
    fast: on CUDA, keep the images, the noise and each step's numbers on the GPU (see the end of
    ``training.py``); the same steps, without waiting for the GPU every step. No effect elsewhere.
    compile: on CUDA, run the model's losses through ``torch.compile`` (off by default: compiling
    takes a while at the start of every run). No effect elsewhere.
    on_epoch: called as ``on_epoch(epochs_done, model)`` after each epoch (``benchmarks/vae_curve.py`` scores
    the model there; the call may switch it to eval mode, training resumes in train mode).
    """
    device = torch.device(device)
    amp = use_amp(device, amp)
    conv = isinstance(model, ConvVAE)
    to_device(model, device, channels_last=conv).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, **adam_options(device, fast))
    scaler = grad_scaler(amp)
    x_all = vae_targets(images, model.config.likelihood)
    loader = batches((x_all,), batch_size, device, seed=seed, fast=fast)
    g = noise_generator(device, seed, fast)
    if reparameterize_fn is None and g.device.type == "cuda":  # ε from the seeded GPU generator too
        reparameterize_fn = functools.partial(reparameterize, generator=g)
    losses = maybe_compile(model.losses, device, compile)  # the model itself stays uncompiled (checkpoints)
    history, deadline = {"loss": [], "recon": [], "kl": []}, Deadline(max_seconds)
    log = StepLog(history, every=StepLog.every_for(device, fast))
    for epoch in progress(range(epochs), f"{type(model).__name__}", progress_bar):
        for (x,) in loader:
            if augment_shift:
                x = random_shift(x, augment_shift, g)
            x = x.to(device, memory_format=torch.channels_last if conv and device.type == "cuda" else torch.contiguous_format)
            with autocast(device, amp):
                loss, recon, kl = losses(x, elbo_fn, kl_fn, reparameterize_fn, beta)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            log.add(loss=loss, recon=recon, kl=kl)
            if deadline.passed():
                break
        if on_epoch is not None:
            log.flush()
            on_epoch(epoch + 1, model)
            model.train()
        if deadline.passed():
            break
    log.flush()
    model.eval()
    return history


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels (zero padding): (B, C, H, W) → same."""
    b, _, h, w = x.shape
    padded = F.pad(x, [max_shift] * 4)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator,
                           device=None if generator is None else generator.device).to(x.device)
    # image i is padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]; all at once, by indexing (one kernel on a GPU)
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (B, H) rows of the padded images
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_elbo(model: VAE, images: torch.Tensor, batch_size: int = 256, seed: int = 0) -> float:
    """Mean test ELBO in nats per image (one z sample per image). images in [-1, 1]."""
    model.eval()
    device = next(model.parameters()).device
    x_all = vae_targets(images, model.config.likelihood)
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for x in x_all.split(batch_size):
        x = x.to(device)
        x_logits, mu, logvar = model(x, generator=g)
        total += elbo(x, x_logits.float(), mu, logvar, model.config.likelihood, model.config.sigma).sum().item()
    return total / len(x_all)


@torch.no_grad()
def iwae_log_likelihood(model: VAE, x: torch.Tensor, k: int = 100, generator: torch.Generator | None = None):
    """Importance-weighted estimate of log p(x) (Burda et al., 2016, eq. 6), per example: (B,).

    log p(x) ≈ log (1/k) Σ_j p(x | z_j) p(z_j) / q(z_j | x),  z_j ~ q(z | x).
    A lower bound that tightens as k grows (k = 1 is the ELBO). x: targets in [0, 1].
    """
    return torch.logsumexp(log_weights(model, x, k, generator), dim=0) - math.log(k)


@torch.no_grad()
def evaluate_nll(model: VAE, images: torch.Tensor, k: int = 100, batch_size: int = 32, seed: int = 0) -> float:
    """Test negative log-likelihood in nats per image, −mean IWAE estimate with k samples. images in [-1, 1]."""
    model.eval()
    device = next(model.parameters()).device
    x_all = vae_targets(images, model.config.likelihood)
    g = torch.Generator().manual_seed(seed)
    total = sum(iwae_log_likelihood(model, x.to(device), k, g).sum().item() for x in x_all.split(batch_size))
    return -total / len(x_all)


def bits_per_dim(nats_per_image: float, image_shape) -> float:
    """nats per image → bits per pixel value: nats / (D · ln 2)."""
    return nats_per_image / (math.prod(image_shape) * math.log(2))


@torch.no_grad()
def interpolate(model: VAE, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """Decode the straight line between μ(x_a) and μ(x_b): (steps, C, H, W) in [-1, 1]. x in [0, 1]."""
    mu_a, _ = model.encode(x_a[None])
    mu_b, _ = model.encode(x_b[None])
    t = torch.linspace(0, 1, steps, device=mu_a.device).view(-1, 1)  # (steps, 1)
    return torch.sigmoid(model.decode((1 - t) * mu_a + t * mu_b)) * 2 - 1


# ----------------------------------------------------------------------------- looking inside: the gap, active units
@torch.no_grad()
def log_weights(model: VAE, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """log w_j = log p(x | z_j) + log p(z_j) − log q(z_j | x), z_j ~ q(z | x): (k, B). x: targets in [0, 1].

    Their mean over j is the ELBO (eq. 1); log of their mean is the IWAE bound (eq. 6).
    """
    mu, logvar = model.encode(x)  # (B, Z)
    b, zd = mu.shape
    std = torch.exp(0.5 * logvar)
    eps = torch.randn(k, b, zd, generator=generator).to(x.device)  # (k, B, Z)
    z = mu + std * eps  # (k, B, Z)
    log_q = (-0.5 * eps.pow(2) - 0.5 * logvar - 0.5 * math.log(2 * math.pi)).sum(-1)  # (k, B)
    log_prior = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1)  # (k, B)
    x_logits = model.decode(z.reshape(k * b, zd)).float()  # (k·B, C, H, W)
    x_rep = x.unsqueeze(0).expand(k, *x.shape).reshape(k * b, *x.shape[1:])
    log_px_z = log_likelihood(x_rep, x_logits, model.config.likelihood, model.config.sigma).view(k, b)
    return log_px_z + log_prior - log_q  # (k, B)


@torch.no_grad()
def log_marginal_grid(model: VAE, x: torch.Tensor, limit: float = 4.0, steps: int = 161):
    """log p(x) = log ∫ p(x | z) p(z) dz by a Riemann sum over a grid, for a 2-D latent and a Bernoulli decoder.

    x: binary targets (B, C, H, W). Returns (log p(x) (B,), log p(z | x) on the grid (B, steps, steps),
    the grid's coordinates (steps,)). Row i, column j of the grid is z = (axis[j], axis[i]).
    Exact up to the grid: fine when its spacing is below the posterior's standard deviation.
    """
    if model.config.z_dim != 2 or model.config.likelihood != "bernoulli":
        raise ValueError("log_marginal_grid needs z_dim=2 and a Bernoulli decoder, got "
                         f"z_dim={model.config.z_dim}, likelihood={model.config.likelihood!r}")
    device = next(model.parameters()).device
    axis = torch.linspace(-limit, limit, steps)
    zy, zx = torch.meshgrid(axis, axis, indexing="ij")
    z = torch.stack([zx, zy], dim=-1).view(-1, 2).to(device)  # (G, 2), G = steps²
    # log p(x | z) = Σ_d x_d ℓ_d − softplus(ℓ_d) (eq. 5a): decode the grid once, then one matrix product per batch
    logits, softplus_sum = [], []
    for zc in z.split(4096):
        ell = model.decode(zc).float().flatten(1)  # (g, D)
        logits.append(ell)
        softplus_sum.append(F.softplus(ell).sum(1))
    logits, softplus_sum = torch.cat(logits), torch.cat(softplus_sum)  # (G, D), (G,)
    log_px_z = x.to(device).flatten(1).float() @ logits.T - softplus_sum  # (B, G)
    log_prior = -0.5 * z.pow(2).sum(1) - math.log(2 * math.pi)  # (G,)
    log_cell = 2 * math.log(axis[1] - axis[0])  # log of each cell's area
    log_joint = log_px_z + log_prior + log_cell  # (B, G)
    log_px = torch.logsumexp(log_joint, dim=1)  # (B,)
    posterior = (log_joint - log_px[:, None] - log_cell).view(-1, steps, steps)  # log density (B, steps, steps)
    return log_px.cpu(), posterior.cpu(), axis


@torch.no_grad()
def encode_all(model: VAE, images: torch.Tensor, batch_size: int = 256):
    """μ(x) and log σ²(x) of every image (in [-1, 1]): (N, Z) each."""
    model.eval()
    device = next(model.parameters()).device
    x_all = vae_targets(images, model.config.likelihood)
    mus, logvars = zip(*(model.encode(x.to(device)) for x in x_all.split(batch_size)))
    return torch.cat(mus).float().cpu(), torch.cat(logvars).float().cpu()


def kl_per_dimension(model: VAE, images: torch.Tensor) -> torch.Tensor:
    """Mean over images of each latent dimension's share of eq. (4): (Z,); the shares sum to the mean KL."""
    mu, logvar = encode_all(model, images)
    return (0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)).mean(0)


def latent_activity(model: VAE, images: torch.Tensor) -> torch.Tensor:
    """A_j = Var_x(μ_j(x)), how far a dimension's code moves across images: (Z,).

    Burda et al. (2016) call dimension j *active* when A_j > 0.01; an inactive one has
    q(z_j | x) ≈ p(z_j) for every x: the decoder ignores it (posterior collapse).
    """
    mu, _ = encode_all(model, images)
    return mu.var(0)


def count_parameters(model: nn.Module) -> int:
    """The number of trainable numbers in a model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
