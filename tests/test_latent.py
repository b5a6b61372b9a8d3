"""Lesson 07's latent flow model: the autoencoder, the normalisation, sampling, checkpoints and the
memorisation and evaluation helpers."""

import pytest
import torch

from genimg_course import latent
from genimg_course.zoo import build_model, default_config, load_checkpoint
from genimg_course.common.checkpoint import save_checkpoint


def tiny(n_classes=0):
    return latent.LatentFlow(latent.LatentFlowConfig(image_shape=(3, 16, 16), n_classes=n_classes, width=8,
                                                     ae_width=8, steps=3))


def test_autoencoder_shapes_and_loss():
    torch.manual_seed(0)
    ae = latent.KLAutoencoder(latent.AutoencoderConfig(image_shape=(3, 32, 32), width=8))
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    mu, logvar = ae.encode(x)
    assert mu.shape == logvar.shape == (5, 4, 8, 8) == (5, *ae.config.latent_shape)
    assert ae.decode(mu).shape == x.shape
    loss, recon, kl = ae.losses(x, torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(recon.item() + 1e-4 * kl.item(), rel=1e-5)
    assert ae.reconstruct(x).abs().max() <= 1
    digits = latent.KLAutoencoder(latent.AutoencoderConfig(image_shape=(1, 28, 28), width=8))
    assert digits.config.latent_shape == (4, 8, 8)  # 28 × 28 padded to 32 × 32
    assert digits.decode(digits.encode(torch.zeros(2, 1, 28, 28))[0]).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="power of 2"):
        latent.AutoencoderConfig(downsample=3)


def test_latent_normalisation_makes_each_channel_standard():
    z = torch.randn(50, 3, 4, 4) * torch.tensor([0.2, 3.0, 10.0]).view(1, 3, 1, 1) + 5
    shift, scale = latent.latent_normalisation(z)
    normed = (z - shift.view(1, 3, 1, 1)) * scale.view(1, 3, 1, 1)
    assert torch.allclose(normed.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(normed.std((0, 2, 3)), torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError, match="latents must be"):
        latent.latent_normalisation(torch.zeros(3, 4))


def test_training_sets_the_normalisation_and_samples_images(tmp_path):
    torch.manual_seed(0)
    model = tiny(n_classes=2)
    images = torch.rand(12, 3, 16, 16) * 2 - 1
    labels = torch.arange(12) % 2
    history = latent.train_latent_flow(model, images, 1, 1, labels=labels, batch_size=4, progress_bar=False)
    assert len(history["ae_loss"]) == 3 and len(history["loss"]) == 6  # 12 / 4, then 24 (mirrored) / 4
    z = model.to_latent(torch.cat([images, images.flip(-1)]))
    assert torch.allclose(z.mean((0, 2, 3)), torch.zeros(4), atol=1e-4)
    assert torch.allclose(z.std((0, 2, 3)), torch.ones(4), atol=1e-3)
    x = model.sample(5, torch.Generator().manual_seed(0), labels=1, guidance=2.0)
    assert x.shape == (5, 3, 16, 16) and x.abs().max() <= 1
    final, path = model.sample(2, torch.Generator().manual_seed(0), trajectory=3)
    assert len(path) == 3 and path[0].shape == final.shape == (2, 3, 16, 16)  # 3 snapshots, the first pure noise
    assert torch.equal(path[-1], final)
    # a checkpoint holds the normalisation too, and samples the same images
    save_checkpoint(tmp_path / "m.pt", model, "folder:x")
    again, payload = load_checkpoint(tmp_path / "m.pt")
    assert payload["family"] == "latent-flow" and torch.equal(again.scale, model.scale)
    assert torch.allclose(again.sample(2, torch.Generator().manual_seed(3)), model.sample(2, torch.Generator().manual_seed(3)),
                          atol=1e-5)  # (the trained copy computes in channels-last order: last-digit differences)


def test_zoo_config_is_conditional_only_with_classes():
    assert default_config("latent-flow", (3, 32, 32), n_classes=1)["n_classes"] == 0
    config = default_config("latent-flow", (3, 32, 32), n_classes=3, profile="gpu")
    assert config["n_classes"] == 3 and config["width"] == 64
    assert build_model("latent-flow", config).flow.config.image_shape == (4, 8, 8)


def test_nn_ratio_of_copies_and_novel_points():
    reference = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    idx, ratio = latent.nn_ratio(torch.tensor([[0.0, 0.0], [1.5, 0.0], [0.1, 3.9]]), reference)
    assert idx.tolist() == [0, 0, 2] or idx.tolist() == [0, 1, 2]
    assert ratio[0] == 0 and ratio[1] == pytest.approx(1.0) and ratio[2] < 0.1
    with pytest.raises(ValueError, match="at least 2 points"):
        latent.nn_ratio(torch.zeros(2, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="3 numbers each, reference 2"):
        latent.nn_ratio(torch.zeros(2, 3), reference)


def test_split_held_out_is_stratified_and_seeded():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 1)
    train, held = latent.split_held_out(16, 0.2, seed=0, labels=labels)
    assert sorted(train.tolist() + held.tolist()) == list(range(16))
    assert (labels[held] == 0).sum() == 2 and (labels[held] == 1).sum() == 1 and (labels[held] == 2).sum() == 0
    assert torch.equal(held, latent.split_held_out(16, 0.2, seed=0, labels=labels)[1])
    assert not torch.equal(held, latent.split_held_out(16, 0.2, seed=1, labels=labels)[1])


def test_folder_checks_name_the_problem():
    x = torch.zeros(3, 3, 8, 8)
    with pytest.raises(ValueError, match="1 readable image"):
        latent.check_folder_for_training(x[:1], torch.zeros(1), ["a"], "folder:p")
    with pytest.raises(ValueError, match="class folder\\(s\\) b, c hold fewer than 2 images"):
        latent.check_folder_for_training(torch.zeros(4, 3, 8, 8), torch.tensor([0, 0, 1, 2]), ["a", "b", "c"],
                                         "folder:p")
    latent.check_folder_for_training(x, torch.zeros(3), ["a"], "folder:p")  # one class of 3: fine


def test_evaluate_folder_catches_copies(tmp_path):
    from torchvision.utils import save_image

    g = torch.Generator().manual_seed(0)
    images = torch.rand(20, 3, 16, 16, generator=g)
    for i, x in enumerate(images):
        save_image(x, tmp_path / f"{i:02d}.png")
    model = tiny()
    from genimg_course.common.data import load_dataset
    from genimg_course.common.training import images_of

    loaded = images_of(load_dataset(f"folder:{tmp_path}", image_size=16))
    train_idx, held_idx = latent.split_held_out(20, 0.2, seed=0)
    copies = loaded[train_idx][:8]
    result = latent.evaluate_folder(model, copies, f"folder:{tmp_path}", seed=0)
    assert result["n_real"] == 4 and result["n_train"] == 16
    assert result["memorised_fraction"] == 1.0 and result["nn_ratio_median"] < 0.01
    novel = latent.evaluate_folder(model, loaded[held_idx], f"folder:{tmp_path}", seed=0)
    assert novel["memorised_fraction"] < 0.5
    # the flow trains on the mirror images too: a copy of a mirrored training image is caught (against the
    # unmirrored images alone, its ratio would look like a novel image's)
    mirrored = latent.evaluate_folder(model, copies.flip(-1), f"folder:{tmp_path}", seed=0)
    assert mirrored["memorised_fraction"] == 1.0 and mirrored["nn_ratio_median"] < 0.01
    train = loaded[train_idx]
    unmirrored_only = latent.nn_ratio(copies.flip(-1).flatten(1), train.flatten(1))[1]
    assert unmirrored_only.median() > 0.5


def test_pyramid_features_see_blur_and_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 16, 16, generator=g) * 2 - 1
    f = latent.pyramid_features(x)
    assert f.shape == (6, 2 * 3 * 3 + 16 * 3) and f.dtype == torch.float64
    blurred = latent.pyramid_features(torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1))
    noisy = latent.pyramid_features(x + 0.3 * torch.randn(x.shape, generator=g))
    fine = slice(0, 6)  # the finest band's mean |band| and std, per channel
    assert (blurred[:, fine] < f[:, fine]).all() and (noisy[:, fine] > f[:, fine]).all()
    z = latent.standardise(f, f)
    assert torch.allclose(z.mean(0), torch.zeros(z.shape[1], dtype=torch.float64), atol=1e-9)


def test_shuffle_patches_keeps_every_patch_and_moves_them():
    x = torch.arange(3 * 2 * 8 * 8, dtype=torch.float32).reshape(3, 2, 8, 8)
    y = latent.shuffle_patches(x, grid=4, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.equal(x, y)
    blocks = lambda t: sorted(map(tuple, t.reshape(3, 2, 4, 2, 4, 2).permute(0, 2, 4, 1, 3, 5).reshape(3, 16, -1)[0].tolist()))
    assert blocks(x) == blocks(y)  # the same 2 × 2 patches (both channels together), in another order
    with pytest.raises(ValueError, match="divisible"):
        latent.shuffle_patches(torch.zeros(1, 3, 10, 10), grid=4)


def test_autoencoder_with_a_patchgan_trains_both_and_balances_the_losses():
    """adversarial > 0: a PatchDiscriminator trains beside the autoencoder after adversarial_start, with lesson 04's
    hinge loss, weighted by VQGAN's adaptive weight; off by default (no discriminator, the lesson's losses)."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(16, 3, 16, 16, generator=g) * 2 - 1
    ae = latent.KLAutoencoder(latent.AutoencoderConfig(image_shape=(3, 16, 16), width=8))
    h = latent.train_autoencoder(ae, images, epochs=4, batch_size=8, progress_bar=False, adversarial=0.5,
                                 adversarial_start=0.5)
    assert len(h["loss_d"]) == len(h["adv_weight"]) == 4  # the second half of 8 steps
    assert all(w > 0 for w in h["adv_weight"]) and all(torch.isfinite(torch.tensor(h["loss"])))
    plain = latent.train_autoencoder(latent.KLAutoencoder(latent.AutoencoderConfig(image_shape=(3, 16, 16), width=8)),
                                     images, epochs=1, batch_size=8, progress_bar=False)
    assert "loss_d" not in plain
    assert latent.PatchDiscriminator(3)(images).shape == (16, 16)  # 16 × 16 images: 4 × 4 patches
    with pytest.raises(ValueError, match="adversarial"):
        latent.train_autoencoder(ae, images, epochs=1, adversarial=-1)
    with pytest.raises(ValueError, match="Valid losses"):
        latent.train_autoencoder(ae, images, epochs=1, adversarial=1, adversarial_loss="wasserstein")


def test_adaptive_weight_is_the_ratio_of_gradient_norms():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    recon, adv = (3 * w).sum(), (w ** 2).sum()  # gradients (3, 3) and (2, 4): norms √18 and √20
    assert torch.allclose(latent.adaptive_weight(recon, adv, w), torch.tensor((18 / 20) ** 0.5), atol=1e-4)
