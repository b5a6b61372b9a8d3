"""Lesson 07: Stable Diffusion in miniature. A KL-regularised autoencoder (lesson 03's VAE with a spatial
latent and a small KL weight) compresses images to a few channels at 1/4 of the resolution; a flow model
(lesson 06) is trained on those latents; samples are decoded back to pixels.

    image (B, 3, 32, 32) ─ encoder → μ, log σ² (B, 4, 8, 8) ─ normalise: (μ − shift) · scale → flow training
    noise (B, 4, 8, 8) ─ flow sampler (Heun) → latent ─ ÷ scale + shift ─ decoder → image (B, 3, 32, 32)

This is the recipe of latent diffusion (Rombach et al., 2022): the autoencoder does the perceptual
compression once, and the generative model works on 12 times fewer numbers per image. What is left out:
the perceptual (LPIPS) and adversarial losses that make Stable Diffusion's autoencoder sharp. LPIPS needs a
network pretrained on ImageNet, which this course cannot download; the adversarial loss does not (a PatchGAN
discriminator trained from scratch, with a hinge loss), and is left out only to keep the lesson short.

Also here: the memorisation test of lesson 05 in any feature space (``nn_ratio``), and the features the
lesson evaluates with when the images are the student's own (``encoder_features``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genimg_course import diffusion
from genimg_course.common.training import progress
from genimg_course.common.training import Deadline, make_loader


# ----------------------------------------------------------------------------- the autoencoder
@dataclass
class AutoencoderConfig:
    image_shape: tuple = (3, 32, 32)
    latent_channels: int = 4  # Stable Diffusion's: 4
    downsample: int = 4  # latent side = image side / downsample (a power of 2; Stable Diffusion: 8 at 512 px)
    width: int = 16  # channels of the first level (doubled at each downsampling)
    beta: float = 1e-4  # weight of the KL term per latent number against the squared error per pixel
    lr: float = 2e-3

    def __post_init__(self):
        self.image_shape = tuple(self.image_shape)
        if len(self.image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W), got {self.image_shape}")
        if self.downsample < 1 or self.downsample & (self.downsample - 1):
            raise ValueError(f"downsample must be a power of 2 (1, 2, 4, 8), got {self.downsample}")
        if self.latent_channels < 1 or self.beta < 0:
            raise ValueError(f"latent_channels must be ≥ 1 and beta ≥ 0, got {self.latent_channels}, {self.beta}")

    @property
    def padded_size(self) -> tuple:
        """(H, W) rounded up to a multiple of 4 × downsample: the flow's U-Net halves the latent twice, so a
        28 × 28 digit is padded to 32 × 32 (edge pixels repeated) and the decoder's output cropped back."""
        m = 4 * self.downsample
        return tuple(-(-side // m) * m for side in self.image_shape[1:])

    @property
    def latent_shape(self) -> tuple:
        h, w = self.padded_size
        return (self.latent_channels, h // self.downsample, w // self.downsample)


class _Res(nn.Module):
    """x + conv(SiLU(GroupNorm(conv(SiLU(GroupNorm(x)))))): a residual block without time embedding."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1),
                                  nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


class KLAutoencoder(nn.Module):
    """Encoder: a conv at full resolution, then per halving a stride-2 conv (channels ×2) and a residual
    block, then a conv to 2 × latent_channels (μ and log σ²). Decoder: the mirror image, with
    nearest-neighbour upsampling. No residual block at full resolution: there it costs the most and, on a
    CPU, would take most of the training time."""

    def __init__(self, config: AutoencoderConfig | None = None):
        super().__init__()
        self.config = cfg = config or AutoencoderConfig()
        c = cfg.image_shape[0]
        levels = int(math.log2(cfg.downsample))
        widths = [cfg.width * 2**i for i in range(levels + 1)]
        enc = [nn.Conv2d(c, widths[0], 3, padding=1), nn.SiLU()]
        for i in range(levels):
            enc += [nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1), _Res(widths[i + 1])]
        enc += [nn.GroupNorm(8, widths[-1]), nn.SiLU(), nn.Conv2d(widths[-1], 2 * cfg.latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec = [nn.Conv2d(cfg.latent_channels, widths[-1], 3, padding=1), _Res(widths[-1])]
        for i in reversed(range(levels)):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(widths[i + 1], widths[i], 3, padding=1)]
            dec += [_Res(widths[i])] if i else []
        dec += [nn.GroupNorm(8, widths[0]), nn.SiLU(), nn.Conv2d(widths[0], c, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor):
        """(B, C, H, W) in [−1, 1] → μ, log σ², each (B, latent_channels, H/f, W/f) (H, W padded, see
        ``AutoencoderConfig.padded_size``)."""
        (h, w), (ph, pw) = self.config.image_shape[1:], self.config.padded_size
        if (ph, pw) != (h, w):
            x = F.pad(x, (0, pw - w, 0, ph - h), mode="replicate")
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-30, 20)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_channels, h, w) → images (B, C, H, W), about [−1, 1]."""
        h, w = self.config.image_shape[1:]
        return self.decoder(z)[..., :h, :w]

    def losses(self, x: torch.Tensor, generator: torch.Generator | None = None, loss_fn=None,
               decoded: bool = False):
        """(loss, squared error per pixel, KL per latent number), each a 0-d tensor: ``kl_autoencoder_loss`` (or
        ``loss_fn``, the student's, with its arguments) of x and the decoding of a draw z ~ q(z | x); with
        ``decoded``, that decoding too, as a fourth element (the adversarial loss needs it)."""
        mu, logvar = self.encode(x)
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=generator).to(mu.device)
        x_hat = self.decode(z)
        out = (loss_fn or kl_autoencoder_loss)(x, x_hat, mu, logvar, self.config.beta)
        return (*out, x_hat) if decoded else out

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x)[0]).clamp(-1, 1)


class PatchDiscriminator(nn.Module):
    """A PatchGAN discriminator (Isola et al. 2017), the kind Stable Diffusion's autoencoder trains beside it: no
    pretrained network, trained from scratch; one logit per overlapping patch (a receptive field of 18 × 18 pixels:
    texture and sharpness, not the whole image), every layer spectral-normalised as lesson 04's D.
    (B, C, H, W) → (B, H/4 · W/4) logits."""

    def __init__(self, channels: int = 3, width: int = 32):
        super().__init__()
        from torch.nn.utils.parametrizations import spectral_norm

        self.net = nn.Sequential(spectral_norm(nn.Conv2d(channels, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
                                 spectral_norm(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
                                 spectral_norm(nn.Conv2d(2 * width, 1, 3, padding=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)


def adaptive_weight(recon: torch.Tensor, adversarial: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """VQGAN's balance (Esser et al. 2021, eq. 7), which Stable Diffusion's autoencoder uses: the ratio of the
    reconstruction loss's gradient to the adversarial loss's at the decoder's last weights, so that neither term's
    scale has to be tuned by hand. A detached 0-d tensor, clamped to [0, 10⁴]."""
    (g_rec,) = torch.autograd.grad(recon, last, retain_graph=True)
    (g_adv,) = torch.autograd.grad(adversarial, last, retain_graph=True)
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0, 1e4).detach()


def kl_autoencoder_loss(x: torch.Tensor, x_hat: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                        beta: float):
    """Lesson 07's eq. (1), the β-VAE objective of lesson 03 with a Gaussian decoder, written per number so that β
    does not depend on the sizes: (loss, recon, kl), each a 0-d tensor, with recon the squared error averaged over
    the P numbers of x (N, C, H, W), kl the closed-form KL of N(μ, σ²) from N(0, 1) averaged over the L numbers of
    the latents mu, logvar (N, c, h, w), and loss = recon + β · kl."""
    recon = F.mse_loss(x_hat, x)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean()
    return recon + beta * kl, recon, kl


def one_cycle(done: float, lr: float) -> float:
    """The one-cycle learning rate (Smith & Topin, 2019) at ``done`` ∈ [0, 1] of training: a cosine rise from
    lr/25 to lr over the first 10%, then a cosine fall to lr/250,000, as torch's ``OneCycleLR`` with its defaults.
    Written out because ``OneCycleLR`` needs the number of steps in advance, and a budget in seconds does not
    know it: here ``done`` can be the fraction of the time spent."""
    low, end, warm = lr / 25, lr / 25 / 1e4, 0.1
    if done < warm:
        return low + (lr - low) * (1 - math.cos(math.pi * done / warm)) / 2
    return end + (lr - end) * (1 + math.cos(math.pi * (done - warm) / (1 - warm))) / 2


def train_autoencoder(model: KLAutoencoder, images: torch.Tensor, epochs: int, batch_size: int = 32,
                      device="cpu", seed: int = 0, max_seconds: float | None = None, flip: bool = True,
                      progress_bar: bool = True, loss_fn=None, adversarial: float = 0.0,
                      adversarial_loss: str = "hinge", adversarial_start: float = 0.5) -> dict:
    """Adam on the β-VAE loss (``kl_autoencoder_loss``, or ``loss_fn`` with its arguments: lesson 07 passes the
    student's); images (N, C, H, W) in [−1, 1]; flip: random horizontal flips (more data for a small folder).

    adversarial > 0 adds Stable Diffusion's adversarial term: a ``PatchDiscriminator`` trained from scratch with
    lesson 04's losses (``gan.losses(adversarial_loss)``: 'hinge', as SD, or 'bce'), switched on once
    ``adversarial_start`` of the training (epochs or seconds, whichever runs out first) has passed, weighted by
    ``adversarial`` × ``adaptive_weight``. Returns {"loss", "recon", "kl", "seconds"} (and "loss_d", "adv_weight"
    with the adversarial term), one value per step."""
    from genimg_course import gan

    if adversarial < 0 or not 0 <= adversarial_start <= 1:
        raise ValueError(f"adversarial must be >= 0 (got {adversarial}) and adversarial_start in [0, 1] "
                         f"(got {adversarial_start})")
    d_loss_fn, g_loss_fn = gan.losses(adversarial_loss)
    device = torch.device(device)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=model.config.lr)
    loader = make_loader(torch.utils.data.TensorDataset(images), batch_size, seed=seed,
                         drop_last=len(images) > batch_size)
    g = torch.Generator().manual_seed(seed)
    history = {"loss": [], "recon": [], "kl": [], "seconds": []}
    if adversarial:
        disc = PatchDiscriminator(model.config.image_shape[0]).to(device)
        opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.9))
        last = model.decoder[-1].weight  # the decoder's last convolution: where adaptive_weight compares gradients
        history |= {"loss_d": [], "adv_weight": []}
    deadline = Deadline(max_seconds)
    total, step = max(epochs * len(loader), 2), 0
    for _ in progress(range(epochs), "autoencoder", progress_bar):
        for (x,) in loader:
            if flip:
                mirror = torch.rand(len(x), generator=g) < 0.5
                x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
            x = x.to(device)
            loss, recon, kl, x_hat = model.losses(x, g, loss_fn, decoded=True)
            # the schedule follows whichever runs out first, the epochs or the seconds
            done = step / total if max_seconds is None else max(step / total, deadline.elapsed / max_seconds)
            adversarial_on = adversarial and done >= adversarial_start
            if adversarial_on:
                g_adv = g_loss_fn(disc(x_hat).flatten())  # every patch's logit, as one batch of (B·patches,)
                weight = adversarial * adaptive_weight(recon, g_adv, last)
                loss = loss + weight * g_adv
            for group in opt.param_groups:
                group["lr"] = one_cycle(min(done, 1.0), model.config.lr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if adversarial_on:  # then D, on the same real images and reconstructions (after the autoencoder's step:
                # its backward pass needed D's weights as they were)
                loss_d = d_loss_fn(disc(x).flatten(), disc(x_hat.detach()).flatten())
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                history["loss_d"].append(loss_d.item())
                history["adv_weight"].append(float(weight))
            step += 1
            for key, value in (("loss", loss), ("recon", recon), ("kl", kl)):
                history[key].append(value.item())
            history["seconds"].append(deadline.elapsed)
            if deadline.passed():
                break
        if deadline.passed():
            break
    model.eval()
    return history


@torch.no_grad()
def encode_all(autoencoder: KLAutoencoder, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """μ of every image: (N, latent_channels, H/f, W/f), on the CPU."""
    device = next(autoencoder.parameters()).device
    return torch.cat([autoencoder.encode(x.to(device))[0].cpu() for x in images.split(batch)])


def latent_normalisation(latents: torch.Tensor):
    """(shift, scale), each (C,): the per-channel mean of latents (N, C, h, w) over images and positions, and
    1 / their standard deviation, so that (latents − shift) · scale has mean 0 and variance 1 in every channel.
    Stable Diffusion uses one number for all channels (scale 0.18215, no shift); later models (SDXL's VAE, SD3,
    FLUX) a shift and a scale, because the flow starts from N(0, I) and should end at the same size."""
    if latents.ndim != 4:
        raise ValueError(f"latents must be (N, C, h, w), got shape {tuple(latents.shape)}")
    flat = latents.transpose(0, 1).flatten(1)  # (C, N·h·w)
    return flat.mean(1), 1 / flat.std(1).clamp_min(1e-8)


# ----------------------------------------------------------------------------- the latent flow model
@dataclass
class LatentFlowConfig:
    image_shape: tuple = (3, 32, 32)
    latent_channels: int = 4
    downsample: int = 4
    ae_width: int = 16
    beta: float = 1e-4
    n_classes: int = 0  # > 0: class-conditional flow with classifier-free guidance
    width: int = 32  # the flow U-Net's first level
    time_sampling: str = "logit-normal"
    sampler: str = "heun"
    steps: int = 25
    guidance: float = 1.0
    lr: float = 2e-3

    def __post_init__(self):
        self.image_shape = tuple(self.image_shape)

    def autoencoder_config(self) -> AutoencoderConfig:
        return AutoencoderConfig(self.image_shape, self.latent_channels, self.downsample, self.ae_width, self.beta)

    def flow_config(self) -> diffusion.DiffusionConfig:
        return diffusion.DiffusionConfig(
            image_shape=self.autoencoder_config().latent_shape, objective="flow", n_classes=self.n_classes,
            width=self.width, time_sampling=self.time_sampling, sampler=self.sampler, steps=self.steps,
            guidance=self.guidance, lr=self.lr)


class LatentFlow(nn.Module):
    """An autoencoder, a flow model on its normalised latents, and the normalisation (buffers, so that a
    checkpoint holds them). ``sample`` returns images, like every model of the course."""

    family = "latent-flow"

    def __init__(self, config: LatentFlowConfig | None = None):
        super().__init__()
        self.config = cfg = config or LatentFlowConfig()
        self.autoencoder = KLAutoencoder(cfg.autoencoder_config())
        self.flow = diffusion.DiffusionModel(cfg.flow_config())
        self.register_buffer("shift", torch.zeros(cfg.latent_channels))
        self.register_buffer("scale", torch.ones(cfg.latent_channels))

    def _view(self, v: torch.Tensor) -> torch.Tensor:
        return v.view(1, -1, 1, 1)

    @torch.no_grad()
    def to_latent(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [−1, 1] → normalised latents (N, c, h, w), on the CPU."""
        return (encode_all(self.autoencoder, images) - self._view(self.shift).cpu()) * self._view(self.scale).cpu()

    @torch.no_grad()
    def to_image(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents → images in [−1, 1]."""
        z = latents.to(self.shift.device) / self._view(self.scale) + self._view(self.shift)
        return self.autoencoder.decode(z).clamp(-1, 1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels=None, steps: int | None = None,
               sampler: str | None = None, guidance: float | None = None, trajectory: int = 0, **kwargs):
        """n images (n, C, H, W) in [−1, 1]: the flow's sampler in latent space, then the decoder. With
        trajectory > 0, also the decoded snapshots along the way (a list, the first decoded from noise)."""
        self.eval()
        out = self.flow.sample(n, generator, labels=labels, steps=steps, sampler=sampler, guidance=guidance,
                               trajectory=trajectory, **kwargs)
        if trajectory:
            latents, snapshots = out
            return self.to_image(latents), [self.to_image(s) for s in snapshots]
        return self.to_image(out)


def train_latent_flow(model: LatentFlow, images: torch.Tensor, ae_epochs: int, flow_epochs: int,
                      labels: torch.Tensor | None = None, batch_size: int = 32, device="cpu", seed: int = 0,
                      ae_seconds: float | None = None, flow_seconds: float | None = None, flip: bool = True,
                      progress_bar: bool = True, adversarial: float = 0.0) -> dict:
    """Stage 1: the autoencoder (with ``adversarial`` > 0, ``train_autoencoder``'s PatchGAN term, hinge loss, from
    half-way). Stage 2: encode every image (and its mirror image, with ``flip``), set the normalisation from those
    latents, train the flow on them. Returns the two histories and the timings."""
    start = time.perf_counter()
    ae = train_autoencoder(model.autoencoder, images, ae_epochs, batch_size, device, seed, ae_seconds, flip,
                           progress_bar, adversarial=adversarial)
    ae_time = time.perf_counter() - start
    data = torch.cat([images, images.flip(-1)]) if flip else images
    ys = None if labels is None or not model.config.n_classes else (
        torch.cat([labels, labels]) if flip else labels)
    latents = encode_all(model.autoencoder, data)
    shift, scale = latent_normalisation(latents)
    model.shift.copy_(shift.to(model.shift.device))
    model.scale.copy_(scale.to(model.scale.device))
    z = (latents - shift.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1)
    start = time.perf_counter()
    flow = diffusion.train_diffusion(model.flow, z, flow_epochs, labels=ys, batch_size=batch_size, device=device,
                                     seed=seed, max_seconds=flow_seconds, progress_bar=progress_bar)
    model.to(device).eval()
    return {"loss": flow["loss"], "ae_loss": ae["loss"], "ae_recon": ae["recon"], "ae_kl": ae["kl"],
            "ae_seconds": [ae_time], "flow_seconds": [time.perf_counter() - start]}


# ----------------------------------------------------------------------------- did it learn or copy?
def nn_ratio(queries: torch.Tensor, reference: torch.Tensor, batch: int = 256):
    """For each query (N, D) its nearest reference point (M, D), M ≥ 2: (indices (N,), ratio (N,)) with
    ratio = d(nearest) / d(second nearest), Euclidean. A copy of a reference point has a ratio near 0; a
    point no closer to one reference point than to the next, near 1 (lesson 05's memorisation test)."""
    queries, reference = torch.as_tensor(queries).flatten(1).float(), torch.as_tensor(reference).flatten(1).float()
    if len(reference) < 2:
        raise ValueError(f"reference needs at least 2 points (for the second nearest), got {len(reference)}")
    if queries.shape[1] != reference.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} numbers each, reference {reference.shape[1]}")
    idx, ratio = [], []
    for chunk in queries.split(batch):
        two = torch.cdist(chunk, reference).topk(2, dim=1, largest=False)
        idx.append(two.indices[:, 0])
        ratio.append(two.values[:, 0] / two.values[:, 1].clamp_min(1e-12))
    return torch.cat(idx), torch.cat(ratio)


@torch.no_grad()
def encoder_features(model: LatentFlow, images: torch.Tensor, pooled: int = 4) -> torch.Tensor:
    """Features for lesson 05's metrics on the student's own images, with nothing downloaded: the normalised
    latent μ of the autoencoder, average-pooled to ``pooled`` × ``pooled`` (where things are, coarsely) and
    flattened: (N, latent_channels · pooled²), float64."""
    z = model.to_latent(images)
    return F.adaptive_avg_pool2d(z, pooled).flatten(1).double()


def pyramid_features(images: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """Features of images (N, C, H, W) that need no trained network: for each of ``levels`` bands of a
    Laplacian pyramid (the detail lost by halving the resolution), the mean absolute value and the standard
    deviation of each colour channel (how much fine detail, edges and noise the image has at that scale), and
    the image average-pooled to 4 × 4 (its colours and layout, coarsely): (N, 2 · levels · C + 16 C), float64.

    Raw, the layout block dominates any distance; ``standardise`` them with a reference set's statistics.
    ProGAN's sliced Wasserstein distance (Karras et al., 2018) compares Laplacian-pyramid patches for the same
    reason: it sees sharpness and noise, which coarse features miss."""
    feats, x = [], images.float()
    for _ in range(levels):
        low = F.avg_pool2d(x, 2)
        band = x - F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=False)
        feats += [band.abs().mean((2, 3)), band.std((2, 3))]
        x = low
    feats.append(F.adaptive_avg_pool2d(images.float(), 4).flatten(1))
    return torch.cat(feats, 1).double()


def standardise(features: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Each feature minus the reference set's mean, over its standard deviation: every dimension weighs the same."""
    return (features - reference.mean(0)) / reference.std(0).clamp_min(1e-12)


def split_held_out(n: int, fraction: float = 0.1, seed: int = 0, labels: torch.Tensor | None = None):
    """(train indices, held-out indices) of n images: ``fraction`` held out (at least 1 per class when labels
    are given and a class has 2 or more), chosen at random with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    groups = [torch.arange(n)] if labels is None else [torch.nonzero(labels == k).flatten() for k in labels.unique()]
    train, held = [], []
    for idx in groups:
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = min(len(idx) - 1, max(1, round(fraction * len(idx)))) if len(idx) > 1 else 0
        held.append(idx[:k]); train.append(idx[k:])
    return torch.cat(train).sort().values, torch.cat(held).sort().values


def check_folder_for_training(images: torch.Tensor, labels: torch.Tensor, classes: list[str], where: str) -> None:
    """The errors a folder gets before any training: too few images to train and evaluate on, or classes of one
    image each (nothing to hold out, nothing to learn a class from)."""
    if len(images) < 2:
        raise ValueError(f"{where}: {len(images)} readable image(s); a generator needs at least 2 to train on "
                         "(and a few hundred to do well)")
    counts = torch.bincount(labels.long(), minlength=len(classes))
    if len(classes) > 1 and (counts < 2).any():
        lonely = [c for c, k in zip(classes, counts.tolist()) if k < 2]
        raise ValueError(f"{where}: class folder(s) {', '.join(lonely)} hold fewer than 2 images; give every class "
                         "at least 2 (better, dozens), or put all the images in one folder for one class")


def drop_duplicates(images: torch.Tensor, labels: torch.Tensor, dataset: str, image_size: int):
    """``images`` and ``labels`` of ``dataset`` ("folder:PATH", as ``load_dataset`` loaded them) without the exact
    and near duplicates ``folder.audit_folder`` finds (the first of each group is kept): what lesson 07, ``genimg
    train latent-flow`` and ``evaluate_folder`` train and evaluate on, so that the held-out split is the same."""
    from genimg_course import folder

    path = dataset.partition(":")[2]
    drop = set(folder.audit_folder(path, image_size=image_size, channels=images.shape[1]).duplicate_indices())
    keep = torch.tensor([i for i in range(len(images)) if i not in drop], dtype=torch.long)
    return images[keep], labels[keep]


@torch.no_grad()
def shuffle_patches(images: torch.Tensor, grid: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image (N, C, H, W) cut into grid × grid patches, put back in a random order (one permutation per image):
    every patch real and sharp, the layout gone. A damage for validating a feature space (lesson 07, section 5):
    features that see only textures and colours score it like real images."""
    n, c, h, w = images.shape
    if h % grid or w % grid:
        raise ValueError(f"shuffle_patches: image size {h} × {w} is not divisible by grid={grid}")
    ph, pw = h // grid, w // grid
    patches = images.reshape(n, c, grid, ph, grid, pw).permute(0, 2, 4, 1, 3, 5).reshape(n, grid * grid, c, ph, pw)
    order = torch.stack([torch.randperm(grid * grid, generator=generator) for _ in range(n)])
    patches = patches[torch.arange(n)[:, None], order]
    return patches.reshape(n, grid, grid, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)


def with_mirrors(images: torch.Tensor) -> torch.Tensor:
    """The images (N, C, H, W) and their horizontal mirror images, (2N, C, H, W): what ``train_latent_flow`` trains
    on (``flip=True``), so what a memorisation test must compare samples with. A sample that copies a training
    image's mirror image is as much a copy as one that copies the image."""
    return torch.cat([images, images.flip(-1)])


def evaluate_folder(model: LatentFlow, samples: torch.Tensor, dataset: str, seed: int = 0,
                    held_out: float = 0.2) -> dict:
    """Lesson 07's evaluation of samples (N, C, H, W) in [−1, 1] of a model trained on ``dataset``
    ("folder:PATH") with ``seed`` (which decides the held-out images, ``split_held_out``): FID, precision,
    recall, density and coverage in standardised ``pyramid_features`` against the held-out images, with the
    real-vs-real floor (as many training images); the nearest-neighbour ratio in pixels against the training images
    and their mirror images (``with_mirrors``: what the flow trained on), and the fraction of samples below the
    held-out images' 1st percentile ("memorised")."""
    import warnings

    from genimg_course import metrics
    from genimg_course.common.data import load_dataset
    from genimg_course.common.training import images_of, labels_of

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped files were reported when the model was trained
        ds = load_dataset(dataset, image_size=model.config.image_shape[-1])
    x, y = drop_duplicates(images_of(ds), labels_of(ds), dataset, model.config.image_shape[-1])
    train_idx, held_idx = split_held_out(len(x), held_out, seed, y)
    train, held = x[train_idx], x[held_idx]
    if len(held) < 2 or len(samples) < 2:
        raise ValueError(f"{dataset}: {len(held)} held-out image(s) and {len(samples)} sample(s); the metrics need "
                         "at least 2 of each (a folder of 10 images or more)")
    ref = pyramid_features(train)
    f_train, f_held, f_s = (standardise(pyramid_features(v), ref).numpy() for v in (train, held, samples.float()))
    floor_idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:len(held)]
    k = max(1, min(3, len(held) - 1))
    precision, recall = metrics.precision_recall(f_held, f_s, k)
    density, coverage = metrics.density_coverage(f_held, f_s, k=max(1, min(5, len(held) - 1)))
    copies_of = with_mirrors(train).flatten(1)  # the flow trained on both: a mirrored copy is a copy too
    r_samples = nn_ratio(samples.flatten(1).float(), copies_of)[1]
    r_held = nn_ratio(held.flatten(1), copies_of)[1]
    threshold = float(torch.quantile(r_held, 0.01))
    return {"n_samples": len(samples), "n_real": len(held), "n_train": len(train), "features": "pyramid",
            "fid": metrics.fid(f_held, f_s), "fid_floor": metrics.fid(f_held, f_train[floor_idx.numpy()]),
            "precision": float(precision), "recall": float(recall), "density": float(density),
            "coverage": float(coverage), "nn_ratio_median": float(r_samples.median()),
            "nn_ratio_median_held_out": float(r_held.median()), "memorised_threshold": threshold,
            "memorised_fraction": float((r_samples < threshold).float().mean())}
