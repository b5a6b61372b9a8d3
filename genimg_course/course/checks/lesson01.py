"""Lesson 01's exercise checks (01_preprocessing.ipynb): preprocessing (contrast, colour balance, normalisation).

Each check is its exercise's specification: tests on small inputs, compared with an oracle, with
feedback that names the input, the expected and the actual result. The notebook calls them after
each exercise (``check.adjust_contrast(adjust_contrast)``); ``genimg_course.course.exercises`` says how a check
reports and what it returns.
"""

from __future__ import annotations

import torch
from torchvision.transforms.v2 import functional as TF

from genimg_course import preprocess
from genimg_course.course.handin import before_hand_in  # noqa: F401 (the lesson's last cell)
from genimg_course.course.exercises import Tester, allclose, exercise, random_image as _image


_TV, _TV1 = "torchvision.transforms.v2", "torchvision.transforms"  # torchvision's two transforms APIs


@exercise(lesson="01_preprocessing", points=2, reference=preprocess.adjust_contrast,
          forbidden=(f"{_TV}.functional.adjust_contrast", f"{_TV}.functional.adjust_contrast_image",
                     f"{_TV1}.functional.adjust_contrast", f"{_TV}.ColorJitter", f"{_TV1}.ColorJitter",
                     "PIL.ImageEnhance.Contrast"),
          instead="Use tensor operations (arithmetic, `.sum`, `.mean`, `.clamp`); torchvision's `adjust_contrast` "
                  "and `ColorJitter` and PIL's `ImageEnhance.Contrast` may not be used.")
def adjust_contrast(t: Tester, fn):
    """adjust_contrast(x, factor): x' = clip(μ + c (x − μ)) with μ the image's mean gray level."""
    # torchvision weighs red by 0.2989 where we (and PIL) use 0.299: a difference below 1e-3.
    x = _image((3, 6, 5), seed=1)
    t.close(fn, (x, 1.5), TF.adjust_contrast(x, 1.5), atol=1e-3, input="a (3, 6, 5) RGB image, factor=1.5 (compared with "
            "torchvision's adjust_contrast)", hint="μ is the mean of the *grayscale* image "
            "(0.299 R + 0.587 G + 0.114 B), one number per image")
    t.close(fn, (x, 0.0), TF.adjust_contrast(x, 0.0), atol=1e-3, input="the same image, factor=0 (a flat gray image)")
    t.close(fn, (x, 3.0), TF.adjust_contrast(x, 3.0), atol=1e-3, input="the same image, factor=3 (values must be clipped "
            "to [0, 1])", hint="clip with .clamp(0, 1)")
    g = _image((1, 4, 4), seed=2)
    t.close(fn, (g, 2.0), TF.adjust_contrast(g, 2.0), atol=1e-3, input="a (1, 4, 4) grayscale image, factor=2")
    b = _image((2, 3, 4, 4), seed=3)
    t.close(fn, (b, 0.5), TF.adjust_contrast(b, 0.5), atol=1e-3, input="a batch (2, 3, 4, 4), factor=0.5: "
            "each image uses its own mean", hint="take the mean over dims (-3, -2, -1) with keepdim=True")


@exercise(lesson="01_preprocessing", points=2, reference=preprocess.contrast_stretch,
          forbidden=(f"{_TV}.functional.autocontrast", f"{_TV}.functional.autocontrast_image",
                     f"{_TV1}.functional.autocontrast", f"{_TV}.RandomAutocontrast", f"{_TV1}.RandomAutocontrast",
                     "PIL.ImageOps.autocontrast"),
          instead="Use tensor operations (`torch.quantile`, `torch.where`, arithmetic, `.clamp`); torchvision's "
                  "`autocontrast` and PIL's `ImageOps.autocontrast` may not be used.")
def contrast_stretch(t: Tester, fn):
    """contrast_stretch(x, low, high): map each channel's low/high percentiles to 0 and 1."""
    x = _image((3, 8, 8), seed=4, low=0.3, high=0.6)
    t.close(fn, (x,), TF.autocontrast(x), input="a dull (3, 8, 8) image with values in [0.3, 0.6], "
            "low=0, high=100 (compared with torchvision's autocontrast)",
            hint="each channel separately: (x − min_c) / (max_c − min_c)")
    t.close(fn, (x, 5.0, 95.0), preprocess.contrast_stretch(x, 5.0, 95.0),
            input="the same image, low=5, high=95", hint="torch.quantile(x_c, 0.05) is the 5th percentile; clip "
            "the result to [0, 1]")
    b = _image((2, 1, 5, 5), seed=5, low=0.2, high=0.5)
    t.close(fn, (b,), TF.autocontrast(b), input="a batch (2, 1, 5, 5): each image stretched on its own")
    flat = x.clone()
    flat[1] = 0.4  # a flat green channel: max = min, nothing to stretch
    t.close(fn, (flat,), TF.autocontrast(flat), input="a (3, 8, 8) image whose green channel is flat (all 0.4), "
            "low=0, high=100: the flat channel must come back unchanged, as torchvision's autocontrast returns it",
            hint="where p_high − p_low is 0, dividing by it gives NaN (0/0); return such a channel unchanged "
            "with torch.where")
    t.close(fn, (flat, 5.0, 95.0), preprocess.contrast_stretch(flat, 5.0, 95.0), input="the same image with a flat "
            "green channel, low=5, high=95", hint="guard the flat channel for any percentiles, not only min/max")
    ok, out = t.call(fn, (x,), input="a (3, 8, 8) image")
    if ok and isinstance(out, torch.Tensor) and out.shape == x.shape:
        lo, hi = out.amin(dim=(-2, -1)), out.amax(dim=(-2, -1))
        t.expect(allclose(lo, torch.zeros(3), atol=1e-4) and allclose(hi, torch.ones(3), atol=1e-4),
                 "a (3, 8, 8) image, low=0, high=100",
                 f"every channel should span exactly [0, 1]; got minima {lo.tolist()} and maxima {hi.tolist()}")


@exercise(lesson="01_preprocessing", points=2, reference=preprocess.gray_world)
def gray_world(t: Tester, fn):
    """gray_world(x): scale each channel so its mean equals the mean of all three channels."""
    gray = _image((3, 6, 6), seed=6)
    x = preprocess.color_cast(gray, (1.0, 0.8, 0.5))
    t.close(fn, (x,), preprocess.gray_world(x), input="a (3, 6, 6) image with a warm colour cast "
            "(gains R 1.0, G 0.8, B 0.5)", hint="x_c · μ / μ_c, where μ_c is channel c's mean and μ their average")
    ok, out = t.call(fn, (x,), input="the same image")
    if ok and isinstance(out, torch.Tensor) and out.shape == x.shape:
        means = out.mean(dim=(-2, -1))
        t.expect(bool((means.max() - means.min()) < 1e-3), "the same image",
                 f"after gray-world the three channel means should be equal; got {[round(m, 4) for m in means.tolist()]}")
    b = preprocess.color_cast(_image((2, 3, 4, 4), seed=7), (0.6, 0.9, 1.0))
    t.close(fn, (b,), preprocess.gray_world(b), input="a batch (2, 3, 4, 4) with a cool cast: each image "
            "balanced with its own channel means", hint="take means over dims (-2, -1) with keepdim=True")
    # a weak red channel with a few strong pixels: balancing multiplies red by about 5, so some exceed 1
    bright = torch.cat([0.5 * _image((1, 4, 4), seed=8, low=0.0, high=1.0) ** 4,
                        _image((2, 4, 4), seed=9, low=0.7, high=1.0)])
    t.close(fn, (bright,), preprocess.gray_world(bright), input="a bright image whose balanced values "
            "exceed 1 (must be clipped to [0, 1])", hint="finish with .clamp(0, 1)")


@exercise(lesson="01_preprocessing", points=1, reference=preprocess.normalize,
          forbidden=(f"{_TV}.functional.normalize", f"{_TV}.functional.normalize_image", f"{_TV1}.functional.normalize",
                     f"{_TV}.Normalize", f"{_TV1}.Normalize"),
          instead="Use tensor operations (`torch.as_tensor`, `.reshape`, `-`, `/`); torchvision's `normalize` and "
                  "`Normalize` may not be used.")
def normalize(t: Tester, fn):
    """normalize(x, mean=0.5, std=0.5): x' = (x − mean) / std per channel; defaults map [0, 1] to [-1, 1]."""
    x = _image((3, 4, 4), seed=9, low=0.0, high=1.0)
    t.close(fn, (x,), TF.normalize(x, [0.5] * 3, [0.5] * 3), input="a (3, 4, 4) image in [0, 1], default "
            "mean and std", hint="0 should map to -1 and 1 to +1")
    ends = torch.tensor([0.0, 1.0]).view(1, 1, 2)
    t.close(fn, (ends,), torch.tensor([-1.0, 1.0]).view(1, 1, 2), input="the values 0 and 1 as a (1, 1, 2) image")
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    t.close(fn, (x, mean, std), TF.normalize(x, mean, std), input="per-channel ImageNet mean and std "
            "(lists of 3 numbers)", hint="turn mean and std into tensors of shape (C, 1, 1) so they broadcast")
    b = _image((2, 3, 4, 4), seed=10, low=0.0, high=1.0)
    t.close(fn, (b, mean, std), TF.normalize(b, mean, std), input="a batch (2, 3, 4, 4) with per-channel mean/std")
    ok, out = t.call(fn, (x,), input="a (3, 4, 4) image, then denormalize")
    if ok and isinstance(out, torch.Tensor) and out.shape == x.shape and out.is_floating_point():
        back = preprocess.denormalize(out)
        t.expect(allclose(back, x, atol=1e-5), "a (3, 4, 4) image, then denormalize",
                 "denormalize(normalize(x)) should give x back; the largest error is "
                 f"{(back - x).abs().max().item():.4f}")
