import torch

from genimg_course import mlp
from genimg_course.common import data


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


def test_mmd_witness_separates_the_samples_by_exactly_mmd2():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(40, 2, generator=g), torch.randn(30, 2, generator=g) * 0.5 + torch.tensor([2.0, 0.0])
    sigmas = (0.5, 1.0)
    f_x, f_y = mlp.mmd_witness(x, x, y, sigmas), mlp.mmd_witness(y, x, y, sigmas)
    assert f_x.shape == (40,) and f_y.shape == (30,)
    # eq. (6): mean of f over x − mean of f over y = MMD² (eq. 4)
    torch.testing.assert_close(f_x.mean() - f_y.mean(), mlp.mmd2(x, y, sigmas), atol=1e-6, rtol=1e-6)
    # positive on x's side, negative on y's, about zero far from both
    far = mlp.mmd_witness(torch.tensor([[0.0, 30.0]]), x, y, sigmas)
    assert mlp.mmd_witness(torch.tensor([[-1.0, 0.0]]), x, y, sigmas) > 0
    assert mlp.mmd_witness(torch.tensor([[2.0, 0.0]]), x, y, sigmas) < 0
    assert far.abs() < 1e-6
    # images are flattened
    imgs = torch.rand(3, 1, 2, 2, generator=g)
    assert mlp.mmd_witness(imgs, imgs, imgs.flip(0) * 0.5, (1.0,)).shape == (3,)


def test_mmd_permutation_test_tells_apart_only_different_distributions():
    g = torch.Generator().manual_seed(4)
    x, same, shifted = (torch.randn(60, 3, generator=g) for _ in range(3))
    stat, p_same, null = mlp.mmd_permutation_test(x, same, (1.0,), permutations=200, generator=g)
    assert null.shape == (200,) and abs(stat - mlp.mmd2(x, same, (1.0,)).item()) < 1e-6
    assert p_same > 0.05
    _, p_diff, _ = mlp.mmd_permutation_test(x, shifted + 1.0, (1.0,), permutations=200, generator=g)
    assert p_diff < 0.01
