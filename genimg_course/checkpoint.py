"""Checkpoints: one file with the weights, the model's configuration, the dataset and the course version.

Written atomically (a temporary file in the same folder, then ``os.replace``), so an
interrupted save never leaves a half-written ``model.pt``; read with
``torch.load(..., weights_only=True)``, which cannot run code hidden in a file.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import torch

FORMAT = "genimg-course checkpoint v1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: corrupt, not ours, or of another model family."""


def save_checkpoint(path, model: torch.nn.Module, dataset: str, extra: dict | None = None) -> Path:
    """Save ``model`` (which has ``.family`` and a dataclass ``.config``) to ``path`` atomically."""
    from genimg_course import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(model.config).items()}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "family": model.family, "config": config, "dataset": dataset,
               "course_version": __version__, "state_dict": state, "extra": extra or {}}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_checkpoint(path) -> dict:
    """The checkpoint's contents, after checking that it is a course checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {str(path)!r}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
        # (torch's own message here is advice about weights_only, which would only mislead)
        raise CheckpointError(f"{str(path)!r} is not a readable checkpoint: the file is corrupt, truncated or "
                              f"not a PyTorch file ({type(err).__name__}).") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a genimg-course checkpoint (no '{FORMAT}' marker).")
    return payload


def load_checkpoint(path, family: str | None = None, device="cpu"):
    """Rebuild the model saved at ``path``; returns (model in eval mode, checkpoint dict).

    ``family`` (for example ``"conv-vae"``) makes a checkpoint of another family an error.
    """
    from genimg_course.zoo import MODELS, build_model

    payload = read_checkpoint(path)
    saved = payload["family"]
    if family is not None and saved != family:
        raise CheckpointError(f"{str(path)!r} holds a {saved!r} model, not a {family!r} model.")
    if saved not in MODELS:
        raise CheckpointError(f"{str(path)!r} holds an unknown model family {saved!r}. "
                              f"Known families: {', '.join(MODELS)}.")
    if saved in ("dcgan", "cgan"):  # saved before D's kernel size was a setting: it was 4 × 4
        payload["config"].setdefault("d_kernel", 4)
    model = build_model(saved, payload["config"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"{str(path)!r}: the weights do not fit a {saved!r} model with its saved "
                              f"configuration: {str(err).splitlines()[0]}") from None
    extra = payload.get("extra", {})
    if "code_scale" in extra:  # the autoencoder remembers the size of its codes
        model._code_scale = torch.tensor(extra["code_scale"])
    return model.to(device).eval(), payload
