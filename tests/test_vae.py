import math

import pytest
import torch

from genimg_course import vae


def test_reparameterize_distribution_gradient_and_generator():
    mu = torch.tensor([[1.0, -2.0]]).repeat(50_000, 1)
    logvar = torch.log(torch.tensor([[0.09, 1.0]])).repeat(50_000, 1)
    z = vae.reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([0.3, 1.0]), atol=0.02, rtol=0)
    m = torch.zeros(2, 3, requires_grad=True)
    vae.reparameterize(m, torch.zeros(2, 3)).sum().backward()
    torch.testing.assert_close(m.grad, torch.ones(2, 3))
    a = vae.reparameterize(mu[:3], logvar[:3], torch.Generator().manual_seed(5))
    b = vae.reparameterize(mu[:3], logvar[:3], torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)


def test_kl_matches_torch_distributions():
    mu, logvar = torch.randn(6, 4), torch.randn(6, 4)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(0.0, 1.0)
    torch.testing.assert_close(vae.kl_divergence(mu, logvar), torch.distributions.kl_divergence(q, p).sum(1))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_log_likelihood_matches_torch_distributions(likelihood):
    logits = torch.randn(3, 1, 5, 5)
    if likelihood == "bernoulli":
        x = (torch.rand(3, 1, 5, 5) > 0.5).float()
        expected = torch.distributions.Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    else:
        x = torch.rand(3, 1, 5, 5)
        expected = torch.distributions.Normal(torch.sigmoid(logits), 0.1).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(vae.log_likelihood(x, logits, likelihood, 0.1), expected)
    mu, logvar = torch.randn(3, 2), torch.randn(3, 2)
    torch.testing.assert_close(vae.elbo(x, logits, mu, logvar, likelihood),
                               expected - vae.kl_divergence(mu, logvar))
    with pytest.raises(ValueError, match="bernoulli, gaussian"):
        vae.log_likelihood(x, logits, "poisson")


@pytest.mark.parametrize("cls,shape", [(vae.MLPVAE, (1, 28, 28)), (vae.ConvVAE, (1, 28, 28)), (vae.ConvVAE, (3, 32, 32))])
def test_model_shapes(cls, shape):
    model = cls(vae.VAEConfig(image_shape=shape, z_dim=8, hidden=64, channels=8))
    x = torch.rand(5, *shape)
    x_logits, mu, logvar = model(x)
    assert x_logits.shape == (5, *shape) and mu.shape == (5, 8) and logvar.shape == (5, 8)
    s = model.sample(4)
    assert s.shape == (4, *shape) and s.min() >= -1 and s.max() <= 1
    assert model.reconstruct(x).shape == x.shape


def test_conv_vae_rejects_odd_sizes():
    with pytest.raises(ValueError, match="divisible by 4"):
        vae.ConvVAE(vae.VAEConfig(image_shape=(1, 30, 30)))


def test_iwae_is_exact_when_the_decoder_ignores_z_and_q_is_the_prior():
    model = vae.MLPVAE(vae.VAEConfig(image_shape=(1, 4, 4), z_dim=3, hidden=8))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.decoder[2].bias.copy_(torch.linspace(-2, 2, 16))
    x = (torch.rand(7, 1, 4, 4) > 0.5).float()
    exact = torch.distributions.Bernoulli(logits=torch.linspace(-2, 2, 16).view(1, 1, 4, 4)).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(vae.iwae_log_likelihood(model, x, k=10), exact)


def test_iwae_bound_is_tighter_than_the_elbo():
    torch.manual_seed(0)
    images = torch.rand(64, 1, 8, 8) * 2 - 1
    model = vae.MLPVAE(vae.VAEConfig(image_shape=(1, 8, 8), z_dim=4, hidden=32))
    vae.train_vae(model, images, epochs=20, batch_size=16, progress_bar=False)
    neg_elbo = -sum(vae.evaluate_elbo(model, images, seed=s) for s in range(20)) / 20
    nll_1 = vae.evaluate_nll(model, images, k=1)
    nll_100 = vae.evaluate_nll(model, images, k=100)
    assert nll_100 < neg_elbo
    assert nll_100 < nll_1
    assert abs(nll_1 - neg_elbo) < 0.05 * abs(neg_elbo)  # k = 1 is the ELBO


def test_training_improves_the_elbo_and_bits_per_dim():
    torch.manual_seed(0)
    images = torch.rand(128, 1, 8, 8).round() * 2 - 1
    model = vae.ConvVAE(vae.VAEConfig(image_shape=(1, 8, 8), z_dim=4, hidden=32, channels=4))
    history = vae.train_vae(model, images, epochs=20, batch_size=32, augment_shift=1, progress_bar=False)
    assert history["loss"][-1] < history["loss"][0]
    assert vae.bits_per_dim(64 * math.log(2), (1, 8, 8)) == pytest.approx(1.0)


def test_interpolate_endpoints_are_reconstructions():
    model = vae.ConvVAE(vae.VAEConfig(image_shape=(1, 8, 8), z_dim=4, hidden=16, channels=4))
    a, b = torch.rand(1, 8, 8), torch.rand(1, 8, 8)
    path = vae.interpolate(model, a, b, steps=5)
    assert path.shape == (5, 1, 8, 8)
    torch.testing.assert_close((path[0] + 1) / 2, model.reconstruct(a[None])[0])
    torch.testing.assert_close((path[-1] + 1) / 2, model.reconstruct(b[None])[0])


def test_random_shift_keeps_shape_and_content():
    x = torch.zeros(4, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1
    y = vae.random_shift(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.equal(y.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)))


def test_reparameterize_is_normal_not_only_two_moments():
    # Kolmogorov–Smirnov distance of (z − μ)/σ to N(0, 1): a normal sample of 20,000 stays far below 0.02
    from genimg_course.course.checks.lesson03 import _ks_normal

    mu, logvar = torch.full((20_000, 1), 3.0), torch.full((20_000, 1), math.log(0.25))
    z = vae.reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    assert _ks_normal(((z - 3.0) / 0.5)[:, 0]) < 0.02
    uniform = (torch.rand(20_000, generator=torch.Generator().manual_seed(0)) - 0.5) * 12**0.5  # mean 0, var 1
    assert _ks_normal(uniform) > 0.04


def test_student_functions_drive_training_and_history_splits_the_elbo():
    torch.manual_seed(0)
    images = torch.rand(64, 1, 8, 8).round() * 2 - 1
    calls = {"reparameterize": 0, "kl": 0, "elbo": 0}

    def my_reparameterize(mu, logvar):
        calls["reparameterize"] += 1
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def my_kl(mu, logvar):
        calls["kl"] += 1
        return vae.kl_divergence(mu, logvar)

    def my_elbo(*args):
        calls["elbo"] += 1
        return vae.elbo(*args)

    model = vae.MLPVAE(vae.VAEConfig(image_shape=(1, 8, 8), z_dim=3, hidden=16))
    history = vae.train_vae(model, images, epochs=2, batch_size=32, progress_bar=False, elbo_fn=my_elbo,
                            kl_fn=my_kl, reparameterize_fn=my_reparameterize)
    assert calls == {"reparameterize": 4, "kl": 4, "elbo": 4}
    assert set(history) == {"loss", "recon", "kl"} and len(history["kl"]) == 4
    for loss, recon, kl in zip(history["loss"], history["recon"], history["kl"]):
        assert loss == pytest.approx(recon + kl, rel=1e-5) and kl >= 0


def test_beta_weights_the_kl_and_a_large_beta_collapses_every_dimension():
    torch.manual_seed(0)
    images = torch.rand(128, 1, 8, 8).round() * 2 - 1
    model = vae.MLPVAE(vae.VAEConfig(image_shape=(1, 8, 8), z_dim=4, hidden=32))
    history = vae.train_vae(model, images, epochs=1, batch_size=64, beta=3.0, progress_bar=False)
    assert history["loss"][0] == pytest.approx(history["recon"][0] + 3.0 * history["kl"][0], rel=1e-5)
    collapsed = vae.MLPVAE(vae.VAEConfig(image_shape=(1, 8, 8), z_dim=4, hidden=32))
    vae.train_vae(collapsed, images, epochs=60, batch_size=64, beta=200.0, progress_bar=False)
    assert (vae.latent_activity(collapsed, images) < 0.01).all()
    assert vae.kl_per_dimension(collapsed, images).sum() < 0.1


def test_kl_per_dimension_and_activity_by_hand():
    model = vae.MLPVAE(vae.VAEConfig(image_shape=(1, 4, 4), z_dim=2, hidden=8))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.encoder[1].weight[0].fill_(1.0)  # hidden unit 0 = ReLU(Σ pixels)
        model.encoder[3].weight[0, 0] = 0.1  # μ_0 = 0.1 · Σ pixels; μ_1 = 0; log σ² = 0
    images = torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1).expand(2, 1, 4, 4)  # all off, all on (16 pixels)
    torch.testing.assert_close(vae.kl_per_dimension(model, images), torch.tensor([0.5 * (0 + 1.6**2) / 2, 0.0]))
    torch.testing.assert_close(vae.latent_activity(model, images), torch.tensor([torch.tensor([0.0, 1.6]).var(), 0.0]))
    assert vae.count_parameters(model) == (16 * 8 + 8) + (8 * 4 + 4) + (2 * 8 + 8) + (8 * 16 + 16)


def test_log_marginal_grid_is_exact_when_the_decoder_ignores_z():
    model = vae.MLPVAE(vae.VAEConfig(image_shape=(1, 4, 4), z_dim=2, hidden=8))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.decoder[2].bias.copy_(torch.linspace(-2, 2, 16))
    x = (torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    exact = torch.distributions.Bernoulli(logits=torch.linspace(-2, 2, 16).view(1, 1, 4, 4)).log_prob(x).flatten(1).sum(1)
    log_px, log_post, axis = vae.log_marginal_grid(model, x, limit=5.0, steps=101)
    torch.testing.assert_close(log_px, exact, atol=1e-4, rtol=0)  # ∫ p(z) dz over [−5, 5]² ≈ 1
    cell = (axis[1] - axis[0]) ** 2
    torch.testing.assert_close(log_post.exp().sum((1, 2)) * cell, torch.ones(5), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="z_dim=2"):
        vae.log_marginal_grid(vae.MLPVAE(vae.VAEConfig(image_shape=(1, 4, 4), z_dim=3)), x)


def test_grid_and_iwae_agree_and_bound_the_elbo():
    torch.manual_seed(0)
    images = torch.rand(64, 1, 8, 8).round() * 2 - 1
    model = vae.MLPVAE(vae.VAEConfig(image_shape=(1, 8, 8), z_dim=2, hidden=32))
    vae.train_vae(model, images, epochs=30, batch_size=16, progress_bar=False)
    x = vae.binarize(images[:8])
    log_px, _, _ = vae.log_marginal_grid(model, x, limit=5.0, steps=201)
    log_w = vae.log_weights(model, x, k=4000, generator=torch.Generator().manual_seed(0))  # (4000, 8)
    iwae = torch.logsumexp(log_w, 0) - math.log(4000)
    assert (log_w.mean(0) <= log_px + 1e-4).all()  # eq. (2): ELBO ≤ log p(x)
    torch.testing.assert_close(iwae, log_px, atol=0.05, rtol=0)
