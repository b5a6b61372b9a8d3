"""Tests of lesson 07's folder audit: the sample folder, dhash, audit_folder and its report."""

from __future__ import annotations

import dataclasses
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from genimg_course import folder
from genimg_course.common import data

N = 20  # crops per class in the shared sample folder: 2 * (20 + 4) = 48 readable images


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return folder.make_sample_folder(tmp_path_factory.mktemp("photos") / "sample", n_per_class=N)


@pytest.fixture(scope="module")
def audit(sample):
    return folder.audit_folder(sample)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _tensor(im: Image.Image) -> torch.Tensor:
    """A PIL image as the course's (C, H, W) tensor in [-1, 1]."""
    return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).float() / 127.5 - 1


# ----------------------------------------------------------------------------- make_sample_folder
def test_sample_folder_is_deterministic_and_idempotent(tmp_path, sample):
    a = folder.make_sample_folder(tmp_path / "a", n_per_class=N)
    assert _tree(a) == _tree(sample)  # same seed, same files, same bytes
    assert {p.name for p in a.iterdir()} == {"china", "flower", folder.MARKER}
    b = folder.make_sample_folder(tmp_path / "b", n_per_class=N, seed=1)
    assert _tree(b) != _tree(a)
    stamp = (a / "china" / "empty.png").stat().st_mtime_ns
    assert folder.make_sample_folder(a, n_per_class=N) == a  # already there: not rewritten
    assert (a / "china" / "empty.png").stat().st_mtime_ns == stamp
    folder.make_sample_folder(a, n_per_class=12)  # our own folder, other parameters: rewritten
    assert len(list((a / "china").iterdir())) == 12 + 4 + 2


def test_sample_folder_refuses_foreign_folder_and_bad_parameters(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="mine"):
        folder.make_sample_folder(tmp_path / "mine")
    assert (tmp_path / "mine" / "holiday.jpg").read_bytes() == b"x"
    with pytest.raises(ValueError, match="n_per_class"):
        folder.make_sample_folder(tmp_path / "x", n_per_class=3)
    with pytest.raises(ValueError, match="size_range"):
        folder.make_sample_folder(tmp_path / "x", size_range=(100, 50))


def test_sample_folder_exif_files_are_stored_turned(sample, audit):
    assert len(audit.exif_rotated) == 2
    for rel in audit.exif_rotated:
        with Image.open(sample / rel) as im:
            assert im.getexif()[folder.EXIF_ORIENTATION] == 6
            upright = ImageOps.exif_transpose(im)
            assert upright.size == im.size[::-1]


# ----------------------------------------------------------------------------- audit_folder
def test_audit_classes_modes_sizes(audit):
    assert audit.classes == {"china": N + 4, "flower": N + 4}
    assert audit.n_images == 2 * (N + 4) == len(audit.sizes) == len(audit.labels)
    assert {"RGB", "L", "RGBA", "CMYK", "I;16"} <= set(audit.modes)
    assert sum(audit.modes.values()) == audit.n_images
    assert audit.modes["CMYK"] == 2 and audit.modes["I;16"] == 1
    assert audit.sixteen_bit == [f for f in audit.files if Path(f).parts[0] == "china" and
                             Image.open(audit.root / f).mode == "I;16"]
    assert audit.smallest_side == min(min(s) for s in audit.sizes) >= 40
    assert all(40 <= v <= 160 for s in audit.sizes for v in s)
    assert audit.upscaled == [] and audit.empty_classes == []


def test_audit_upscaled_follows_image_size(sample, audit):
    big = folder.audit_folder(sample, image_size=64)
    assert big.upscaled == [f for f, s in zip(audit.files, audit.sizes) if min(s) < 64] != []
    assert f"{len(big.upscaled)} image(s) have a side under 64 px" in big.report()


def test_audit_finds_exactly_the_broken_files(audit):
    reasons = dict(audit.skipped)
    assert set(reasons) == {os.path.join("china", "truncated.png"), os.path.join("china", "empty.png"),
                            os.path.join("flower", "notes.jpg")}
    assert "truncated" in reasons[os.path.join("china", "truncated.png")]
    assert reasons[os.path.join("china", "empty.png")] == "not an image PIL can read"
    assert reasons[os.path.join("flower", "notes.jpg")] == "not an image PIL can read"


def test_audit_finds_the_planted_duplicates(audit):
    exact = sorted(sorted(g) for g in audit.exact_duplicates)
    assert len(exact) == 4 and all(len(g) == 2 for g in exact)
    for a, b in exact:  # "x (1).ext" next to "x.ext"
        assert a.replace(" (1)", "") == b
    assert sorted(Path(g[0]).parts[0] for g in exact) == ["china", "china", "flower", "flower"]
    near = audit.near_duplicates
    assert len(near) == 4 and all(d <= 2 for _, _, d in near)
    for a, b, _ in near:
        copy, original = (a, b) if "-" in Path(a).stem else (b, a)
        assert Path(copy).stem.rsplit("-", 1)[0] == Path(original).stem
        assert Path(copy).stem.rsplit("-", 1)[1] in ("small", "edit")
    drop = audit.duplicate_indices()
    assert len(drop) == 8 and drop == sorted(set(drop))
    kept = {audit.files[i] for i in range(audit.n_images)} - {audit.files[i] for i in drop}
    for group in [*exact, *[(a, b) for a, b, _ in near]]:
        assert len(kept & set(group)) == 1  # one of each group stays
        assert min(audit.files.index(f) for f in group) not in drop  # the first one


def test_duplicate_indices_chains_near_pairs(tmp_path):
    a = folder.FolderAudit(tmp_path, 32, 3, 5, files=["a", "b", "c", "d", "e"],
                           exact_duplicates=[["b", "e"]], near_duplicates=[("a", "c", 3), ("c", "e", 4)])
    assert a.duplicate_indices() == [1, 2, 4]  # a-c-e-b are one group: keep a


def test_load_folder_agrees_with_the_audit(sample, audit):
    with pytest.warns(UserWarning, match="Skipped 3 unreadable") as record:
        ds = data.load_folder(sample)
    message = str(record[0].message)
    for name in ("truncated.png", "empty.png", "notes.jpg"):
        assert name in message
    assert len(ds) == audit.n_images
    assert [os.path.relpath(p, sample) for p, _ in ds.samples] == audit.files
    assert ds.targets == audit.labels and ds.classes == list(audit.classes)


def test_flat_folder_and_empty_class(tmp_path, sample, audit):
    flat = tmp_path / "flat"
    flat.mkdir()
    for rel in audit.files[:5]:
        shutil.copy(sample / rel, flat / Path(rel).name)
    a = folder.audit_folder(flat)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped, so no warning
        ds = data.load_folder(flat)
    assert a.classes == {"flat": 5} and [os.path.relpath(p, flat) for p, _ in ds.samples] == a.files
    (tmp_path / "classes" / "cats").mkdir(parents=True)
    (tmp_path / "classes" / "dogs").mkdir()
    shutil.copy(sample / audit.files[0], tmp_path / "classes" / "cats" / "c.png")
    (tmp_path / "classes" / "dogs" / "d.png").write_bytes(b"")
    a = folder.audit_folder(tmp_path / "classes")
    assert a.classes == {"cats": 1, "dogs": 0} and a.empty_classes == ["dogs"]
    assert "'dogs' has no readable image" in a.report()
    with pytest.raises(ValueError, match="Class folder\\(s\\) 'dogs' in .* hold no readable image"):
        data.load_folder(tmp_path / "classes")
    (tmp_path / "classes" / "dogs" / "d.png").unlink()
    shutil.copy(sample / audit.files[1], tmp_path / "classes" / "dogs" / "d.png")
    (tmp_path / "classes" / ".ipynb_checkpoints").mkdir()  # Jupyter's, not a class
    ds = data.load_folder(tmp_path / "classes")
    assert ds.classes == ["cats", "dogs"] and len(ds) == 2
    assert folder.audit_folder(tmp_path / "classes").classes == {"cats": 1, "dogs": 1}


def test_audit_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        folder.audit_folder(tmp_path / "nowhere")
    (tmp_path / "one.png").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="one.png"):
        folder.audit_folder(tmp_path / "one.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"No readable images in .*empty.* 0 file\(s\) were unreadable"):
        folder.audit_folder(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.jpg").write_text("not a photo")
    (tmp_path / "broken" / "b.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"broken.* 2 file\(s\) were unreadable"):
        folder.audit_folder(tmp_path / "broken")
    with pytest.raises(ValueError, match="channels"):
        folder.audit_folder(tmp_path / "broken", channels=4)


def test_report(audit):
    text = audit.report()
    for part in ("china: 24, flower: 24", "I;16 1", "CMYK 2", "EXIF rotation: 2", "Skipped: 3",
                 "Exact duplicates: 4", "Near duplicates (dhash distance <= 5): 4", "no image will be upscaled",
                 "rescaled to 8 bits on loading", "loading turns them upright"):
        assert part in text, part
    warning = "fewer than 100 images: the model will memorise; expect copies of your training images, see section 4"
    assert warning in text
    bigger = dataclasses.replace(audit, files=audit.files * 3, sizes=audit.sizes * 3)
    assert warning not in bigger.report()


# ----------------------------------------------------------------------------- dhash, hamming
@pytest.fixture(scope="module")
def photo() -> Image.Image:
    from sklearn.datasets import load_sample_images

    return Image.fromarray(load_sample_images().images[0])  # china.jpg, 640x427


def test_dhash_distances(photo):
    crop = photo.crop((100, 150, 228, 278))
    h = folder.dhash(crop)
    assert h.dtype == torch.bool and h.shape == (64,)
    assert folder.hamming(h, folder.dhash(crop.copy())) == 0
    assert folder.hamming(h, folder.dhash(photo.crop((101, 150, 229, 278)))) <= 5  # shifted by 1 px
    assert folder.hamming(h, folder.dhash(photo.crop((300, 200, 428, 328)))) > 10  # another crop
    assert folder.dhash(crop, size=16).shape == (256,)


def test_dhash_of_tensors_and_batches(photo):
    crops = [photo.crop((x, 150, x + 128, 278)) for x in (100, 300, 450)]
    x = torch.stack([_tensor(c) for c in crops])  # (3, 3, 128, 128) in [-1, 1]
    batch = folder.dhash(x)
    assert batch.shape == (3, 64) and torch.equal(batch[1], folder.dhash(x[1]))
    for c, h in zip(crops, batch):  # a different resampling filter than PIL's: a few bits at most
        assert folder.hamming(h, folder.dhash(c)) <= 6
    assert folder.hamming(folder.dhash(x[0, :1]), folder.dhash(x[0])) <= 6  # one channel
    d = folder.hamming_matrix(batch)
    assert d.dtype == torch.int64 and torch.equal(d, d.T) and (d.diag() == 0).all()
    assert torch.equal(d, folder.hamming(batch[:, None], batch[None]))
    assert torch.equal(folder.hamming_matrix(batch[:1], batch), d[:1])


def test_dhash_errors():
    with pytest.raises(TypeError, match="ndarray"):
        folder.dhash(np.zeros((8, 8)))
    with pytest.raises(ValueError, match=r"\(4, 8, 8\)"):
        folder.dhash(torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match="64 and 256"):
        folder.hamming(torch.zeros(64, dtype=torch.bool), torch.zeros(256, dtype=torch.bool))


def test_loading_turns_exif_photos_upright_and_rescales_16_bit(tmp_path):
    from PIL import Image

    from genimg_course.common import data

    wide = np.zeros((8, 16, 3), np.uint8)
    wide[:, :8] = 255  # left half white: stored as a wide image
    exif = Image.Exif()
    exif[folder.EXIF_ORIENTATION] = 6  # "rotate 90° clockwise to view"
    Image.fromarray(wide).save(tmp_path / "phone.jpg", exif=exif, quality=100)
    upright = data._open_image(str(tmp_path / "phone.jpg"), "RGB")
    assert upright.size == (8, 16)  # turned: tall, as a photo viewer shows it
    top = np.asarray(upright, np.float64)[:8].mean()
    assert top > 200  # the white half is on top after the clockwise turn
    deep = Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)  # mode I;16
    assert deep.mode == "I;16"
    deep.save(tmp_path / "scan.png")
    grey = np.asarray(data._open_image(str(tmp_path / "scan.png"), "L"), np.float64)
    assert grey.max() == round(63000 / 65535 * 255) and grey.min() == 0  # rescaled, not clipped at 255
