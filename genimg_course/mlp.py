"""Lesson 02: from an MLP to a generator. See 02_mlp_generator.ipynb.

1. ``MLPAutoencoder``: the two-layer MLP x → h → x̂ trained to reproduce its input.
   A good reconstruction, but decoding *random* codes h gives noise: not a generator.
2. ``MLPGenerator``: an MLP from Gaussian noise z to images, trained so that the
   distribution of its samples matches the data's under the kernel MMD (a
   "generative moment-matching network", Li, Swersky & Zemel, 2015). No discriminator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from genimg_course.common.training import Deadline, make_loader, progress


# ----------------------------------------------------------------------------- the MLP
def mlp_forward(x: torch.Tensor, W1: torch.Tensor, b1: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor):
    """Two-layer MLP (eq. 1): h = ReLU(x W1ᵀ + b1), y = h W2ᵀ + b2. x: (B, D_in) → y: (B, D_out)."""
    h = torch.relu(x @ W1.T + b1)  # (B, H)
    return h @ W2.T + b2  # (B, D_out)


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Squared error summed over pixels, averaged over the batch (eq. 2): (1/B) Σ_i ‖x̂_i − x_i‖²."""
    if x_hat.shape != x.shape:
        raise ValueError(f"x_hat has shape {tuple(x_hat.shape)} but x has shape {tuple(x.shape)}")
    return (x_hat - x).pow(2).flatten(1).sum(1).mean()


@dataclass
class AutoencoderConfig:
    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W) of the data
    hidden: int = 64  # width of the hidden layer: the "code" h


class MLPAutoencoder(nn.Module):
    """x (B, C, H, W) → h = ReLU(W1 x + b1) (B, hidden) → x̂ = tanh(W2 h + b2) (B, C, H, W)."""

    family = "mlp-ae"

    def __init__(self, config: AutoencoderConfig | None = None):
        super().__init__()
        self.config = config or AutoencoderConfig()
        c, h, w = self.config.image_shape
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, self.config.hidden), nn.ReLU())
        self.decoder = nn.Sequential(nn.Linear(self.config.hidden, c * h * w), nn.Tanh())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, hidden), every entry >= 0 (ReLU)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(h).view(-1, *self.config.image_shape)  # (B, C, H, W) in (-1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode random codes h ~ |N(0, s²)| with s the typical code size: *not* digits (the lesson's point)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.config.hidden, generator=generator).to(device).abs()
        return self.decode(z * self.code_scale.to(device))  # (n, C, H, W)

    @property
    def code_scale(self) -> torch.Tensor:
        return getattr(self, "_code_scale", torch.tensor(1.0))


def train_autoencoder(model: MLPAutoencoder, images: torch.Tensor, epochs: int, batch_size: int = 64,
                      lr: float = 1e-3, device="cpu", seed: int = 0, max_seconds: float | None = None,
                      progress_bar: bool = True, loss_fn=None) -> dict[str, list[float]]:
    """Minimise the reconstruction loss (eq. 2) with Adam. images: (N, C, H, W) in [-1, 1].

    loss_fn(x_hat, x): the loss to minimise (default ``reconstruction_loss``; the notebook passes yours).
    """
    loss_fn = loss_fn or reconstruction_loss
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loader = make_loader(images, batch_size, seed=seed)
    history, deadline = {"loss": []}, Deadline(max_seconds)
    for _ in progress(range(epochs), "autoencoder", progress_bar):
        for (x,) in loader:
            x = x.to(device)
            loss = loss_fn(model(x), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history["loss"].append(loss.item())
        if deadline.passed():
            break
    model.eval()
    with torch.no_grad():  # remember how large real codes are, for sample()
        model._code_scale = model.encode(images[:512].to(device)).std().cpu()
    return history


# ----------------------------------------------------------------------------- MMD
def gaussian_kernel(x: torch.Tensor, y: torch.Tensor, sigma: float) -> torch.Tensor:
    """k(x, y) = exp(−‖x − y‖² / (2σ²)) for all pairs: x (N, D), y (M, D) → (N, M)."""
    d2 = torch.cdist(x, y).pow(2)  # (N, M) squared distances
    return torch.exp(-d2 / (2 * sigma**2))


def mmd2(x: torch.Tensor, y: torch.Tensor, sigmas=(1.0,)) -> torch.Tensor:
    """Squared MMD with a sum of Gaussian kernels, the biased (V-statistic) estimate (eq. 4):

    MMD² = mean k(x, x') + mean k(y, y') − 2 mean k(x, y),   k = Σ_σ k_σ.

    x: (N, ...) and y: (M, ...) samples, flattened to vectors. Zero iff the samples match
    (for a characteristic kernel, in the limit of many samples).
    """
    x, y = x.flatten(1), y.flatten(1)
    k_xx = sum(gaussian_kernel(x, x, s) for s in sigmas).mean()
    k_yy = sum(gaussian_kernel(y, y, s) for s in sigmas).mean()
    k_xy = sum(gaussian_kernel(x, y, s) for s in sigmas).mean()
    return k_xx + k_yy - 2 * k_xy


def mmd_witness(t: torch.Tensor, x: torch.Tensor, y: torch.Tensor, sigmas=(1.0,)) -> torch.Tensor:
    """The MMD witness function (eq. 5) at the points t: f(t) = mean_i k(t, x_i) − mean_j k(t, y_j).

    t: (T, ...), x: (N, ...), y: (M, ...), flattened to vectors → (T,). Positive where the sample x is
    denser than y, negative where y is. Its mean over x minus its mean over y is MMD²(x, y) (eq. 6).
    """
    t, x, y = t.flatten(1), x.flatten(1), y.flatten(1)
    k_tx = sum(gaussian_kernel(t, x, s) for s in sigmas)  # (T, N)
    k_ty = sum(gaussian_kernel(t, y, s) for s in sigmas)  # (T, M)
    return k_tx.mean(1) - k_ty.mean(1)


def mmd_permutation_test(x: torch.Tensor, y: torch.Tensor, sigmas=(1.0,), permutations: int = 500,
                         generator: torch.Generator | None = None) -> tuple[float, float, torch.Tensor]:
    """MMD² as a two-sample test: returns (MMD², p-value, the MMD² of every shuffled split).

    If x and y come from one distribution, which sample a point is in is arbitrary: shuffling the pooled
    points and splitting them again gives MMD² values as large as the observed one quite often. The
    p-value is the fraction of splits (the observed one included) with MMD² ≥ the observed value.
    """
    pooled = torch.cat([x.flatten(1), y.flatten(1)])  # (N + M, D)
    k = sum(gaussian_kernel(pooled, pooled, s) for s in sigmas)  # (N + M, N + M), computed once
    n = len(x)

    def statistic(order: torch.Tensor) -> torch.Tensor:  # eq. (4) for the split order[:n] | order[n:]
        a, b = order[:n], order[n:]
        return k[a][:, a].mean() + k[b][:, b].mean() - 2 * k[a][:, b].mean()

    observed = statistic(torch.arange(len(pooled)))
    null = torch.stack([statistic(torch.randperm(len(pooled), generator=generator)) for _ in range(permutations)])
    p_value = (1 + (null >= observed).sum().item()) / (1 + permutations)
    return observed.item(), p_value, null


def default_sigmas(dim: int) -> tuple[float, ...]:
    """Kernel widths for images of ``dim`` pixels in [-1, 1]: from a tenth to twice the typical distance."""
    typical = math.sqrt(dim) * 0.6  # roughly the distance between two digits in [-1, 1]
    return tuple(typical * f for f in (0.1, 0.25, 0.5, 1.0, 2.0))


@dataclass
class GeneratorConfig:
    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W) of the data
    z_dim: int = 16  # dimension of the noise z ~ N(0, I)
    hidden: int = 512  # width of the two hidden layers


class MLPGenerator(nn.Module):
    """z (B, z_dim) ~ N(0, I) → MLP → image (B, C, H, W) in (-1, 1)."""

    family = "mlp-mmd"

    def __init__(self, config: GeneratorConfig | None = None):
        super().__init__()
        self.config = cfg = config or GeneratorConfig()
        c, h, w = cfg.image_shape
        self.net = nn.Sequential(
            nn.Linear(cfg.z_dim, cfg.hidden), nn.ReLU(),
            nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(),
            nn.Linear(cfg.hidden, c * h * w), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.config.image_shape)  # (B, C, H, W)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        z = torch.randn(n, self.config.z_dim, generator=generator).to(device)
        return self(z)  # (n, C, H, W) in (-1, 1)


def train_mmd_generator(model: MLPGenerator, images: torch.Tensor, epochs: int, batch_size: int = 256,
                        lr: float = 1e-3, sigmas=None, device="cpu", seed: int = 0,
                        max_seconds: float | None = None, progress_bar: bool = True,
                        mmd_fn=None) -> dict[str, list[float]]:
    """Minimise MMD²(generated batch, real batch) (eq. 4) with Adam. images: (N, C, H, W) in [-1, 1].

    mmd_fn(x, y, sigmas): the MMD² to minimise (default ``mmd2``; the notebook passes yours).
    """
    mmd_fn = mmd_fn or mmd2
    model.to(device).train()
    sigmas = sigmas or default_sigmas(images[0].numel())
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loader = make_loader(images, batch_size, seed=seed, drop_last=len(images) > batch_size)
    g = torch.Generator().manual_seed(seed)
    history, deadline = {"mmd2": []}, Deadline(max_seconds)
    for _ in progress(range(epochs), "MMD generator", progress_bar):
        for (x,) in loader:
            x = x.to(device)
            z = torch.randn(len(x), model.config.z_dim, generator=g).to(device)
            loss = mmd_fn(model(z), x, sigmas)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history["mmd2"].append(loss.item())
        if deadline.passed():
            break
    model.eval()
    return history
