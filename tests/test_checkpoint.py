import os

import pytest
import torch

from genimg_course import mlp, vae
from genimg_course.common.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from genimg_course.zoo import load_checkpoint
from genimg_course.zoo import MODELS, build_model, default_config


@pytest.mark.parametrize("family", list(MODELS))
def test_round_trip_every_family(tmp_path, family):
    model = build_model(family, default_config(family, (1, 28, 28), n_classes=10))
    path = save_checkpoint(tmp_path / "m.pt", model, "digits", {"epochs": 3})
    loaded, payload = load_checkpoint(path, family=family)
    assert payload["dataset"] == "digits" and payload["family"] == family and payload["extra"]["epochs"] == 3
    assert payload["course_version"]
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)
    torch.load(path, weights_only=True)  # only tensors and plain values inside
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left behind


def test_gan_checkpoint_from_before_d_kernel_still_loads(tmp_path):
    model = build_model("dcgan", {**default_config("dcgan", (1, 28, 28)), "d_kernel": 4})
    path = save_checkpoint(tmp_path / "old.pt", model, "digits")
    payload = torch.load(path, weights_only=True)
    del payload["config"]["d_kernel"]  # as saved by the course before D's kernel was a setting
    torch.save(payload, path)
    loaded, _ = load_checkpoint(path)
    assert loaded.config.d_kernel == 4
    torch.testing.assert_close(loaded.discriminator.state_dict(), model.discriminator.state_dict())


def test_other_family_corrupt_and_foreign_files(tmp_path):
    path = save_checkpoint(tmp_path / "vae.pt", vae.MLPVAE(), "digits")
    with pytest.raises(CheckpointError, match="holds a 'vae' model, not a 'conv-vae' model"):
        load_checkpoint(path, family="conv-vae")
    (tmp_path / "junk.pt").write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt.*corrupt"):
        load_checkpoint(tmp_path / "junk.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(truncated)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a genimg-course checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.pt", mlp.MLPGenerator(), "digits")
    before = path.read_bytes()

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, mlp.MLPGenerator(), "digits")
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.pt"]


def test_autoencoder_code_scale_survives(tmp_path):
    ae = mlp.MLPAutoencoder()
    ae._code_scale = torch.tensor(0.7)
    save_checkpoint(tmp_path / "ae.pt", ae, "digits", {"code_scale": 0.7})
    loaded, _ = load_checkpoint(tmp_path / "ae.pt")
    assert float(loaded.code_scale) == pytest.approx(0.7)


def test_build_model_rejects_unknown_names_and_keys():
    with pytest.raises(ValueError, match="Valid models: mlp-ae, mlp-mmd, vae, conv-vae"):
        build_model("gan")
    with pytest.raises(ValueError, match="Unknown configuration"):
        build_model("vae", {"layers": 3})
