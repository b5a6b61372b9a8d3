"""Pictures first: image grids, before/after comparisons and per-channel histograms.

Every function accepts images in [-1, 1] (what models produce) or [0, 1] (what
preprocessing works in); ``value_range`` says which, or is guessed from the data.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid

CHANNEL_COLOURS = {1: ["0.3"], 3: ["tab:red", "tab:green", "tab:blue"]}


def to_unit_range(x: torch.Tensor, value_range: tuple[float, float] | None = None) -> torch.Tensor:
    """Map images to [0, 1] for display. ``value_range`` None guesses: any value < 0 means [-1, 1]."""
    x = x.detach().float().cpu()
    if value_range is None:
        value_range = (-1.0, 1.0) if x.numel() and x.min() < 0 else (0.0, 1.0)
    lo, hi = value_range
    return ((x - lo) / (hi - lo)).clamp(0, 1)


def _as_batch(images) -> torch.Tensor:
    """A (B, C, H, W) tensor from a tensor, a list of (C, H, W) tensors, or a dataset-like list of pairs."""
    if isinstance(images, (list, tuple)):
        images = torch.stack([im[0] if isinstance(im, (list, tuple)) else im for im in images])
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"expected a tensor of images (B, C, H, W), got {type(images).__name__}")
    if images.ndim == 2:
        images = images[None, None]
    elif images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (B, C, H, W) with C = 1 or 3, got {tuple(images.shape)}")
    return images


def image_grid(images, nrow: int = 8, value_range=None, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """A grid of images as one (3, H, W) tensor in [0, 1], via ``torchvision.utils.make_grid``."""
    x = to_unit_range(_as_batch(images), value_range)
    return make_grid(x, nrow=nrow, padding=padding, pad_value=pad_value)


def _imshow(ax, img: torch.Tensor, title: str | None = None) -> None:
    """Draw one (C, H, W) image in [0, 1] on ``ax`` without axes."""
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)


def show_images(images, nrow: int = 8, title: str | None = None, value_range=None, ax=None,
                scale: float = 0.6):
    """Show a batch of images as one grid. Returns the matplotlib figure."""
    x = _as_batch(images)
    grid = image_grid(x, nrow=nrow, value_range=value_range)
    if ax is None:
        rows = -(-len(x) // nrow)
        fig, ax = plt.subplots(figsize=(scale * min(nrow, len(x)) + 0.5, scale * rows + 0.6))
    _imshow(ax, grid, title)
    return ax.figure


def show_dataset(dataset, n: int = 32, nrow: int = 8, title: str | None = None, seed: int = 0):
    """Show ``n`` random images of a dataset, each class name once in the title."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(dataset), generator=g)[:n].tolist()
    images = torch.stack([dataset[i][0] for i in idx])
    if title is None:
        name = getattr(dataset, "name", type(dataset).__name__)
        title = f"{name}: {len(dataset)} images of shape {tuple(images.shape[1:])}"
    return show_images(images, nrow=nrow, title=title)


def plot_histogram(image: torch.Tensor, ax=None, bins: int = 64, value_range=None, title: str | None = None):
    """Per-channel histograms of one image (C, H, W): red, green and blue curves, or gray."""
    x = to_unit_range(_as_batch(image)[0], value_range)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 2.5))
    for c, colour in enumerate(CHANNEL_COLOURS[x.shape[0]]):
        counts = torch.histc(x[c], bins=bins, min=0, max=1)
        centres = (torch.arange(bins) + 0.5) / bins
        ax.plot(centres.numpy(), (counts / counts.sum()).numpy(), color=colour, lw=1.5)
        ax.fill_between(centres.numpy(), (counts / counts.sum()).numpy(), color=colour, alpha=0.15)
    ax.set_xlim(0, 1)
    ax.set_xlabel("pixel value")
    ax.set_ylabel("fraction of pixels")
    if title:
        ax.set_title(title, fontsize=10)
    return ax.figure


def compare(*images, titles=None, value_range=None, histograms: bool = True, size: float = 3.0):
    """Images side by side (before, after, ...), each with its per-channel histogram below."""
    if titles is None:
        titles = ["before", "after"] if len(images) == 2 else [f"image {i}" for i in range(len(images))]
    if len(titles) != len(images):
        raise ValueError(f"compare got {len(images)} images but {len(titles)} titles")
    rows = 2 if histograms else 1
    fig, axes = plt.subplots(rows, len(images), figsize=(size * len(images), size * (1.2 if histograms else 0.75)),
                             squeeze=False, gridspec_kw={"height_ratios": [1.6, 1] if histograms else [1]})
    for i, (img, title) in enumerate(zip(images, titles)):
        x = to_unit_range(_as_batch(img)[0], value_range)
        _imshow(axes[0, i], x, title)
        if histograms:
            plot_histogram(x, ax=axes[1, i], value_range=(0, 1))
    fig.tight_layout()
    return fig


def plot_history(history: dict[str, list[float]], ax=None, title: str | None = None, logy: bool = False):
    """Curves of a training history: one line per key (for example "loss")."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    for key, values in history.items():
        ax.plot(values, label=key)
    ax.set_xlabel("step")
    if logy:
        ax.set_yscale("log")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax.figure
