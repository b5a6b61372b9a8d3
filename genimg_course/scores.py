"""Lesson 06, section 5: scores and the probability-flow ODE, on lesson 04's 2-D ring. See 06_diffusion.ipynb.

One idea ties DDPM, DDIM, flow matching and guidance together. Every path of the lesson writes a noised point as
x_t = a_t x0 + b_t ε (DDPM: a = √ᾱ_t, b = √(1 − ᾱ_t); flow matching: a = 1 − t, b = t), and every network of the
lesson estimates one thing, the posterior mean E[ε | x_t], which is the *score* up to a factor (Tweedie's formula):

    ∇_x log p_t(x) = −E[ε | x_t = x] / b_t,      E[x0 | x_t = x] = (x + b_t² ∇ log p_t(x)) / a_t.

The ε-, x0- and v-predictions and flow matching's velocity are affine functions of it. On the ring the data is a
mixture of 8 narrow Gaussians, so p_t is a mixture too and these posterior means are exact (``posterior_means``):
the lesson compares its small learned networks with the exact fields, at no cost but a few seconds of training.
"""

from __future__ import annotations

import torch
from torch import nn

from genimg_course import diffusion
from genimg_course.gan import ring_centres, ring_of_gaussians, toy_mlp

RING = {"modes": 8, "radius": 2.0, "std": 0.05}  # lesson 04's ring of Gaussians
T = 1000  # DDPM's steps on the toy, with the lesson's cosine schedule
ALPHA_BAR = torch.cumprod(1 - diffusion.cosine_betas(T), 0).float()  # (T,)
OBJECTIVES = ("eps", "flow")
CLIP = 3.0  # DDIM clips x̂0 to the data's range; the ring lies within radius 2 + 4σ of the origin


def from_eps(eps: torch.Tensor, x_t: torch.Tensor, alpha_bar_t: torch.Tensor):
    """(x̂0, v, score) implied by a noise prediction ε on DDPM's path. x_t, eps: (B, ...); alpha_bar_t: (B,).

    x̂0 = (x_t − √(1 − ᾱ) ε) / √ᾱ,   v = √ᾱ ε − √(1 − ᾱ) x̂0,   ∇ log p_t(x_t) = −ε / √(1 − ᾱ)."""
    x0 = diffusion.x0_from(eps, x_t, alpha_bar_t, "eps")
    return x0, diffusion.v_target(x0, eps, alpha_bar_t), diffusion.score_from_eps(eps, alpha_bar_t)


# ----------------------------------------------------------------------------- the exact fields of the ring
def posterior_means(x: torch.Tensor, a: float, b: float, modes: int = 8, radius: float = 2.0,
                    std: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """(E[x0 | x_t = x], E[ε | x_t = x]) for x_t = a x0 + b ε, x0 from the ring, exactly. x: (n, 2); b > 0.

    p_t is a mixture of N(a μ_k, (a² σ² + b²) I); given its component k, x0 is Gaussian with mean
    μ_k + a σ² / (a² σ² + b²) · (x − a μ_k); the component's posterior weight is a softmax over k."""
    mu = ring_centres(modes, radius).to(x)  # (K, 2)
    var = a * a * std * std + b * b
    weights = (-((x[:, None] - a * mu) ** 2).sum(-1) / (2 * var)).softmax(1)  # (n, K): equal priors
    x0_k = mu + (a * std * std / var) * (x[:, None] - a * mu)  # (n, K, 2)
    x0 = (weights[..., None] * x0_k).sum(1)
    return x0, (x - a * x0) / b


def path(objective: str, t) -> tuple[float, float]:
    """(a_t, b_t) of x_t = a x0 + b ε: 'eps' at integer step t of T (DDPM, cosine), 'flow' at t in [0, 1]."""
    if objective == "eps":
        ab = float(ALPHA_BAR[int(t)])
        return ab**0.5, (1 - ab) ** 0.5
    if objective == "flow":
        return 1.0 - float(t), float(t)
    raise ValueError(f"unknown objective {objective!r}. Valid: {', '.join(OBJECTIVES)}.")


def exact_output(objective: str, x: torch.Tensor, t) -> torch.Tensor:
    """What a perfect network outputs at (x, t): E[ε | x_t] ('eps'), or the marginal velocity
    E[ε − x0 | x_t] ('flow'), which is the vector field the flow model's ODE follows."""
    a, b = path(objective, t)
    x0, eps = posterior_means(x, a, b, **RING)
    return eps if objective == "eps" else eps - x0


def exact_score(objective: str, x: torch.Tensor, t) -> torch.Tensor:
    """∇_x log p_t(x) = −E[ε | x_t = x] / b_t, exactly (Tweedie)."""
    a, b = path(objective, t)
    return -posterior_means(x, a, b, **RING)[1] / b


# ----------------------------------------------------------------------------- small learned networks
class ToyNet(nn.Module):
    """An MLP f(x, t) for 2-D points: (n, 2) and n times in [0, 1] → (n, 2)."""

    def __init__(self, hidden: int = 128):
        super().__init__()
        self.net = toy_mlp(3, 2, hidden=hidden, depth=3)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels=None) -> torch.Tensor:  # labels: unused
        """x: (n, 2) points, or (n, 2, 1, 1) (points as 2-channel 1 × 1 images); the output has x's shape."""
        return self.net(torch.cat([x.reshape(len(x), 2), t.reshape(-1, 1).to(x)], dim=1)).reshape(x.shape)


def train_toy(objective: str, steps: int = 2000, batch_size: int = 256, lr: float = 2e-3, seed: int = 0,
              loss_fn=None) -> dict:
    """Train a ``ToyNet`` on the ring with the lesson's loss: ε-prediction on DDPM's path ('eps', integer steps of
    ``T``, the cosine schedule) or flow matching ('flow', uniform t). ``loss_fn(model, x0, t, noise)`` replaces
    ``diffusion.ddpm_loss`` (with ``ALPHA_BAR``) or ``diffusion.flow_matching_loss`` (the lesson passes the
    student's). Returns {"net": the network (eval mode), "loss": [per step]}."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}. Valid: {', '.join(OBJECTIVES)}.")
    if loss_fn is None:
        loss_fn = (diffusion.flow_matching_loss if objective == "flow" else
                   lambda m, x0, t, noise, labels=None: diffusion.ddpm_loss(m, x0, t, noise, ALPHA_BAR))
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = ToyNet()
    model = net if objective == "flow" else lambda x, k, labels=None: net(x, (k + 1) / T)  # the network sees t in [0, 1]
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    for _ in range(steps):
        # points as 2-channel 1 × 1 images, so that the lesson's losses (written for (B, C, H, W)) apply as they are
        x0 = ring_of_gaussians(batch_size, generator=g, **RING).reshape(batch_size, 2, 1, 1)
        noise = torch.randn(batch_size, 2, 1, 1, generator=g)
        t = torch.randint(0, T, (batch_size,), generator=g) if objective == "eps" else torch.rand(batch_size, generator=g)
        loss = loss_fn(model, x0, t, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return {"net": net.eval(), "loss": losses}


def learned_output(net: nn.Module, objective: str, x: torch.Tensor, t) -> torch.Tensor:
    """The trained ``ToyNet``'s output at (x, t), with t as ``path`` takes it."""
    s = (int(t) + 1) / T if objective == "eps" else float(t)
    with torch.no_grad():
        return net(x, torch.full((len(x),), s))


# ----------------------------------------------------------------------------- the probability-flow ODE
def trajectories(objective: str, output, z: torch.Tensor, steps: int = 50) -> torch.Tensor:
    """Integrate the probability-flow ODE from the noise z (n, 2) to data, deterministically: DDIM (trailing times)
    on DDPM's path, Euler on flow matching's. ``output(x, t)`` is the network's (ε or velocity), e.g.
    ``lambda x, t: exact_output('flow', x, t)``. Returns the points at every step: (steps + 1, n, 2).

    Both are the same step, x_s = a_s x̂0 + b_s ε̂ with x̂0, ε̂ read off the prediction (the lesson's DDIM step, with
    x̂0 clipped to [−3, 3] instead of the images' [−1, 1]): on the straight path it reduces to x + (s − t) v."""
    x, points = z.clone(), [z.clone()]
    if objective == "eps":
        times = [int(k) for k in torch.linspace(T, 0, steps + 1).round().long()[:-1] - 1]  # trailing: T−1, …
        for i, k in enumerate(times):
            eps = output(x, k)
            a_t, b_t = path("eps", k)
            a_s, b_s = path("eps", times[i + 1]) if i + 1 < len(times) else (1.0, 0.0)
            x0 = ((x - b_t * eps) / a_t).clamp(-CLIP, CLIP)  # as the lesson's DDIM clips images to [−1, 1]
            x = a_s * x0 + b_s * eps
            points.append(x.clone())
    elif objective == "flow":
        grid = torch.linspace(1, 0, steps + 1).tolist()
        for t, t_next in zip(grid[:-1], grid[1:]):
            x = diffusion.euler_step(x, output(x, t), t, t_next)
            points.append(x.clone())
    else:
        raise ValueError(f"unknown objective {objective!r}. Valid: {', '.join(OBJECTIVES)}.")
    return torch.stack(points)


def straightness(points: torch.Tensor) -> torch.Tensor:
    """Length of each path over the distance from its start to its end: 1 for a straight line. points: (S, n, 2)
    as ``trajectories`` returns them; result (n,)."""
    length = (points[1:] - points[:-1]).norm(dim=-1).sum(0)
    return length / (points[-1] - points[0]).norm(dim=-1).clamp(min=1e-12)
