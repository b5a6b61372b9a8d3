"""Small helpers the training loops share: data loaders, mixed precision, progress bars.

The loops themselves stay in each model's module (``mlp.py``, ``vae.py``), written out
in full so a student can read them; only the plumbing lives here.
"""

from __future__ import annotations

import contextlib
import time

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset
from tqdm.auto import tqdm


def images_of(dataset: Dataset, n: int | None = None) -> torch.Tensor:
    """The images of a dataset as one tensor (N, C, H, W), the first ``n`` of them."""
    if hasattr(dataset, "images"):
        x = dataset.images
        return x if n is None else x[:n]
    count = len(dataset) if n is None else min(n, len(dataset))
    return torch.stack([dataset[i][0] for i in range(count)])


def labels_of(dataset: Dataset, n: int | None = None) -> torch.Tensor:
    """The labels of a dataset as one tensor (N,)."""
    if hasattr(dataset, "labels"):
        y = dataset.labels
        return y if n is None else y[:n]
    count = len(dataset) if n is None else min(n, len(dataset))
    return torch.tensor([int(dataset[i][1]) for i in range(count)])


def make_loader(data, batch_size: int, shuffle: bool = True, seed: int = 0, n: int | None = None,
                drop_last: bool = False) -> DataLoader:
    """A DataLoader over a dataset or a tensor of images, seeded, with ``num_workers=0``.

    ``num_workers=0`` because worker processes hang notebooks on Windows and macOS;
    the course's datasets live in memory, so workers would not help anyway.
    """
    if isinstance(data, torch.Tensor):
        data = TensorDataset(data)
    if n is not None and n < len(data):
        data = Subset(data, range(n))
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=0,
                      generator=torch.Generator().manual_seed(seed))


def class_labels(n: int, labels, n_classes: int, device) -> torch.Tensor:
    """The labels a conditional model samples with: ``labels`` is None (every class in turn), one class, or n
    classes; a class the model does not know is an error. Returns (n,) long on ``device``."""
    if labels is None:
        labels = torch.arange(n) % n_classes  # every class, in turn
    labels = torch.as_tensor(labels).long().flatten()
    if labels.numel() == 1:
        labels = labels.expand(n)
    if labels.numel() != n:
        raise ValueError(f"got {labels.numel()} labels for {n} samples")
    bad = labels[(labels < 0) | (labels >= n_classes)]
    if len(bad):
        raise ValueError(f"label {int(bad[0])} is out of range: this model knows classes 0..{n_classes - 1}")
    return labels.to(device)


def use_amp(device: torch.device, amp: bool) -> bool:
    """Mixed precision only where it helps: on CUDA, when the profile asks for it."""
    return bool(amp) and torch.device(device).type == "cuda"


def autocast(device: torch.device, enabled: bool):
    """float16 autocast on CUDA when enabled (T4s have no fast bfloat16), else a no-op."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=torch.float16)


def grad_scaler(enabled: bool) -> torch.amp.GradScaler:
    """Loss scaling for float16 (a no-op scaler when mixed precision is off)."""
    return torch.amp.GradScaler("cuda", enabled=enabled)


def to_device(model: torch.nn.Module, device: torch.device, channels_last: bool = False) -> torch.nn.Module:
    """Move a model; convolutional models use channels_last on CUDA, where it is faster."""
    model = model.to(device)
    if channels_last and torch.device(device).type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def progress(iterable, desc: str, enabled: bool = True, **kwargs):
    """A tqdm.auto progress bar (a widget in Jupyter, text in a terminal)."""
    return tqdm(iterable, desc=desc, disable=not enabled, leave=False, **kwargs)


class Deadline:
    """Stops a training loop after ``seconds`` (None: never); used for equal-time comparisons."""

    def __init__(self, seconds: float | None):
        self.seconds, self.start = seconds, time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def passed(self) -> bool:
        return self.seconds is not None and self.elapsed >= self.seconds
