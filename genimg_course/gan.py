"""Lesson 04: generative adversarial networks. See 04_gans.ipynb.

A generator G maps noise z ~ N(0, I) to images; a discriminator D maps images to a
logit, "how real does this look". They are trained against each other (Goodfellow et
al., 2014):

    D maximises  E_x[log σ(D(x))] + E_z[log(1 − σ(D(G(z))))]
    G maximises  E_z[log σ(D(G(z)))]            (the "non-saturating" generator loss)

Everything here is the reference for the lesson's exercises (losses, one training step,
the EMA update, the conditional input) plus what a modern practitioner adds to DCGAN
(Radford et al., 2016): the hinge loss, spectral normalisation, the R1 penalty,
differentiable augmentation and an exponential moving average of the generator.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from genimg_course.common.training import (Deadline, StepLog, adam_options, batches, class_labels, maybe_compile,
                                    noise_generator, progress)

LOSSES = ("bce", "hinge")
AUGMENTATIONS = ("color", "translation", "cutout")
UPSAMPLING = ("transposed", "nearest")


# ----------------------------------------------------------------------------- losses
def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE loss of D: −log σ(D(x)) − log(1 − σ(D(G(z)))), averaged; −log σ(t) = softplus(−t)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating loss of G: −log σ(D(G(z))), averaged (steep where D rejects the fakes)."""
    return F.softplus(-fake_logits).mean()


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge loss of D (Lim & Ye 2017; Miyato et al. 2018): max(0, 1 − D(x)) + max(0, 1 + D(G(z)))."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge loss of G: −D(G(z))."""
    return -fake_logits.mean()


def losses(name: str):
    """(discriminator loss, generator loss) of a loss name: 'bce' or 'hinge'."""
    if name == "bce":
        return discriminator_loss, generator_loss
    if name == "hinge":
        return hinge_discriminator_loss, hinge_generator_loss
    raise ValueError(f"Unknown GAN loss {name!r}. Valid losses: {', '.join(LOSSES)}.")


def r1_penalty(real: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E‖∇_x D(x)‖² on real images; ``real`` must require grad."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN critic (Arjovsky et al. 2017): minimise E[f(G(z))] − E[f(x)], i.e. maximise the gap whose
    supremum over 1-Lipschitz f is the Wasserstein-1 distance (Kantorovich–Rubinstein duality)."""
    return fake_scores.mean() - real_scores.mean()


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E(‖∇_x̂ f(x̂)‖ − 1)² at random points x̂ on the segments
    between real and fake samples: a soft version of "f is 1-Lipschitz". real, fake: (B, ...)."""
    shape = (len(real),) + (1,) * (real.dim() - 1)  # one mixing weight per sample
    eps = torch.rand(shape, generator=generator).to(real.device, real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def conv_operator_norm(layer: nn.Module, input_shape: tuple, iters: int = 100,
                       generator: torch.Generator | None = None) -> float:
    """The largest singular value of a (strided) convolution as a linear map on images of
    ``input_shape`` (C, H, W), by power iteration on the map itself: v ← Aᵀ A v, where Aᵀ u is
    the gradient of ⟨A v, u⟩ with respect to v. The bias is left out (it does not change a slope).

    Spectral normalisation divides the weight by σ_max of the *matrix* W reshaped to
    (C_out, C_in · k · k); this measures what that leaves of the convolution's own norm.
    """
    def linear(x):  # A x: the layer without its bias
        return F.conv2d(x, layer.weight, None, layer.stride, layer.padding, layer.dilation, layer.groups)

    v = torch.randn(1, *input_shape, generator=generator).to(layer.weight.device)
    with torch.enable_grad():
        for _ in range(iters):
            v = (v / v.norm()).detach().requires_grad_(True)
            u = linear(v)  # (1, C_out, H', W')
            (v,) = torch.autograd.grad(u, v, grad_outputs=u)  # Aᵀ A v
    v = v / v.norm()
    with torch.no_grad():
        return float(linear(v).norm())


# ----------------------------------------------------------------------------- one step, EMA, conditioning
def train_step(G: nn.Module, D: nn.Module, opt_g, opt_d, real: torch.Tensor, z: torch.Tensor,
               d_loss_fn=discriminator_loss, g_loss_fn=generator_loss) -> tuple[float, float]:
    """One alternating step: update D on real vs G(z) (detached), then G through the updated D.

    Returns (loss_d, loss_g) as floats.
    """
    fake = G(z)
    loss_d = d_loss_fn(D(real), D(fake.detach()))  # detach: this step must not move G
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    loss_g = g_loss_fn(D(fake))  # gradients flow through D (not updated now) into G
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return loss_d.item(), loss_g.item()


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """θ_ema ← decay · θ_ema + (1 − decay) · θ for every parameter; buffers (BatchNorm
    statistics, spectral-norm vectors) are copied. In place; returns None."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p, 1 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def conditional_input(z: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """The conditional generator's input: [z, one_hot(label)]: (B, Z), (B,) → (B, Z + K)."""
    return torch.cat([z, F.one_hot(labels.long(), n_classes).to(z.dtype)], dim=1)


# ----------------------------------------------------------------------------- differentiable augmentation
def diff_augment(x: torch.Tensor, policy: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """DiffAugment (Zhao et al. 2020): the same random, differentiable transforms on real and fake
    images before D sees them, so D cannot memorise a small training set. x: (B, C, H, W).

    policy: comma-separated subset of 'color', 'translation', 'cutout' ('' = none).
    Written here because torchvision's transforms draw one random setting per call (not per
    image) and are not meant to be differentiated through.
    """
    names = [p for p in policy.split(",") if p]
    unknown = set(names) - set(AUGMENTATIONS)
    if unknown:
        raise ValueError(f"Unknown augmentation {sorted(unknown)}. Valid: {', '.join(AUGMENTATIONS)}.")
    b, c, h, w = x.shape

    def rand(*shape):  # drawn where the generator lives (the GPU's: no copy from the host)
        return torch.rand(*shape, generator=generator,
                          device=None if generator is None else generator.device).to(x.device, x.dtype)

    if "color" in names:
        x = x + (rand(b, 1, 1, 1) - 0.5)  # brightness
        if c > 1:
            mean = x.mean(dim=1, keepdim=True)
            x = (x - mean) * (rand(b, 1, 1, 1) * 2) + mean  # saturation
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (rand(b, 1, 1, 1) + 0.5) + mean  # contrast
    if "translation" in names:
        s = max(1, round(h * 0.125))
        shift = (rand(2, b) * (2 * s + 1)).long().clamp(max=2 * s)  # (2, B) in 0..2s
        rows = torch.arange(h, device=x.device)[None] + shift[0][:, None]  # (B, H) rows of the padded image
        cols = torch.arange(w, device=x.device)[None] + shift[1][:, None]  # (B, W)
        padded = F.pad(x, [s, s, s, s])
        batch = torch.arange(b, device=x.device)[:, None, None]
        x = padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B, C, H, W)
    if "cutout" in names:
        ch, cw = h // 2, w // 2  # a square of half the image's side, anywhere (partly outside is fine)
        top = ((rand(b) * (h + 1 - ch % 2)).long() - ch // 2)[:, None, None]
        left = ((rand(b) * (w + 1 - cw % 2)).long() - cw // 2)[:, None, None]
        yy = torch.arange(h, device=x.device)[None, :, None]
        xx = torch.arange(w, device=x.device)[None, None, :]
        inside = (yy >= top) & (yy < top + ch) & (xx >= left) & (xx < left + cw)  # (B, H, W)
        x = x * (~inside).unsqueeze(1).to(x.dtype)
    return x


# ----------------------------------------------------------------------------- the 2-D toy
def ring_of_gaussians(n: int, modes: int = 8, radius: float = 2.0, std: float = 0.05,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """n points from a mixture of ``modes`` Gaussians evenly spaced on a circle: (n, 2)."""
    k = torch.randint(0, modes, (n,), generator=generator)
    angle = 2 * math.pi * k / modes
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return centres + std * torch.randn(n, 2, generator=generator)


def ring_centres(modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    angle = 2 * math.pi * torch.arange(modes) / modes
    return radius * torch.stack([angle.cos(), angle.sin()], dim=1)  # (modes, 2)


def mode_coverage(points: torch.Tensor, modes: int = 8, radius: float = 2.0, std: float = 0.05,
                  min_share: float = 0.01) -> tuple[int, float]:
    """(modes with at least ``min_share`` of the points within 4σ, fraction of points within 4σ of any mode)."""
    d = torch.cdist(points.float(), ring_centres(modes, radius))  # (n, modes)
    nearest, which = d.min(dim=1)
    good = nearest < 4 * std
    counts = torch.bincount(which[good], minlength=modes)
    return int((counts >= min_share * len(points)).sum()), float(good.float().mean())


def spread(points: torch.Tensor) -> float:
    """Root-mean-square distance of the points (n, 2) from their mean: about 2.0 for the ring (its
    radius), about 0.07 for one of its modes (σ√2), and 0 when every sample is the same point."""
    return float((points.float() - points.float().mean(0)).pow(2).sum(1).mean().sqrt())


def modes_held(points: torch.Tensor, share: float = 0.1, modes: int = 8, std: float = 0.05) -> list[int]:
    """The modes that hold at least ``share`` of the points (within 4σ of the centre), by index 0–7
    counted anticlockwise from (2, 0): which modes a collapsed generator is sitting on."""
    d = torch.cdist(points.float(), ring_centres(modes))
    nearest, which = d.min(dim=1)
    counts = torch.bincount(which[nearest < 4 * std], minlength=modes)
    return [int(i) for i in torch.nonzero(counts >= share * len(points)).flatten()]


def toy_mlp(n_in: int, n_out: int, hidden: int = 128, depth: int = 3) -> nn.Sequential:
    """An MLP for the 2-D toy: (B, n_in) → (B, n_out), or (B,) logits when n_out = 1 (a discriminator)."""
    layers, width = [], n_in
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    if n_out == 1:
        layers.append(nn.Flatten(0))  # (B, 1) → (B,)
    return nn.Sequential(*layers)


def train_toy_gan(G: nn.Module, D: nn.Module, steps: int, batch_size: int = 256, z_dim: int = 2, lr: float = 1e-3,
                  betas=(0.5, 0.999), r1_gamma: float = 0.0, snapshot_every: int = 0, seed: int = 0,
                  d_loss_fn=discriminator_loss, g_loss_fn=generator_loss, d_steps: int = 1, g_steps: int = 1,
                  lr_d: float | None = None, progress_bar: bool = True) -> dict:
    """Train a GAN on ``ring_of_gaussians`` (D returns (B,) logits): each step makes ``d_steps`` D updates,
    then ``g_steps`` G updates (each on fresh noise). ``lr_d`` is D's learning rate (default: ``lr``).

    Returns the history: losses, D's verdicts (see ``_log``), ``grad_g`` (the norm of the gradient of
    G's loss with respect to G's parameters, after the step's last G update) and, every
    ``snapshot_every`` steps if > 0, (step, G's samples for 1,000 fixed z).
    """
    for name, value in (("steps", steps), ("batch_size", batch_size), ("d_steps", d_steps), ("g_steps", g_steps)):
        if int(value) != value or value < (0 if name == "steps" else 1):
            raise ValueError(f"train_toy_gan: {name} must be a whole number ≥ {0 if name == 'steps' else 1}, "
                             f"got {value!r}")
    g = torch.Generator().manual_seed(seed)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr if lr_d is None else lr_d, betas=betas)
    z_fixed = torch.randn(1000, z_dim, generator=g)
    history = {"loss_d": [], "loss_g": [], "d_real": [], "d_fake": [], "logit_real": [], "logit_fake": [],
               "grad_g": [], "snapshots": []}
    for step in progress(range(steps + 1), "toy GAN", progress_bar):
        if snapshot_every and step % snapshot_every == 0:
            with torch.no_grad():
                history["snapshots"].append((step, G(z_fixed)))
        if step == steps:
            break
        for _ in range(d_steps):
            real = ring_of_gaussians(batch_size, generator=g).requires_grad_(r1_gamma > 0)
            z = torch.randn(batch_size, z_dim, generator=g)
            fake = G(z)
            real_logits, fake_logits = D(real), D(fake.detach())
            loss_d = d_loss_fn(real_logits, fake_logits)
            if r1_gamma > 0:
                loss_d = loss_d + r1_gamma / 2 * r1_penalty(real, real_logits)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        for k in range(g_steps):
            if k:  # the first G update reuses the fakes D just saw; later ones draw new noise
                fake = G(torch.randn(batch_size, z_dim, generator=g))
            loss_g = g_loss_fn(D(fake))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            if k == g_steps - 1:
                history["grad_g"].append(math.sqrt(sum(p.grad.pow(2).sum().item() for p in G.parameters()
                                                       if p.grad is not None)))  # ‖∇_θ L_G‖
            opt_g.step()
        _log(history, loss_d, loss_g, real_logits, fake_logits)
    return history


@torch.no_grad()
def decision_surface(D: nn.Module, lim: float = 3.0, n: int = 100):
    """D's probability σ(D(x)) on an n × n grid over [−lim, lim]²: (xs, ys, probs (n, n))."""
    xs = torch.linspace(-lim, lim, n)
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="xy"), dim=-1).reshape(-1, 2)  # (n², 2)
    return xs, xs, torch.sigmoid(D(grid)).reshape(n, n)


def _log(history, loss_d, loss_g, real_logits, fake_logits):
    """Losses, and D's verdicts read from the sign of its logits, which means "real" under both the
    BCE and the hinge loss: d_real / d_fake = the fraction of real / generated images that D calls
    real (logit > 0); logit_real / logit_fake = the mean raw logits. σ(logit) is D's probability of
    "real" only under BCE: the hinge loss does not train D to be a calibrated classifier."""
    for key, value in dict(loss_d=loss_d, loss_g=loss_g, **verdicts(real_logits, fake_logits)).items():
        history[key].append(value.item())


def verdicts(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict:
    """D's verdicts of one step as 0-d tensors (see ``_log``): d_real, d_fake, logit_real, logit_fake."""
    real_logits, fake_logits = real_logits.detach().float(), fake_logits.detach().float()
    return {"d_real": (real_logits > 0).float().mean(),  # D(x) > 0: "real"
            "d_fake": (fake_logits > 0).float().mean(),  # D(G(z)) > 0: fooled
            "logit_real": real_logits.mean(), "logit_fake": fake_logits.mean()}


# ----------------------------------------------------------------------------- exploring a trained G
def truncated_noise(n: int, z_dim: int, threshold: float | None, generator: torch.Generator | None = None
                    ) -> torch.Tensor:
    """z ~ N(0, I) with every entry of magnitude above ``threshold`` drawn again (the truncation
    trick of BigGAN, Brock et al. 2019): (n, z_dim). None: no truncation."""
    z = torch.randn(n, z_dim, generator=generator)
    if threshold is None:
        return z
    if threshold <= 0:
        raise ValueError(f"threshold must be positive (or None), got {threshold}")
    while True:
        outside = z.abs() > threshold
        if not outside.any():
            return z
        z[outside] = torch.randn(int(outside.sum()), generator=generator)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between noise vectors z0, z1 (Z,) at fractions t (T,): (T, Z).

    A straight line between two Gaussian vectors passes through short vectors that N(0, I)
    almost never draws in many dimensions (‖z‖ ≈ √Z); the arc keeps the norm (White 2016)."""
    omega = torch.arccos(torch.clamp(F.cosine_similarity(z0, z1, dim=0), -1 + 1e-7, 1 - 1e-7))  # the angle
    t = t[:, None]
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


# ----------------------------------------------------------------------------- DCGAN
@dataclass
class GANConfig:
    """A DCGAN and the recipe it is trained with (saved in its checkpoint).

    The defaults are the lesson's recipe, chosen by measuring FID at equal wall time on 2 CPU
    cores (benchmarks/bench_gan.py, benchmarks/gan_ablation.py): narrow networks, 5 × 5 kernels
    in D, hinge loss and spectral norm with two time-scale learning rates, batch 32 on a CPU, and
    a moving average of G. ``TUTORIAL_RECIPE`` is the PyTorch DCGAN tutorial's.
    """

    image_shape: tuple = (1, 28, 28)
    z_dim: int = 64
    width: int = 32  # channels of D's first layer (and G's last hidden layer); doubled per resolution
    n_classes: int = 0  # > 0: a class-conditional GAN
    d_kernel: int = 5  # D's convolutions: k × k, stride 2, padding (k−1)//2 (the PyTorch tutorial's: 4)
    loss: str = "hinge"  # 'bce' (non-saturating) or 'hinge'
    spectral_norm: bool = True  # on every layer of D
    d_batchnorm: bool = False  # BatchNorm in D (the original DCGAN); clashes with spectral norm and R1
    ema_decay: float = 0.99  # 0: no moving average of G
    augment: str = ""  # DiffAugment policy, e.g. 'translation,cutout' ('' = none)
    r1_gamma: float = 0.0
    upsample: str = "transposed"  # G's ×2 layers: 'transposed' (DCGAN) or 'nearest' (resize, then 3×3 conv)
    lr_g: float = 4e-4  # two time-scales (Heusel et al. 2017): D learns twice as fast as G
    lr_d: float = 8e-4
    betas: tuple = (0.0, 0.99)  # no first-moment momentum, as in SNGAN / BigGAN

    def __post_init__(self):
        losses(self.loss)  # raises on an unknown loss
        if self.d_kernel not in (3, 4, 5, 6, 7):
            raise ValueError(f"d_kernel must be 3, 4, 5, 6 or 7 (a k × k stride-2 convolution), got {self.d_kernel!r}")
        if self.upsample not in UPSAMPLING:
            raise ValueError(f"Unknown upsample {self.upsample!r}. Valid: {', '.join(UPSAMPLING)}.")
        diff_augment(torch.zeros(1, 1, 8, 8), self.augment)  # raises on an unknown policy
        c, h, w = self.image_shape
        if h != w or _n_up(h) < 2:
            raise ValueError(f"image_shape must be square with sides like 28, 32 or 64; got {tuple(self.image_shape)}")


# The PyTorch DCGAN tutorial's recipe: BCE, Adam(2e-4, β1 = 0.5), BatchNorm in both nets, no EMA.
TUTORIAL_RECIPE = dict(loss="bce", spectral_norm=False, d_batchnorm=True, d_kernel=4, ema_decay=0.0, augment="",
                       r1_gamma=0.0, upsample="transposed", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999))


def batch_size_for(device) -> int:
    """The lesson's batch size: 32 on a CPU (more, noisier steps per second beat fewer, cleaner ones
    there), 128 on a GPU (which computes 128 images about as fast as 32)."""
    # Not more on a GPU, although 256 would cost about the same time per step and this recipe (hinge,
    # spectral norm, TTUR) usually needs no new learning rate up to 256-512: the lessons train for a
    # number of epochs, and doubling the batch halves the updates per epoch (11 per epoch on `digits`
    # at 128); the EMA's warm-up and decay count updates too. benchmarks/bench_gpu_throughput.py --batch
    # measures the speed of a larger batch; its quality has to be measured (bench_gan.py) before a change.
    return 32 if torch.device(device).type == "cpu" else 128


def _n_up(size: int) -> int:
    """How many ×2 upsamplings reach ``size`` from a base of 4–7 pixels (28: 7→14→28; 32: 4→8→16→32)."""
    n = 0
    while size % 2 == 0 and size // 2 >= 4:
        size, n = size // 2, n + 1
    return n


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights ~ N(0, 0.02²) (standard deviation 0.02), BatchNorm γ ~ N(1, 0.02²), β = 0.

    Spectral-normalised layers keep PyTorch's default: W / σ_max(W) does not depend on W's scale.
    """
    if torch.nn.utils.parametrize.is_parametrized(module):
        return
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z (B, Z) [+ one-hot label] → Linear → (B, 2^(n−1)·w, s, s) → n × [ConvT ×2, BN, ReLU] → tanh."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        c, h, _ = cfg.image_shape
        n = _n_up(h)
        self.n_classes, self.base = cfg.n_classes, h >> n
        self.conditional_input = conditional_input  # [z, onehot(y)]; ConditionalGAN.use_conditional_input swaps it
        ch = cfg.width * 2 ** (n - 1)
        self.ch = ch
        self.project = nn.Linear(cfg.z_dim + cfg.n_classes, ch * self.base**2, bias=False)
        self.bn0 = nn.BatchNorm2d(ch)
        def up(ch_in, ch_out, bias):  # ×2: (B, ch_in, s, s) → (B, ch_out, 2s, 2s)
            if cfg.upsample == "transposed":
                return [nn.ConvTranspose2d(ch_in, ch_out, 4, 2, 1, bias=bias)]
            # resize-convolution (Odena et al. 2016): no checkerboard pattern from uneven kernel overlap
            return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch_in, ch_out, 3, 1, 1, bias=bias)]

        blocks = []
        for _ in range(n - 1):
            blocks += [*up(ch, ch // 2, False), nn.BatchNorm2d(ch // 2), nn.ReLU()]
            ch //= 2
        blocks += [*up(ch, c, True), nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)
        self.apply(init_weights)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_classes:
            if labels is None:
                raise ValueError(f"this generator is conditional: pass labels (B,) in 0..{self.n_classes - 1}")
            z = self.conditional_input(z, labels, self.n_classes)  # (B, Z + K)
        h = self.project(z).view(-1, self.ch, self.base, self.base)  # (B, ch, s, s)
        return self.blocks(F.relu(self.bn0(h)))  # (B, C, H, W) in [-1, 1]


class Discriminator(nn.Module):
    """(B, C, H, W) → n × [Conv k×k ×½, (BN), LeakyReLU 0.2] → Linear → logit (B,).

    Conditional: a *projection* discriminator (Miyato & Koyama 2018), logit = ψ(φ(x)) + ⟨e_y, φ(x)⟩.
    """

    def __init__(self, cfg: GANConfig):
        super().__init__()
        c, h, _ = cfg.image_shape
        n = _n_up(h)
        sn = _spectral_norm if cfg.spectral_norm else (lambda m: m)
        layers, ch_in, ch = [], c, cfg.width
        for i in range(n):
            k = cfg.d_kernel  # padding (k−1)//2 halves the size for every k: 28 → 14 → 7, 32 → 16 → 8 → 4
            layers.append(sn(nn.Conv2d(ch_in, ch, k, 2, (k - 1) // 2, bias=not cfg.d_batchnorm or i == 0)))
            if cfg.d_batchnorm and i > 0:  # DCGAN: no BatchNorm on D's input layer
                layers.append(nn.BatchNorm2d(ch))
            layers.append(nn.LeakyReLU(0.2))
            ch_in, ch = ch, ch * 2
        self.features = nn.Sequential(*layers, nn.Flatten())  # φ(x): (B, ch_in · s²)
        dim = ch_in * (h >> n) ** 2
        self.head = sn(nn.Linear(dim, 1))
        self.embed = sn(nn.Embedding(cfg.n_classes, dim)) if cfg.n_classes else None
        self.apply(init_weights)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None and labels is None:
            raise ValueError("this discriminator is conditional: pass the labels of the images")
        phi = self.features(x)  # (B, D)
        logit = self.head(phi).squeeze(1)  # (B,)
        if self.embed is not None:
            logit = logit + (self.embed(labels) * phi).sum(1)
        return logit


class DCGAN(nn.Module):
    """Generator, discriminator and (if ``ema_decay`` > 0) the moving average of the generator."""

    family = "dcgan"

    def __init__(self, config: GANConfig | None = None):
        super().__init__()
        self.config = config or GANConfig()
        self.generator = Generator(self.config)
        self.discriminator = Discriminator(self.config)
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False) if self.config.ema_decay else None

    @property
    def sampler(self) -> nn.Module:
        """The generator used for samples: the moving average when there is one."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels=None) -> torch.Tensor:
        """n images (n, C, H, W) in [-1, 1]; ``labels`` (conditional GAN only): a class or n classes."""
        G = self.sampler.eval()
        device = next(G.parameters()).device
        z = torch.randn(n, self.config.z_dim, generator=generator).to(device)
        labels = self._labels(n, labels, device)
        return G(z, labels)

    def _labels(self, n, labels, device):
        if labels is not None:
            raise ValueError("labels are for a conditional GAN ('cgan'); this model is unconditional")
        return None


class ConditionalGAN(DCGAN):
    """A class-conditional DCGAN: G gets [z, one_hot(y)], D is a projection discriminator."""

    family = "cgan"

    def __init__(self, config: GANConfig | None = None):
        config = config or GANConfig(n_classes=10)
        if config.n_classes < 2:
            raise ValueError(f"a conditional GAN needs n_classes >= 2, got {config.n_classes}")
        super().__init__(config)

    def use_conditional_input(self, fn) -> "ConditionalGAN":
        """Build G's input with ``fn(z, labels, n_classes)`` from now on, in G and in its moving
        average (lesson 04 passes the student's ``conditional_input``). Returns the model."""
        for G in (self.generator, self.generator_ema):
            if G is not None:
                G.conditional_input = fn
        return self

    @torch.no_grad()
    def class_grid(self, n_noise: int = 8, generator: torch.Generator | None = None) -> torch.Tensor:
        """One row per class, one column per noise vector (the same z down each column):
        (K · n_noise, C, H, W) in [-1, 1], rows in class order."""
        G = self.sampler.eval()
        device = next(G.parameters()).device
        k = self.config.n_classes
        z = torch.randn(n_noise, self.config.z_dim, generator=generator).to(device).repeat(k, 1)  # (K·n, Z)
        labels = torch.arange(k, device=device).repeat_interleave(n_noise)  # 0 0 … 1 1 … K−1
        return G(z, labels)

    def _labels(self, n, labels, device):
        return class_labels(n, labels, self.config.n_classes, device)


def train_gan(model: DCGAN, images: torch.Tensor, epochs: int, labels: torch.Tensor | None = None,
              batch_size: int | None = None, device="cpu", seed: int = 0, max_seconds: float | None = None,
              progress_bar: bool = True, dashboard=None, ema_fn=None, fast: bool = True,
              compile: bool = False, snapshot=None) -> dict:
    """Train ``model`` with its configuration's recipe. images: (N, C, H, W) in [-1, 1];
    labels: (N,) class indices (conditional GAN); batch_size: default ``batch_size_for(device)``.
    Returns the per-step history
    {"loss_d", "loss_g", "d_real", "d_fake", "logit_real", "logit_fake"} (see ``_log``: d_* is the
    fraction of real / generated images that D calls real, logit_* D's mean raw logit).

    dashboard: an object with ``update(step, history, model)`` and ``close()``
    (``genimg_course.common.dashboard.TrainingDashboard``); it replaces the progress bar.
    ema_fn: the moving-average update (default ``ema_update``; the notebook passes yours).
    snapshot: called as ``snapshot(step, seconds)`` after every step (``genimg train --snapshots``).
    Mixed precision stays off: these networks are small and a GAN's balance is touchy.
    fast: on CUDA, keep the images, the noise and each step's numbers on the GPU (see the end of
    ``training.py``); the same steps, without waiting for the GPU every step. No effect elsewhere.
    compile: on CUDA, run G and D through ``torch.compile`` (off by default: compiling takes a while
    at the start of every run). No effect elsewhere.
    """
    cfg = model.config
    conditional = cfg.n_classes > 0
    batch_size = batch_size or batch_size_for(device)
    if conditional and labels is None:
        raise ValueError("a conditional GAN needs the labels of its training images")
    device = torch.device(device)
    model.to(device).train()
    G, D, G_ema = model.generator, model.discriminator, model.generator_ema
    ema_fn = ema_fn or ema_update
    d_loss_fn, g_loss_fn = losses(cfg.loss)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=tuple(cfg.betas), **adam_options(device, fast))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=tuple(cfg.betas), **adam_options(device, fast))
    # the loop calls G and D through these (compiled if asked); the model keeps the plain modules
    G_step = maybe_compile(G, device, compile)
    D_step = maybe_compile(D, device, compile and cfg.r1_gamma == 0)  # R1 differentiates D twice: compiled D cannot
    data = (images,) if not conditional else (images, labels.long())
    loader = batches(data, batch_size, device, seed=seed, drop_last=len(images) > batch_size, fast=fast)
    g = noise_generator(device, seed, fast)
    history = {"loss_d": [], "loss_g": [], "d_real": [], "d_fake": [], "logit_real": [], "logit_fake": []}
    log = StepLog(history, every=StepLog.every_for(device, fast, dashboard))
    deadline, step = Deadline(max_seconds), 0
    epochs_bar = progress(range(epochs), type(model).__name__, progress_bar and dashboard is None)
    for _ in epochs_bar:
        for batch in loader:
            real = batch[0].to(device)
            y = batch[1].to(device) if conditional else None
            z = torch.randn(len(real), cfg.z_dim, generator=g, device=g.device).to(device)
            fake = G_step(z, y)
            # --- discriminator: real → "real", G(z) → "fake" (G is not updated: detach)
            real_in = diff_augment(real, cfg.augment, g).requires_grad_(cfg.r1_gamma > 0)
            real_logits = D_step(real_in, y)
            fake_logits = D_step(diff_augment(fake.detach(), cfg.augment, g), y)
            loss_d = d_loss_fn(real_logits, fake_logits)
            if cfg.r1_gamma > 0:
                loss_d = loss_d + cfg.r1_gamma / 2 * r1_penalty(real_in, real_logits)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            # --- generator: make the updated D call G(z) "real"
            loss_g = g_loss_fn(D_step(diff_augment(fake, cfg.augment, g), y))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            if G_ema is not None:  # warm-up: average over fewer steps at first (decay (1+t)/(10+t))
                ema_fn(G_ema, G, min(cfg.ema_decay, (1 + step) / (10 + step)))
            log.add(loss_d=loss_d, loss_g=loss_g, **verdicts(real_logits, fake_logits))  # see _log
            step += 1
            if dashboard is not None:
                dashboard.update(step, history, model)
            if snapshot is not None:
                snapshot(step, deadline.elapsed)
            if deadline.passed():
                break
        if deadline.passed():
            break
    log.flush()
    if dashboard is not None:
        dashboard.close()
    model.eval()
    return history
