"""The pretrained models shipped in genimg_course/weights/ (issue 29): each loads, matches its recorded sha256,
and its samples score within the band recorded when it was shipped; a changed file is a one-line error.

Sampling only, never training: a check draws 200 samples (10 sampler steps for the diffusion and flow models)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from genimg_course import pretrained
from genimg_course.zoo import build_model

NAMES = pretrained.names()
# a score from another machine or library version may move a little beyond the five seeds' range
FID_SLACK, RATE_SLACK = 0.25, 0.1


def within_band(name: str, scores: dict) -> list[str]:
    """What lies outside the recorded band (an empty list when all is well)."""
    band = pretrained.info(name)["check"]["band"]
    problems = []
    for key, (lo, hi) in band.items():
        slack = FID_SLACK * hi + 2 if key == "fid" else RATE_SLACK
        if not lo - slack <= scores[key] <= hi + slack:
            problems.append(f"{key} {scores[key]:.3f} outside the recorded {lo:.3f}–{hi:.3f} (± {slack:.3g})")
    return problems


def test_the_issue_families_are_shipped_small():
    assert set(NAMES) >= {"conv-vae", "dcgan", "cgan", "ddpm", "flow", "cddpm", "cflow", "latent-flow"}
    total = sum(p.stat().st_size for p in pretrained.weights_dir().glob("*.pt"))  # the classifiers too
    assert total < 20e6, f"the shipped models take {total / 1e6:.1f} MB; the budget is 20 MB"


def test_the_shipped_classifiers_are_used_and_checked(tmp_path, monkeypatch):
    from genimg_course import classifier

    monkeypatch.setenv("GENIMG_DATA", str(tmp_path))  # an empty cache: nothing to train, the shipped one loads
    path = classifier._shipped_path("digits", 0)
    assert path is not None and path.parent == pretrained.weights_dir()
    assert classifier._shipped_path("mnist", 0) is None  # not shipped: trained and cached on first use
    model = classifier.get_classifier("digits", verbose=False)
    assert not (tmp_path / "classifiers").exists() and model.head.out_features == 10


@pytest.mark.parametrize("name", NAMES)
def test_provenance_is_recorded(name):
    record = pretrained.info(name)
    for key in ("command", "seed", "train_seconds", "steps", "commit", "machine", "sha256", "config", "torch",
                "threads"):
        assert record.get(key) not in (None, ""), f"{name}: no {key!r} in manifest.json"
    # a budget: seconds (recorded) or epochs (in the command)
    assert record["budget_seconds"] or " --epochs " in record["command"], record["command"]
    assert record["command"].startswith(f"genimg train {record['family']} "), record["command"]
    from genimg_course.zoo import SECONDS

    lesson = SECONDS["cpu"][record["family"]]  # what a lesson gives the same family, on 2 cores
    assert record["train_seconds"] >= 5 * lesson, f"{name}: trained {record['train_seconds']} s, a lesson {lesson} s"


@pytest.mark.parametrize("name", NAMES)
def test_shipped_model_samples_within_its_band(name):
    model = pretrained.load(name)  # checks the sha256 first
    assert not model.training
    scores = pretrained.check_scores(name, model=model, seed=0)
    problems = within_band(name, scores)
    assert not problems, f"pretrained:{name}: " + "; ".join(problems)


@pytest.mark.parametrize("name", ["dcgan", "flow"])
def test_an_untrained_model_falls_outside_the_band(name):
    """The band check can fail: the same architecture, untrained, scores far outside it."""
    fresh = build_model(pretrained.info(name)["family"], pretrained.info(name)["config"]).eval()
    assert within_band(name, pretrained.check_scores(name, model=fresh, seed=0))


@pytest.fixture
def copied_weights(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    shutil.copytree(pretrained.weights_dir(), folder)
    monkeypatch.setattr(pretrained, "weights_dir", lambda: folder)
    return folder


def test_a_changed_file_is_an_error_naming_it(copied_weights):
    path = copied_weights / pretrained.info("dcgan")["file"]
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(pretrained.PretrainedError, match=r"dcgan\.pt is not the file that was shipped \(sha256"):
        pretrained.load("dcgan")


def test_a_missing_file_and_an_unknown_name_are_errors(copied_weights):
    (copied_weights / pretrained.info("flow")["file"]).unlink()
    with pytest.raises(pretrained.PretrainedError, match=r"flow\.pt is missing"):
        pretrained.load("flow")
    with pytest.raises(pretrained.PretrainedError, match=r"No pretrained model 'gan'\. Shipped: cddpm, cflow"):
        pretrained.info("gan")
    (copied_weights / "manifest.json").unlink()
    with pytest.raises(pretrained.PretrainedError, match="GENIMG_PRETRAINED=0"):
        pretrained.names()


def test_weights_are_half_precision_and_buffers_are_not(copied_weights):
    payload = torch.load(copied_weights / "ddpm.pt", map_location="cpu", weights_only=True)
    dtypes = {k: v.dtype for k, v in payload["state_dict"].items()}
    assert torch.float16 in dtypes.values()
    schedule = [k for k in dtypes if "alpha" in k]
    assert schedule and all(dtypes[k] == torch.float32 for k in schedule), schedule
    model = pretrained.load("ddpm")
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_enabled_follows_the_environment(monkeypatch):
    monkeypatch.delenv(pretrained.ENV, raising=False)
    assert pretrained.enabled()
    for off in ("0", "false", "no"):
        monkeypatch.setenv(pretrained.ENV, off)
        assert not pretrained.enabled()
    monkeypatch.setenv(pretrained.ENV, "1")
    assert pretrained.enabled()


def test_the_time_curve_is_recorded_with_its_runs():
    curve = pretrained.time_curve()
    models = {row["model"] for row in curve["rows"]}
    assert models == {"dcgan", "flow"}
    for row in curve["rows"]:
        assert row["fid"] > 0 and row["steps"] > 0 and row["config"] and row["commit"], row["run"]
    longest = max(row["budget_seconds"] or 0 for row in curve["rows"])
    assert longest >= 1800, "the curve must reach at least 30 minutes of training"
    assert json.dumps(curve)  # plain JSON


# ----------------------------------------------------------------------------- the command line
def test_cli_samples_and_evaluates_a_shipped_model(tmp_path, capsys):
    from genimg_course.course.cli import main

    assert main(["sample", "pretrained:dcgan", "-n", "16", "--out", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert main(["eval", "pretrained:cgan", "-n", "100", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["fid"] > 0 and result["conditional_accuracy"] > 0.5


def test_cli_unknown_pretrained_name_is_one_line(capsys):
    from genimg_course.course.cli import main

    assert main(["sample", "pretrained:stylegan", "--out", "x.png"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No pretrained model 'stylegan'. Shipped: cddpm" in err, err


def test_train_for_seconds_with_snapshots_records_provenance(tmp_path):
    from genimg_course.course.cli import main

    out = tmp_path / "flow"
    assert main(["train", "flow", "--dataset", "digits", "--profile", "ci", "--seconds", "2", "--snapshots", "0.5,1",
                 "--out", str(out)]) == 0
    record = json.loads((out / "history.json").read_text())
    assert record["budget_seconds"] == 2 and record["epochs"] is None
    assert 2 <= record["seconds"] < 10 and record["steps"] == len(record["history"]["loss"])
    assert record["argv"][:3] == ["genimg", "train", "flow"] and record["commit"] and record["machine"]
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["model_0.5s.pt", "model_1s.pt"]
    from genimg_course.zoo import load_checkpoint

    _, early = load_checkpoint(out / "snapshots" / "model_0.5s.pt")
    assert 0 < early["extra"]["steps"] < record["steps"]


@pytest.mark.parametrize("bad", ["--seconds=0", "--snapshots=a,b"])
def test_train_rejects_bad_budgets(bad, tmp_path, capsys):
    from genimg_course.course.cli import main

    assert main(["train", "flow", "--dataset", "digits", "--profile", "ci", bad, "--out", str(tmp_path)]) == 2
    assert bad.split("=")[0] in capsys.readouterr().err


# ----------------------------------------------------------------------------- budgets in seconds
def test_budgets_are_seconds_in_cpu_and_epochs_elsewhere():
    from genimg_course.common.training import UNBOUNDED
    from genimg_course.zoo import SECONDS, budget_for

    cpu = budget_for("dcgan", "cpu", 1437)
    assert cpu.seconds == SECONDS["cpu"]["dcgan"] and cpu.epochs == UNBOUNDED and str(cpu) == f"{cpu.seconds:g} s"
    assert budget_for("dcgan", "cpu", 1437, share=0.5).seconds == SECONDS["cpu"]["dcgan"] / 2
    ci = budget_for("dcgan", "ci", 512)
    assert ci.seconds is None and ci.epochs == 1 and str(ci) == "1 epochs"
    assert budget_for("vae", "gpu", 1437, share=0.25).epochs == 75  # a quarter of the gpu table's 300
    with pytest.raises(ValueError, match="Unknown model 'gan'"):
        budget_for("gan", "cpu", 10)


def test_one_cycle_matches_torch():
    """latent.one_cycle (a schedule a time budget can drive) is torch's OneCycleLR with its defaults."""
    from genimg_course.latent import one_cycle

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=1001, pct_start=0.1)
    for step in range(1000):
        assert opt.param_groups[0]["lr"] == pytest.approx(one_cycle(step / 1000, 1e-3), rel=0.02, abs=1e-6), step
        opt.step()
        sched.step()


def test_train_for_seconds_counts_the_steps_of_every_family(tmp_path):
    """The steps recorded by genimg train: the MMD generator logs mmd2, the GANs loss_d, the others loss."""
    from genimg_course.course.cli import main

    for family in ("mlp-mmd", "dcgan"):
        out = tmp_path / family
        assert main(["train", family, "--dataset", "digits", "--profile", "ci", "--seconds", "1", "--out", str(out)]) == 0
        record = json.loads((out / "history.json").read_text())
        assert record["steps"] > 0 and record["steps"] == len(next(iter(record["history"].values())))
