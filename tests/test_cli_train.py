"""genimg train / genimg sample, as a student or instructor runs them."""

import json

import numpy as np
import pytest

from genimg_course.course.cli import main
from genimg_course.zoo import MODELS


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for family in MODELS:
        assert main(["train", family, "--dataset", "digits", "--profile", "ci", "--epochs", "1",
                     "--out", str(root / family)]) == 0
    return root


@pytest.mark.parametrize("family", list(MODELS))
def test_train_writes_model_history_samples(trained, family):
    out = trained / family
    assert {p.name for p in out.iterdir()} >= {"model.pt", "history.json", "samples.png"}
    history = json.loads((out / "history.json").read_text())
    assert history["epochs"] == 1 and all(len(v) > 0 for v in history["history"].values())


@pytest.mark.parametrize("family", list(MODELS))
def test_sample_npy_is_float32_in_unit_range(trained, family, tmp_path):
    out = tmp_path / "s.npy"
    assert main(["sample", str(trained / family / "model.pt"), "-n", "7", "--out", str(out)]) == 0
    a = np.load(out)
    assert a.shape == (7, 1, 28, 28) and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1


def test_sample_png_and_reproducible(trained, tmp_path):
    assert main(["sample", str(trained / "conv-vae" / "model.pt"), "-n", "4", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").stat().st_size > 0
    for name in ("a", "b"):
        main(["sample", str(trained / "mlp-mmd" / "model.pt"), "-n", "3", "--seed", "5", "--out", str(tmp_path / f"{name}.npy")])
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_train_on_shapes_gives_colour(tmp_path):
    assert main(["train", "conv-vae", "--dataset", "shapes", "--profile", "ci", "--out", str(tmp_path)]) == 0
    assert main(["sample", str(tmp_path / "model.pt"), "-n", "2", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (2, 3, 32, 32)


def test_errors_are_clear(tmp_path, capsys, trained):
    assert main(["sample", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.npy")]) == 2
    assert "No checkpoint" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_text("garbage")
    assert main(["sample", str(tmp_path / "bad.pt"), "--out", str(tmp_path / "x.npy")]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert main(["sample", str(trained / "vae" / "model.pt"), "--out", str(tmp_path / "x.jpg")]) == 2
    assert ".npy" in capsys.readouterr().err
    assert main(["train", "vae", "--dataset", "nope", "--profile", "ci", "--out", str(tmp_path)]) == 2
    assert "Available datasets" in capsys.readouterr().err
    assert main(["train", "vae", "--epochs", "0", "--profile", "ci", "--out", str(tmp_path)]) == 2
    with pytest.raises(SystemExit):
        main(["train", "gan", "--out", str(tmp_path)])
    assert "invalid choice" in capsys.readouterr().err


def test_eval_checkpoint_and_npy(trained, tmp_path, capsys):
    assert main(["eval", str(trained / "conv-vae" / "model.pt"), "-n", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("fid", "kid", "precision", "recall", "density", "coverage", "inception_score", "classes_present",
                "histogram", "memorised_fraction"):
        assert key in result
    assert result["n_samples"] == 20
    main(["sample", str(trained / "vae" / "model.pt"), "-n", "12", "--out", str(tmp_path / "s.npy")])
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "s.npy"), "--dataset", "digits"]) == 0
    assert "fid" in capsys.readouterr().out


def test_eval_bad_input_is_clear(tmp_path, capsys):
    np.save(tmp_path / "signed.npy", np.zeros((20, 1, 28, 28), np.float32) - 0.5)
    assert main(["eval", str(tmp_path / "signed.npy")]) == 2
    assert "in [0, 1]" in capsys.readouterr().err
    np.save(tmp_path / "colour.npy", np.zeros((20, 3, 32, 32), np.float32))
    assert main(["eval", str(tmp_path / "colour.npy"), "--dataset", "digits"]) == 2
    assert "(3, 32, 32)" in capsys.readouterr().err
    np.save(tmp_path / "few.npy", np.zeros((4, 1, 28, 28), np.float32))
    assert main(["eval", str(tmp_path / "few.npy")]) == 2
    assert "at least 10" in capsys.readouterr().err
    np.save(tmp_path / "flat.npy", np.zeros((20, 784), np.float32))
    assert main(["eval", str(tmp_path / "flat.npy")]) == 2
    assert "(N, C, H, W)" in capsys.readouterr().err


def test_cgan_samples_the_label_asked_for(trained, tmp_path, capsys, monkeypatch):
    from genimg_course import gan

    asked = []
    original = gan.Generator.forward

    def spy(self, z, labels=None):
        asked.append(labels.clone())
        return original(self, z, labels)

    monkeypatch.setattr(gan.Generator, "forward", spy)
    assert main(["sample", str(trained / "cgan" / "model.pt"), "-n", "5", "--label", "7",
                 "--out", str(tmp_path / "sevens.npy")]) == 0
    assert np.load(tmp_path / "sevens.npy").shape == (5, 1, 28, 28)
    assert asked and asked[-1].tolist() == [7] * 5


def test_label_errors_are_clear(trained, tmp_path, capsys):
    assert main(["sample", str(trained / "cgan" / "model.pt"), "--label", "10", "--out", str(tmp_path / "x.npy")]) == 2
    assert "out of range" in capsys.readouterr().err and not (tmp_path / "x.npy").exists()
    assert main(["sample", str(trained / "dcgan" / "model.pt"), "--label", "3", "--out", str(tmp_path / "x.npy")]) == 2
    assert "conditional" in capsys.readouterr().err


def test_eval_cgan_reports_conditional_accuracy(trained, capsys):
    assert main(["eval", str(trained / "cgan" / "model.pt"), "-n", "30", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= result["conditional_accuracy"] <= 1.0
