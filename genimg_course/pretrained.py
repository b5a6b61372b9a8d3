"""Small pretrained models shipped with the course, for the lessons that need a *good* model.

A lesson trains each model itself on a budget of seconds; where it compares models (lesson 05's table,
lesson 06's steps curves and guidance, lesson 07's defaults) it also loads the same family trained for tens of
minutes. Each file in ``genimg_course/weights/`` was made by one recorded ``genimg train`` command
(``benchmarks/make_pretrained.py`` remakes it); ``weights/manifest.json`` holds, for each, that command, the
seed, the budget and the steps reached, the training time, the machine, the commit, the file's sha256 and the
scores of its samples (the band ``tests/test_pretrained.py`` checks).

    from genimg_course import pretrained
    dcgan = pretrained.load("dcgan")           # sha256 checked, then torch.load(..., weights_only=True)
    pretrained.info("dcgan")["train_seconds"]   # how long it trained

``GENIMG_PRETRAINED=0`` tells the lessons to train everything themselves instead (``pretrained.enabled()``).
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path

from genimg_course.common.checkpoint import CheckpointError
from genimg_course.zoo import load_checkpoint

ENV = "GENIMG_PRETRAINED"


class PretrainedError(CheckpointError):
    """A shipped model that is missing, changed or corrupt (never silently retrained)."""


def weights_dir() -> Path:
    """The folder of the shipped files, found inside the installed package (not the working directory)."""
    return Path(str(resources.files("genimg_course") / "weights"))


def manifest() -> dict:
    """Every shipped model's record: {name: {"file", "sha256", "argv", "seed", "train_seconds", ...}}."""
    path = weights_dir() / "manifest.json"
    if not path.is_file():
        raise PretrainedError(f"{path} is missing: this installation of genimg-course has no pretrained models "
                              f"(reinstall it, or set {ENV}=0 to train every model yourself)")
    return json.loads(path.read_text(encoding="utf-8"))


def names() -> list[str]:
    """The shipped models' names, e.g. ['cddpm', 'cflow', 'cgan', 'conv-vae', 'dcgan', ...]."""
    return sorted(manifest())


def info(name: str) -> dict:
    """The record of the shipped model ``name`` (see ``manifest``)."""
    records = manifest()
    if name not in records:
        raise PretrainedError(f"No pretrained model {name!r}. Shipped: {', '.join(sorted(records))}.")
    return records[name]


def enabled() -> bool:
    """False when ``GENIMG_PRETRAINED=0``: the lessons then train everything themselves."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def path_of(name: str) -> Path:
    """The shipped file of ``name``, after checking that its sha256 is the recorded one."""
    record = info(name)
    path = weights_dir() / record["file"]
    if not path.is_file():
        raise PretrainedError(f"{path} is missing (pretrained model {name!r}); reinstall genimg-course")
    found = sha256(path)
    if found != record["sha256"]:
        raise PretrainedError(f"{path} is not the file that was shipped (sha256 {found[:12]}…, recorded "
                              f"{record['sha256'][:12]}…): changed or corrupt; reinstall genimg-course, or "
                              f"remake it with benchmarks/make_pretrained.py")
    return path


def load(name: str, device="cpu"):
    """The shipped model ``name`` in eval mode, on ``device`` (weights stored in float16, loaded as float32)."""
    model, _ = load_checkpoint(path_of(name), family=info(name)["family"], device=device)
    return model.float()


SAMPLE_FOLDER = "folder:sample"  # the dataset a shipped model names when it was trained on lesson 07's sample folder


def dataset_of(name: str) -> str:
    """The dataset ``name`` was trained on, as ``load_dataset`` takes it. Lesson 07's sample folder (generated,
    not shipped) is made on first use in the course's data folder, exactly as the lesson makes it."""
    record = info(name)
    if record["dataset"] != SAMPLE_FOLDER:
        return record["dataset"]
    from genimg_course import folder
    from genimg_course.common.data import data_dir

    return f"folder:{folder.make_sample_folder(data_dir() / 'sample_folder', **record['folder'])}"


# the check of a shipped model: a small sample (seconds of CPU), the sampler cut to 10 steps; its band is the
# range of these scores over five sampling seeds when the model was shipped (benchmarks/make_pretrained.py)
CHECK_N, CHECK_STEPS = 200, 10


def check_scores(name: str, model=None, seed: int = 0) -> dict:
    """Scores of ``CHECK_N`` samples of the shipped model ``name`` drawn with ``seed``: lesson 05's metrics
    against the test digits ({"fid", "precision", "recall", ...}); a model of lesson 07's folder is scored as
    ``genimg eval`` scores it (``latent.evaluate_folder``, Laplacian-pyramid features, the held-out images)."""
    import torch

    from genimg_course import latent, metrics

    record = info(name)
    model = load(name) if model is None else model
    g = torch.Generator().manual_seed(seed)
    k = getattr(model.config, "n_classes", 0)
    labels = torch.arange(CHECK_N) % k if k else None
    options = {} if labels is None else {"labels": labels}
    if hasattr(model, "ema") or record["family"] == "latent-flow":  # a diffusion or flow sampler: fewer steps
        options["steps"] = CHECK_STEPS
    with torch.no_grad():
        samples = model.sample(CHECK_N, g, **options).float().cpu()
    if record["family"] == "latent-flow":
        result = latent.evaluate_folder(model, samples, dataset_of(name), seed=record["seed"])
        return {key: float(result[key]) for key in ("fid", "precision", "recall")}
    result = metrics.evaluate_images(samples, record["dataset"], asked=labels)
    keys = ["fid", "precision", "recall"] + (["conditional_accuracy"] if labels is not None else [])
    return {key: float(result[key]) for key in keys}


def time_curve() -> dict:
    """FID against training time of the DCGAN and flow matching (lesson 06), as recorded by
    ``benchmarks/make_pretrained.py curve``: {"floor_fid", "n", "rows": [{"model", "run", "seed",
    "budget_seconds", "steps", "fid", "precision", "recall", ...}, ...]}. Read from the package, not retrained."""
    path = weights_dir() / "time_curve.json"
    if not path.is_file():
        raise PretrainedError(f"{path} is missing: reinstall genimg-course, or remake it with "
                              f"`python benchmarks/make_pretrained.py curve`")
    return json.loads(path.read_text(encoding="utf-8"))
