"""Device, seeds and hardware profiles: the first cell of every notebook.

One notebook runs everywhere: ``setup()`` picks the device (CUDA, then Apple
MPS, then CPU) and a *profile* that scales the work (see COURSE_DESIGN.md):

=======  ==================================  ===========================================
profile  chosen when                         purpose
=======  ==================================  ===========================================
ci       ``GENIMG_PROFILE=ci``               every cell runs in seconds on 2 CPU cores
cpu      no CUDA (laptop, Binder)            results worth looking at within minutes
gpu      CUDA present (Colab, lab machine)   full-size training, mixed precision
=======  ==================================  ===========================================

Each profile also names the data its lessons train on: ``digits`` (and ``shapes`` for the
colour sections) in ``ci`` and ``cpu``; MNIST (and CIFAR-10) in ``gpu``, downloaded once.
``GENIMG_DATASET`` / ``setup(dataset=...)`` choose another; a set that cannot be had
(offline, failed download) falls back to its offline stand-in with one line saying so.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

PROFILE_ENV = "GENIMG_PROFILE"
# benchmarks/claims.py reruns a lesson with another training seed: setup(seed=0) then seeds with this one
SEED_ENV = "GENIMG_SEED"
_CURRENT: dict = {}  # the profile of the last setup(): what claims.show compares against
STRICT_ENV = "GENIMG_STRICT"  # CI: a failed check or a claim outside its ci band is an error, not a message


def strict_mode() -> bool:
    """``GENIMG_STRICT=1`` (CI's nbval of the solved notebooks)."""
    return os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
DATASET_ENV = "GENIMG_DATASET"
COLOUR_DATASET_ENV = "GENIMG_COLOUR_DATASET"


@dataclass(frozen=True)
class Profile:
    """How much work a lesson does. Lessons read these; they never hard-code them."""

    epochs: int  # passes over the training set for a lesson's main model
    batch_size: int  # images per optimisation step
    n_train: int | None  # cap on training images (None: the whole split)
    n_samples: int  # images generated for sample grids
    n_eval: int  # images generated for metrics (FID and friends)
    n_shapes: int  # size of the procedurally generated "shapes" training set
    amp: bool  # mixed precision (only ever used on CUDA)
    num_workers: int = 0  # DataLoader workers; 0 avoids the notebook hangs of spawned workers
    dataset: str = "digits"  # what the lessons' 1x28x28 sections train on
    colour_dataset: str = "shapes"  # what their colour sections train on


PROFILES: dict[str, Profile] = {
    "ci": Profile(epochs=1, batch_size=64, n_train=512, n_samples=16, n_eval=200, n_shapes=512, amp=False),
    "cpu": Profile(epochs=10, batch_size=64, n_train=None, n_samples=64, n_eval=1000, n_shapes=5000, amp=False),
    "gpu": Profile(epochs=50, batch_size=128, n_train=None, n_samples=64, n_eval=5000, n_shapes=20000, amp=True,
                   dataset="mnist", colour_dataset="cifar10"),
}


@dataclass(frozen=True)
class Run:
    """What ``setup()`` chose: the device, the profile's name and its settings, and the datasets.

    ``dataset`` and ``colour_dataset`` are what the lessons load: the profile's choice, or the one
    asked for, or its offline stand-in when that could not be had.
    """

    profile: str
    device: torch.device
    seed: int
    settings: Profile
    dataset: str = "digits"
    colour_dataset: str = "shapes"

    def __getattr__(self, name):
        # run.epochs, run.batch_size ... read straight from the profile's settings.
        # (Only called for names that are not fields of Run itself.)
        settings = object.__getattribute__(self, "settings")
        if name in {f.name for f in fields(settings)}:
            return getattr(settings, name)
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def as_dict(self) -> dict:
        return {"profile": self.profile, "device": str(self.device), "seed": self.seed, **asdict(self.settings),
                "dataset": self.dataset, "colour_dataset": self.colour_dataset}

    def __str__(self) -> str:
        s = self.settings
        return (
            f"profile={self.profile} device={self.device} seed={self.seed} | "
            f"epochs={s.epochs} batch_size={s.batch_size} n_train={s.n_train or 'all'} "
            f"n_samples={s.n_samples} n_eval={s.n_eval} | data={self.dataset}, {self.colour_dataset}"
        )


def pick_device() -> torch.device:
    """CUDA if present, then Apple's MPS, then the CPU. A missing GPU is never an error."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_profile(profile: str | None, device: torch.device) -> tuple[str, str]:
    """Return (profile name, why it was chosen). ``GENIMG_PROFILE`` always wins."""
    env = os.environ.get(PROFILE_ENV, "").strip()
    if env:
        name, why = env.lower(), f"from {PROFILE_ENV}"
    elif profile:
        name, why = str(profile).lower(), "asked for"
    else:
        name = "gpu" if device.type == "cuda" else "cpu"
        why = f"auto: {'CUDA found' if name == 'gpu' else 'no CUDA'}"
    if name not in PROFILES:
        source = f"{PROFILE_ENV}={env!r}" if env else f"profile={profile!r}"
        raise ValueError(f"Unknown profile in {source}. Valid profiles: {', '.join(PROFILES)}.")
    return name, why


def current_profile() -> str:
    """The profile of the last ``setup()`` in this process, else the one ``setup()`` would pick now."""
    return _CURRENT.get("profile") or resolve_profile(None, pick_device())[0]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a lesson gives the same pictures twice."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def wanted_datasets(profile: Profile, dataset: str | None = None, colour_dataset: str | None = None
                    ) -> tuple[str, str, list[str]]:
    """(dataset, colour dataset, notes) asked for: the profile's, overridden by the arguments and then by
    ``GENIMG_DATASET`` / ``GENIMG_COLOUR_DATASET``; nothing is downloaded or checked yet."""
    from genimg_course.common import data

    notes = []
    gray = os.environ.get(DATASET_ENV, "").strip() or dataset or profile.dataset
    colour = os.environ.get(COLOUR_DATASET_ENV, "").strip() or colour_dataset or profile.colour_dataset
    source = DATASET_ENV if os.environ.get(DATASET_ENV, "").strip() else "dataset"
    gray = data.canonical_name(gray)
    colour = data.canonical_name(colour)
    if gray in data.COLOUR_DATASETS:  # a colour set asked for: the colour sections take it
        notes.append(f"{source}={gray!r} is a colour set (RGB): the colour sections use it; the 1x28x28 sections "
                     f"keep {profile.dataset!r} (valid there: {', '.join(data.GRAY_DATASETS)}).")
        gray, colour = data.canonical_name(profile.dataset), gray
    if colour in data.GRAY_DATASETS:
        raise ValueError(f"colour_dataset={colour!r} is not a colour set. Valid colour datasets: "
                         f"{', '.join(data.COLOUR_DATASETS)}.")
    return gray, colour, notes


def resolve_datasets(profile: Profile, dataset: str | None = None, colour_dataset: str | None = None
                     ) -> tuple[str, str, list[str]]:
    """(dataset, colour dataset, notes): ``wanted_datasets``, each checked (downloaded once if needed) and
    replaced by its offline stand-in, with a one-line note, when it cannot be had."""
    from genimg_course.common import data

    gray, colour, notes = wanted_datasets(profile, dataset, colour_dataset)
    gray, note = data.prepare_dataset(gray)
    notes += [note] if note else []
    colour, note = data.prepare_dataset(colour)
    notes += [note] if note else []
    return gray, colour, notes


def setup(seed: int = 0, profile: str | None = None, device: str | torch.device | None = None,
          verbose: bool = True, dataset: str | None = None, colour_dataset: str | None = None,
          prepare_data: bool = True) -> Run:
    """Pick the device, profile and datasets, seed every RNG, and print one line saying what was chosen.

    ``profile`` is ``"ci"``, ``"cpu"`` or ``"gpu"`` (default: ``gpu`` when CUDA is present,
    else ``cpu``); the ``GENIMG_PROFILE`` environment variable overrides it.
    ``device`` forces a device (``"cpu"``, ``"cuda"``, ``"mps"``); default: the best available.
    ``dataset`` (``digits``, ``mnist``, ``fashion-mnist``) and ``colour_dataset`` (``shapes``, ``cifar10``)
    override the profile's; ``GENIMG_DATASET`` and ``GENIMG_COLOUR_DATASET`` override both. An online set that
    cannot be had falls back to ``digits`` / ``shapes`` within seconds, with one line saying so.
    ``prepare_data=False`` only names the datasets asked for, without downloading or checking them
    (``genimg train`` settles its one dataset itself).
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"setup(seed=...) must be an int, got {seed!r}")
    if (env_seed := os.environ.get(SEED_ENV, "").strip()):
        try:
            seed = int(env_seed)
        except ValueError:
            raise ValueError(f"{SEED_ENV}={env_seed!r} is not an integer seed") from None
    dev = torch.device(device) if device is not None else pick_device()
    name, why = resolve_profile(profile, dev)
    settle = resolve_datasets if prepare_data else wanted_datasets
    gray, colour, notes = settle(PROFILES[name], dataset, colour_dataset)
    seed_everything(seed)
    run = Run(profile=name, device=dev, seed=seed, settings=PROFILES[name], dataset=gray, colour_dataset=colour)
    _CURRENT["profile"] = name
    if verbose:
        from genimg_course import __version__

        print(f"genimg-course {__version__} | {run} ({why})")
        for note in notes:
            print(note)
    return run
