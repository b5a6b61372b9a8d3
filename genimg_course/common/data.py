"""Datasets for the course, offline first.

``load_dataset(name)`` returns a torch ``Dataset`` of ``(image, label)`` pairs with
images as float tensors of shape (C, H, W) in [-1, 1] (the range a ``tanh``
generator produces).

* Offline, always available:
  ``"digits"``: scikit-learn's 1,797 real 8x8 handwritten digits, resized to 1x28x28;
  ``"shapes"``: procedurally drawn, labelled RGB shapes (3x32x32), any number of them.
* Online, cached under ``data_dir()``: ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``
  through torchvision, downloaded once into a temporary folder and moved into the cache
  only when complete (torchvision checks each archive's MD5). Offline, these fail within
  seconds with ``DatasetUnavailableError``; ``prepare_dataset`` turns that into a one-line
  note and the offline set that stands in for it (``digits`` for the 28x28 sets, ``shapes``
  for CIFAR-10).
* ``"folder:PATH"`` (or ``folder=PATH``): your own images through torchvision's
  ``ImageFolder``. Unreadable files are **skipped with a warning that lists them**.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, UnidentifiedImageError
from torch.nn import functional as F
from torch.utils.data import Dataset

OFFLINE_DATASETS = {
    "digits": "scikit-learn's handwritten digits, 1x28x28, 10 classes, 1,797 real images",
    "shapes": "procedurally drawn coloured shapes, 3x32x32, 6 classes, any number of images",
}
ONLINE_DATASETS = {
    "mnist": "MNIST handwritten digits, 1x28x28, 10 classes (download, about 12 MB)",
    "fashion-mnist": "Zalando's Fashion-MNIST, 1x28x28, 10 classes (download, about 30 MB)",
    "cifar10": "CIFAR-10 photographs, 3x32x32, 10 classes (download, about 170 MB)",
}
ALIASES = {"cifar-10": "cifar10", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist"}
# The lessons' main sections are written for 1x28x28 images with 10 classes; their colour sections for RGB.
GRAY_DATASETS = ("digits", "mnist", "fashion-mnist")
COLOUR_DATASETS = ("shapes", "cifar10")
FALLBACK = {"mnist": "digits", "fashion-mnist": "digits", "cifar10": "shapes"}  # the offline stand-in
SPLITS = ("train", "test", "all")
SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "ring", "star")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


class DatasetUnavailableError(RuntimeError):
    """An online dataset could not be downloaded (no network) and is not cached.

    ``reason`` is the short why ("no network (cannot reach ...)"), for one-line notes.
    """

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


class ImageTensorDataset(Dataset):
    """Images held in memory as one tensor (N, C, H, W) in [-1, 1], with integer labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes, name: str):
        assert images.ndim == 4 and len(images) == len(labels)
        self.images = images  # (N, C, H, W) float32 in [-1, 1]
        self.labels = labels  # (N,) int64
        self.classes = list(classes)
        self.name = name

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return f"{type(self).__name__}({self.name!r}, n={len(self)}, image {c}x{h}x{w}, {len(self.classes)} classes)"


def available_datasets() -> dict[str, str]:
    """Every name ``load_dataset`` accepts, with a one-line description."""
    return {**OFFLINE_DATASETS, **ONLINE_DATASETS,
            "folder:PATH": "your own images: one sub-folder per class, or a flat folder"}


def canonical_name(name: str) -> str:
    """The dataset's name as the course spells it (``"CIFAR-10"`` -> ``"cifar10"``); unknown names are an error."""
    if not isinstance(name, str):
        raise TypeError(f"a dataset name must be a string, got {name!r}")
    key = name.strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in OFFLINE_DATASETS and key not in ONLINE_DATASETS:
        names = ", ".join(repr(k) for k in (*OFFLINE_DATASETS, *ONLINE_DATASETS))
        raise ValueError(f"Unknown dataset {name!r}. Valid datasets: {names}.")
    return key


def prepare_dataset(name: str, root: str | os.PathLike | None = None) -> tuple[str, str | None]:
    """Make sure ``name`` can be loaded (downloading it once if needed); ``(name to use, note)``.

    When an online set cannot be had (no network, failed download, corrupt cache with no network),
    returns its offline stand-in (``FALLBACK``) and a one-line note saying why, within seconds:
    the lesson goes on. ``note`` is None when ``name`` itself is used.
    """
    key = canonical_name(name)
    if key in OFFLINE_DATASETS:
        return key, None
    try:
        _online(key, "all", root, convert=False)
    except DatasetUnavailableError as err:
        fallback = FALLBACK[key]
        reason = " ".join(err.reason.split())  # one line, whatever torchvision's message looked like
        return fallback, f"{key} is not available: {reason}; this run uses {fallback!r} instead."
    return key, None


def data_dir() -> Path:
    """Where online datasets are cached: ``$GENIMG_DATA``, else ``~/.cache/genimg_course``."""
    return Path(os.environ.get("GENIMG_DATA") or Path.home() / ".cache" / "genimg_course").expanduser()


def load_dataset(name: str, split: str = "train", image_size: int | None = None, *,
                 folder: str | os.PathLike | None = None, channels: int | None = None,
                 n: int | None = None, seed: int = 0, root: str | os.PathLike | None = None) -> Dataset:
    """Load a dataset of ``(image, label)`` with images as float tensors in [-1, 1].

    name: one of ``available_datasets()``; ``"folder:PATH"`` or ``folder=PATH`` for your own images.
    split: ``"train"``, ``"test"`` or ``"all"`` (built-in sets; a folder has a single split).
    image_size: resize to ``image_size x image_size`` (default: the dataset's own size).
    channels: 1 (grayscale) or 3 (RGB); default: the dataset's own (3 for a folder).
    n: number of images for ``"shapes"`` (default 5,000 train / 1,000 test).
    seed: the seed that draws ``"shapes"``; same seed and size, same images.
    root: cache directory for online datasets (default ``data_dir()``).
    """
    if not isinstance(name, str):
        raise TypeError(f"load_dataset(name=...) must be a string, got {name!r}")
    if folder is not None or name.startswith("folder:") or name == "folder":
        path = folder if folder is not None else name.partition(":")[2]
        if not path:
            raise ValueError("load_dataset('folder') needs a path: load_dataset('folder:PATH') or folder=PATH")
        return load_folder(path, image_size=image_size or 32, channels=channels or 3)
    key = name.lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r} for dataset {name!r}. Valid splits: {', '.join(SPLITS)}.")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if image_size is not None and (not isinstance(image_size, int) or image_size < 4):
        raise ValueError(f"image_size must be an int >= 4, got {image_size!r}")
    if key == "digits":
        ds = _digits(split)
    elif key == "shapes":
        ds = _shapes(split, n=n, seed=seed, image_size=image_size or 32)
    elif key in ONLINE_DATASETS:
        ds = _online(key, split, root)
    else:
        names = ", ".join(repr(k) for k in available_datasets())
        raise ValueError(f"Unknown dataset {name!r}. Available datasets: {names}.")
    return _convert(ds, image_size, channels)


def _convert(ds: ImageTensorDataset, image_size: int | None, channels: int | None) -> ImageTensorDataset:
    """Resize and change the number of channels of an in-memory dataset."""
    x = ds.images  # (N, C, H, W)
    if channels == 1 and x.shape[1] == 3:
        # RGB -> gray with the ITU-R 601 luma weights, as PIL's convert("L") does
        luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        x = (x * luma).sum(1, keepdim=True)  # (N, 1, H, W)
    elif channels == 3 and x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)  # gray -> RGB: the same value in every channel
    if image_size is not None and x.shape[-1] != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True,
                          align_corners=False).clamp(-1, 1)
    if x is ds.images:
        return ds
    return ImageTensorDataset(x, ds.labels, ds.classes, ds.name)


# ----------------------------------------------------------------------------- digits
@functools.lru_cache(maxsize=4)
def _digits_all() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images).float().div(16.0).unsqueeze(1)  # (1797, 1, 8, 8) in [0, 1]
    # MNIST centres each digit in a 20x20 box inside 28x28; we do the same: upsample to 20, pad 4.
    x = F.interpolate(x, size=(20, 20), mode="bicubic", align_corners=False).clamp(0, 1)
    x = F.pad(x, (4, 4, 4, 4))  # (1797, 1, 28, 28)
    return x * 2 - 1, torch.from_numpy(bunch.target).long()


def digit_split_indices() -> tuple[np.ndarray, np.ndarray]:
    """The deterministic, class-stratified 80/20 train/test split of ``digits``."""
    from sklearn.model_selection import train_test_split

    _, y = _digits_all()
    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=0.2, stratify=y.numpy(), random_state=0)
    return np.sort(train), np.sort(test)


def _digits(split: str) -> ImageTensorDataset:
    x, y = _digits_all()
    if split != "all":
        train, test = digit_split_indices()
        idx = torch.from_numpy(train if split == "train" else test)
        x, y = x[idx], y[idx]
    return ImageTensorDataset(x.clone(), y.clone(), [str(d) for d in range(10)], "digits")


# ----------------------------------------------------------------------------- shapes
def draw_shape(shape: str, size: int, rng: np.random.Generator, supersample: int = 4, *, colour=None,
               background=None, radius: float | None = None, centre: tuple[float, float] | None = None) -> np.ndarray:
    """Draw one shape of random colour, size and position on a random background.

    Returns a uint8 array (size, size, 3). Drawn at ``supersample`` x the size and
    downsampled with a Lanczos filter, so edges are anti-aliased like a photograph's.
    ``colour``, ``background`` (RGB 0–255), ``radius`` and ``centre`` (fractions of the image side) fix what
    is otherwise random (lesson 08's captioned shapes); the angle stays random. Without them the random
    numbers drawn are exactly those of the ``shapes`` dataset.
    """
    s = size * supersample
    bg = rng.integers(0, 256, 3) if background is None else np.asarray(background)
    fg = rng.integers(0, 256, 3) if colour is None else np.asarray(colour)
    while colour is None and np.abs(fg.astype(int) - bg.astype(int)).sum() < 200:  # keep the shape visible
        fg = rng.integers(0, 256, 3)
    img = Image.new("RGB", (s, s), tuple(int(v) for v in bg))
    draw = ImageDraw.Draw(img)
    r = (rng.uniform(0.18, 0.38) if radius is None else radius) * s  # "radius" of the shape
    cx, cy = rng.uniform(r + 1, s - r - 1, 2) if centre is None else (centre[0] * s, centre[1] * s)
    angle = rng.uniform(0, 2 * np.pi)
    colour = tuple(int(v) for v in fg)

    def polygon(radii, k):
        t = angle + np.arange(k) * 2 * np.pi / k
        return [(cx + q * np.cos(a), cy + q * np.sin(a)) for q, a in zip(radii, t)]

    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
        q = 0.55 * r
        draw.ellipse([cx - q, cy - q, cx + q, cy + q], fill=tuple(int(v) for v in bg))
    elif shape == "square":
        draw.polygon(polygon([r] * 4, 4), fill=colour)
    elif shape == "triangle":
        draw.polygon(polygon([r] * 3, 3), fill=colour)
    elif shape == "star":
        draw.polygon(polygon([r, 0.45 * r] * 5, 10), fill=colour)
    elif shape == "cross":
        w = 0.32 * r
        for a in (angle, angle + np.pi / 2):  # two rotated bars
            dx, dy, px, py = np.cos(a) * r, np.sin(a) * r, -np.sin(a) * w, np.cos(a) * w
            draw.polygon([(cx - dx - px, cy - dy - py), (cx + dx - px, cy + dy - py),
                          (cx + dx + px, cy + dy + py), (cx - dx + px, cy - dy + py)], fill=colour)
    else:
        raise ValueError(f"Unknown shape {shape!r}. Valid shapes: {', '.join(SHAPE_CLASSES)}.")
    return np.asarray(img.resize((size, size), Image.LANCZOS))


@functools.lru_cache(maxsize=8)
def _shapes_cached(split: str, n: int, seed: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    # One RNG stream per (seed, split): the test set never repeats the training set.
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    labels = np.arange(n) % len(SHAPE_CLASSES)  # balanced classes ...
    rng.shuffle(labels)  # ... in random order
    imgs = np.stack([draw_shape(SHAPE_CLASSES[k], image_size, rng) for k in labels])  # (N, H, W, 3)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)  # (N, 3, H, W) in [-1, 1]
    return x, torch.from_numpy(labels).long()


def _shapes(split: str, n: int | None, seed: int, image_size: int) -> ImageTensorDataset:
    if n is None:
        n = 1000 if split == "test" else 5000
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n (number of shapes) must be a positive int, got {n!r}")
    x, y = _shapes_cached(split, n, seed, image_size)
    return ImageTensorDataset(x.clone(), y.clone(), SHAPE_CLASSES, "shapes")


# ----------------------------------------------------------------------------- online
def _torchvision_class(key: str):
    from torchvision import datasets

    return {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[key]


def _download_host(cls) -> tuple[str, int]:
    """The host torchvision downloads ``cls`` from (read from torchvision, not hard-coded)."""
    url = cls.mirrors[0] if hasattr(cls, "mirrors") else cls.url
    parts = urllib.parse.urlparse(url)
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


_SILENT_UNTIL = 0.0  # time.monotonic() until which the network counts as silent (see network_reachable)
SILENT_FOR = 60.0  # seconds


def network_reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """True when a TCP connection to ``host`` opens within ``timeout`` seconds.

    Runs in a thread that we stop waiting for after ``timeout``: a DNS look-up can
    block far longer than a socket timeout, and a student should not wait for it.
    A probe that gets no answer at all (it times out, as behind a firewall that drops
    packets) marks the network as silent for ``SILENT_FOR`` seconds, during which every
    probe answers False at once: ``setup()`` asks for two hosts, and waiting for each
    would double the wait. A refused connection or a failed DNS look-up answers at once
    and marks nothing.
    """
    global _SILENT_UNTIL
    if time.monotonic() < _SILENT_UNTIL:
        return False
    ok, answered = [], []

    def probe():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok.append(True)
        except TimeoutError:  # no answer
            pass
        except OSError:  # refused, unreachable, unknown host: an answer, if not the one we wanted
            answered.append(True)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    if not ok and not answered:
        _SILENT_UNTIL = time.monotonic() + SILENT_FOR
    return bool(ok)


def _offline_message(key: str, why: str, root: Path) -> str:
    alternatives = "; ".join(f"{k!r} ({v})" for k, v in OFFLINE_DATASETS.items())
    return (f"Cannot load {key!r}: {why}. It is not cached in {root} either.\n"
            f"Offline, use one of the built-in datasets: {alternatives}.\n"
            f"Or download it once with network access (it is then cached), or set GENIMG_DATA "
            f"to a folder that already holds it.")


def _cache_folder(cls, root: Path) -> Path:
    """The folder torchvision keeps ``cls`` in under ``root`` (MNIST/, FashionMNIST/, cifar-10-batches-py/)."""
    return root / getattr(cls, "base_folder", cls.__name__)


def _read_cached(cls, root: Path, part: str):
    """torchvision's dataset object for a cached split; raises on a missing or corrupt file."""
    ds = cls(str(root), train=(part == "train"), download=False)  # CIFAR-10: checks every batch's MD5
    data = np.asarray(ds.data)
    if data.ndim not in (3, 4) or data.dtype != np.uint8 or len(data) != len(ds.targets) or len(data) == 0:
        raise ValueError(f"unexpected data: {data.shape} {data.dtype}, {len(ds.targets)} labels")
    return ds


def _download(key: str, cls, root: Path) -> None:
    """Download ``key`` into a temporary folder beside the cache and move it in only when complete.

    torchvision checks each archive against its MD5 as it downloads; a download that fails or is
    interrupted half-way leaves nothing in the cache (the temporary folder is removed), so the next
    attempt starts clean instead of reading a truncated file.
    """
    host, port = _download_host(cls)
    if not network_reachable(host, port):
        why = f"no network (cannot reach {host})"
        raise DatasetUnavailableError(_offline_message(key, why, root), why)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".download-{key}-", dir=root))
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)  # a stalled download errors instead of hanging forever
    try:
        for train in (True, False):
            cls(str(staging), train=train, download=True)
        done = _cache_folder(cls, staging)
        target = _cache_folder(cls, root)
        if target.exists():  # a corrupt copy: move it aside first, so the rename below is one step
            stale = Path(tempfile.mkdtemp(prefix=f".stale-{key}-", dir=root))
            os.replace(target, stale / target.name)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(done, target)  # atomic on one file system: the cache has all of it or none
    except Exception as err:  # noqa: BLE001 - any failure here means "could not download"
        why = f"download failed ({str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__})"
        raise DatasetUnavailableError(_offline_message(key, why, root), why) from None
    finally:
        socket.setdefaulttimeout(old)
        shutil.rmtree(staging, ignore_errors=True)


def _cached_split(key: str, cls, root: Path, part: str):
    """The torchvision dataset of one split, downloaded first if it is not cached, downloaded again if the
    cached copy is corrupt; ``DatasetUnavailableError`` (with a short ``reason``) when neither works."""
    if not _cache_folder(cls, root).exists():  # not cached yet: download, if the network answers
        _download(key, cls, root)
    try:
        return _read_cached(cls, root, part)
    except Exception as err:  # noqa: BLE001 - truncated idx file, bad pickle, MD5 mismatch ...
        corrupt = f"the cached copy in {_cache_folder(cls, root)} is corrupt ({type(err).__name__}: {err})"
    try:
        _download(key, cls, root)  # replaces the corrupt copy, or fails with a clear reason
    except DatasetUnavailableError as failed:
        why = f"{corrupt}, and it cannot be downloaded again: {failed.reason}"
        raise DatasetUnavailableError(_offline_message(key, why, root), why) from None
    return _read_cached(cls, root, part)


def _online(key: str, split: str, root, convert: bool = True) -> ImageTensorDataset | None:
    cls = _torchvision_class(key)
    root = Path(root) if root is not None else data_dir()
    parts = ["train", "test"] if split == "all" else [split]
    xs, ys = [], []
    for part in parts:
        ds = _cached_split(key, cls, root, part)
        if not convert:  # prepare_dataset only checks that the split loads
            continue
        data = torch.from_numpy(np.asarray(ds.data))
        x = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)  # (N, C, H, W) uint8
        xs.append(x.float().div(127.5).sub(1.0))
        ys.append(torch.as_tensor(np.asarray(ds.targets)).long())
    return ImageTensorDataset(torch.cat(xs), torch.cat(ys), ds.classes, key) if convert else None


# ----------------------------------------------------------------------------- folder
def folder_classes(root: Path) -> tuple[list[str], dict[str, int]]:
    """(classes, class → index) of an image folder: its sub-folders, sorted, but not hidden ones
    (.ipynb_checkpoints, .git); a flat folder is one class, "." (the folder itself)."""
    if _has_class_folders(root):
        classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
        return classes, {name: i for i, name in enumerate(classes)}
    return ["."], {".": 0}


def image_file_check(root: Path, bad: list):
    """``is_valid_file`` for torchvision's folder datasets: an image extension and a file PIL can decode;
    every other image file is appended to ``bad`` as (path relative to ``root``, reason)."""
    def is_valid_file(p: str) -> bool:
        if not p.lower().endswith(IMAGE_EXTENSIONS):
            return False
        reason = check_image_file(p)
        if reason:
            bad.append((os.path.relpath(p, root), reason))
        return reason is None

    return is_valid_file


def _has_class_folders(root: Path) -> bool:
    """True when ``root`` has class sub-folders (ImageFolder layout), False for a flat folder."""
    return any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir())


def check_image_file(path: str) -> str | None:
    """None when PIL can decode ``path``, else a short reason (corrupt, truncated, too small...)."""
    try:
        with Image.open(path) as im:
            im.load()  # decodes every pixel: catches truncated files that verify() lets through
            if min(im.size) < 8:
                return f"too small ({im.size[0]}x{im.size[1]} pixels, need at least 8x8)"
    except UnidentifiedImageError:
        return "not an image PIL can read"
    except (OSError, ValueError, SyntaxError) as err:  # PIL raises these for broken files
        return f"corrupt or truncated ({err})"
    return None


def load_folder(path: str | os.PathLike, image_size: int = 32, channels: int = 3):
    """Your own images as a dataset in [-1, 1]: ``ImageFolder`` with checks.

    ``path`` holds one sub-folder per class (``path/cat/*.jpg``, ``path/dog/*.jpg``) or,
    for a single class, the images themselves. Each image is converted to ``channels``
    (1 or 3), resized so its short side is ``image_size`` and centre-cropped to a square.
    Files that cannot be decoded (corrupt, truncated, too small) are **skipped with one
    warning listing every skipped file and why**; no readable image at all is an error.
    """
    from torchvision import datasets
    from torchvision.transforms import v2

    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"Image folder {str(root)!r} does not exist.")
    if not root.is_dir():
        raise NotADirectoryError(f"{str(root)!r} is a file; load_dataset('folder:...') needs a folder of images.")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    if not isinstance(image_size, int) or image_size < 4:
        raise ValueError(f"image_size must be an int >= 4, got {image_size!r}")

    bad: list[tuple[str, str]] = []
    is_valid_file = image_file_check(root, bad)
    transform = v2.Compose([
        v2.ToImage(),  # PIL -> uint8 tensor (C, H, W)
        v2.Resize(image_size, antialias=True),  # short side -> image_size
        v2.CenterCrop(image_size),
        v2.ToDtype(torch.float32, scale=True),  # [0, 255] -> [0, 1]
        v2.Normalize([0.5] * channels, [0.5] * channels),  # [0, 1] -> [-1, 1]
    ])
    mode = "L" if channels == 1 else "RGB"

    class _Folder(datasets.ImageFolder):
        def find_classes(self, directory):
            return folder_classes(Path(directory))

    try:
        ds = _Folder(str(root), transform=transform, loader=lambda p: _open_image(p, mode),
                     is_valid_file=is_valid_file, allow_empty=True)
    except FileNotFoundError:
        ds = None
    if ds is not None and len(ds):
        counts = torch.bincount(torch.tensor(ds.targets), minlength=len(ds.classes))
        empty = [name for name, k in zip(ds.classes, counts.tolist()) if k == 0]
        if empty:
            raise ValueError(f"Class folder(s) {', '.join(repr(e) for e in empty)} in {str(root)!r} hold no readable "
                             "image; remove them or add images (every sub-folder is a class)")
    if bad:
        listing = "\n".join(f"  {name}: {why}" for name, why in bad)
        warnings.warn(f"Skipped {len(bad)} unreadable file(s) in {str(root)!r}:\n{listing}", stacklevel=2)
    if ds is None or len(ds) == 0:
        raise ValueError(f"No readable images in {str(root)!r} (looked for {', '.join(IMAGE_EXTENSIONS)}"
                         f" in it and its sub-folders; {len(bad)} file(s) were unreadable).")
    if ds.classes == ["."]:
        ds.classes, ds.class_to_idx = [root.name], {root.name: 0}
    ds.skipped = bad
    return ds


def _open_image(path: str, mode: str) -> Image.Image:
    """The image at ``path`` in ``mode`` ("L" or "RGB"), upright (its EXIF orientation applied, as a photo
    viewer shows it), with 16-bit and 32-bit greyscale rescaled to 8 bits (PIL's ``convert`` clips them at 255,
    which turns a 16-bit scan almost white)."""
    from PIL import ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                a = np.asarray(im, dtype=np.float64)
                top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
                im = Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
            return im.convert(mode)
    except (OSError, ValueError) as err:  # the file changed after it was checked
        raise OSError(f"Cannot read image {path!r}: {err}") from None


# ----------------------------------------------------------------------------- photos
def sample_photos(size: int | None = None) -> dict[str, torch.Tensor]:
    """Colour photographs shipped with scikit-learn, as float tensors (3, H, W) in [0, 1].

    Two 427x640 JPEGs: ``"china"`` (a temple) and ``"flower"``. ``size`` resizes the
    short side (keeping the aspect ratio), handy for fast demos.
    """
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    photos = {}
    for fname, arr in zip(bunch.filenames, bunch.images):
        x = torch.from_numpy(np.array(arr)).permute(2, 0, 1).float().div(255.0)  # (3, H, W)
        if size is not None:
            h, w = x.shape[1:]
            scale = size / min(h, w)
            x = F.interpolate(x[None], size=(round(h * scale), round(w * scale)), mode="bilinear",
                              antialias=True, align_corners=False)[0].clamp(0, 1)
        photos[Path(fname).stem] = x
    return photos


def offline_status() -> dict[str, bool | str]:
    """Which datasets load right now with no network (used by ``genimg doctor``)."""
    status: dict[str, bool | str] = {"digits": True, "shapes": True}
    try:
        sample_photos()
        status["sample_photos"] = True
    except Exception as err:  # noqa: BLE001 - reported, not raised
        status["sample_photos"] = f"unavailable ({err})"
    for key in ONLINE_DATASETS:
        cls = _torchvision_class(key)
        try:
            _read_cached(cls, data_dir(), "train")
            status[key] = True
        except Exception:  # noqa: BLE001 - not cached (or a corrupt copy, which the next load replaces)
            status[key] = False
    return status
