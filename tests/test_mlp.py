import torch

from genimg_course import data, mlp


def test_mlp_forward_matches_nn_linear():
    net = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    x = torch.randn(4, 7)
    y = mlp.mlp_forward(x, net[0].weight, net[0].bias, net[2].weight, net[2].bias)
    torch.testing.assert_close(y, net(x))


def test_reconstruction_loss_is_summed_over_pixels_and_averaged_over_batch():
    x, x_hat = torch.rand(5, 1, 4, 4), torch.rand(5, 1, 4, 4)
    torch.testing.assert_close(mlp.reconstruction_loss(x_hat, x), torch.nn.functional.mse_loss(x_hat, x, reduction="sum") / 5)


def test_mmd2_properties():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 4, generator=g), torch.randn(30, 4, generator=g)
    assert mlp.mmd2(x, x, (1.0,)).abs() < 1e-6
    torch.testing.assert_close(mlp.mmd2(x, y, (1.0, 2.0)), mlp.mmd2(y, x, (1.0, 2.0)))
    same = mlp.mmd2(x, y, (1.0,))
    shifted = mlp.mmd2(x, y + 2.0, (1.0,))
    assert 0 < same < shifted
    # brute-force definition
    k = lambda a, b: torch.exp(-((a - b) ** 2).sum() / 2)  # noqa: E731
    brute = (sum(k(a, b) for a in x for b in x) / 900 + sum(k(a, b) for a in y for b in y) / 900
             - 2 * sum(k(a, b) for a in x for b in y) / 900)
    torch.testing.assert_close(same, brute, atol=1e-5, rtol=1e-5)


def test_autoencoder_learns_to_reconstruct():
    torch.manual_seed(0)
    x = data.load_dataset("digits", image_size=8).images[:128]  # (128, 1, 8, 8)
    ae = mlp.MLPAutoencoder(mlp.AutoencoderConfig(image_shape=(1, 8, 8), hidden=16))
    history = mlp.train_autoencoder(ae, x, epochs=30, batch_size=16, progress_bar=False)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert ae.sample(5).shape == (5, 1, 8, 8)
    assert ae.code_scale > 0


def test_mmd_generator_moves_towards_the_data():
    torch.manual_seed(0)
    data = torch.full((128, 1, 4, 4), 0.5) + 0.05 * torch.randn(128, 1, 4, 4)
    gen = mlp.MLPGenerator(mlp.GeneratorConfig(image_shape=(1, 4, 4), z_dim=4, hidden=32))
    before = mlp.mmd2(gen.sample(128), data, (0.5, 1.0)).item()
    mlp.train_mmd_generator(gen, data, epochs=60, batch_size=64, sigmas=(0.5, 1.0), progress_bar=False)
    after = mlp.mmd2(gen.sample(128), data, (0.5, 1.0)).item()
    assert after < 0.2 * before
    assert gen.sample(3, torch.Generator().manual_seed(1)).shape == (3, 1, 4, 4)
    torch.testing.assert_close(gen.sample(3, torch.Generator().manual_seed(1)), gen.sample(3, torch.Generator().manual_seed(1)))
