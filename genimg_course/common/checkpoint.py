"""Checkpoints: one file with the weights, the model's configuration, the dataset and the course version.

This module writes and reads the file; rebuilding the model it holds needs the model families, so that
is ``genimg_course.zoo.load_checkpoint`` (the zoo imports this module, never the other way round).

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
