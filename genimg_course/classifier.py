"""The course's own feature extractor: a small classifier per dataset.

Inception-v3 weights cannot be downloaded offline, so FID and friends use the 128-d
penultimate features of a small CNN trained on the dataset itself. It is deterministic
for a seed, trains in seconds on a CPU, and is cached on disk (``data_dir()/classifiers``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from genimg_course.common.data import data_dir, load_dataset
from genimg_course.vae import random_shift


class SmallClassifier(nn.Module):
    """conv 32 → pool → conv 64 → pool → dense 128 (the features) → classes."""

    def __init__(self, image_shape=(1, 28, 28), num_classes: int = 10, feature_dim: int = 128):
        super().__init__()
        self.image_shape = tuple(image_shape)
        c, h, w = image_shape
        self.body = nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, H/2, W/2)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 64, H/4, W/4)
            nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), feature_dim), nn.ReLU(),  # (B, 128)
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


def _cache_path(dataset: str, seed: int) -> Path:
    return data_dir() / "classifiers" / f"{dataset}-seed{seed}.pt"


def _shipped_path(dataset: str, seed: int) -> Path | None:
    """The classifier shipped with the course for ``dataset`` (digits and shapes, seed 0), after checking its sha256
    against ``weights/classifiers.json``; None when there is none. Shipped so that a lesson does not spend its first
    20 to 50 s training one, and so that every machine scores with the same features (benchmarks/make_pretrained.py
    classifiers remakes them; the same training as ``train_classifier``)."""
    import hashlib
    import json
    from importlib import resources

    folder = Path(str(resources.files("genimg_course") / "weights"))
    index = folder / "classifiers.json"
    name = f"classifier_{dataset}-seed{seed}.pt"
    if not index.is_file() or name not in (records := json.loads(index.read_text(encoding="utf-8"))):
        return None
    path = folder / name
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != records[name]["sha256"]:
        raise ValueError(f"{path} is missing or not the file that was shipped (sha256 differs from "
                         f"{index.name}); reinstall genimg-course")
    return path


CLASSIFIER_DATASETS = ("digits", "shapes", "mnist", "fashion-mnist", "cifar10")


def classifier_epochs(n_images: int) -> int:
    """15 epochs for the small sets (digits, shapes: 337 to 1,170 steps of 64); 3 for the 50,000-60,000 images
    of MNIST, Fashion-MNIST and CIFAR-10 (2,300 to 2,800 steps), which a CPU trains in a minute or two."""
    return 15 if n_images <= 5000 else 3


def train_classifier(dataset: str = "digits", seed: int = 0, epochs: int | None = None, verbose: bool = True):
    """Train the feature classifier on the dataset's training split; returns (model, test accuracy).
    ``epochs``: default ``classifier_epochs(len(training split))``."""
    torch.manual_seed(seed)
    kwargs = {"n": 5000} if dataset == "shapes" else {}
    train = load_dataset(dataset, split="train", **kwargs)
    test = load_dataset(dataset, split="test", **({"n": 1000} if dataset == "shapes" else {}))
    model = SmallClassifier(tuple(train.images.shape[1:]), len(train.classes))
    epochs = classifier_epochs(len(train)) if epochs is None else epochs
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    x_all, y_all = train.images, train.labels
    # a GPU, when there is one, trains the 50,000-image sets in seconds; the model is returned on the CPU
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    with torch.enable_grad():  # also when called from inside no_grad code (classify trains on first use)
        _fit(model, opt, x_all, y_all, epochs, g, shift=dataset == "digits", device=device)
    model.cpu().eval()
    with torch.no_grad():  # 500 at a time: 10,000 test images at once would take a GB for the first layer
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in zip(test.images.split(500),
                                                                         test.labels.split(500)))
    accuracy = correct / len(test)
    if verbose:
        print(f"feature classifier for {dataset!r}: test accuracy {accuracy:.1%} on {len(test):,} images "
              f"({epochs} epochs of {len(train):,})")
    return model, accuracy


def _fit(model, opt, x_all, y_all, epochs, g, shift: bool, device=torch.device("cpu")) -> None:
    """Plain minibatch training with cross-entropy (shift: random translations of up to 2 pixels)."""
    for _ in range(epochs):
        perm = torch.randperm(len(x_all), generator=g)
        for i in range(0, len(x_all), 64):
            idx = perm[i:i + 64]
            x = random_shift(x_all[idx], 2, g) if shift else x_all[idx]
            loss = nn.functional.cross_entropy(model(x.to(device)), y_all[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()


def get_classifier(dataset: str = "digits", seed: int = 0, verbose: bool = True) -> SmallClassifier:
    """The cached classifier for ``dataset`` (trained and cached on first use)."""
    from genimg_course.common.data import canonical_name

    if not isinstance(dataset, str) or dataset.startswith("folder"):
        raise ValueError(f"The course trains feature classifiers for {', '.join(map(repr, CLASSIFIER_DATASETS))}, "
                         f"not {dataset!r}; for other datasets use features='inception' (needs Inception-v3 "
                         "weights on disk).")
    dataset = canonical_name(dataset)
    path = _shipped_path(dataset, seed) or _cache_path(dataset, seed)
    if path.exists():
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            model = SmallClassifier(tuple(payload["image_shape"]), payload["num_classes"])
            model.load_state_dict(payload["state_dict"])
            if verbose:
                where = "shipped with the course" if path.parent.name == "weights" else "cached"
                print(f"feature classifier for {dataset!r}: test accuracy {payload['accuracy']:.1%} ({where})")
            return model.eval()
        except Exception:  # noqa: BLE001 - a broken cache is retrained, not fatal
            pass
    model, accuracy = train_classifier(dataset, seed, verbose=verbose)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        torch.save({"state_dict": model.state_dict(), "accuracy": accuracy, "num_classes": model.head.out_features,
                    "image_shape": list(model.image_shape)}, f)
    os.replace(tmp, path)
    return model


@torch.no_grad()
def classify(images: torch.Tensor, dataset: str = "digits", batch: int = 500):
    """(features (N, 128) float64 numpy, class probabilities (N, K)) of images in [-1, 1]."""
    model = get_classifier(dataset, verbose=False)
    feats, probs = [], []
    for x in images.detach().float().cpu().split(batch):  # the classifier lives on the CPU
        f = model.features(x)
        feats.append(f.double())
        probs.append(torch.softmax(model.head(f), 1).double())
    return torch.cat(feats).numpy(), torch.cat(probs).numpy()
