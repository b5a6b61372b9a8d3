"""Lesson 04's GAN module: losses, augmentation, the toy, the networks and the training loop."""

import copy

import pytest
import torch
import torch.nn.functional as F

from genimg_course import gan


def test_losses_match_their_formulas():
    r, f = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([-3.0, 0.0])
    bce = F.binary_cross_entropy_with_logits
    assert torch.allclose(gan.discriminator_loss(r, f), bce(r, torch.ones(3)) + bce(f, torch.zeros(2)))
    assert torch.allclose(gan.generator_loss(f), bce(f, torch.ones(2)))
    # hinge: max(0, 1 − r) = (0, 2, 0.5) → 2.5/3; max(0, 1 + f) = (0, 1) → 0.5
    assert torch.allclose(gan.hinge_discriminator_loss(r, f), torch.tensor(2.5 / 3 + 0.5))
    assert torch.allclose(gan.hinge_generator_loss(f), torch.tensor(1.5))
    assert torch.isfinite(gan.discriminator_loss(torch.tensor([-500.0]), torch.tensor([500.0])))
    with pytest.raises(ValueError, match="Valid losses: bce, hinge"):
        gan.losses("wasserstein")


def test_r1_penalty_of_a_linear_discriminator_is_the_squared_weight_norm():
    w = torch.tensor([3.0, -4.0])
    x = torch.randn(5, 2, requires_grad=True)
    assert torch.allclose(gan.r1_penalty(x, x @ w), torch.tensor(25.0))


def test_diff_augment_keeps_shape_and_gradient_and_rejects_unknown_policies():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 16, 16, requires_grad=True)
    for policy in ("color", "translation", "cutout", "color,translation,cutout"):
        y = gan.diff_augment(x, policy, g)
        assert y.shape == x.shape
        (grad,) = torch.autograd.grad(y.sum(), x)
        assert grad.abs().sum() > 0, policy
    assert torch.equal(gan.diff_augment(x, ""), x)
    with pytest.raises(ValueError, match="Valid: color, translation, cutout"):
        gan.diff_augment(x, "rotate")


def test_translation_moves_pixels_and_cutout_blanks_a_square():
    x = torch.zeros(200, 1, 16, 16)
    x[:, :, 8, 8] = 1.0  # one bright pixel
    y = gan.diff_augment(x, "translation", torch.Generator().manual_seed(1))
    rows = torch.nonzero(y[:, 0])  # (n, 3): image, row, column of the bright pixel
    assert len(rows) == 200  # translation by at most 2 pixels keeps it inside
    assert (rows[:, 1:] - 8).abs().max() == 2 and len(set(rows[:, 1].tolist())) > 1
    ones = torch.ones(200, 1, 16, 16)
    cut = gan.diff_augment(ones, "cutout", torch.Generator().manual_seed(2))
    blank = (cut == 0).flatten(1).sum(1)
    assert blank.max() == 64 and blank.min() > 0  # an 8 × 8 square, sometimes partly outside


def test_ring_and_mode_coverage():
    g = torch.Generator().manual_seed(3)
    ring = gan.ring_of_gaussians(2000, generator=g)
    assert gan.mode_coverage(ring) == (8, pytest.approx(1.0, abs=0.01))
    one_mode = torch.tensor([[2.0, 0.0]]) + 0.01 * torch.randn(500, 2, generator=g)
    assert gan.mode_coverage(one_mode) == (1, 1.0)
    assert gan.mode_coverage(torch.zeros(100, 2)) == (0, 0.0)  # the centre of the ring is on no mode
    assert gan.spread(ring) == pytest.approx(2.0, abs=0.05)  # the ring's radius
    assert gan.spread(torch.full((50, 2), 3.0)) == 0.0  # one point
    assert gan.modes_held(one_mode) == [0] and gan.modes_held(ring) == list(range(8))
    two = torch.cat([torch.tensor([[0.0, 2.0]]).expand(95, 2), torch.tensor([[-2.0, 0.0]]).expand(5, 2)])
    assert gan.modes_held(two) == [2] and gan.modes_held(two, share=0.05) == [2, 4]  # anticlockwise from (2, 0)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_generator_and_discriminator_shapes(shape):
    for extra in ({}, gan.TUTORIAL_RECIPE, {"n_classes": 4}):
        cfg = gan.GANConfig(image_shape=shape, width=8, **extra)
        G, D = gan.Generator(cfg), gan.Discriminator(cfg)
        labels = torch.tensor([0, 3, 1]) if cfg.n_classes else None
        x = G(torch.randn(3, cfg.z_dim), labels)
        assert x.shape == (3, *shape) and x.abs().max() <= 1
        assert D(x, labels).shape == (3,)


def test_config_errors_name_the_valid_choices():
    with pytest.raises(ValueError, match="Valid losses"):
        gan.GANConfig(loss="l2")
    with pytest.raises(ValueError, match="image_shape must be square"):
        gan.GANConfig(image_shape=(1, 28, 30))
    with pytest.raises(ValueError, match="n_classes >= 2"):
        gan.ConditionalGAN(gan.GANConfig(n_classes=0))
    with pytest.raises(ValueError, match="d_kernel must be 3, 4, 5, 6 or 7"):
        gan.GANConfig(d_kernel=2)


@pytest.mark.parametrize("k", [3, 4, 5, 6, 7])
def test_every_discriminator_kernel_halves_the_image(k):
    D = gan.Discriminator(gan.GANConfig(image_shape=(3, 32, 32), width=8, d_kernel=k))
    assert D.features[0].weight.shape[-2:] == (k, k)
    assert D.features[:2](torch.zeros(2, 3, 32, 32)).shape == (2, 8, 16, 16)
    assert D(torch.zeros(2, 3, 32, 32)).shape == (2,)


def test_sampling_and_labels():
    model = gan.DCGAN(gan.GANConfig(width=8))
    s = model.sample(5, torch.Generator().manual_seed(0))
    assert s.shape == (5, 1, 28, 28)
    assert torch.equal(s, model.sample(5, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="conditional"):
        model.sample(2, labels=3)
    cgan = gan.ConditionalGAN(gan.GANConfig(width=8, n_classes=4))
    assert cgan.sample(6).shape == (6, 1, 28, 28)
    with pytest.raises(ValueError, match="classes 0..3"):
        cgan.sample(2, labels=4)
    with pytest.raises(ValueError, match="3 labels for 2 samples"):
        cgan.sample(2, labels=[0, 1, 2])
    grid = cgan.class_grid(n_noise=3, generator=torch.Generator().manual_seed(1))
    assert grid.shape == (12, 1, 28, 28)
    z = torch.randn(3, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        row2 = cgan.generator_ema.eval()(z, torch.full((3,), 2))
    assert torch.allclose(grid[6:9], row2, atol=1e-6)  # row k: class k with the same three z


def test_train_step_updates_both_players():
    torch.manual_seed(0)
    G, D = torch.nn.Linear(2, 3), torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0))
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=0.1), torch.optim.SGD(D.parameters(), lr=0.1)
    g0, d0 = copy.deepcopy(G), copy.deepcopy(D)
    real, z = torch.randn(4, 3), torch.randn(4, 2)
    loss_d, loss_g = gan.train_step(G, D, opt_g, opt_d, real, z)
    assert loss_d == pytest.approx(gan.discriminator_loss(d0(real), d0(g0(z))).item())
    # D's step by hand, then G's step through the updated D
    grads = torch.autograd.grad(gan.discriminator_loss(d0(real), d0(g0(z).detach())), list(d0.parameters()))
    with torch.no_grad():
        for p, gr in zip(d0.parameters(), grads):
            p -= 0.1 * gr
    assert all(torch.allclose(p, q) for p, q in zip(D.parameters(), d0.parameters()))
    assert loss_g == pytest.approx(gan.generator_loss(d0(g0(z))).item())
    assert not torch.allclose(G.weight, g0.weight)


def test_ema_update_and_warm_up():
    model = torch.nn.Linear(2, 2)
    ema = copy.deepcopy(model)
    with torch.no_grad():
        model.weight.add_(1.0)
    before = ema.weight.clone()
    gan.ema_update(ema, model, 0.75)
    assert torch.allclose(ema.weight, 0.75 * before + 0.25 * model.weight)


def test_train_gan_learns_and_keeps_an_average(capsys):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(96, 1, 28, 28, generator=g) * 2 - 1
    model = gan.DCGAN(gan.GANConfig(width=8))
    g_before = copy.deepcopy(model.generator.state_dict())
    history = gan.train_gan(model, images, epochs=2, batch_size=32, progress_bar=False)
    assert set(history) == {"loss_d", "loss_g", "d_real", "d_fake", "logit_real", "logit_fake"}
    assert all(len(v) == 6 for v in history.values())  # 3 batches × 2 epochs
    assert all(0 <= v <= 1 for v in history["d_real"] + history["d_fake"])  # fractions with logit > 0
    assert any(not torch.equal(v, model.generator.state_dict()[k]) for k, v in g_before.items())
    assert not torch.equal(model.generator_ema.project.weight, model.generator.project.weight)
    assert not model.training


def test_train_gan_tutorial_recipe_and_conditional():
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(40, 1, 28, 28, generator=g) * 2 - 1, torch.arange(40) % 4
    plain = gan.DCGAN(gan.GANConfig(width=8, **gan.TUTORIAL_RECIPE))
    assert plain.generator_ema is None and plain.sampler is plain.generator
    gan.train_gan(plain, images, 1, batch_size=20, progress_bar=False)
    cgan = gan.ConditionalGAN(gan.GANConfig(width=8, n_classes=4, r1_gamma=1.0))
    with pytest.raises(ValueError, match="needs the labels"):
        gan.train_gan(cgan, images, 1, progress_bar=False)
    history = gan.train_gan(cgan, images, 1, labels=labels, batch_size=20, progress_bar=False)
    assert all(torch.isfinite(torch.tensor(v)).all() for v in history.values())


def test_toy_gan_snapshots_and_surface():
    torch.manual_seed(0)
    G, D = gan.toy_mlp(2, 2, hidden=16, depth=1), gan.toy_mlp(2, 1, hidden=16, depth=1)
    history = gan.train_toy_gan(G, D, steps=20, batch_size=32, snapshot_every=10,
                                r1_gamma=1.0, progress_bar=False)
    assert [s for s, _ in history["snapshots"]] == [0, 10, 20] and len(history["loss_d"]) == 20
    assert len(history["grad_g"]) == 20 and all(v > 0 for v in history["grad_g"])
    xs, ys, prob = gan.decision_surface(D, n=11)
    assert prob.shape == (11, 11) and 0 <= prob.min() and prob.max() <= 1


def test_dcgan_initialisation_only_where_it_applies():
    torch.manual_seed(0)
    tutorial = gan.DCGAN(gan.GANConfig(width=16, **gan.TUTORIAL_RECIPE))
    conv = tutorial.discriminator.features[0]
    assert abs(conv.weight.std().item() - 0.02) < 0.005  # N(0, 0.02²)
    lesson = gan.DCGAN(gan.GANConfig(width=16))  # spectral norm: default init, normalised
    sn_conv = lesson.discriminator.features[0]
    sigma = torch.linalg.matrix_norm(sn_conv.weight.detach().flatten(1), ord=2)
    assert sigma == pytest.approx(1.0, rel=0.2)


def test_log_reads_verdicts_from_the_sign_of_the_logits():
    history = {k: [] for k in ("loss_d", "loss_g", "d_real", "d_fake", "logit_real", "logit_fake")}
    gan._log(history, torch.tensor(1.0), torch.tensor(2.0), torch.tensor([3.0, -1.0, 0.5, 2.0]),
             torch.tensor([-4.0, 1.0]))
    assert history["d_real"] == [0.75] and history["d_fake"] == [0.5]  # not mean σ(logit)
    assert history["logit_real"] == [1.125] and history["logit_fake"] == [-1.5]


def test_toy_gan_takes_several_d_steps():
    torch.manual_seed(0)
    G, D = gan.toy_mlp(2, 2, hidden=8, depth=1), gan.toy_mlp(2, 1, hidden=8, depth=1)
    calls = []
    def counting_d_loss(r, f):
        calls.append(1)
        return gan.discriminator_loss(r, f)
    gan.train_toy_gan(G, D, steps=4, batch_size=8, d_steps=3, d_loss_fn=counting_d_loss, progress_bar=False)
    assert len(calls) == 12


def test_toy_gan_takes_several_g_steps_and_its_own_d_learning_rate():
    torch.manual_seed(0)
    G, D = gan.toy_mlp(3, 2, hidden=8, depth=1), gan.toy_mlp(2, 1, hidden=8, depth=1)
    g_calls, d_calls = [], []
    def counting_g_loss(f):
        g_calls.append(f.shape)
        return gan.generator_loss(f)
    def counting_d_loss(r, f):
        d_calls.append(1)
        return gan.discriminator_loss(r, f)
    d_before = [p.detach().clone() for p in D.parameters()]
    history = gan.train_toy_gan(G, D, steps=3, batch_size=8, z_dim=3, g_steps=4, lr_d=0.0, d_loss_fn=counting_d_loss,
                                g_loss_fn=counting_g_loss, progress_bar=False)
    assert len(g_calls) == 12 and len(d_calls) == 3 and len(history["grad_g"]) == 3
    assert all(torch.equal(a, b) for a, b in zip(d_before, D.parameters()))  # lr_d = 0: D never moves
    with pytest.raises(ValueError, match="g_steps must be a whole number ≥ 1, got 0"):
        gan.train_toy_gan(G, D, steps=1, g_steps=0, progress_bar=False)


def test_critic_loss_and_gradient_penalty_of_a_linear_critic():
    critic = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 0.0, 4.0]]))  # ‖∇f‖ = 5 everywhere
    real, fake = torch.randn(6, 3), torch.randn(6, 3)
    assert torch.allclose(gan.critic_loss(critic(real), critic(fake)), critic(fake).mean() - critic(real).mean())
    assert gan.gradient_penalty(lambda x: critic(x).squeeze(1), real, fake).item() == pytest.approx(16.0)


def test_conv_operator_norm_matches_the_exact_singular_value():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 5, 2, 2)
    def as_matrix(x):
        return F.conv2d(x.view(1, 2, 10, 10), conv.weight, None, 2, 2).flatten()
    exact = torch.linalg.matrix_norm(torch.autograd.functional.jacobian(as_matrix, torch.zeros(200)), 2).item()
    assert gan.conv_operator_norm(conv, (2, 10, 10), iters=300) == pytest.approx(exact, rel=1e-3)


def test_truncated_noise_and_slerp():
    g = torch.Generator().manual_seed(0)
    z = gan.truncated_noise(500, 8, 0.5, generator=g)
    assert z.shape == (500, 8) and z.abs().max() <= 0.5 and z.std() > 0.2
    assert gan.truncated_noise(4, 3, None, generator=g).shape == (4, 3)
    with pytest.raises(ValueError, match="positive"):
        gan.truncated_noise(4, 3, 0.0)
    z0, z1 = torch.randn(16, generator=g), torch.randn(16, generator=g)
    path = gan.slerp(z0, z1, torch.linspace(0, 1, 5))
    assert torch.allclose(path[0], z0, atol=1e-5) and torch.allclose(path[-1], z1, atol=1e-5)
    z1 = torch.randn(16, generator=g)
    z1 = z1 / z1.norm() * z0.norm()  # equal norms stay equal along the arc
    norms = gan.slerp(z0, z1, torch.linspace(0, 1, 7)).norm(dim=1)
    assert torch.allclose(norms, torch.full_like(norms, z0.norm().item()), rtol=1e-4)


def test_conditional_gan_uses_the_given_conditional_input():
    torch.manual_seed(0)
    cgan = gan.ConditionalGAN(gan.GANConfig(width=8, n_classes=3))
    calls = []
    def mine(z, labels, n_classes):
        calls.append(n_classes)
        return gan.conditional_input(z, labels, n_classes)
    assert cgan.use_conditional_input(mine) is cgan
    before = cgan.sample(4, torch.Generator().manual_seed(0), labels=1)
    cgan.class_grid(n_noise=2, generator=torch.Generator().manual_seed(0))
    assert calls == [3, 3]  # the moving average samples through it
    cgan.generator(torch.randn(2, 64), torch.tensor([0, 2]))
    assert calls == [3, 3, 3]
    zeros = cgan.use_conditional_input(lambda z, y, k: torch.cat([z, torch.zeros(len(z), k)], 1))
    assert not torch.allclose(zeros.sample(4, torch.Generator().manual_seed(0), labels=1), before)
