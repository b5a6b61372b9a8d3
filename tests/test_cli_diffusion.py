"""genimg train / sample / eval for the diffusion and flow models: --steps, --sampler, --guidance, --label."""

import json

import numpy as np
import pytest
import torch

from genimg_course import diffusion, zoo
from genimg_course.common.checkpoint import save_checkpoint
from genimg_course.zoo import load_checkpoint
from genimg_course.course.cli import main


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models run fastest on one thread


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """ddpm and cflow trained for one epoch on digits in the ci profile, as `genimg train` does, but with a
    width-8 U-Net (the course's default width is tested by test_cli_train.py); and a dcgan checkpoint."""
    root = tmp_path_factory.mktemp("diffusion-runs")
    default_config = zoo.default_config
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENIMG_PROFILE", "ci")
        mp.setattr(zoo, "default_config", lambda family, *a, **k: {**default_config(family, *a, **k), "width": 8})
        for family in ("ddpm", "cflow"):
            assert main(["train", family, "--dataset", "digits", "--epochs", "1", "--out", str(root / family)]) == 0
    dcgan = zoo.build_model("dcgan", zoo.default_config("dcgan", (1, 28, 28)))
    save_checkpoint(root / "dcgan" / "model.pt", dcgan, "digits")
    return root


@pytest.fixture()
def calls(monkeypatch):
    """(batch size, labels) of every pass through a U-Net."""
    seen = []
    forward = diffusion.UNet.forward

    def spy(self, x, t, labels=None):
        seen.append((len(x), None if labels is None else labels.tolist()))
        return forward(self, x, t, labels)

    monkeypatch.setattr(diffusion.UNet, "forward", spy)
    return seen


def _model(trained, family):
    return str(trained / family / "model.pt")


@pytest.mark.parametrize("family", ["ddpm", "cflow"])
def test_train_writes_a_small_diffusion_model(trained, family):
    out = trained / family
    assert {p.name for p in out.iterdir()} >= {"model.pt", "history.json", "samples.png"}
    history = json.loads((out / "history.json").read_text())
    assert history["epochs"] == 1 and history["profile"] == "ci"
    steps = history["history"]
    assert set(steps) == {"loss", "seconds"} and len(steps["loss"]) == len(steps["seconds"]) > 1
    assert all(np.isfinite(steps["loss"]))
    model, payload = load_checkpoint(out / "model.pt")
    assert payload["family"] == model.family == family and model.config.width == 8
    assert model.config.n_classes == (10 if family == "cflow" else 0)
    # the defaults chosen by measurement (zoo.DIFFUSION_DEFAULTS; benchmarks/RESULTS.md, "Lesson 06, second pass")
    if family == "ddpm":
        assert (model.config.prediction, model.config.spacing, model.config.sampler) == ("v", "trailing", "heun")
    else:
        assert (model.config.time_sampling, model.config.sampler) == ("logit-normal", "heun")
    assert model.config.steps == 25


def test_sample_npy_and_png_with_steps(trained, tmp_path, capsys, calls):
    assert main(["sample", _model(trained, "ddpm"), "-n", "8", "--steps", "3", "--out", str(tmp_path / "s.npy")]) == 0
    assert calls == [(8, None)] * 5  # three Heun steps (the default of a trained model): 2 · 3 − 1 passes
    a = np.load(tmp_path / "s.npy")
    assert a.shape == (8, 1, 28, 28) and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    assert "wrote 8 ddpm samples" in capsys.readouterr().out
    assert main(["sample", _model(trained, "ddpm"), "-n", "8", "--steps", "3", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0
    main(["sample", _model(trained, "ddpm"), "-n", "8", "--steps", "3", "--out", str(tmp_path / "again.npy")])
    np.testing.assert_array_equal(np.load(tmp_path / "again.npy"), a)


def test_sample_with_the_ddpm_sampler(trained, tmp_path):
    for sampler in ("ddim", "ddpm"):
        assert main(["sample", _model(trained, "ddpm"), "-n", "4", "--steps", "3", "--sampler", sampler,
                     "--out", str(tmp_path / f"{sampler}.npy")]) == 0
    ddim, ddpm = np.load(tmp_path / "ddim.npy"), np.load(tmp_path / "ddpm.npy")
    assert ddpm.shape == (4, 1, 28, 28) and 0 <= ddpm.min() and ddpm.max() <= 1
    assert not np.allclose(ddim, ddpm)


def test_cflow_label_and_guidance(trained, tmp_path, calls):
    for w in ("0", "4"):
        assert main(["sample", _model(trained, "cflow"), "-n", "3", "--label", "3", "--steps", "2", "--guidance", w,
                     "--out", str(tmp_path / f"w{w}.npy")]) == 0
    # w = 0: the unconditional pass only; w = 4: one pass with the label 3 and the "no label" token 10
    assert calls == [(3, None)] * 3 + [(6, [3, 3, 3, 10, 10, 10])] * 3  # Heun, 2 steps: 3 passes
    w0, w4 = np.load(tmp_path / "w0.npy"), np.load(tmp_path / "w4.npy")
    assert w0.shape == w4.shape == (3, 1, 28, 28) and not np.allclose(w0, w4)


@pytest.mark.parametrize("family,args,message", [
    ("ddpm", ["--steps", "0"], "--steps must be at least 1, got 0"),
    ("ddpm", ["--sampler", "euler"], "sampler 'euler' does not fit a DDPM-path model. Valid samplers for "
                                     "'ddpm': ddim, ddpm, heun."),
    ("cflow", ["--sampler", "ddim"], "Valid samplers for 'cflow': euler, heun."),
    ("ddpm", ["--eta", "1.5"], "eta (DDIM's stochasticity) must be a number in [0, 1], got 1.5"),
    ("ddpm", ["--eta", "0.5", "--sampler", "ddpm"], "eta is DDIM's setting; sampler 'ddpm' has none"),
    ("cflow", ["--eta", "0.5"], "eta is DDIM's setting; sampler 'heun' (the model default) has none"),
    ("ddpm", ["--guidance", "2"], "--guidance is for a class-conditional model (cddpm, cflow, a latent-flow with classes)"),
    ("ddpm", ["--label", "3"], "--label is for a conditional model"),
    ("cflow", ["--label", "10"], "label 10 is out of range: this model knows classes 0..9"),
    ("ddpm", ["--steps", "1001"], "steps=1001 is more than the model's T=1000"),
    ("dcgan", ["--steps", "3"], "--steps: only for diffusion and flow models (ddpm, flow, cddpm, cflow, latent-flow); this "
                                "checkpoint holds a 'dcgan' model"),
    ("dcgan", ["--sampler", "ddim", "--guidance", "2"], "--sampler, --guidance: only for diffusion"),
])
def test_sampling_errors_are_clear(trained, tmp_path, capsys, family, args, message):
    out = tmp_path / "x.npy"
    assert main(["sample", _model(trained, family), "-n", "2", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genimg sample: error:") and message in err, err
    assert not out.exists()


def test_a_bad_sampler_name_is_refused_by_the_parser(trained, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["sample", _model(trained, "ddpm"), "--sampler", "rk4", "--out", str(tmp_path / "x.npy")])
    assert "invalid choice: 'rk4'" in capsys.readouterr().err


@pytest.mark.parametrize("family,args", [("ddpm", ["--sampler", "heun", "--spacing", "trailing"]),
                                         ("ddpm", ["--sampler", "ddim", "--eta", "0.5", "--clipped-eps"]), ("cflow", ["--sampler", "heun"])])
def test_second_pass_sampling_options(trained, tmp_path, family, args):
    out = tmp_path / "x.npy"
    assert main(["sample", _model(trained, family), "-n", "3", "--steps", "3", *args, "--out", str(out)]) == 0
    assert np.load(out).shape[0] == 3


@pytest.mark.parametrize("args,message", [
    (["flow", "--prediction", "v"], "--prediction and --zero-snr are for models on DDPM's path"),
    (["ddpm", "--time-sampling", "logit-normal"], "--time-sampling is for flow models"),
    (["ddpm", "--prediction", "eps", "--zero-snr"], "zero_terminal_snr needs prediction 'v' or 'x0'"),
])
def test_training_option_errors_are_one_line(tmp_path, capsys, args, message):
    assert main(["train", *args, "--dataset", "digits", "--profile", "ci", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genimg train: error:") and message in err, err


def test_eval_a_diffusion_checkpoint(trained, capsys, calls):
    assert main(["eval", _model(trained, "ddpm"), "-n", "50", "--steps", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "fid" in result and result["n_samples"] == 50
    assert len(calls) == 5  # three Heun steps, the default


def test_eval_cflow_with_guidance(trained, capsys):
    assert main(["eval", _model(trained, "cflow"), "-n", "20", "--steps", "2", "--guidance", "1"]) == 0
    out = capsys.readouterr().out
    assert "20 samples of cflow (model.pt; steps 2, guidance 1.0)" in out and "conditional_accuracy" in out


def test_eval_errors(trained, tmp_path, capsys):
    np.save(tmp_path / "s.npy", np.zeros((20, 1, 28, 28), np.float32))
    assert main(["eval", str(tmp_path / "s.npy"), "--steps", "3"]) == 2
    assert "are for sampling a checkpoint; " in capsys.readouterr().err
    assert main(["eval", _model(trained, "ddpm"), "-n", "20", "--sampler", "euler"]) == 2
    assert "Valid samplers for 'ddpm'" in capsys.readouterr().err
    assert main(["eval", _model(trained, "dcgan"), "-n", "20", "--steps", "3"]) == 2
    assert "only for diffusion and flow models" in capsys.readouterr().err
