import torch

from genimg_course import vae
from genimg_course.common.widgets import LatentExplorer, tensor_to_png


def test_latent_explorer_redraws_when_a_slider_moves():
    torch.manual_seed(0)
    model = vae.ConvVAE(vae.VAEConfig(image_shape=(1, 28, 28), z_dim=8, hidden=32, channels=4))
    explorer = LatentExplorer(model, dims=3)
    assert len(explorer.sliders) == 3
    before = explorer.image.value
    explorer.sliders[2].value = 2.5  # what dragging the slider does
    assert explorer.z[2].item() == 2.5
    assert explorer.image.value != before and explorer.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    image = explorer.set(0, -1.0)
    assert image.shape == (1, 28, 28)
    with torch.no_grad():
        expected = torch.sigmoid(model.decode(explorer.z[None]))[0] * 2 - 1
    torch.testing.assert_close(image, expected)


def test_tensor_to_png_colour():
    png = tensor_to_png(torch.zeros(3, 4, 4), scale=2)
    assert png[:4] == b"\x89PNG"


def test_latent_explorer_takes_a_list_of_dimensions():
    model = vae.ConvVAE(vae.VAEConfig(image_shape=(1, 28, 28), z_dim=8, hidden=32, channels=4))
    explorer = LatentExplorer(model, dims=[5, 2])
    assert [s.description for s in explorer.sliders] == ["z[5]", "z[2]"]
    explorer.sliders[0].value = 1.5
    assert explorer.z[5].item() == 1.5 and explorer.z[2].item() == 0.0
    try:
        LatentExplorer(model, dims=[8])
    except IndexError as err:
        assert "0..7" in str(err)
    else:
        raise AssertionError("dimension 8 of 8 accepted")


def test_guidance_explorer_redraws_at_the_new_scale():
    import pytest

    from genimg_course import diffusion
    from genimg_course.common.widgets import GuidanceExplorer

    torch.manual_seed(0)
    model = diffusion.DiffusionModel(diffusion.DiffusionConfig(objective="flow", n_classes=3, width=8))
    for p in model.ema.parameters():  # a network that is not zero, so the label changes the output
        p.data.normal_(0, 0.1)
    explorer = GuidanceExplorer(model, n_per_class=2, steps=2, w=1.0)
    before = explorer.image.value
    assert before[:8] == b"\x89PNG\r\n\x1a\n" and explorer.slider.value == 1.0
    explorer.slider.value = 4.0  # what releasing the slider does
    assert explorer.w == 4.0 and explorer.image.value != before
    images = explorer.set(0.0)
    assert images.shape == (6, 1, 28, 28)
    expected = model.sample(6, torch.Generator().manual_seed(0), labels=torch.arange(3).repeat_interleave(2),
                            steps=2, guidance=0.0)
    torch.testing.assert_close(images, expected)
    calls = []  # the student's guidance function, when given, is the one used

    def mine(cond, uncond, w):
        calls.append(w)
        return diffusion.guided(cond, uncond, w)

    GuidanceExplorer(model, n_per_class=1, steps=2, w=2.0, guide_fn=mine)
    assert calls and set(calls) == {2.0}
    with pytest.raises(ValueError, match="class-conditional"):
        GuidanceExplorer(diffusion.DiffusionModel(diffusion.DiffusionConfig(width=8)))
