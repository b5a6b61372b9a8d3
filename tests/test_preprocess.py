"""Our formulas against torchvision's transforms.v2 (the oracle) where both exist."""

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from genimg_course import preprocess as P


@pytest.fixture
def batch():
    return torch.rand(4, 3, 12, 10, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("factor", [0.0, 0.5, 1.0, 1.7, 3.0])
def test_brightness_matches_torchvision(batch, factor):
    torch.testing.assert_close(P.adjust_brightness(batch, factor), TF.adjust_brightness(batch, factor))


@pytest.mark.parametrize("factor", [0.0, 0.5, 1.0, 1.7, 3.0])
@pytest.mark.parametrize("channels", [1, 3])
def test_contrast_matches_torchvision(batch, factor, channels):
    x = batch[:, :channels]
    # torchvision weighs red by 0.2989, we (like PIL) by 0.299
    torch.testing.assert_close(P.adjust_contrast(x, factor), TF.adjust_contrast(x, factor), atol=1e-3, rtol=0)


def test_contrast_stretch_full_range_is_autocontrast(batch):
    dull = 0.3 + 0.2 * batch
    torch.testing.assert_close(P.contrast_stretch(dull), TF.autocontrast(dull))
    torch.testing.assert_close(P.autocontrast(dull), TF.autocontrast(dull))


def test_contrast_stretch_percentiles_clip_and_flat_channels():
    x = torch.linspace(0.2, 0.6, 101).view(1, 1, 101).repeat(3, 1, 1)
    x[2] = 0.5  # a flat channel
    y = P.contrast_stretch(x, 10, 90)
    # the 10th percentile maps to 0 and the 90th to 1; beyond them values are clipped
    assert y[0, 0, 10].item() == pytest.approx(0, abs=1e-5) and y[0, 0, 90].item() == pytest.approx(1, abs=1e-5)
    assert y[0, 0, :10].eq(0).all() and y[0, 0, 91:].eq(1).all()
    torch.testing.assert_close(y[2], x[2])
    with pytest.raises(ValueError, match="low < high"):
        P.contrast_stretch(x, 90, 10)


def test_equalize_matches_torchvision_and_flattens(batch):
    x8 = (batch * 255).round().to(torch.uint8)
    torch.testing.assert_close(P.equalize(batch), TF.equalize(x8).float() / 255)
    # (torchvision, like PIL, leaves images with fewer than ~256 pixels per channel unchanged)
    dark = 0.2 * torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))
    out = P.equalize(dark)
    assert out.max() > 0.95  # the dark image now uses the whole range
    hist = torch.histc(out[0], bins=4, min=0, max=1)
    assert (hist / hist.sum() - 0.25).abs().max() < 0.05  # and its histogram is (nearly) flat


def test_gray_world_equalises_channel_means(batch):
    cast = P.color_cast(0.3 + 0.4 * batch, (1.0, 0.8, 0.6))
    means = P.gray_world(cast).mean(dim=(-2, -1))  # (4, 3)
    torch.testing.assert_close(means, means.mean(-1, keepdim=True).expand_as(means), atol=1e-4, rtol=0)
    # a pure channel gain is undone exactly (up to the overall brightness)
    gray = 0.3 + 0.4 * batch
    balanced = P.gray_world(P.color_cast(gray, (1.0, 0.8, 0.6)))
    unit = lambda im: im / im.mean(dim=(-3, -2, -1), keepdim=True)  # noqa: E731 - each image's brightness divided out
    torch.testing.assert_close(unit(balanced), unit(P.gray_world(gray)))


def test_white_patch_maps_percentile_to_one(batch):
    cast = P.color_cast(batch, (0.9, 0.7, 0.5))
    out = P.white_patch(cast, percentile=100)
    torch.testing.assert_close(out.amax(dim=(-2, -1)), torch.ones(4, 3), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="RGB"):
        P.white_patch(batch[:, :1])


@pytest.mark.parametrize("mean,std", [(0.5, 0.5), ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
def test_normalize_matches_torchvision_and_inverts(batch, mean, std):
    m = mean if isinstance(mean, list) else [mean] * 3
    s = std if isinstance(std, list) else [std] * 3
    torch.testing.assert_close(P.normalize(batch, mean, std), TF.normalize(batch, m, s))
    torch.testing.assert_close(P.denormalize(P.normalize(batch, mean, std), mean, std), batch)
    assert P.normalize(torch.zeros(1, 1, 1)).item() == -1 and P.normalize(torch.ones(1, 1, 1)).item() == 1


def test_channel_stats(batch):
    mean, std = P.channel_stats(batch)
    z = P.normalize(batch, mean.tolist(), std.tolist())
    m2, s2 = P.channel_stats(z)
    torch.testing.assert_close(m2, torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(s2, torch.ones(3), atol=1e-5, rtol=0)


def test_angular_error_is_one_angle_per_image():
    assert P.angular_error([1.0, 0, 0], [0, 1.0, 0]).item() == pytest.approx(90)
    assert P.angular_error([2.0, 1.7, 1.2], [1.0, 0.85, 0.6]).item() == pytest.approx(0, abs=1e-3)  # length ignored
    # no correction at all (estimate white) against a warm light: arccos(g·1 / (|g| √3))
    g = torch.tensor([1.0, 0.85, 0.6])
    expected = torch.rad2deg(torch.acos(g.sum() / (g.norm() * 3**0.5))).item()
    assert P.angular_error(torch.ones(3), g).item() == pytest.approx(expected, rel=1e-5)
    assert P.angular_error(torch.ones(4, 3), g).shape == (4,)  # a batch of estimates: one angle each


def test_estimated_illuminant_reads_the_light_off_a_white_balance(batch):
    g = torch.tensor([1.0, 0.8, 0.6])
    gray_scene = 0.3 + 0.4 * batch
    gray_scene = gray_scene * gray_scene.mean(dim=(-2, -1), keepdim=True).reciprocal() * 0.5  # every channel mean 0.5
    cast = P.color_cast(gray_scene, g.tolist())
    e = P.estimated_illuminant(cast, P.gray_world(cast))  # (4, 3)
    assert e.shape == (4, 3)
    # the scene's mean is gray, so gray world finds the light exactly
    assert P.angular_error(e, g).max().item() < 0.01
    # gray world's estimate is the direction of the channel means, even where it clips
    bright = P.color_cast(batch, g.tolist())
    means = bright.mean(dim=(-2, -1))
    torch.testing.assert_close(P.estimated_illuminant(bright, P.gray_world(bright)),
                               means / means.norm(dim=-1, keepdim=True), atol=1e-4, rtol=0)
    # white patch: its estimate is the percentile of each channel
    p = torch.quantile(bright.flatten(-2), 0.99, dim=-1)
    torch.testing.assert_close(P.estimated_illuminant(bright, P.white_patch(bright)),
                               p / p.norm(dim=-1, keepdim=True), atol=1e-4, rtol=0)


@pytest.mark.parametrize("bad,err", [
    (torch.zeros(3, 4, 4, dtype=torch.uint8), "float tensor"),
    (torch.zeros(4, 4), r"shape \(C, H, W\)"),
    (torch.zeros(2, 4, 4), "C = 1 or 3"),
    ([[0.1]], "torch.Tensor"),
])
def test_bad_input_is_named(bad, err):
    with pytest.raises((TypeError, ValueError), match=err):
        P.adjust_contrast(bad, 1.0)
