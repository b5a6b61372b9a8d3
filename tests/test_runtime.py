import random

import numpy as np
import pytest
import torch

import genimg_course
from genimg_course.common import runtime


@pytest.fixture(autouse=True)
def no_profile_env(monkeypatch):
    monkeypatch.delenv("GENIMG_PROFILE", raising=False)


def test_setup_returns_device_profile_and_settings(capsys):
    run = genimg_course.setup(seed=3, profile="ci")
    assert run.profile == "ci" and run.device == torch.device("cpu") and run.seed == 3
    assert run.epochs == runtime.PROFILES["ci"].epochs
    assert run.batch_size == runtime.PROFILES["ci"].batch_size
    out = capsys.readouterr().out
    assert out.count("\n") == 1, "setup prints exactly one line"
    assert "profile=ci" in out and "device=cpu" in out


def test_unknown_setting_is_attribute_error():
    run = genimg_course.setup(profile="ci", verbose=False)
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        run.nonsense  # noqa: B018 - the attribute access is the test


def test_env_variable_wins_over_argument(monkeypatch):
    monkeypatch.setenv("GENIMG_PROFILE", "gpu")
    assert genimg_course.setup(profile="ci", verbose=False).profile == "gpu"


@pytest.mark.parametrize("where", ["env", "arg"])
def test_invalid_profile_lists_valid_ones(monkeypatch, where):
    if where == "env":
        monkeypatch.setenv("GENIMG_PROFILE", "fast")
    with pytest.raises(ValueError, match=r"Valid profiles: ci, cpu, gpu") as err:
        genimg_course.setup(profile=None if where == "env" else "fast", verbose=False)
    assert "fast" in str(err.value)


def test_auto_profile_is_cpu_without_cuda_and_gpu_with(monkeypatch):
    assert genimg_course.setup(verbose=False).profile == ("gpu" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.pick_device().type == "cuda"
    assert runtime.resolve_profile(None, torch.device("cuda"))[0] == "gpu"


def test_mps_is_second_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert runtime.pick_device().type == "mps"


def test_seeds_python_numpy_and_torch():
    def draw():
        genimg_course.setup(seed=7, profile="ci", verbose=False)
        return random.random(), np.random.rand(), torch.rand(1).item()

    assert draw() == draw()


def test_bad_seed_is_clear():
    with pytest.raises(TypeError, match="seed"):
        genimg_course.setup(seed="0")
