import io
import time
import warnings

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from genimg_course.common import data


def test_digits_train_test_split():
    train, test = data.load_dataset("digits"), data.load_dataset("digits", split="test")
    assert len(train) == 1437 and len(test) == 360
    assert len(data.load_dataset("digits", split="all")) == 1797
    x, y = train[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and isinstance(y, int)
    assert train.images.min() >= -1 and train.images.max() <= 1
    assert train.images.min() == -1 and train.images.max() > 0.9  # the whole range is used
    a, b = data.digit_split_indices()
    assert set(a).isdisjoint(b)
    # stratified: every class keeps (about) its share in the test set
    counts = torch.bincount(test.labels, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38


def test_digits_deterministic_and_in_a_dataloader():
    a, b = data.load_dataset("digits"), data.load_dataset("digits")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    xb, yb = next(iter(DataLoader(a, batch_size=16)))
    assert xb.shape == (16, 1, 28, 28) and yb.shape == (16,)


def test_digits_resize_and_channels():
    ds = data.load_dataset("digits", image_size=32, channels=3)
    assert ds[0][0].shape == (3, 32, 32)
    assert ds.images.min() >= -1 and ds.images.max() <= 1


def test_shapes_deterministic_for_seed_and_size():
    a = data.load_dataset("shapes", n=60, seed=1)
    b = data.load_dataset("shapes", n=60, seed=1)
    c = data.load_dataset("shapes", n=60, seed=2)
    assert a.images.shape == (60, 3, 32, 32)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert a.images.min() >= -1 and a.images.max() <= 1
    assert torch.bincount(a.labels).tolist() == [10] * len(data.SHAPE_CLASSES)  # balanced


def test_shapes_any_number_and_size_and_test_split_differs():
    ds = data.load_dataset("shapes", n=7, image_size=16)
    assert ds.images.shape == (7, 3, 16, 16)
    train, test = data.load_dataset("shapes", n=20), data.load_dataset("shapes", split="test", n=20)
    assert not torch.equal(train.images, test.images)
    with pytest.raises(ValueError, match="positive int"):
        data.load_dataset("shapes", n=0)


def test_shapes_really_differ_by_class():
    # the mean image of each class differs: a circle is not a cross
    ds = data.load_dataset("shapes", n=600)
    gray = ds.images.mean(1)  # (N, H, W)
    fg = (gray - gray.mean(dim=(1, 2), keepdim=True)).abs()
    means = torch.stack([fg[ds.labels == k].mean(0) for k in range(6)])
    d = torch.cdist(means.flatten(1), means.flatten(1))
    assert d[~torch.eye(6, dtype=bool)].min() > 0.3


def test_unknown_dataset_lists_names():
    with pytest.raises(ValueError) as err:
        data.load_dataset("mnsit")
    for name in ("digits", "shapes", "mnist", "fashion-mnist", "cifar10", "folder:PATH"):
        assert name in str(err.value)


def test_bad_split_and_size():
    with pytest.raises(ValueError, match="Valid splits: train, test, all"):
        data.load_dataset("digits", split="validation")
    with pytest.raises(ValueError, match="image_size"):
        data.load_dataset("digits", image_size=2)


def test_online_dataset_offline_fails_fast_naming_alternatives(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "network_reachable", lambda host, port, timeout=3.0: False)
    start = time.monotonic()
    with pytest.raises(data.DatasetUnavailableError) as err:
        data.load_dataset("fashion-mnist", root=tmp_path)
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "'digits'" in message and "'shapes'" in message and "no network" in message


def test_online_dataset_really_offline_within_10_seconds(tmp_path):
    # No monkeypatching: on this offline machine the real probe must give up quickly.
    start = time.monotonic()
    try:
        data.load_dataset("mnist", root=tmp_path)
    except data.DatasetUnavailableError:
        pass
    else:
        pytest.skip("the network is reachable here: MNIST downloaded")
    assert time.monotonic() - start < 10


def test_network_probe_on_loopback():
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    assert data.network_reachable("127.0.0.1", port, timeout=1)
    server.close()
    assert not data.network_reachable("127.0.0.1", port, timeout=1)


def _png(path, size=(20, 12), colour=(200, 30, 30), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour if mode == "RGB" else 128).save(path)


def test_folder_with_classes_skips_bad_files_by_name(tmp_path):
    _png(tmp_path / "cats" / "a.png")
    _png(tmp_path / "cats" / "b.png", mode="L")  # grayscale: converted to RGB
    _png(tmp_path / "dogs" / "c.jpg", colour=(10, 200, 10))
    (tmp_path / "dogs" / "broken.jpg").write_bytes(b"not an image")
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buf, format="PNG")
    (tmp_path / "dogs" / "truncated.png").write_bytes(buf.getvalue()[:60])
    _png(tmp_path / "dogs" / "tiny.png", size=(3, 3))
    (tmp_path / "dogs" / "notes.txt").write_text("ignored: not an image extension")
    with pytest.warns(UserWarning) as record:
        ds = data.load_dataset(f"folder:{tmp_path}", image_size=16)
    message = str(record[0].message)
    assert "broken.jpg" in message and "truncated.png" in message and "tiny.png" in message
    assert "notes.txt" not in message
    assert len(ds) == 3 and ds.classes == ["cats", "dogs"]
    x, y = ds[0]
    assert x.shape == (3, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert len(ds.skipped) == 3


def test_flat_folder_grayscale_via_argument(tmp_path):
    for i in range(3):
        _png(tmp_path / "pics" / f"{i}.png", size=(40, 30))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        ds = data.load_dataset("folder", folder=tmp_path / "pics", image_size=8, channels=1)
    assert len(ds) == 3 and ds.classes == ["pics"]
    assert ds[0][0].shape == (1, 8, 8)


def test_folder_errors_name_the_culprit(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        data.load_dataset(f"folder:{tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No readable images"):
        data.load_dataset(f"folder:{tmp_path / 'empty'}")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="x.png"), pytest.raises(ValueError, match="1 file"):
        data.load_dataset(f"folder:{tmp_path / 'bad'}")
    _png(tmp_path / "file.png")
    with pytest.raises(NotADirectoryError, match="file.png"):
        data.load_dataset(f"folder:{tmp_path / 'file.png'}")


def test_sample_photos():
    photos = data.sample_photos()
    assert set(photos) == {"china", "flower"}
    for photo in photos.values():
        assert photo.shape == (3, 427, 640) and photo.min() >= 0 and photo.max() <= 1
    small = data.sample_photos(size=64)
    assert small["china"].shape == (3, 64, 96)


def test_offline_status():
    status = data.offline_status()
    assert status["digits"] is True and status["shapes"] is True and status["sample_photos"] is True
