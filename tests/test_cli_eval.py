"""Issue 15: genimg eval on bad input gives one clear line and exit 2, never a traceback or a silent result."""

import json

import numpy as np
import pytest
import torch

from genimg_course.course.cli import main


@pytest.fixture()
def good(tmp_path):
    images = (np.random.default_rng(0).random((30, 1, 28, 28)) > 0.8).astype(np.float32)  # in [0, 1]
    np.save(tmp_path / "good.npy", images)
    return tmp_path / "good.npy"


def test_npz_renamed_npy(tmp_path, capsys, good):
    np.savez(tmp_path / "archive.npz", images=np.load(good))
    (tmp_path / "archive.npz").rename(tmp_path / "archive.npy")
    assert main(["eval", str(tmp_path / "archive.npy")]) == 2
    err = capsys.readouterr().err
    assert "archive.npy" in err and ".npz archive (arrays: images)" in err


def test_not_an_array_file(tmp_path, capsys):
    (tmp_path / "text.npy").write_text("not numpy")
    assert main(["eval", str(tmp_path / "text.npy")]) == 2
    assert "text.npy' is not a NumPy array file" in capsys.readouterr().err


def test_empty_array(tmp_path, capsys):
    np.save(tmp_path / "empty.npy", np.zeros((0, 1, 28, 28), np.float32))
    assert main(["eval", str(tmp_path / "empty.npy")]) == 2
    assert "empty.npy' holds no images (shape (0, 1, 28, 28))" in capsys.readouterr().err


def test_text_array(tmp_path, capsys):
    np.save(tmp_path / "words.npy", np.full((12, 1, 28, 28), "a"))
    assert main(["eval", str(tmp_path / "words.npy")]) == 2
    assert "words.npy' holds <U1 values" in capsys.readouterr().err


@pytest.mark.parametrize("n", ["-5", "0"])
def test_n_below_one(good, capsys, n):
    assert main(["eval", str(good), "-n", n]) == 2
    assert f"-n must be at least 1, got {n}" in capsys.readouterr().err


def test_n_takes_the_first_images(good, capsys):
    assert main(["eval", str(good), "-n", "12", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["n_samples"] == 12


def test_checkpoint_that_samples_nan(tmp_path, capsys):
    from genimg_course.common.checkpoint import save_checkpoint
    from genimg_course.zoo import build_model, default_config

    model = build_model("dcgan", default_config("dcgan", (1, 28, 28)))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))  # a training run that diverged
    save_checkpoint(tmp_path / "nan.pt", model, "digits")
    assert main(["eval", str(tmp_path / "nan.pt"), "-n", "20"]) == 2
    err = capsys.readouterr().err
    assert "nan.pt': 20 of the 20 samples contain NaN or infinite values" in err
