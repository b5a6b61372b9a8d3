"""genimg train latent-flow on a folder of images, then sample and eval; and every bad folder the issue names
gets one line on stderr, exit status 2, and nothing written to --out."""

import json

import numpy as np
import pytest
import torch
from torchvision.utils import save_image

from genimg_course.course.cli import main


def write_images(folder, n, seed=0, size=20):
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        save_image(torch.rand(3, size, size + 4, generator=g), folder / f"{i:02d}.png")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("latent")
    for name in ("a", "b"):
        write_images(root / "pics" / name, 8, seed=ord(name))
    (root / "pics" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n")  # skipped and named, never fatal
    out = root / "run"
    code = main(["train", "latent-flow", "--dataset", f"folder:{root / 'pics'}", "--profile", "ci", "--epochs", "1",
                 "--out", str(out)])
    return root, out, code


def test_train_sample_eval_on_a_folder_with_classes(trained, tmp_path, capsys):
    root, out, code = trained
    assert code == 0
    assert {p.name for p in out.iterdir()} >= {"model.pt", "history.json", "samples.png"}
    history = json.loads((out / "history.json").read_text())["history"]
    assert history["ae_loss"] and history["loss"]
    assert main(["sample", str(out / "model.pt"), "-n", "5", "--label", "1", "--guidance", "2", "--steps", "3",
                 "--out", str(tmp_path / "s.npy")]) == 0
    a = np.load(tmp_path / "s.npy")
    assert a.shape == (5, 3, 32, 32) and a.min() >= 0 and a.max() <= 1
    capsys.readouterr()
    assert main(["eval", str(out / "model.pt"), "-n", "12", "--steps", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["features"] == "pyramid" and result["n_real"] == 4 and result["n_train"] == 12
    assert 0 <= result["memorised_fraction"] <= 1 and result["fid"] >= 0


@pytest.mark.parametrize("case", ["missing", "empty", "not images", "one image", "classes of one", "out is a file"])
def test_bad_folders_fail_in_one_line(case, tmp_path, capsys):
    pics, out = tmp_path / "pics", tmp_path / "out"
    if case == "empty":
        pics.mkdir()
    elif case == "not images":
        pics.mkdir()
        (pics / "a.jpg").write_text("not a picture")
        (pics / "b.txt").write_text("notes")
    elif case == "one image":
        write_images(pics, 1)
    elif case == "classes of one":
        for name in ("x", "y", "z"):
            write_images(pics / name, 1, seed=ord(name))  # different images: duplicates are dropped first
    elif case == "out is a file":
        write_images(pics, 4)
        out.write_text("my thesis")
    code = main(["train", "latent-flow", "--dataset", f"folder:{pics}", "--profile", "ci", "--epochs", "1",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    expected = {"missing": "does not exist", "empty": "No readable images", "not images": "No readable images",
                "one image": "1 readable image", "classes of one": "hold fewer than 2 images",
                "out is a file": "is a file"}[case]
    assert expected in err, err
    if case == "out is a file":
        assert out.read_text() == "my thesis"
    else:
        assert not out.exists()
