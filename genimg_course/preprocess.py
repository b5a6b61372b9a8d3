"""Image preprocessing, the formulas of 01_preprocessing.ipynb.

Every function takes a float tensor in [0, 1] of shape (C, H, W) or (B, C, H, W)
and returns one of the same shape, clipped to [0, 1]. Where torchvision's
``transforms.v2`` has the operation (brightness, contrast, autocontrast,
equalisation, normalisation) the tests compare ours with it; histogram
equalisation and autocontrast call it directly.
"""

from __future__ import annotations

import torch
from torchvision.transforms.v2 import functional as TF

# ITU-R BT.601 luma weights: the gray level people perceive from (R, G, B) (eq. 2). torchvision's
# rgb_to_grayscale and adjust_contrast round them to 0.2989, 0.587, 0.114; PIL uses 0.299 (as we do).
LUMA = (0.299, 0.587, 0.114)


def _check_image(x, name: str = "image") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (C, H, W) or (B, C, H, W), got {type(x).__name__}")
    if x.ndim not in (3, 4) or x.shape[-3] not in (1, 3):
        raise ValueError(f"{name} must have shape (C, H, W) or (B, C, H, W) with C = 1 or 3, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor in [0, 1], got dtype {x.dtype}; use x.float() / 255")
    return x


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma Y = 0.299 R + 0.587 G + 0.114 B, shape (..., 1, H, W) (eq. 2)."""
    _check_image(x)
    if x.shape[-3] == 1:
        return x
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * w).sum(-3, keepdim=True)


def adjust_brightness(x: torch.Tensor, factor: float) -> torch.Tensor:
    """x' = clip(b · x) (eq. 1): b > 1 brightens, b < 1 darkens."""
    _check_image(x)
    return (x * factor).clamp(0, 1)


def adjust_contrast(x: torch.Tensor, factor: float) -> torch.Tensor:
    """x' = clip(μ + c · (x − μ)) with μ the mean gray level of each image (eq. 3).

    c > 1 pushes pixels away from the mean (more contrast), c < 1 pulls them
    towards it, c = 0 gives a flat gray image. torchvision's ``adjust_contrast`` up to its
    rounded red weight 0.2989 (a difference below 1e-3).
    """
    _check_image(x)
    mu = grayscale(x).mean(dim=(-3, -2, -1), keepdim=True)  # (..., 1, 1, 1)
    return (mu + factor * (x - mu)).clamp(0, 1)


def contrast_stretch(x: torch.Tensor, low: float = 0.0, high: float = 100.0) -> torch.Tensor:
    """Per-channel linear stretch: x' = clip((x − p_low) / (p_high − p_low)) (eq. 4).

    p_low and p_high are the ``low``-th and ``high``-th percentiles of each channel
    of each image; with (0, 100) they are the min and max, which is torchvision's
    ``autocontrast``. A channel with p_high = p_low (a flat channel) is left unchanged.
    """
    _check_image(x)
    if not 0 <= low < high <= 100:
        raise ValueError(f"need 0 <= low < high <= 100, got low={low}, high={high}")
    flat = x.flatten(-2)  # (..., C, H*W)
    q = torch.tensor([low / 100, high / 100], dtype=x.dtype, device=x.device)
    p = torch.quantile(flat, q, dim=-1, keepdim=True)  # (2, ..., C, 1)
    p_low, p_high = p[0].unsqueeze(-1), p[1].unsqueeze(-1)  # (..., C, 1, 1)
    span = p_high - p_low
    flat_channel = span <= 1e-8
    out = (x - p_low) / torch.where(flat_channel, torch.ones_like(span), span)
    return torch.where(flat_channel, x, out).clamp(0, 1)


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """Min-max stretch of every channel: torchvision's ``autocontrast``."""
    _check_image(x)
    return TF.autocontrast(x)


def equalize(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation, x' = CDF(x) per channel (eq. 5), via torchvision.

    torchvision equalises 8-bit images, so the input is quantised to 256 levels.
    """
    _check_image(x)
    x8 = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return TF.equalize(x8).float().div(255)


def gray_world(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Gray-world white balance: x'_c = clip(x_c · μ / μ_c) (eq. 6).

    Assumes the average colour of a scene is gray: each channel c is scaled so its
    mean μ_c equals the mean μ of all three channels. Needs an RGB image.
    """
    _check_image(x)
    if x.shape[-3] != 3:
        raise ValueError(f"gray_world needs an RGB image (3 channels), got shape {tuple(x.shape)}")
    mu_c = x.mean(dim=(-2, -1), keepdim=True)  # (..., 3, 1, 1)
    mu = mu_c.mean(dim=-3, keepdim=True)  # (..., 1, 1, 1)
    return (x * mu / (mu_c + eps)).clamp(0, 1)


def white_patch(x: torch.Tensor, percentile: float = 99.0, eps: float = 1e-6) -> torch.Tensor:
    """White-patch (max-RGB) white balance: x'_c = clip(x_c / p_c) (eq. 7).

    Assumes the brightest patch of a scene is white: each channel's ``percentile``-th
    value p_c is mapped to 1. A high percentile rather than the max ignores a few hot pixels.
    """
    _check_image(x)
    if x.shape[-3] != 3:
        raise ValueError(f"white_patch needs an RGB image (3 channels), got shape {tuple(x.shape)}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    p_c = torch.quantile(x.flatten(-2), percentile / 100, dim=-1, keepdim=True).unsqueeze(-1)  # (..., 3, 1, 1)
    return (x / (p_c + eps)).clamp(0, 1)


def color_cast(x: torch.Tensor, gains=(1.0, 0.85, 0.6)) -> torch.Tensor:
    """Simulate a colour cast (a warm, tungsten-lit photo by default): x'_c = clip(g_c · x_c)."""
    _check_image(x)
    g = torch.tensor(gains, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x * g).clamp(0, 1)


def normalize(x: torch.Tensor, mean=0.5, std=0.5) -> torch.Tensor:
    """x' = (x − m) / s per channel (eq. 8); the defaults map [0, 1] to [-1, 1]."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
    return (x - m) / s


def denormalize(x: torch.Tensor, mean=0.5, std=0.5) -> torch.Tensor:
    """The inverse of ``normalize``: x = x' · s + m, clipped to [0, 1] for display."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
    return (x * s + m).clamp(0, 1)


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of a batch (B, C, H, W): two (C,) tensors."""
    if images.ndim != 4:
        raise ValueError(f"channel_stats needs a batch (B, C, H, W), got shape {tuple(images.shape)}")
    return images.mean(dim=(0, 2, 3)), images.std(dim=(0, 2, 3))


def estimated_illuminant(x: torch.Tensor, balanced: torch.Tensor) -> torch.Tensor:
    """The light colour a white balance divided out: e_c = Σ x_c / Σ x'_c, shape (..., 3), unit length.

    A white balance computes x'_c = x_c · k / e_c with its estimate e of the illuminant, so e can be
    read back off any method's output. The sums run over the pixels it did not clip to 0 or 1, where
    that relation holds exactly.
    """
    _check_image(x, "x")
    _check_image(balanced, "balanced")
    keep = (balanced > 0) & (balanced < 1)  # (..., 3, H, W)
    e = (x * keep).sum(dim=(-2, -1)) / (balanced * keep).sum(dim=(-2, -1))  # (..., 3)
    return e / e.norm(dim=-1, keepdim=True)


def angular_error(estimate, truth) -> torch.Tensor:
    """Angle in degrees between an estimated and the true illuminant colour: one number per image.

    The standard error measure of colour constancy (the "recovery angular error"): it compares RGB
    vectors of the light, so only their direction counts (the hue of the light), not their length.
    ``estimate``, ``truth``: (..., 3), broadcast against each other. Returns a tensor of shape (...).
    """
    e = torch.as_tensor(estimate, dtype=torch.float64)
    g = torch.as_tensor(truth, dtype=torch.float64)
    cos = torch.nn.functional.cosine_similarity(e, g, dim=-1, eps=1e-12).clamp(-1, 1)
    return torch.rad2deg(torch.acos(cos)).float()
