"""Lesson 06's diffusion module: schedules, the pieces of the exercises, the U-Net, the samplers, training."""

import dataclasses
import math

import pytest
import torch

from genimg_course import diffusion as d
from genimg_course.common.checkpoint import save_checkpoint
from genimg_course.zoo import load_checkpoint
from genimg_course.zoo import CONDITIONAL, EPOCHS, MODELS, build_model, default_config

FAMILIES = {"ddpm": ("eps", 0), "flow": ("flow", 0), "cddpm": ("eps", 3), "cflow": ("flow", 3)}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models run fastest on one thread


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _small(family="ddpm", **config):
    """A width-8 model of ``family`` whose output layers are random (they start at zero), so that what it
    samples depends on its weights."""
    objective, n_classes = FAMILIES[family]
    model = d.DiffusionModel(d.DiffusionConfig(objective=objective, n_classes=n_classes, width=8, steps=3, **config))
    _randomise_output(model)
    return model


def _randomise_output(model, seed=1):
    g = _gen(seed)
    with torch.no_grad():
        for net in (model.net, model.ema):
            net.conv_out.weight.copy_(0.1 * torch.randn(net.conv_out.weight.shape, generator=g))
            net.conv_out.bias.copy_(0.1 * torch.randn(net.conv_out.bias.shape, generator=g))


def _image(shape=(1, 12, 12), seed=3):
    """A fixed image strictly inside [-1, 1] (the samplers clip x̂_0 to [-1, 1])."""
    return torch.rand(1, *shape, generator=_gen(seed)) * 1.8 - 0.9


class EpsOracle(torch.nn.Module):
    """The exact ε of a single image x0: ε = (x_t − √ᾱ_t x0) / √(1 − ᾱ_t); the network sees (t + 1) / T."""

    def __init__(self, x0, alpha_bar):
        super().__init__()
        self.x0, self.alpha_bar, self.calls = x0, alpha_bar, []

    def forward(self, x, time, labels=None):
        T = len(self.alpha_bar)
        t = torch.round(time.double() * T - 1).long()
        self.calls.append(t.tolist())
        a = self.alpha_bar[t].reshape(-1, 1, 1, 1)
        return (x - a.sqrt() * self.x0) / (1 - a).sqrt()


class VelocityOracle(torch.nn.Module):
    """The exact velocity towards a single image x0: on the line x_t = (1 − t) x0 + t ε, v = ε − x0 = (x_t − x0) / t."""

    def __init__(self, x0):
        super().__init__()
        self.x0, self.calls = x0, []

    def forward(self, x, time, labels=None):
        self.calls.append(time.tolist())
        return (x - self.x0) / time.reshape(-1, 1, 1, 1)


# ----------------------------------------------------------------------------- schedules
def test_linear_schedule_is_ho_et_al_at_1000_steps_and_scales_with_T():
    betas = d.make_betas("linear", 1000)
    assert betas.shape == (1000,) and betas.dtype == torch.float64
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    assert (betas.diff() > 0).all()
    short = d.make_betas("linear", 100)  # both ends × 1000 / 100
    assert short[0].item() == pytest.approx(1e-3) and short[-1].item() == pytest.approx(0.2)
    assert torch.cumprod(1 - betas, 0)[-1] < 1e-4 and torch.cumprod(1 - short, 0)[-1] < 1e-4


@pytest.mark.parametrize("T", [2, 10, 20])
def test_a_short_linear_schedule_stays_a_valid_noise_schedule(T):
    # 0.02 · 1000 / T reaches 1 at T = 20: β ≥ 1 would make ᾱ zero or negative (NaN samples)
    betas = d.make_betas("linear", T)
    alpha_bar = torch.cumprod(1 - betas, 0)
    assert (betas > 0).all() and (betas < 1).all()
    assert (alpha_bar > 0).all() and (alpha_bar.diff() < 0).all()
    model = _small("ddpm", schedule="linear", T=T)
    assert torch.isfinite(model.sample(2, _gen(), steps=min(T, 3))).all()


def test_cosine_schedule():
    betas = d.make_betas("cosine", 1000)
    alpha_bar = torch.cumprod(1 - betas, 0)
    assert (alpha_bar.diff() < 0).all()
    assert alpha_bar[0].item() == pytest.approx(1, abs=1e-3) and alpha_bar[-1] < 1e-3
    assert (betas > 0).all() and (betas <= 0.999).all()
    # ᾱ_t follows cos²((t/T + s) / (1 + s) · π/2) / ᾱ(0) (away from the clipped last step)
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 250, 500, 900):
        assert alpha_bar[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-6)


def test_bad_schedule_and_T_are_errors_that_name_the_choices():
    with pytest.raises(ValueError, match="Valid schedules: linear, cosine"):
        d.make_betas("quadratic", 1000)
    with pytest.raises(ValueError, match="Valid schedules: linear, cosine"):
        d.DiffusionConfig(schedule="sigmoid")
    with pytest.raises(ValueError, match="Valid objectives: eps, flow"):
        d.DiffusionConfig(objective="x0")
    for T in (1, 0, 2.5):
        with pytest.raises(ValueError, match=r"T .*must be an int >= 2"):
            d.make_betas("linear", T)
    with pytest.raises(ValueError, match=r"must be an int >= 2"):
        d.DiffusionModel(d.DiffusionConfig(T=1, width=8))


# ----------------------------------------------------------------------------- the pieces of the exercises
def test_q_sample_with_a_different_t_per_image():
    alpha_bar = torch.cumprod(1 - d.make_betas("linear", 1000), 0).float()
    g = _gen()
    x0, noise = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    t = torch.tensor([0, 500, 999])
    out = d.q_sample(x0, t, noise, alpha_bar)
    for i in range(3):
        a = alpha_bar[t[i]]
        torch.testing.assert_close(out[i], a.sqrt() * x0[i] + (1 - a).sqrt() * noise[i])
    assert not torch.allclose(out[0], noise[0]) and torch.allclose(out[2], noise[2], atol=0.03)


def test_ddpm_loss_is_zero_for_the_true_noise():
    alpha_bar = torch.cumprod(1 - d.make_betas("cosine", 1000), 0).float()
    g = _gen()
    x0, noise = _image((1, 8, 8)).repeat(4, 1, 1, 1), torch.randn(4, 1, 8, 8, generator=g)
    t = torch.tensor([3, 200, 600, 950])
    seen = []

    def oracle(x_t, steps, labels):  # ε from x_t, the integer step and the known x0
        seen.append((steps, labels))
        a = alpha_bar[steps].reshape(-1, 1, 1, 1)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    labels = torch.tensor([1, 0, 2, 1])
    assert d.ddpm_loss(oracle, x0, t, noise, alpha_bar, labels).item() == pytest.approx(0, abs=1e-8)
    assert torch.equal(seen[0][0], t) and torch.equal(seen[0][1], labels)
    wrong = d.ddpm_loss(lambda x, s, y: torch.zeros_like(x), x0, t, noise, alpha_bar)
    assert wrong.item() == pytest.approx(noise.pow(2).mean().item()) and wrong > 0.1


def test_flow_matching_loss_is_zero_for_the_true_velocity():
    g = _gen()
    x0, noise = _image((1, 8, 8)).repeat(4, 1, 1, 1), torch.randn(4, 1, 8, 8, generator=g)
    t = torch.tensor([0.1, 0.4, 0.7, 1.0])
    oracle = lambda x_t, time, labels: (x_t - x0) / time.reshape(-1, 1, 1, 1)  # noqa: E731
    assert d.flow_matching_loss(oracle, x0, t, noise).item() == pytest.approx(0, abs=1e-10)
    wrong = d.flow_matching_loss(lambda x, s, y: torch.zeros_like(x), x0, t, noise)
    assert wrong.item() == pytest.approx((noise - x0).pow(2).mean().item()) and wrong > 0.1
    reversed_ = d.flow_matching_loss(lambda x, s, y: x0 - noise, x0, t, noise)  # the wrong direction
    assert reversed_ > 1


def test_predict_x0_inverts_q_sample():
    alpha_bar = torch.cumprod(1 - d.make_betas("cosine", 1000), 0).float()
    x0, noise = _image(), torch.randn(1, 1, 12, 12, generator=_gen())
    t = torch.tensor([400])
    x_t = d.q_sample(x0, t, noise, alpha_bar)
    torch.testing.assert_close(d.predict_x0(x_t, noise, alpha_bar[t]), x0, atol=1e-5, rtol=0)


def test_ddim_step_with_the_exact_noise_lands_on_q_sample():
    alpha_bar = torch.cumprod(1 - d.make_betas("cosine", 1000), 0).float()
    g = _gen()
    x0 = torch.rand(2, 1, 8, 8, generator=g) * 2 - 1  # in [-1, 1]: clipping x̂_0 changes nothing
    noise = torch.randn(2, 1, 8, 8, generator=g)
    t, s = torch.tensor([700, 300]), torch.tensor([350, 10])  # a different pair per image
    x_t = d.q_sample(x0, t, noise, alpha_bar)
    x_s = d.ddim_step(x_t, noise, alpha_bar[t], alpha_bar[s])
    torch.testing.assert_close(x_s, d.q_sample(x0, s, noise, alpha_bar), atol=1e-5, rtol=0)
    last = d.ddim_step(x_t, noise, alpha_bar[t], torch.ones(2))  # ᾱ = 1: "before step 0" is the image
    torch.testing.assert_close(last, x0, atol=1e-5, rtol=0)


def test_ddim_step_clips_the_predicted_image():
    x_t = torch.full((1, 1, 2, 2), 3.0)
    a = torch.tensor([0.25])
    # ε = 0: x̂_0 = x_t / √ᾱ = 6, clipped to 1; with ᾱ_prev = 1 the step returns x̂_0
    assert torch.equal(d.ddim_step(x_t, torch.zeros_like(x_t), a, torch.ones(1)), torch.ones_like(x_t))
    assert torch.equal(d.ddpm_step(-x_t, torch.zeros_like(x_t), a, torch.ones(1), torch.zeros_like(x_t)),
                       -torch.ones_like(x_t))


def test_ddpm_step_is_ho_et_al_posterior():
    betas = d.make_betas("linear", 1000)  # float64: compare to many digits
    alpha_bar = torch.cumprod(1 - betas, 0)
    g = _gen()
    x0 = (torch.rand(2, 1, 6, 6, generator=g, dtype=torch.float64) * 1.8 - 0.9)
    eps = torch.randn(2, 1, 6, 6, generator=g, dtype=torch.float64)
    t = torch.tensor([500, 20])
    s = t - 1
    x_t = d.q_sample(x0, t, eps, alpha_bar)
    b = betas[t].reshape(-1, 1, 1, 1)
    a_t, a_s = alpha_bar[t].reshape(-1, 1, 1, 1), alpha_bar[s].reshape(-1, 1, 1, 1)
    mean = (a_s.sqrt() * b / (1 - a_t)) * x0 + ((1 - b).sqrt() * (1 - a_s) / (1 - a_t)) * x_t
    var = b * (1 - a_s) / (1 - a_t)
    zeros, ones = torch.zeros_like(x_t), torch.ones_like(x_t)
    torch.testing.assert_close(d.ddpm_step(x_t, eps, alpha_bar[t], alpha_bar[s], zeros), mean,
                               rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(d.ddpm_step(x_t, eps, alpha_bar[t], alpha_bar[s], ones) - mean,
                               var.sqrt().expand_as(x_t), rtol=1e-7, atol=1e-12)
    noise = torch.randn(2, 1, 6, 6, generator=g, dtype=torch.float64)
    torch.testing.assert_close(d.ddpm_step(x_t, eps, alpha_bar[t], alpha_bar[s], noise), mean + var.sqrt() * noise,
                               rtol=1e-7, atol=1e-9)
    # the last step (ᾱ_prev = 1) is the predicted image, with no noise
    last = d.ddpm_step(x_t, eps, alpha_bar[t], torch.ones(2, dtype=torch.float64), 100 * ones)
    torch.testing.assert_close(last, x0, rtol=0, atol=1e-9)


def test_flow_interpolate_and_one_euler_step():
    g = _gen()
    x0, noise = torch.randn(3, 1, 4, 4, generator=g), torch.randn(3, 1, 4, 4, generator=g)
    x_t = d.flow_interpolate(x0, noise, torch.tensor([0.0, 1.0, 0.25]))
    assert torch.equal(x_t[0], x0[0]) and torch.equal(x_t[1], noise[1])
    torch.testing.assert_close(x_t[2], 0.75 * x0[2] + 0.25 * noise[2])
    # from t = 1 (pure noise) to t = 0 in one step with the true velocity ε − x0: the image
    torch.testing.assert_close(d.euler_step(noise, noise - x0, 1.0, 0.0), x0)
    torch.testing.assert_close(d.euler_step(x_t[2:], (noise - x0)[2:], 0.25, 0.0), x0[2:])


def test_guided():
    cond, uncond = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 1.0])
    assert torch.equal(d.guided(cond, uncond, 0.0), uncond)
    assert torch.equal(d.guided(cond, uncond, 1.0), cond)
    torch.testing.assert_close(d.guided(cond, uncond, 3.0), 3 * cond - 2 * uncond)


# ----------------------------------------------------------------------------- the network
def test_time_embedding():
    t = torch.tensor([0.0, 0.001, 0.5, 1.0])
    emb = d.time_embedding(t, 16)
    assert emb.shape == (4, 16)
    assert torch.equal(emb[0], torch.cat([torch.ones(8), torch.zeros(8)]))  # cos 0, sin 0
    assert all(not torch.allclose(emb[i], emb[j]) for i in range(4) for j in range(i + 1, 4))
    torch.testing.assert_close(emb.pow(2).sum(1), torch.full((4,), 8.0))  # cos² + sin² per frequency


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_unet_shapes_and_the_no_label_token(shape):
    torch.manual_seed(0)
    x, t = torch.randn(2, *shape), torch.tensor([0.1, 0.9])
    plain = d.UNet(shape[0], width=8)
    assert plain(x, t).shape == (2, *shape)
    assert plain.label_emb is None
    net = d.UNet(shape[0], width=8, n_classes=4)
    torch.nn.init.normal_(net.conv_out.weight, std=0.1)  # it starts at zero
    assert net.label_emb.num_embeddings == 5  # 4 classes and "no label"
    with_labels, without = net(x, t, torch.tensor([0, 3])), net(x, t)
    assert with_labels.shape == without.shape == (2, *shape)
    torch.testing.assert_close(without, net(x, t, torch.tensor([4, 4])))  # None is the "no label" token
    assert not torch.allclose(with_labels, without)
    assert not torch.allclose(net(x, torch.tensor([0.5, 0.5]), None), without)  # it sees the time


def test_config_checks_image_size_and_classes():
    with pytest.raises(ValueError, match="divisible by 4"):
        d.DiffusionConfig(image_shape=(1, 30, 30))
    with pytest.raises(ValueError, match="divisible by 4"):
        d.DiffusionConfig(image_shape=(3, 32, 18))
    with pytest.raises(ValueError, match="n_classes"):
        d.DiffusionConfig(n_classes=1)
    assert d.DiffusionConfig(image_shape=[3, 32, 32]).image_shape == (3, 32, 32)


# ----------------------------------------------------------------------------- the model
def test_schedule_buffers_are_saved_and_moved():
    model = d.DiffusionModel(d.DiffusionConfig(width=8, schedule="linear", T=100))
    state = model.state_dict()
    assert "alpha_bar" in state and "betas" in state
    assert {n for n, _ in model.named_buffers()} >= {"alpha_bar", "betas"}
    assert "alpha_bar" not in {n for n, _ in model.named_parameters()}
    torch.testing.assert_close(model.alpha_bar, torch.cumprod(1 - d.make_betas("linear", 100), 0).float())
    assert model.double().alpha_bar.dtype == torch.float64
    meta = model.to("meta")
    assert meta.alpha_bar.device.type == "meta" and meta.betas.device.type == "meta" and meta.device.type == "meta"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_names(family):
    assert _small(family).family == family


@pytest.mark.parametrize("family,sampler", [("ddpm", "ddim"), ("ddpm", "ddpm"), ("cddpm", None), ("flow", None),
                                            ("cflow", "euler")])
def test_sample_is_reproducible_for_a_seed(family, sampler):
    model = _small(family)
    a = model.sample(3, _gen(5), sampler=sampler)
    assert a.shape == (3, 1, 28, 28) and a.min() >= -1 and a.max() <= 1 and torch.isfinite(a).all()
    assert torch.equal(a, model.sample(3, _gen(5), sampler=sampler))
    assert not torch.allclose(a, model.sample(3, _gen(6), sampler=sampler))


def test_sample_shape_for_colour_images_and_trajectory():
    model = _small("flow", image_shape=(3, 8, 8))
    x, snaps = model.sample(2, _gen(1), steps=6, trajectory=4)
    assert x.shape == (2, 3, 8, 8) and len(snaps) == 4 and all(s.shape == (2, 3, 8, 8) for s in snaps)
    torch.testing.assert_close(snaps[0], torch.randn(2, 3, 8, 8, generator=_gen(1)).clamp(-1, 1))  # pure noise
    assert torch.equal(snaps[-1], x)
    assert torch.equal(x, model.sample(2, _gen(1), steps=6))
    ddpm = _small("ddpm", image_shape=(1, 8, 8))
    _, snaps = ddpm.sample(2, _gen(1), steps=4, trajectory=2)
    assert len(snaps) == 2


@pytest.mark.parametrize("family,sampler,schedule", [
    ("ddpm", "ddim", "cosine"), ("ddpm", "ddim", "linear"), ("ddpm", "ddpm", "cosine"), ("ddpm", "ddpm", "linear"),
    ("cddpm", "ddim", "cosine"), ("cddpm", "ddpm", "linear"), ("flow", "euler", "cosine"), ("cflow", "euler", "cosine"),
])
def test_samplers_recover_the_image_of_an_oracle(family, sampler, schedule):
    """With a "network" that knows the exact ε (or velocity) of one image x0, every sampler lands on x0."""
    model = _small(family, image_shape=(1, 12, 12), schedule=schedule)
    x0 = _image()
    oracle = EpsOracle(x0, model.alpha_bar) if FAMILIES[family][0] == "eps" else VelocityOracle(x0)
    model.ema = oracle
    for steps in (1, 5):
        oracle.calls.clear()
        extra = {"guidance": 3.0} if model.config.n_classes else {}
        out = model.sample(4, _gen(2), steps=steps, sampler=sampler, **extra)
        # one DDIM step from T − 1 divides float32 rounding by √ᾱ_{T−1} (5e-5 for the cosine schedule)
        atol = 5e-3 if steps == 1 and schedule == "cosine" else 1e-4
        torch.testing.assert_close(out, x0.expand(4, -1, -1, -1), atol=atol, rtol=0)
        assert len(oracle.calls) == steps
    if FAMILIES[family][0] == "eps":  # respaced: from T − 1 down to 0, every step once
        assert [c[0] for c in oracle.calls] == [999, 749, 500, 250, 0]
    else:  # Euler from t = 1 down to (not including) 0
        assert [c[0] for c in oracle.calls] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])


def test_ddpm_sampler_is_stochastic_but_ddim_is_not():
    model = _small("ddpm")
    a = model.sample(2, _gen(0), sampler="ddim", steps=4)
    b = model.sample(2, _gen(0), sampler="ddpm", steps=4)
    assert not torch.allclose(a, b)  # the ancestral sampler adds fresh noise at each step


def test_sampling_errors_are_clear():
    ddpm, flow, cflow = _small("ddpm"), _small("flow"), _small("cflow")
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        ddpm.sample(1, steps=0)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        flow.sample(1, steps=-2)
    with pytest.raises(ValueError, match="steps=1001 is more than the model's T=1000"):
        ddpm.sample(1, steps=1001)
    with pytest.raises(ValueError, match="sampler 'euler' does not fit a DDPM.*Valid samplers for 'ddpm': ddim, ddpm"):
        ddpm.sample(1, sampler="euler")
    with pytest.raises(ValueError, match="sampler 'ddim' does not fit a flow-matching.*Valid samplers for 'flow': euler"):
        flow.sample(1, sampler="ddim")
    with pytest.raises(ValueError, match="guidance is for a conditional model.*'ddpm' model has no labels"):
        ddpm.sample(1, guidance=2.0)
    with pytest.raises(ValueError, match="labels are for a conditional model.*'flow' model is unconditional"):
        flow.sample(1, labels=3)
    with pytest.raises(ValueError, match="label 3 is out of range: this model knows classes 0..2"):
        cflow.sample(2, labels=3)
    with pytest.raises(ValueError, match="label -1 is out of range"):
        cflow.sample(2, labels=[0, -1])
    with pytest.raises(ValueError, match="got 3 labels for 2 samples"):
        cflow.sample(2, labels=[0, 1, 2])
    with pytest.raises(ValueError, match="guidance must be a finite number"):
        cflow.sample(2, guidance=float("nan"))


class FakeNet(torch.nn.Module):
    """A deterministic stand-in for the U-Net whose output depends on x, the time and the label."""

    def __init__(self, n_classes):
        super().__init__()
        self.n_classes, self.calls = n_classes, []

    def forward(self, x, time, labels=None):
        if labels is None:
            labels = torch.full((len(x),), self.n_classes)
        self.calls.append((len(x), labels.tolist()))
        y = (labels.float() + 1).reshape(-1, 1, 1, 1)
        return torch.tanh(x) * 0.3 * y + time.reshape(-1, 1, 1, 1) * (y - 2)


@pytest.mark.parametrize("family", ["cddpm", "cflow"])
def test_classifier_free_guidance_combines_two_passes(family):
    model = _small(family, image_shape=(1, 4, 4))
    k = model.config.n_classes
    fake = model.ema = FakeNet(k)
    labels, w, steps = torch.tensor([0, 2, 1]), 3.0, 3
    out = model.sample(3, _gen(4), labels=labels, steps=steps, guidance=w)
    assert all(n == 6 and y == labels.tolist() + [k] * 3 for n, y in fake.calls)  # one pass, both halves

    # the same loop by hand, with a conditional and an unconditional pass
    x = torch.randn(3, 1, 4, 4, generator=_gen(4))
    no_label = torch.full((3,), k)
    if family == "cflow":
        ts = torch.linspace(1, 0, steps + 1)
        for i in range(steps):
            t = ts[i].expand(3)
            v = fake(x, t, no_label) + w * (fake(x, t, labels) - fake(x, t, no_label))
            x = x + (ts[i + 1] - ts[i]) * v
    else:
        ab, times = model.alpha_bar, [999, 500, 0]
        for i, t in enumerate(times):
            time = torch.full((3,), (t + 1) / 1000)
            eps = fake(x, time, no_label) + w * (fake(x, time, labels) - fake(x, time, no_label))
            prev = ab[times[i + 1]] if i + 1 < len(times) else torch.tensor(1.0)
            x0 = ((x - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()).clamp(-1, 1)
            x = prev.sqrt() * x0 + (1 - prev).sqrt() * eps
    torch.testing.assert_close(out, x.clamp(-1, 1), atol=1e-5, rtol=1e-5)

    fake.calls.clear()  # w = 0 is the unconditional model, w = 1 the conditional one: one pass each
    uncond = model.sample(3, _gen(4), labels=labels, steps=steps, guidance=0)
    assert [y for _, y in fake.calls] == [[k] * 3] * steps
    fake.calls.clear()
    cond = model.sample(3, _gen(4), labels=labels, steps=steps, guidance=1)
    assert [y for _, y in fake.calls] == [labels.tolist()] * steps
    assert not torch.allclose(uncond, cond) and not torch.allclose(out, cond)
    fake.calls.clear()  # default: the config's guidance, labels every class in turn
    torch.testing.assert_close(model.sample(4, _gen(4), steps=1),
                               model.sample(4, _gen(4), labels=[0, 1, 2, 0], steps=1, guidance=model.config.guidance))
    two_passes = model.config.guidance not in (0, 1)  # w = 1 (the default) is the plain conditional model
    assert fake.calls[0][1] == [0, 1, 2, 0] + ([k, k, k, k] if two_passes else [])


# ----------------------------------------------------------------------------- training
def test_train_diffusion_checks_labels_and_shape():
    images = torch.zeros(4, 1, 28, 28)
    with pytest.raises(ValueError, match="needs the labels"):
        d.train_diffusion(_small("cddpm"), images, 1, progress_bar=False)
    with pytest.raises(ValueError, match=r"images of shape \(1, 32, 32\) do not fit.*\(1, 28, 28\)"):
        d.train_diffusion(_small("ddpm"), torch.zeros(4, 1, 32, 32), 1, progress_bar=False)


@pytest.mark.parametrize("family", ["ddpm", "flow"])
def test_train_diffusion_learns_one_image(family):
    objective = FAMILIES[family][0]
    model = d.DiffusionModel(d.DiffusionConfig(width=8, objective=objective, image_shape=(1, 28, 28)))
    images = torch.full((32, 1, 28, 28), -0.9)
    images[:, :, 8:20, 10:18] = 0.9  # a bright bar on a dark background
    ema_before = [p.clone() for p in model.ema.parameters()]
    history = d.train_diffusion(model, images, epochs=30, batch_size=16, progress_bar=False)
    assert set(history) == {"loss", "seconds"} and len(history["loss"]) == len(history["seconds"]) == 60
    assert history["seconds"] == sorted(history["seconds"])
    loss = torch.tensor(history["loss"])
    assert torch.isfinite(loss).all() and loss[-10:].mean() < 0.9 * loss[:10].mean()
    assert not model.training
    assert any(not torch.equal(a, b) for a, b in zip(ema_before, model.ema.parameters()))  # the average moved


def test_train_conditional_diffusion_with_labels():
    model = _small("cflow", image_shape=(1, 8, 8))
    history = d.train_diffusion(model, torch.zeros(8, 1, 8, 8), 1, labels=torch.arange(8) % 3, batch_size=4,
                                progress_bar=False)
    assert len(history["loss"]) == 2 and all(math.isfinite(v) for v in history["loss"])


# ----------------------------------------------------------------------------- checkpoints and the zoo
@pytest.mark.parametrize("family", list(FAMILIES))
def test_checkpoint_round_trip(tmp_path, family):
    config = {**default_config(family, (1, 28, 28), n_classes=10), "width": 8, "steps": 2}
    model = build_model(family, config)
    _randomise_output(model)
    save_checkpoint(tmp_path / "m.pt", model, "digits")
    loaded, payload = load_checkpoint(tmp_path / "m.pt", family=family)
    assert payload["family"] == loaded.family == family
    assert dataclasses.asdict(loaded.config) == dataclasses.asdict(model.config)
    torch.testing.assert_close(loaded.alpha_bar, model.alpha_bar)
    torch.testing.assert_close(loaded.sample(2, _gen(7)), model.sample(2, _gen(7)), rtol=0, atol=0)


def test_zoo_diffusion_families():
    assert build_model("cddpm").config.n_classes == 10
    assert build_model("cflow").config.objective == "flow" and build_model("ddpm").config.n_classes == 0
    with pytest.raises(ValueError, match="'ddpm' has objective 'eps'"):
        build_model("ddpm", {"objective": "flow"})
    with pytest.raises(ValueError, match="'flow' is unconditional.*use 'cflow'"):
        build_model("flow", {"n_classes": 10})
    with pytest.raises(ValueError, match="'cddpm' is class-conditional"):
        build_model("cddpm", {"n_classes": 0})
    with pytest.raises(ValueError, match="'cflow' is class-conditional"):
        default_config("cflow", (1, 28, 28), n_classes=None)
    assert default_config("cddpm", (1, 28, 28), n_classes=10)["n_classes"] == 10
    assert "n_classes" not in default_config("ddpm", (1, 28, 28), n_classes=10)
    assert {"cddpm", "cflow"} <= set(CONDITIONAL)


def test_every_family_has_epochs_in_every_profile():
    # genimg train without --epochs and load_or_train read EPOCHS[profile][family]
    for profile, epochs in EPOCHS.items():
        assert set(epochs) == set(MODELS), profile
        assert all(isinstance(v, int) and v >= 1 for v in epochs.values()), profile


# ----------------------------------------------------------------------------- lesson 06, second pass
class PredictionOracle(torch.nn.Module):
    """The exact x0 / v / ε of a single image x0, for a model that predicts ``prediction``."""

    def __init__(self, x0, alpha_bar, prediction):
        super().__init__()
        self.x0, self.alpha_bar, self.prediction, self.calls = x0, alpha_bar, prediction, []

    def forward(self, x, time, labels=None):
        T = len(self.alpha_bar)
        t = torch.round(time.double() * T - 1).long()
        self.calls.append(t.tolist())
        a = self.alpha_bar[t].reshape(-1, 1, 1, 1)
        eps = (x - a.sqrt() * self.x0) / (1 - a).sqrt()
        return {"eps": eps, "x0": self.x0.expand_as(x), "v": a.sqrt() * eps - (1 - a).sqrt() * self.x0}[self.prediction]


def test_trailing_spacing_is_lin_et_al():
    model = _small("ddpm")
    trailing = model.timesteps(20, "trailing")
    assert trailing[:3] == [999, 949, 899] and trailing[-1] == 49 and len(trailing) == 20
    assert model.timesteps(20, "linspace")[-1] == 0  # the old grid spends its last evaluation at t = 0
    assert model.timesteps(1000, "trailing") == list(range(999, -1, -1))
    with pytest.raises(ValueError, match="Valid: linspace, trailing"):
        model.timesteps(5, "leading")


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_conversions_between_eps_x0_and_v_agree(prediction):
    ab = torch.cumprod(1 - d.cosine_betas(50), 0).float()
    x0, noise = _image(seed=4).expand(3, -1, -1, -1), torch.randn(3, 1, 12, 12, generator=_gen(5))
    t = torch.tensor([0, 25, 49])
    x_t, a = d.q_sample(x0, t, noise, ab), ab[t]
    out = {"eps": noise, "x0": x0, "v": d.v_target(x0, noise, a)}[prediction]
    torch.testing.assert_close(d.x0_from(out, x_t, a, prediction), x0, atol=2e-4, rtol=0)
    torch.testing.assert_close(d.eps_from(out, x_t, a, prediction), noise, atol=2e-4, rtol=0)
    # v is the derivative of x_t along the circle: x_t = cos φ x0 + sin φ ε, v = dx_t/dφ
    phi = torch.atan2((1 - a).sqrt(), a.sqrt()).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(d.v_target(x0, noise, a), -phi.sin() * x0 + phi.cos() * noise, atol=1e-5, rtol=0)
    torch.testing.assert_close(d.score_from_eps(noise, a), -noise / (1 - a).sqrt().reshape(-1, 1, 1, 1))


def test_zero_terminal_snr_ends_at_pure_noise_and_needs_v_or_x0():
    betas = d.make_betas("cosine", 1000)
    rescaled = d.zero_terminal_snr(betas)
    ab, ab0 = torch.cumprod(1 - rescaled, 0), torch.cumprod(1 - betas, 0)
    assert ab[-1] == 0 and torch.isclose(ab[0], ab0[0]) and (ab[1:] <= ab[:-1]).all()
    with pytest.raises(ValueError, match="needs prediction 'v' or 'x0'"):
        d.DiffusionConfig(zero_terminal_snr=True)
    with pytest.raises(ValueError, match="Valid: eps, x0, v"):
        d.DiffusionConfig(prediction="score")
    with pytest.raises(ValueError, match="always predicts the velocity"):
        d.DiffusionConfig(objective="flow", prediction="v")


@pytest.mark.parametrize("prediction,zero_snr,sampler,eta", [
    ("v", False, "ddim", 0.0), ("v", True, "ddim", 0.0), ("x0", True, "ddpm", 0.0), ("eps", False, "ddim", 0.5),
    ("v", True, "heun", 0.0), ("eps", False, "heun", 0.0), ("eps", False, "ddim", 1.0),
])
def test_every_target_and_sampler_recovers_the_image_of_an_oracle(prediction, zero_snr, sampler, eta):
    model = _small("ddpm", image_shape=(1, 12, 12), prediction=prediction, zero_terminal_snr=zero_snr)
    x0 = _image()
    model.ema = PredictionOracle(x0, model.alpha_bar, prediction)
    for spacing in ("linspace", "trailing"):
        out = model.sample(3, _gen(2), steps=5, sampler=sampler, eta=eta, spacing=spacing)
        torch.testing.assert_close(out, x0.expand(3, -1, -1, -1), atol=5e-3, rtol=0)


def test_heun_evaluates_twice_per_step_but_the_last():
    model = _small("ddpm", image_shape=(1, 12, 12))
    model.ema = oracle = EpsOracle(_image(), model.alpha_bar)
    model.sample(2, _gen(0), steps=4, sampler="heun", spacing="trailing")
    assert len(oracle.calls) == model.evaluations(4, "heun") == 7
    flow = _small("flow", image_shape=(1, 12, 12))
    flow.ema = voracle = VelocityOracle(_image())
    flow.sample(2, _gen(0), steps=4, sampler="heun")
    assert len(voracle.calls) == 7


def test_heun_is_second_order_on_a_curved_flow():
    """On dx/dt = x (a field that curves the paths), halving the step divides Heun's error by ~4, Euler's by ~2."""
    model = _small("flow", image_shape=(1, 4, 4))

    class Linear(torch.nn.Module):
        def forward(self, x, time, labels=None):
            return x

    model.ema = Linear()
    x1 = torch.randn(1, 1, 4, 4, generator=_gen(7))
    exact = x1 * math.exp(-1.0)  # from t = 1 back to t = 0

    def error(sampler, steps):
        model_noise = torch.Generator().manual_seed(7)
        out = model.sample(1, model_noise, steps=steps, sampler=sampler)
        return float((torch.clamp(exact, -1, 1) - out).abs().max())

    euler, heun = [error("euler", k) for k in (8, 16)], [error("heun", k) for k in (8, 16)]
    assert heun[1] < euler[1] / 5  # second order is far more accurate at the same step
    assert 3.0 < heun[0] / heun[1] < 5.0 and 1.6 < euler[0] / euler[1] < 2.4


def test_ddim_eta_one_is_the_ancestral_step():
    ab = torch.cumprod(1 - d.cosine_betas(20), 0).float()
    x_t, eps = torch.randn(2, 1, 4, 4, generator=_gen(1)), 0.3 * torch.randn(2, 1, 4, 4, generator=_gen(2))
    noise = torch.randn(2, 1, 4, 4, generator=_gen(3))
    a_t, a_s = ab[torch.tensor([15, 15])], ab[torch.tensor([10, 10])]
    x0 = d.predict_x0(x_t, eps, a_t).clamp(-1, 1)
    consistent = (x_t - a_t.sqrt().reshape(-1, 1, 1, 1) * x0) / (1 - a_t).sqrt().reshape(-1, 1, 1, 1)
    torch.testing.assert_close(d.ddim_update(x0, consistent, a_t, a_s, eta=1.0, noise=noise),
                               d.ddpm_step(x_t, eps, a_t, a_s, noise), atol=1e-5, rtol=0)
    torch.testing.assert_close(d.ddim_update(x0, d.eps_from(eps, x_t, a_t, "eps"), a_t, a_s),
                               d.ddim_step(x_t, eps, a_t, a_s), atol=1e-5, rtol=0)


def test_sampling_options_are_checked():
    model = _small("ddpm")
    for bad in (-0.1, 1.5, "x"):
        with pytest.raises(ValueError, match="eta"):
            model.sample(1, steps=2, eta=bad)
    with pytest.raises(ValueError, match="eta is DDIM's setting"):
        model.sample(1, steps=2, sampler="heun", eta=0.5)
    with pytest.raises(ValueError, match="Valid samplers for 'flow': euler, heun"):
        _small("flow").sample(1, sampler="ddim")


def test_logit_normal_times_concentrate_in_the_middle():
    t = d.flow_times(20_000, "logit-normal", _gen(0))
    assert 0 < float(t.min()) and float(t.max()) < 1
    assert abs(float(t.median()) - 0.5) < 0.01
    inner = float(((t > 0.25) & (t < 0.75)).float().mean())  # Φ(logit 0.75) − Φ(logit 0.25) = 0.727
    assert abs(inner - 0.727) < 0.01 and abs(float(((d.flow_times(20_000, "uniform", _gen(0)) > 0.25)
                                                     & (d.flow_times(20_000, "uniform", _gen(0)) < 0.75)).float().mean()) - 0.5) < 0.01
    with pytest.raises(ValueError, match="Valid: uniform, logit-normal"):
        d.flow_times(3, "beta")


@pytest.mark.parametrize("config", [{"prediction": "v"}, {"prediction": "x0", "zero_terminal_snr": True}])
def test_training_with_another_target_lowers_its_loss(config):
    model = _small("ddpm", image_shape=(1, 8, 8), **config)
    images = _image((1, 8, 8)).expand(32, -1, -1, -1).clone()
    history = d.train_diffusion(model, images, epochs=30, batch_size=16, progress_bar=False)
    assert sum(history["loss"][-5:]) / 5 < sum(history["loss"][:5]) / 5
