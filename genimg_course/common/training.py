"""Small helpers the training loops share: data loaders, mixed precision, progress bars,
and what makes a small network's training worth a GPU (the end of this file).

The loops themselves stay in each model's module (``mlp.py``, ``vae.py``), written out
in full so a student can read them; only the plumbing lives here.
"""

from __future__ import annotations

import contextlib
import sys
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


UNBOUNDED = 10**6  # epochs of a loop that a budget in seconds stops (the cpu profile, ``genimg train --seconds``)


def progress(iterable, desc: str, enabled: bool = True, **kwargs):
    """A tqdm.auto progress bar (a widget in Jupyter, text in a terminal). A loop of ``UNBOUNDED`` epochs, which a
    budget in seconds stops, shows the epochs done and the time, not a fraction of a million."""
    if isinstance(iterable, range) and len(iterable) >= UNBOUNDED:
        kwargs.setdefault("total", float("inf"))  # tqdm's spelling of "unknown length"
    return tqdm(iterable, desc=desc, disable=not enabled, leave=False, **kwargs)


class Deadline:
    """Stops a training loop after ``seconds`` (None: never): the cpu profile's budgets, equal-time comparisons."""

    def __init__(self, seconds: float | None):
        self.seconds, self.start = seconds, time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def passed(self) -> bool:
        return self.seconds is not None and self.elapsed >= self.seconds


# ----------------------------------------------------------------------------- the GPU path
# The course's networks are small: on a GPU a training step takes less time to compute than
# Python takes to launch its kernels, so every wait for the GPU costs a step. The helpers below
# take the waits out of a loop on CUDA (``fast=True``) and change nothing elsewhere: on a CPU the
# loops compute exactly what they always did.
SYNC_EVERY = 50  # steps whose numbers stay on the GPU before they are copied into the history


def fast_path(device, fast: bool = True) -> bool:
    """True when a loop should take the GPU path: ``fast`` and a CUDA device."""
    return bool(fast) and torch.device(device).type == "cuda"


def noise_generator(device, seed: int, fast: bool = True) -> torch.Generator:
    """The seeded generator a loop draws its noise from. On the GPU path it lives on the GPU, so noise
    is drawn there: a copy from the host makes the CPU wait until the GPU has finished the last step.
    Elsewhere it is the CPU generator the loops always used (the same numbers for the same seed)."""
    if fast_path(device, fast):
        return torch.Generator(device=torch.device(device)).manual_seed(seed)
    return torch.Generator().manual_seed(seed)


class DeviceLoader:
    """Batches of tensors copied to ``device`` once, drawn by indexing with a permutation.

    The same batches in the same order as ``make_loader(TensorDataset(*tensors), batch_size,
    seed=seed, drop_last=drop_last)``: its permutations come from the same seeded CPU generator,
    drawn the way the DataLoader draws them. A DataLoader instead gathers every batch on the CPU,
    image by image, and the loop copies it to the GPU (``tests/test_gpu_path.py`` checks that both
    give the same batches).
    """

    def __init__(self, tensors, batch_size: int, device, seed: int = 0, drop_last: bool = False):
        self.tensors = tuple(torch.as_tensor(t).to(device) for t in tensors)
        self.n, self.batch_size, self.drop_last = len(self.tensors[0]), batch_size, drop_last
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self):
        # per epoch a DataLoader draws one number (its workers' base seed), then its RandomSampler a
        # permutation, and one more when the sampler is exhausted at the end of the epoch
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        order = torch.randperm(self.n, generator=self.generator)
        torch.randperm(self.n, generator=self.generator)
        device = self.tensors[0].device
        if device.type == "cuda":  # one copy per epoch, from pinned memory: the CPU need not wait for it
            order = order.pin_memory()
        order = order.to(device, non_blocking=True)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start:start + self.batch_size]
            yield tuple(t[index] for t in self.tensors)


def batches(tensors, batch_size: int, device, seed: int = 0, drop_last: bool = False, fast: bool = True):
    """What a training loop iterates over, once per epoch: tuples of batches of ``tensors``.
    On the GPU path a ``DeviceLoader`` (the data set is copied to the GPU once); elsewhere the
    ``make_loader`` DataLoader, whose batches the loop moves to the device."""
    tensors = tuple(tensors)
    if fast_path(device, fast) and _fits_on(device, tensors):
        return DeviceLoader(tensors, batch_size, device, seed=seed, drop_last=drop_last)
    return make_loader(TensorDataset(*tensors), batch_size, seed=seed, drop_last=drop_last)


def _fits_on(device, tensors) -> bool:
    """Whether the tensors take less than a quarter of the GPU's free memory (the course's largest data
    set, CIFAR-10, takes 0.6 GB); the rest is for the networks."""
    if torch.device(device).type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return sum(t.numel() * t.element_size() for t in tensors) < free // 4


class StepLog:
    """Appends a loop's numbers of each step (0-d tensors) to the lists of ``history``.

    ``.item()`` makes the CPU wait for the GPU, so the numbers are kept as tensors and copied in one
    go every ``every`` steps; ``flush()`` copies what is left (call it before reading the history).
    ``every=1`` (the default) appends each step's numbers at once, as the loops always did.
    """

    def __init__(self, history: dict, every: int = 1):
        self.history, self.every, self.steps, self.pending = history, max(1, every), 0, {}

    def add(self, **values: torch.Tensor) -> None:
        for key, value in values.items():
            self.pending.setdefault(key, []).append(value.detach().float())
        self.steps += 1
        if self.steps % self.every == 0:  # counted from the start, so it can follow a dashboard's redraws
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        keys = list(self.pending)
        table = torch.stack([torch.stack(self.pending[k]) for k in keys]).tolist()  # one copy to the host
        for key, row in zip(keys, table):
            self.history[key].extend(row)
        self.pending = {}

    @staticmethod
    def every_for(device, fast: bool = True, dashboard=None) -> int:
        """1 off the GPU path; on it ``SYNC_EVERY``, or the dashboard's redraw interval (it reads the history then)."""
        if not fast_path(device, fast):
            return 1
        return getattr(dashboard, "every", 1) if dashboard is not None else SYNC_EVERY


def adam_options(device, fast: bool = True) -> dict:
    """Extra arguments for Adam / AdamW: on the GPU path the fused implementation (one kernel for all
    parameters, and a GradScaler need not ask the GPU for infinities every step); elsewhere none."""
    return {"fused": True} if fast_path(device, fast) else {}


def can_compile(device) -> bool:
    """Whether ``torch.compile``'s default backend (inductor, which writes Triton kernels) can run on
    ``device``: CUDA with compute capability 7.0 or newer (a T4 is 7.5), and not on Windows."""
    device = torch.device(device)
    if device.type != "cuda" or sys.platform == "win32" or not hasattr(torch, "compile"):
        return False
    return torch.cuda.get_device_capability(device) >= (7, 0)


class _CompiledOrEager:
    """Calls the compiled function; if that raises, says so in one line and calls the original from then on."""

    def __init__(self, fn, compiled, name: str):
        self.fn, self.compiled, self.name = fn, compiled, name

    def __call__(self, *args, **kwargs):
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as error:  # compilation happens at the first call (and again at a new shape)
                _say_eager(self.name, error)
                self.compiled = None
        return self.fn(*args, **kwargs)


def _say_eager(name: str, error: Exception) -> None:
    reason = (str(error).strip().splitlines() or [""])[0][:120]
    print(f"torch.compile failed for {name} ({type(error).__name__}: {reason}); training it uncompiled")


def maybe_compile(fn, device, enabled: bool = True):
    """``fn`` (a module or a function, e.g. ``model.losses``) compiled with ``torch.compile`` when
    ``enabled`` and ``can_compile(device)``; else ``fn`` itself.

    The loops call what this returns, but keep and return the plain module: a compiled module's
    ``state_dict`` keys start with ``_orig_mod.``, which a checkpoint must not. If compiling fails,
    now or at a call, one line says so and ``fn`` runs uncompiled. (Inductor generates the backward's
    kernels at the first backward pass, outside this guard; where it fails, the forward's failed first.)
    """
    if not enabled or not can_compile(device):
        return fn
    name = type(fn).__name__ if isinstance(fn, torch.nn.Module) else getattr(fn, "__qualname__", repr(fn))
    try:
        # static shapes: a loop has one or two (a smaller last batch), and a dynamic batch size
        # cannot be traced through randn(shape, generator=...)
        compiled = torch.compile(fn, dynamic=False)
    except Exception as error:
        _say_eager(name, error)
        return fn
    return _CompiledOrEager(fn, compiled, name)
