"""Tiny stand-ins for MNIST, Fashion-MNIST and CIFAR-10, in the very formats torchvision reads.

MNIST and Fashion-MNIST are idx files (a big-endian header, then raw uint8); CIFAR-10 is pickled
dicts of ``data`` (N, 3072) uint8 and ``labels``. The images are learnable: class k is a bright bar at
position k on a noisy background, so a classifier trained on them must beat chance by far.
"""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np

MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_TEST = "test_batch"


def fake_images(n: int, size: int, channels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, size, size, channels) uint8, labels (n,)): class k is a bar at row block k."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    x = rng.integers(0, 60, (n, size, size, channels)).astype(np.uint8)
    rows = size // 10
    for i, k in enumerate(labels):
        x[i, k * rows:(k + 1) * rows, 2:size - 2] = 200 + rng.integers(0, 55)
    return x, labels.astype(np.uint8)


def _idx(array: np.ndarray) -> bytes:
    # magic: 0, 0, type 0x08 (unsigned byte), number of dimensions; then each dimension as big-endian int32
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">i", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(root: Path, folder: str = "MNIST", n_train: int = 200, n_test: int = 100, seed: int = 0) -> Path:
    """Write a fake MNIST (folder "MNIST") or Fashion-MNIST ("FashionMNIST") under ``root``."""
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = fake_images(n, 28, 1, seed + (split == "test"))
        images, labels = MNIST_FILES[split]
        (raw / images).write_bytes(_idx(x[..., 0]))
        (raw / labels).write_bytes(_idx(y))
    return raw


def write_cifar(root: Path, n_train: int = 250, n_test: int = 100, seed: int = 0) -> dict[str, str]:
    """Write a fake CIFAR-10 under ``root``; returns each file's MD5 (torchvision checks them)."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    x, y = fake_images(n_train, 32, 3, seed)
    per = n_train // len(CIFAR_TRAIN)
    batches = {name: (x[i * per:(i + 1) * per], y[i * per:(i + 1) * per]) for i, name in enumerate(CIFAR_TRAIN)}
    batches[CIFAR_TEST] = fake_images(n_test, 32, 3, seed + 1)
    for name, (images, labels) in batches.items():
        flat = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # CIFAR stores (N, 3 * 32 * 32), RGB planes
        with open(folder / name, "wb") as f:
            pickle.dump({"data": flat, "labels": labels.tolist()}, f)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names}, f)
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def trust_fake_cifar(md5: dict[str, str], patch=setattr) -> None:
    """Make torchvision's CIFAR10 accept the fake files' MD5s (it checks every batch on each load).

    ``patch``: ``setattr`` (a benchmark's kernel), or a test's ``monkeypatch.setattr`` (undone after the test).
    """
    from torchvision.datasets import CIFAR10

    patch(CIFAR10, "train_list", [[n, md5[n]] for n in CIFAR_TRAIN])
    patch(CIFAR10, "test_list", [[CIFAR_TEST, md5[CIFAR_TEST]]])
    patch(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5["batches.meta"]})
