"""Lesson 06's exercise checks (06_diffusion.ipynb): diffusion and flow matching.

Each check is its exercise's specification: tests on small inputs, compared with an oracle, with
feedback that names the input, the expected and the actual result. The notebook calls them after
each exercise (``check.q_sample(q_sample)``); ``genimg_course.course.exercises`` says how a check
reports and what it returns.
"""

from __future__ import annotations

import torch

from genimg_course import diffusion, scores
from genimg_course.course.handin import before_hand_in  # noqa: F401 (the lesson's last cell)
from genimg_course.course.exercises import Tester, allclose, compare_tensors, describe, equal, exercise


def _schedule(T: int = 10) -> torch.Tensor:
    """ᾱ of a short cosine schedule: small numbers a student can print and follow."""
    return torch.cumprod(1 - diffusion.cosine_betas(T), 0).float()


class _Recorder(torch.nn.Module):
    """A stand-in network for the loss checks: f(x, t, labels) = a x − t/10 + labels/7 with one parameter a = 0.5
    (so that a loss must pass gradients to it), which remembers its inputs. Like the U-Net, it takes one time
    per image, shape (B,)."""

    def __init__(self):
        super().__init__()
        self.calls = []
        self.a = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, x, t, labels=None):
        self.calls.append((x.detach().clone(), t.detach().clone(), None if labels is None else labels.clone()))
        shift = t.float().reshape(-1, *([1] * (x.dim() - 1))) / 10
        bonus = 0.0 if labels is None else labels.float().reshape(-1, *([1] * (x.dim() - 1))) / 7
        return self.a * x - shift + bonus


def _learns(t: Tester, got, model: _Recorder, reference_loss, where: str) -> None:
    """The test: the loss passes gradients to the network's parameters, the same as the reference loss does."""
    if not (isinstance(got, torch.Tensor) and got.requires_grad):
        t.fail(where, "the loss does not reach the network's parameters through autograd: compute it without "
               "torch.no_grad(), .detach() or .item(): training calls loss.backward() on it")
        return
    (mine,) = torch.autograd.grad(got, model.a, allow_unused=True)
    reference = _Recorder()
    (want,) = torch.autograd.grad(reference_loss(reference), reference.a)
    t.expect(mine is not None and allclose(mine, want, atol=1e-5), where,
             f"the gradient of the loss with respect to the network's parameter is "
             f"{'zero' if mine is None else round(float(mine), 5)}, expected {float(want):.5f}: the prediction must "
             "stay connected to the network (no .detach() on it)")


@exercise(lesson="06_diffusion", points=2, reference=diffusion.q_sample)
def q_sample(t: Tester, fn):
    """q_sample(x0, t, noise, alpha_bar): √ᾱ_t x0 + √(1 − ᾱ_t) ε, one t per image."""
    g = torch.Generator().manual_seed(61)
    ab = _schedule(10)
    x0, noise = torch.rand(4, 1, 3, 3, generator=g) * 2 - 1, torch.randn(4, 1, 3, 3, generator=g)
    steps = torch.tensor([0, 3, 6, 9])
    t.close(fn, (x0, steps, noise, ab), diffusion.q_sample(x0, steps, noise, ab),
            input="x0, noise (4, 1, 3, 3), t = (0, 3, 6, 9), ᾱ of a 10-step cosine schedule",
            hint="ab = alpha_bar[t] has shape (4,); reshape it to (4, 1, 1, 1) so that each image gets its own "
                 "ᾱ_t, then ab.sqrt() * x0 + (1 - ab).sqrt() * noise (square roots: these are standard deviations "
                 "and scales, not variances)")
    same = torch.tensor([5, 5, 5, 5])
    t.close(fn, (x0, same, noise, ab), diffusion.q_sample(x0, same, noise, ab),
            input="the same images, all at t = 5")
    rgb, n_rgb = torch.rand(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    t.close(fn, (rgb, torch.tensor([1, 8]), n_rgb, ab), diffusion.q_sample(rgb, torch.tensor([1, 8]), n_rgb, ab),
            input="RGB images (2, 3, 4, 4), t = (1, 8)", hint="the same code must work for any (B, C, H, W)")


@exercise(lesson="06_diffusion", points=2, reference=diffusion.ddpm_loss)
def ddpm_loss(t: Tester, fn):
    """ddpm_loss(model, x0, t, noise, alpha_bar, labels=None): mean of (model(x_t, t, labels) − ε)²."""
    g = torch.Generator().manual_seed(62)
    ab = _schedule(10)
    x0, noise = torch.rand(3, 1, 4, 4, generator=g) * 2 - 1, torch.randn(3, 1, 4, 4, generator=g)
    steps = torch.tensor([2, 5, 9])
    where = "a stand-in network f(x, t) = 0.5 x − t/10, x0 and ε (3, 1, 4, 4), t = (2, 5, 9)"
    model = _Recorder()
    ok, got = t.call(fn, (model, x0, steps, noise, ab), input=where)
    if not ok:
        return
    x_t = diffusion.q_sample(x0, steps, noise, ab)
    if not model.calls:
        t.fail(where, "the network was never called: the loss compares model(x_t, t) with the noise")
        return
    seen_x, seen_t, _ = model.calls[0]
    if seen_x.shape == x_t.shape and not allclose(seen_x, x_t, atol=1e-5):
        hint = ("you passed x0 itself: the network sees the *noised* image x_t = q_sample(x0, t, noise, alpha_bar)"
                if allclose(seen_x, x0) else "the network's input must be x_t = q_sample(x0, t, noise, alpha_bar)")
        t.fail(where, f"the network was called with the wrong image\n    hint: {hint}")
        return
    if not equal(seen_t.long(), steps):
        t.fail(where, f"the network was called with times of shape {tuple(seen_t.shape)}, {seen_t.flatten().tolist()};"
               f" expected the steps t = {steps.tolist()}, shape (3,): one time per image, as given")
        return
    expected = diffusion.ddpm_loss(_Recorder(), x0, steps, noise, ab)
    message = compare_tensors(got, expected, atol=1e-5)
    if message:
        target_x0 = torch.nn.functional.mse_loss(_Recorder()(x_t, steps), x0)
        hint = ("the target is the noise ε, not the clean image x0" if isinstance(got, torch.Tensor)
                and got.shape == () and allclose(got, target_x0) else
                "F.mse_loss(prediction, noise): the *mean* over every pixel of every image, one number")
        t.fail(where, message + f"\n    hint: {hint}")
    else:
        t.passed += 1
        _learns(t, got, model, lambda m: diffusion.ddpm_loss(m, x0, steps, noise, ab), where)
    labels = torch.tensor([4, 0, 9])
    model = _Recorder()
    t.close(fn, (model, x0, steps, noise, ab, labels), diffusion.ddpm_loss(_Recorder(), x0, steps, noise, ab, labels),
            atol=1e-5, input=where + ", labels (4, 0, 9) (a conditional network)",
            hint="pass the labels on: model(x_t, t, labels)")
    oracle_x0 = x0.clone()

    def oracle(x, s, labels=None):  # predicts the exact noise of this x0
        a = ab[s].reshape(-1, 1, 1, 1)
        return (x - a.sqrt() * oracle_x0) / (1 - a).sqrt()

    ok, got = t.call(fn, (oracle, x0, steps, noise, ab), input="a network that predicts the exact noise")
    if ok:
        t.expect(isinstance(got, torch.Tensor) and got.numel() == 1 and float(got) < 1e-8,
                 "a network that predicts the exact noise", f"expected a loss of 0, got {describe(got)}"
                 + (f" = {float(got):.4g}" if isinstance(got, torch.Tensor) and got.numel() == 1 else ""))


@exercise(lesson="06_diffusion", points=3, reference=diffusion.ddim_step)
def ddim_step(t: Tester, fn):
    """ddim_step(x_t, eps, alpha_bar_t, alpha_bar_prev): x̂0 clipped to [−1, 1], then √ᾱ_s x̂0 + √(1 − ᾱ_s) ε."""
    g = torch.Generator().manual_seed(63)
    ab = _schedule(10)
    x0, noise = torch.rand(3, 1, 4, 4, generator=g) * 1.6 - 0.8, torch.randn(3, 1, 4, 4, generator=g)
    t_now, t_prev = torch.tensor([9, 6, 3]), torch.tensor([6, 3, 0])
    x_t = diffusion.q_sample(x0, t_now, noise, ab)
    t.close(fn, (x_t, noise, ab[t_now], ab[t_prev]), diffusion.q_sample(x0, t_prev, noise, ab), atol=1e-4,
            input="x_t = q_sample(x0, t, ε) with the *exact* ε, t = (9, 6, 3) → s = (6, 3, 0): the step must land "
                  "on q_sample(x0, s, ε)",
            hint="x̂0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t, then x_s = √ᾱ_s x̂0 + √(1 − ᾱ_s) ε; the ᾱ are (B,) "
                 "tensors: reshape them to (B, 1, 1, 1)")
    t.close(fn, (x_t, noise, ab[t_now], torch.ones(3)), x0, atol=1e-4,
            input="the same x_t, last step (ᾱ_s = 1): the step returns x̂0 itself")
    eps = torch.randn(3, 1, 4, 4, generator=g) * 1.5  # a poor prediction: x̂0 falls outside [−1, 1]
    a_t, a_s = ab[t_now].reshape(-1, 1, 1, 1), ab[t_prev].reshape(-1, 1, 1, 1)
    x0_clipped = diffusion.predict_x0(x_t, eps, ab[t_now]).clamp(-1, 1)
    # GLIDE's variant (diffusers' use_clipped_model_output=True): ε re-derived from the clipped x̂0, so that x_s
    # lies on the line through x_t and x̂0. Eq. (5) carries the network's own ε; both are right answers.
    eps_clipped = (x_t - a_t.sqrt() * x0_clipped) / (1 - a_t).sqrt()
    glide = a_s.sqrt() * x0_clipped + (1 - a_s).sqrt() * eps_clipped
    where = "the same x_t with a poor noise prediction, whose x̂0 falls outside [−1, 1]"
    ok, got = t.call(fn, (x_t, eps, ab[t_now], ab[t_prev]), input=where)
    if ok and not compare_tensors(got, glide, atol=1e-4) and compare_tensors(got, diffusion.ddim_step(
            x_t, eps, ab[t_now], ab[t_prev]), atol=1e-4):
        t.passed += 1
        t.notes.append("your step re-derives ε from the clipped x̂0, ε' = (x_t − √ᾱ_t x̂0) / √(1 − ᾱ_t): GLIDE's "
                       "variant (diffusers' use_clipped_model_output=True), also right. Eq. (5) as written, and the "
                       "course's samplers by default, carry the network's own ε; where the clip is inactive the two "
                       "agree")
    elif ok:
        t.close(fn, (x_t, eps, ab[t_now], ab[t_prev]), diffusion.ddim_step(x_t, eps, ab[t_now], ab[t_prev]),
                atol=1e-4, input=where,
                hint="clip x̂0 to [−1, 1] (x0_hat.clamp(-1, 1)) before using it: near t = T, ᾱ_t ≈ 0 and the "
                     "division by √ᾱ_t turns small errors of ε into huge values")


@exercise(lesson="06_diffusion", points=2, reference=diffusion.flow_matching_loss)
def flow_matching_loss(t: Tester, fn):
    """flow_matching_loss(model, x0, t, noise, labels=None): mean of (model(x_t, t, labels) − (ε − x0))²."""
    g = torch.Generator().manual_seed(64)
    x0, noise = torch.rand(3, 1, 4, 4, generator=g) * 2 - 1, torch.randn(3, 1, 4, 4, generator=g)
    times = torch.tensor([0.1, 0.5, 0.9])
    where = "a stand-in network f(x, t) = 0.5 x − t/10, x0 and ε (3, 1, 4, 4), t = (0.1, 0.5, 0.9)"
    model = _Recorder()
    ok, got = t.call(fn, (model, x0, times, noise), input=where)
    if not ok:
        return
    x_t = diffusion.flow_interpolate(x0, noise, times)
    if not model.calls:
        t.fail(where, "the network was never called: the loss compares model(x_t, t) with the velocity ε − x0")
        return
    seen_x, seen_t, _ = model.calls[0]
    if seen_x.shape == x_t.shape and not allclose(seen_x, x_t, atol=1e-5):
        backwards = diffusion.flow_interpolate(noise, x0, times)
        hint = ("x_t = (1 − t) x0 + t ε: at t = 0 the image, at t = 1 the noise (you have them the other way round)"
                if allclose(seen_x, backwards, atol=1e-5) else "the network's input is x_t = (1 − t) x0 + t ε, "
                "with t reshaped to (B, 1, 1, 1)")
        t.fail(where, f"the network was called with the wrong image\n    hint: {hint}")
        return
    if seen_t.shape != times.shape or not allclose(seen_t, times):
        t.fail(where, f"the network was called with times of shape {tuple(seen_t.shape)}, {seen_t.flatten().tolist()}; "
               f"expected t = {times.tolist()}, shape (3,)\n    hint: reshape t to (B, 1, 1, 1) for the interpolation "
               "only, and give the network t itself: the U-Net's time embedding takes one number per image")
        return
    expected = diffusion.flow_matching_loss(_Recorder(), x0, times, noise)
    message = compare_tensors(got, expected, atol=1e-5)
    if message:
        flipped = torch.nn.functional.mse_loss(_Recorder()(x_t, times), x0 - noise)
        hint = ("the velocity is d x_t / d t = ε − x0 (from the image towards the noise), not x0 − ε"
                if isinstance(got, torch.Tensor) and got.shape == () and allclose(got, flipped)
                else "F.mse_loss(prediction, noise - x0): the mean over every pixel of every image")
        t.fail(where, message + f"\n    hint: {hint}")
    else:
        t.passed += 1
        _learns(t, got, model, lambda m: diffusion.flow_matching_loss(m, x0, times, noise), where)
    labels = torch.tensor([1, 2, 3])
    t.close(fn, (_Recorder(), x0, times, noise, labels), diffusion.flow_matching_loss(_Recorder(), x0, times, noise,
            labels), atol=1e-5, input=where + ", labels (1, 2, 3)", hint="pass the labels on: model(x_t, t, labels)")


@exercise(lesson="06_diffusion", points=2, reference=scores.from_eps)
def from_eps(t: Tester, fn):
    """from_eps(eps, x_t, alpha_bar_t): (x̂0, v, score) = ((x_t − √(1 − ᾱ) ε)/√ᾱ, √ᾱ ε − √(1 − ᾱ) x̂0, −ε/√(1 − ᾱ))."""
    g = torch.Generator().manual_seed(66)
    ab = _schedule(10)
    hints = ("x̂0 = (x_t − √(1 − ᾱ) ε) / √ᾱ: eq. (2) solved for x0 (square roots: scales, not variances)",
             "v = √ᾱ ε − √(1 − ᾱ) x̂0 (Salimans & Ho): the noise's share minus the image's",
             "score = −ε / √(1 − ᾱ): the noise points *away* from the data, the score towards it; divide by the "
             "noise's standard deviation √(1 − ᾱ), not its variance")
    cases = (("images x0, exact ε (3, 1, 2, 2), t = (1, 5, 8) of a 10-step cosine schedule", (3, 1, 2, 2),
              torch.tensor([1, 5, 8])),
             ("2-D points (4, 2) as on the ring, exact ε, t = (0, 3, 6, 9)", (4, 2), torch.tensor([0, 3, 6, 9])))
    for where, shape, steps in cases:
        x0, noise = torch.rand(shape, generator=g) * 2 - 1, torch.randn(shape, generator=g)
        x_t = diffusion.q_sample(x0, steps, noise, ab)
        ok, got = t.call(fn, (noise, x_t, ab[steps]), input=where)
        if not ok:
            continue
        if not (isinstance(got, tuple) and len(got) == 3):
            t.fail(where, f"expected a tuple (x0, v, score) of three tensors of shape {shape}, got {describe(got)}")
            continue
        want = (x0, diffusion.v_target(x0, noise, ab[steps]), diffusion.score_from_eps(noise, ab[steps]))
        for name, value, expected, hint in zip(("x0", "v", "score"), got, want, hints):
            message = compare_tensors(value, expected, atol=1e-4)
            if message:
                if name == "score" and compare_tensors(value, -expected, atol=1e-4) is None:
                    hint = "the sign: the score points towards the data, −ε / √(1 − ᾱ)"
                t.fail(where, f"{name}: {message}\n    hint: {hint}")
            else:
                t.passed += 1


@exercise(lesson="06_diffusion", points=1, reference=diffusion.guided)
def guided(t: Tester, fn):
    """guided(cond, uncond, w): uncond + w (cond − uncond)."""
    g = torch.Generator().manual_seed(65)
    cond, uncond = torch.randn(2, 1, 3, 3, generator=g), torch.randn(2, 1, 3, 3, generator=g)
    t.close(fn, (cond, uncond, 0.0), uncond, input="w = 0: the label is ignored, the result is uncond")
    t.close(fn, (cond, uncond, 1.0), cond, input="w = 1: the plain conditional prediction, cond")
    t.close(fn, (cond, uncond, 3.0), uncond + 3 * (cond - uncond), input="w = 3: three times as far from uncond, "
            "in the direction the label adds", hint="uncond + w · (cond − uncond)")
