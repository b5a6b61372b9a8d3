"""Lesson 04's exercise checks (04_gans.ipynb): generative adversarial networks.

Each check is its exercise's specification: tests on small inputs, compared with an oracle, with
feedback that names the input, the expected and the actual result. The notebook calls them after
each exercise (``check.discriminator_loss(discriminator_loss)``); ``genimg_course.course.exercises`` says how a check
reports and what it returns.
"""

from __future__ import annotations

import torch

from genimg_course import gan
from genimg_course.course.handin import before_hand_in  # noqa: F401 (the lesson's last cell)
from genimg_course.course.exercises import Tester, allclose, describe, equal, exercise


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@exercise(lesson="04_gans", points=2, reference=gan.discriminator_loss)
def discriminator_loss(t: Tester, fn):
    """discriminator_loss(real_logits, fake_logits): −mean log σ(D(x)) − mean log(1 − σ(D(G(z))))."""
    g = torch.Generator().manual_seed(18)
    real, fake = torch.randn(8, generator=g), torch.randn(8, generator=g)
    t.close(fn, (real, fake), _bce(real, 1) + _bce(fake, 0), input="real_logits, fake_logits of 8 images each "
            "(compared with F.binary_cross_entropy_with_logits: real → 1, fake → 0)",
            hint="−log σ(t) = softplus(−t) and −log(1 − σ(t)) = softplus(t); average each over its batch")
    t.close(fn, (torch.full((4,), 20.0), torch.full((4,), -20.0)), _bce(torch.full((4,), 20.0), 1) * 2,
            atol=1e-6, input="a confident, correct D (real logits +20, fake −20): the loss is ≈ 0")
    wrong = torch.tensor([-60.0, 60.0])
    t.close(fn, (wrong, -wrong), _bce(wrong, 1) + _bce(-wrong, 0), input="logits ±60 (a D that is sure and "
            "half wrong): the loss is 60", hint="torch.log(torch.sigmoid(-60.)) is −inf in float32; "
            "F.softplus or F.binary_cross_entropy_with_logits stay finite")
    r3, f3 = torch.randn(6, generator=g), torch.randn(3, generator=g)
    t.close(fn, (r3, f3), _bce(r3, 1) + _bce(f3, 0), input="6 real logits and 3 fake logits",
            hint="take the mean of each term over its own batch, then add the two means")
    for wrt, what in ((0, "real_logits"), (1, "fake_logits")):  # D learns through both
        t.gradient(fn, (real, fake), wrt, gan.discriminator_loss, input=f"8 real and 8 fake logits, {what} "
                   "requiring grad", what=what)


@exercise(lesson="04_gans", points=2, reference=gan.generator_loss)
def generator_loss(t: Tester, fn):
    """generator_loss(fake_logits): the non-saturating loss −mean log σ(D(G(z)))."""
    g = torch.Generator().manual_seed(19)
    fake = torch.randn(8, generator=g)
    t.close(fn, (fake,), _bce(fake, 1), input="fake_logits of 8 images (compared with "
            "F.binary_cross_entropy_with_logits(fake_logits, ones))",
            hint="the non-saturating loss is −log σ(D(G(z))) = softplus(−D(G(z))), not log(1 − σ(D(G(z))))")
    rejected = torch.full((4,), -200.0)
    t.close(fn, (rejected,), torch.tensor(200.0), input="a D that rejects every fake (logits −200): the loss is 200",
            hint="here the minimax loss log(1 − σ(t)) is flat (no gradient for G); −log σ(t) is steep. "
            "Use F.softplus(-t): σ(−200) is 0 in float32, and log(0) = −inf")
    x = torch.tensor([-8.0, 0.0], requires_grad=True)
    ok, loss = t.call(fn, (x,), input="logits (−8, 0) that require grad")
    if ok and isinstance(loss, torch.Tensor) and loss.requires_grad:
        (grad,) = torch.autograd.grad(loss, x)
        expected = -torch.sigmoid(-x.detach()) / 2
        t.expect(allclose(grad, expected, atol=1e-4), "logits (−8, 0) that require grad",
                 f"the gradient w.r.t. the logits should be −σ(−t)/B = {[round(v, 4) for v in expected.tolist()]}; "
                 f"got {[round(v, 4) for v in grad.tolist()]}")
    elif ok:
        t.fail("logits (−8, 0) that require grad", "the loss must be a tensor connected to the logits by autograd, "
               f"got {describe(loss)}")


def _tiny_gan(seed: int):
    torch.manual_seed(seed)
    G = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    D = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1), torch.nn.Flatten(0))
    opts = (torch.optim.SGD(G.parameters(), lr=0.5), torch.optim.SGD(D.parameters(), lr=0.5))
    return G, D, opts


def _max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


@exercise(lesson="04_gans", points=3, reference=gan.train_step)
def train_step(t: Tester, fn):
    """train_step(G, D, opt_g, opt_d, real, z): a D step on real vs G(z).detach(), then a G step."""
    G, D, (opt_g, opt_d) = _tiny_gan(20)
    G_ref, D_ref, (opt_g_ref, opt_d_ref) = _tiny_gan(20)
    g = torch.Generator().manual_seed(21)
    for step in (1, 2):
        real, z = torch.randn(5, 3, generator=g), torch.randn(5, 2, generator=g)
        D_before, G_before = [p.detach().clone() for p in D.parameters()], [p.detach().clone() for p in G.parameters()]
        where = f"step {step} of a tiny G (2 → 3) and D (3 → 1) with SGD(lr=0.5), real (5, 3), z (5, 2)"
        ok, got = t.call(fn, (G, D, opt_g, opt_d, real, z), input=where)
        want = gan.train_step(G_ref, D_ref, opt_g_ref, opt_d_ref, real, z)
        if not ok:
            return
        if not t.expect(isinstance(got, tuple) and len(got) == 2 and all(isinstance(v, float) for v in got), where,
                        f"expected (loss_d, loss_g) as two floats (use .item()), got {describe(got)}"):
            return
        if not t.expect(abs(got[0] - want[0]) < 1e-4, where, f"loss_d: expected {want[0]:.5f}, got {got[0]:.5f} "
                        "(D's loss on real vs G(z), computed before D's update)"):
            return
        if any(equal(p, q) for p, q in zip(D.parameters(), D_before)):
            t.fail(where, "D's parameters did not change: call loss_d.backward() and opt_d.step()")
            return
        d_diff, g_diff = _max_diff(D, D_ref), _max_diff(G, G_ref)
        if not t.expect(d_diff < 1e-5, where, f"D's parameters after the step differ from a correct step by up to "
                        f"{d_diff:.3g}\n    hint: opt_d.zero_grad() before loss_d.backward(), so that gradients of "
                        "G's loss (or of the last step) are not added to D's"):
            return
        if not t.expect(abs(got[1] - want[1]) < 1e-4, where, f"loss_g: expected {want[1]:.5f}, got {got[1]:.5f}"
                        "\n    hint: compute G's loss with the *updated* D, after opt_d.step()"):
            return
        if any(equal(p, q) for p, q in zip(G.parameters(), G_before)):
            t.fail(where, "G's parameters did not change: call loss_g.backward() and opt_g.step() (and do not detach "
                   "G(z) in the generator's loss)")
            return
        if not t.expect(g_diff < 1e-5, where, f"G's parameters after the step differ from a correct step by up to "
                        f"{g_diff:.3g}\n    hint: D's step must not reach G: use G(z).detach() in D's loss, and "
                        "call opt_g.zero_grad() before loss_g.backward()"):
            return


@exercise(lesson="04_gans", points=2, reference=gan.ema_update)
def ema_update(t: Tester, fn):
    """ema_update(ema, model, decay): θ_ema ← decay θ_ema + (1 − decay) θ in place; buffers copied."""
    import copy

    torch.manual_seed(22)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = copy.deepcopy(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    model(torch.randn(16, 3))  # training mode: BatchNorm's running statistics move
    for decay in (0.9, 0.0, 1.0):
        where = f"decay={decay}, a Linear(3, 4) + BatchNorm1d(4) whose weights moved after the copy"
        mine, ref = copy.deepcopy(ema), copy.deepcopy(ema)
        model_before = copy.deepcopy(model.state_dict())
        gan.ema_update(ref, model, decay)
        ok, _ = t.call(fn, (mine, model, decay), input=where)
        if not ok:
            return
        for (name, p), (_, q) in zip(model.state_dict().items(), model_before.items()):
            if not equal(p, q):
                t.fail(where, f"the model itself changed ({name}); only ema may be updated")
                return
        for (name, got), (_, want) in zip(mine.state_dict().items(), ref.state_dict().items()):
            if not allclose(got.float(), want.float(), atol=1e-6):
                is_buffer = name.rsplit(".", 1)[-1].startswith(("running_", "num_batches"))
                hint = ("copy the buffers (BatchNorm's running mean and variance) from model: "
                        "for b_ema, b in zip(ema.buffers(), model.buffers()): b_ema.copy_(b)") if is_buffer else (
                        f"θ_ema = {decay} · θ_ema + {1 - decay:.1f} · θ; update ema's parameters in place "
                        "(p_ema.mul_(decay).add_(p, alpha=1 - decay), or p_ema.lerp_(p, 1 - decay)) under torch.no_grad()")
                t.fail(where, f"{name}: expected {[round(v, 4) for v in want.float().flatten()[:4].tolist()]}…, got "
                       f"{[round(v, 4) for v in got.float().flatten()[:4].tolist()]}…\n    hint: {hint}")
                return
        t.passed += 1


@exercise(lesson="04_gans", points=2, reference=gan.conditional_input)
def conditional_input(t: Tester, fn):
    """conditional_input(z, labels, n_classes): [z, one_hot(labels)] of shape (B, Z + K)."""
    g = torch.Generator().manual_seed(23)
    z = torch.randn(4, 3, generator=g)
    labels = torch.tensor([2, 0, 1, 2])
    t.close(fn, (z, labels, 5), gan.conditional_input(z, labels, 5), input="z (4, 3), labels (2, 0, 1, 2), "
            "n_classes=5: expected shape (4, 8)", hint="torch.cat([z, F.one_hot(labels, n_classes).float()], dim=1): "
            "z first, then one column per class (all K of them, even if a class is missing from the batch)")
    z1 = torch.randn(10, 2, generator=g)
    every = torch.arange(10)
    ok, got = t.call(fn, (z1, every, 10), input="z (10, 2), labels 0..9, n_classes=10")
    if ok and isinstance(got, torch.Tensor) and got.shape == (10, 12):
        t.expect(got.dtype == z1.dtype, "z (10, 2), labels 0..9, n_classes=10",
                 f"expected dtype {z1.dtype} (the generator's Linear layer needs floats), got {got.dtype}")
        t.expect(equal(got[:, 2:], torch.eye(10)), "z (10, 2), labels 0..9, n_classes=10",
                 "the last 10 columns should be the identity matrix (row i is the one-hot code of class i)")
    elif ok:
        t.fail("z (10, 2), labels 0..9, n_classes=10", f"expected a tensor of shape (10, 12), got {describe(got)}")
