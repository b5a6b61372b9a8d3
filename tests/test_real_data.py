"""Real datasets where the student has them (issue #13), tested offline on tiny fake files.

The fake MNIST / Fashion-MNIST idx files and CIFAR-10 pickles (tests/fakedata.py) are read by
torchvision itself, so these tests cover the same code path as the real sets; the network is
always switched off here (``network_reachable`` answers False unless a test fakes a download).
"""

from __future__ import annotations

import time

import pytest
import torch

import genimg_course
from fakedata import trust_fake_cifar, write_cifar, write_mnist
from genimg_course.common import data, runtime


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty dataset cache in a temporary folder, with no network."""
    monkeypatch.setenv("GENIMG_DATA", str(tmp_path))
    for var in (runtime.DATASET_ENV, runtime.COLOUR_DATASET_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(data, "network_reachable", lambda host, port=443, timeout=3.0: False)
    return tmp_path


@pytest.fixture
def fake_cache(cache, monkeypatch):
    """The cache holding fake MNIST, Fashion-MNIST and CIFAR-10."""
    write_mnist(cache, "MNIST")
    write_mnist(cache, "FashionMNIST", seed=5)
    trust_fake_cifar(write_cifar(cache), monkeypatch.setattr)
    return cache


# ----------------------------------------------------------------------------- loading
@pytest.mark.parametrize("name, shape, n_train, n_test", [
    ("mnist", (1, 28, 28), 200, 100), ("fashion-mnist", (1, 28, 28), 200, 100), ("cifar10", (3, 32, 32), 250, 100)])
def test_cached_sets_load_in_the_course_format(fake_cache, name, shape, n_train, n_test):
    train, test = data.load_dataset(name), data.load_dataset(name, split="test")
    assert (len(train), len(test), train.image_shape) == (n_train, n_test, shape)
    assert train.images.dtype == torch.float32 and train.images.min() >= -1 and train.images.max() <= 1
    assert len(train.classes) == 10 and set(train.labels.tolist()) == set(range(10))
    assert len(data.load_dataset(name, split="all")) == n_train + n_test
    # the pixels are the file's: a class-k image has its bright bar in row block k
    x, y = train[0]
    rows = shape[1] // 10
    assert x[:, y * rows:(y + 1) * rows, 2:-2].mean() > 0.5 > x[:, :, :2].mean()


def test_cifar_rgb_planes_are_not_mixed_up(cache, monkeypatch):
    md5 = write_cifar(cache)
    trust_fake_cifar(md5, monkeypatch.setattr)
    from fakedata import fake_images

    expected, _ = fake_images(250, 32, 3, 0)  # (N, H, W, 3) as written
    got = data.load_dataset("cifar10").images[:50]  # (50, 3, H, W) in [-1, 1]
    want = torch.from_numpy(expected[:50]).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert torch.allclose(got, want)


def test_prepare_uses_a_cached_set(fake_cache):
    assert data.prepare_dataset("MNIST") == ("mnist", None)
    assert data.prepare_dataset("CIFAR-10") == ("cifar10", None)


# ----------------------------------------------------------------------------- fallback
@pytest.mark.parametrize("name, stand_in", [("mnist", "digits"), ("fashion-mnist", "digits"), ("cifar10", "shapes")])
def test_fallback_offline_is_one_line_and_fast(cache, name, stand_in):
    start = time.monotonic()
    used, note = data.prepare_dataset(name)
    assert time.monotonic() - start < 5
    assert used == stand_in
    assert "\n" not in note and name in note and "no network" in note and repr(stand_in) in note


def test_setup_falls_back_and_says_so_in_one_line(cache, monkeypatch, capsys):
    monkeypatch.setenv("GENIMG_PROFILE", "gpu")  # wants mnist and cifar10; the cache is empty, no network
    start = time.monotonic()
    run = genimg_course.setup(device="cpu")
    assert time.monotonic() - start < 10
    assert (run.dataset, run.colour_dataset) == ("digits", "shapes")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3, lines  # the setup line, then one line per missing set
    assert "data=digits, shapes" in lines[0]
    assert lines[1].startswith("mnist is not available") and lines[2].startswith("cifar10 is not available")


def test_profile_datasets_and_overrides(fake_cache, monkeypatch, capsys):
    monkeypatch.setenv("GENIMG_PROFILE", "cpu")
    run = genimg_course.setup()
    assert (run.dataset, run.colour_dataset) == ("digits", "shapes")
    run = genimg_course.setup(dataset="fashion-mnist", colour_dataset="cifar10")
    assert (run.dataset, run.colour_dataset) == ("fashion-mnist", "cifar10")
    monkeypatch.setenv("GENIMG_DATASET", "MNIST")  # the environment wins over the argument
    assert genimg_course.setup(dataset="fashion-mnist").dataset == "mnist"
    assert run.as_dict()["dataset"] == "fashion-mnist"
    monkeypatch.setenv("GENIMG_PROFILE", "gpu")
    monkeypatch.delenv("GENIMG_DATASET")
    run = genimg_course.setup(device="cpu")
    assert (run.dataset, run.colour_dataset) == ("mnist", "cifar10")
    assert "data=mnist, cifar10" in capsys.readouterr().out


def test_a_colour_set_asked_as_the_dataset_goes_to_the_colour_sections(fake_cache, monkeypatch, capsys):
    monkeypatch.setenv("GENIMG_PROFILE", "cpu")
    monkeypatch.setenv("GENIMG_DATASET", "cifar10")
    run = genimg_course.setup()
    assert (run.dataset, run.colour_dataset) == ("digits", "cifar10")
    assert "colour sections use it" in capsys.readouterr().out


def test_bad_dataset_names_list_the_choices(cache, monkeypatch):
    monkeypatch.setenv("GENIMG_PROFILE", "ci")
    with pytest.raises(ValueError, match="Unknown dataset 'mnsit'. Valid datasets: 'digits', 'shapes', 'mnist'"):
        genimg_course.setup(dataset="mnsit")
    monkeypatch.setenv("GENIMG_DATASET", "imagenet")
    with pytest.raises(ValueError, match="'imagenet'.*'fashion-mnist', 'cifar10'"):
        genimg_course.setup()
    monkeypatch.delenv("GENIMG_DATASET")
    with pytest.raises(ValueError, match="colour_dataset='digits' is not a colour set.*shapes, cifar10"):
        genimg_course.setup(colour_dataset="digits")


# ----------------------------------------------------------------------------- the cache
def _fake_download(folder="MNIST", fail_after=None):
    """A stand-in for torchvision's download: writes the fake files; with ``fail_after``, stops half-way
    through (one file written, then a network error), as an interrupted download would."""

    def download(self):
        raw = write_mnist(self.root, folder)
        if fail_after is not None:
            for f in sorted(raw.iterdir())[fail_after:]:
                f.write_bytes(f.read_bytes()[:40])  # a truncated file ...
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: connection reset")

    return download


def test_download_lands_in_the_cache_in_one_step(cache, monkeypatch):
    from torchvision.datasets import MNIST

    monkeypatch.setattr(data, "network_reachable", lambda host, port=443, timeout=3.0: True)
    monkeypatch.setattr(MNIST, "download", _fake_download())
    assert data.prepare_dataset("mnist") == ("mnist", None)
    assert len(data.load_dataset("mnist")) == 200
    assert sorted(p.name for p in cache.iterdir()) == ["MNIST"]  # no staging folder left behind


def test_a_failed_download_never_poisons_the_cache(cache, monkeypatch):
    from torchvision.datasets import MNIST

    monkeypatch.setattr(data, "network_reachable", lambda host, port=443, timeout=3.0: True)
    monkeypatch.setattr(MNIST, "download", _fake_download(fail_after=1))
    used, note = data.prepare_dataset("mnist")
    assert used == "digits" and "download failed" in note and "connection reset" in note
    assert list(cache.iterdir()) == []  # nothing half-written in the cache
    monkeypatch.setattr(MNIST, "download", _fake_download())  # the network is back: the next try works
    assert data.prepare_dataset("mnist") == ("mnist", None)


def test_a_corrupt_cache_is_replaced_or_reported(cache, monkeypatch):
    from torchvision.datasets import MNIST

    raw = write_mnist(cache, "MNIST")
    images = raw / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])  # truncated by a crash, say
    used, note = data.prepare_dataset("mnist")  # offline: cannot replace it
    assert used == "digits" and "corrupt" in note and str(cache / "MNIST") in note and "no network" in note
    assert "\n" not in note
    monkeypatch.setattr(data, "network_reachable", lambda host, port=443, timeout=3.0: True)
    monkeypatch.setattr(MNIST, "download", _fake_download())
    assert data.prepare_dataset("mnist") == ("mnist", None)  # online: downloaded again, replacing it
    assert len(data.load_dataset("mnist")) == 200
    assert sorted(p.name for p in cache.iterdir()) == ["MNIST"]


def test_cifar_with_a_wrong_checksum_is_corrupt(cache, monkeypatch):
    md5 = write_cifar(cache)
    # torchvision's MD5 check must catch a batch that is not what it should be
    trust_fake_cifar({**md5, "data_batch_3": "0" * 32}, monkeypatch.setattr)
    used, note = data.prepare_dataset("cifar10")
    assert used == "shapes" and "corrupt" in note and "\n" not in note


def test_offline_status_sees_the_cache(fake_cache):
    status = data.offline_status()
    assert status["mnist"] is True and status["cifar10"] is True


def test_offline_status_without_a_cache(cache):
    status = data.offline_status()
    assert status["mnist"] is False and status["digits"] is True


# ----------------------------------------------------------------------------- classifier, metrics, training
@pytest.mark.parametrize("name, shape", [("mnist", (1, 28, 28)), ("fashion-mnist", (1, 28, 28)),
                                         ("cifar10", (3, 32, 32))])
def test_a_classifier_per_dataset(fake_cache, name, shape):
    from genimg_course import classifier

    model, accuracy = classifier.train_classifier(name, verbose=False)
    assert model.image_shape == shape and model.head.out_features == 10
    assert accuracy > 0.9  # the fake classes are easy; chance is 0.1
    cached = classifier.get_classifier(name.upper(), verbose=False)  # trained again and cached, by canonical name
    assert (fake_cache / "classifiers" / f"{name}-seed0.pt").exists()
    feats, probs = classifier.classify(data.load_dataset(name, split="test").images[:7], name)
    assert feats.shape == (7, 128) and probs.shape == (7, 10)
    assert cached.head.out_features == 10


def test_metrics_follow_the_dataset(fake_cache):
    from genimg_course import metrics

    test = data.load_dataset("cifar10", split="test")
    real = metrics.evaluate_images(data.load_dataset("cifar10").images[:60], "cifar10")
    noise = metrics.evaluate_images(torch.rand(60, 3, 32, 32) * 2 - 1, "cifar10")
    assert real["n_real"] == len(test) == 100
    assert real["fid"] < noise["fid"] and real["precision"] > noise["precision"]
    with pytest.raises(ValueError, match=r"\(1, 28, 28\) per image, but 'cifar10' images are \(3, 32, 32\)"):
        metrics.evaluate_images(torch.zeros(20, 1, 28, 28), "cifar10")


def test_epochs_follow_the_size_of_the_data():
    from genimg_course.zoo import EPOCHS, epochs_for

    assert epochs_for("dcgan", "gpu", 1437) == EPOCHS["gpu"]["dcgan"] == 400
    assert epochs_for("dcgan", "gpu", 60000) == 10  # 400 × 1,437 images ≈ 10 × 60,000
    assert epochs_for("dcgan", "ci", 512) == EPOCHS["ci"]["dcgan"]  # smaller sets keep the table's count
    assert epochs_for("vae", "cpu", 10**6) == 1
    with pytest.raises(ValueError, match="Valid profiles: ci, cpu, gpu"):
        epochs_for("dcgan", "tpu", 100)


def test_cli_trains_samples_and_evaluates_on_a_cached_set(fake_cache, tmp_path, monkeypatch, capsys):
    from genimg_course.course.cli import main

    monkeypatch.setenv("GENIMG_PROFILE", "ci")
    out = tmp_path / "run"
    assert main(["train", "dcgan", "--dataset", "fashion-mnist", "--out", str(out)]) == 0
    assert "on fashion-mnist: 200 images" in capsys.readouterr().out
    from genimg_course.common.checkpoint import read_checkpoint

    assert read_checkpoint(out / "model.pt")["dataset"] == "fashion-mnist"
    assert main(["sample", str(out / "model.pt"), "-n", "12", "--out", str(tmp_path / "s.npy")]) == 0
    assert main(["sample", str(out / "model.pt"), "--dataset", "Fashion-MNIST", "--out", str(tmp_path / "f.png")]) == 0
    capsys.readouterr()
    assert main(["sample", str(out / "model.pt"), "--dataset", "mnist", "--out", str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err
    assert "was trained on 'fashion-mnist'" in err and "genimg train dcgan --dataset mnist" in err
    assert not (tmp_path / "m.png").exists()
    assert main(["eval", str(out / "model.pt"), "-n", "30", "--json"]) == 0
    import json

    results = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert results["n_real"] == 100 and results["n_samples"] == 30  # fashion-mnist's (fake) test split
    assert main(["train", "cgan", "--dataset", "cifar10", "--epochs", "1", "--out", str(tmp_path / "c")]) == 0
    assert read_checkpoint(tmp_path / "c" / "model.pt")["config"]["image_shape"] == [3, 32, 32]


def test_cli_asked_for_a_missing_set_fails_in_one_line(cache, tmp_path, monkeypatch, capsys):
    from genimg_course.course.cli import main

    monkeypatch.setenv("GENIMG_PROFILE", "ci")
    start = time.monotonic()
    assert main(["train", "vae", "--dataset", "mnist", "--out", str(tmp_path / "x")]) == 2
    assert time.monotonic() - start < 10
    err = capsys.readouterr().err
    assert err.startswith("genimg train: error: Cannot load 'mnist': no network") and "'digits'" in err
    assert not (tmp_path / "x").exists()


def test_cli_default_dataset_is_the_profiles_with_the_fallback(cache, tmp_path, monkeypatch, capsys):
    from genimg_course.course.cli import main

    monkeypatch.setenv("GENIMG_PROFILE", "gpu")  # wants mnist: not cached, no network
    assert main(["train", "mlp-ae", "--epochs", "1", "--out", str(tmp_path / "g")]) == 0
    out = capsys.readouterr().out
    assert "mnist is not available: no network" in out and "on digits: 1437 images, 1 epochs" in out


def test_a_large_test_split_is_cut_to_the_sample_size(cache):
    from genimg_course import metrics

    write_mnist(cache, "MNIST", n_train=300, n_test=1500)
    test = data.load_dataset("mnist", split="test")
    few = metrics.evaluate_images(test.images[:20], "mnist")
    many = metrics.evaluate_images(data.load_dataset("mnist").images[:250].repeat(5, 1, 1, 1), "mnist")
    assert few["n_real"] == metrics.MIN_REAL == 1000  # at least 1,000 real images ...
    assert many["n_real"] == 1250  # ... and as many as there are samples
    assert few["n_samples"] == 20


@pytest.mark.parametrize("hang", ["dns", "dropped packets"])
def test_fallback_on_a_silent_network_is_under_five_seconds(tmp_path, monkeypatch, capsys, hang):
    """No monkeypatched probe: the real one, against a network that never answers (a DNS look-up that
    hangs, or a firewall that drops packets). setup() asks for two hosts; it must not wait twice."""
    import socket

    def silent(address, timeout=None, *args, **kwargs):
        if hang == "dns":
            time.sleep(30)  # the probe's thread is abandoned after its timeout
        time.sleep(timeout)
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", silent)
    monkeypatch.setattr(data, "_SILENT_UNTIL", 0.0)
    monkeypatch.setenv("GENIMG_DATA", str(tmp_path))
    monkeypatch.setenv("GENIMG_PROFILE", "gpu")
    start = time.monotonic()
    run = genimg_course.setup(device="cpu")
    assert time.monotonic() - start < 5
    assert (run.dataset, run.colour_dataset) == ("digits", "shapes")
    assert capsys.readouterr().out.count("no network") == 2


def test_a_refused_connection_does_not_mark_the_network_silent(monkeypatch):
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    server.close()  # nothing listens there now: refused at once
    monkeypatch.setattr(data, "_SILENT_UNTIL", 0.0)
    assert not data.network_reachable("127.0.0.1", port, timeout=1)
    assert data._SILENT_UNTIL == 0.0


def test_cli_default_dataset_follows_genimg_dataset(fake_cache, tmp_path, monkeypatch, capsys):
    from genimg_course.course.cli import main

    monkeypatch.setenv("GENIMG_PROFILE", "ci")
    monkeypatch.setenv("GENIMG_DATASET", "fashion-mnist")
    assert main(["train", "mlp-ae", "--epochs", "1", "--out", str(tmp_path / "f")]) == 0
    assert "on fashion-mnist: 200 images" in capsys.readouterr().out
    assert main(["doctor"]) == 0
    assert "lessons train on: fashion-mnist (colour sections: shapes)" in capsys.readouterr().out


def test_setup_without_preparing_the_data_probes_nothing(cache, monkeypatch):
    monkeypatch.setenv("GENIMG_PROFILE", "gpu")
    monkeypatch.setattr(data, "network_reachable", lambda *args, **kwargs: pytest.fail("probed the network"))
    run = genimg_course.setup(device="cpu", verbose=False, prepare_data=False)
    assert (run.dataset, run.colour_dataset) == ("mnist", "cifar10")  # asked for; not checked
