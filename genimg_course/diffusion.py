"""Lesson 06: diffusion models and flow matching. See 06_diffusion.ipynb.

Two ways to turn noise into images with one network, applied many times:

* **DDPM** (Ho et al., 2020): a fixed *forward process* adds Gaussian noise in T steps,
  q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I); a network ε_θ(x_t, t) learns to predict the noise, and the
  *reverse process* removes it step by step (ancestral sampling), or in few deterministic steps (DDIM,
  Song et al., 2021).
* **Flow matching / rectified flow** (Lipman et al., 2023; Liu et al., 2023): x_t = (1 − t) x_0 + t ε on
  a straight line; a network v_θ(x_t, t) learns the velocity ε − x_0, and an ODE solver (Euler) integrates
  it from t = 1 (noise) back to t = 0 (an image).

Both use the same small U-Net (``genimg_course.unet``), which can also take a class label with a "no label"
token, for classifier-free guidance (Ho & Salimans, 2022). Everything the lesson's exercises ask for has its
reference here: ``q_sample``, ``ddpm_loss``, ``ddim_step``, ``ddpm_step``, ``flow_matching_loss`` and
``guided``.

Time convention: the network always sees a time in [0, 1] (DDPM step t of T is (t + 1) / T), embedded with
sinusoids, so both objectives share the architecture.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genimg_course.common.training import (Deadline, autocast, class_labels, grad_scaler, make_loader, progress,
                                           use_amp)
from genimg_course.unet import UNet, time_embedding  # noqa: F401 - time_embedding: diffusion.time_embedding in the lesson

SCHEDULES = ("linear", "cosine")
OBJECTIVES = ("eps", "flow")  # the path: DDPM's (√ᾱ_t x0 + √(1 − ᾱ_t) ε), or flow matching's straight line
PREDICTIONS = ("eps", "x0", "v")  # what a network on DDPM's path predicts: the noise, the image, or v
TIME_SAMPLINGS = ("uniform", "logit-normal")  # how flow matching draws t in training
SPACINGS = ("linspace", "trailing")  # which of the T steps a K-step sampler visits
SAMPLERS = {"eps": ("ddim", "ddpm", "heun"), "flow": ("euler", "heun")}  # the first is the default


# ----------------------------------------------------------------------------- noise schedules
def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Ho et al.'s linear schedule β_1 … β_T (float64). Their values are for T = 1000; for another T both
    ends are scaled by 1000 / T (Nichol & Dhariwal, 2021), so that ᾱ_T stays near 0."""
    scale = 1000 / T
    # clipped like the cosine schedule's: for T <= 20 the scaled β would reach 1 (ᾱ = 0 or < 0: NaN samples)
    return torch.linspace(beta_start * scale, beta_end * scale, T, dtype=torch.float64).clamp(max=0.999)


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule: ᾱ(t) = cos²((t/T + s) / (1 + s) · π/2) / ᾱ(0),
    β_t = 1 − ᾱ_t / ᾱ_{t−1}, clipped at ``max_beta`` (the last steps would otherwise be 1)."""
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)


def make_betas(schedule: str, T: int) -> torch.Tensor:
    """β_1 … β_T of a schedule by name: 'linear' or 'cosine'."""
    if not isinstance(T, int) or T < 2:
        raise ValueError(f"T (the number of diffusion steps) must be an int >= 2, got {T!r}")
    if schedule == "linear":
        return linear_betas(T)
    if schedule == "cosine":
        return cosine_betas(T)
    raise ValueError(f"Unknown noise schedule {schedule!r}. Valid schedules: {', '.join(SCHEDULES)}.")


def zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """β rescaled so that ᾱ_T = 0 exactly (Lin et al. 2024, Algorithm 1): √ᾱ is shifted so that its last value
    is 0 and scaled so that its first is unchanged. At t = T the model then sees pure noise, as the sampler
    does; an ε-prediction is useless there (x̂0 = (x_T − ε)/0), so this needs x0- or v-prediction."""
    root = torch.cumprod(1 - betas, 0).sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * first / (first - last)  # √ᾱ_1 unchanged, √ᾱ_T = 0
    alpha_bar = root**2
    alphas = torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])
    return 1 - alphas


def snr(alpha_bar: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio of x_t: ᾱ_t / (1 − ᾱ_t)."""
    return alpha_bar / (1 - alpha_bar)


# ----------------------------------------------------------------------------- the pieces of the exercises
def _per_sample(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) → (B, 1, 1, 1): one value per image, broadcast over its pixels."""
    return values.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Sample q(x_t | x_0) in closed form: √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε.

    x0, noise: (B, C, H, W); t: (B,) integer steps in [0, T); alpha_bar: (T,) cumulative products of 1 − β.
    """
    a = _per_sample(alpha_bar[t], x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def ddpm_loss(model, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor,
              labels: torch.Tensor | None = None) -> torch.Tensor:
    """DDPM's "simple" loss: the mean squared error between the noise ε and the network's prediction
    ε_θ(x_t, t), where x_t = q_sample(x0, t, noise). ``model(x_t, t, labels)`` takes the integer steps."""
    return F.mse_loss(model(q_sample(x0, t, noise, alpha_bar), t, labels), noise)


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    """The clean image implied by a noise prediction: x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t."""
    a = _per_sample(alpha_bar_t, x_t)
    return (x_t - (1 - a).sqrt() * eps) / a.sqrt()


# ----------------------------------------------------------------------------- targets: ε, x0, v and the score
# On DDPM's path x_t = √ᾱ x0 + √(1 − ᾱ) ε, any one of ε, x0 and v = √ᾱ ε − √(1 − ᾱ) x0 (Salimans & Ho 2022)
# gives the others from x_t; and ε is the score up to a factor: ∇ log p_t(x_t) = −ε / √(1 − ᾱ) (Tweedie).
def v_target(x0: torch.Tensor, noise: torch.Tensor, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    """v = √ᾱ_t ε − √(1 − ᾱ_t) x0: the velocity of x_t along the circle (√ᾱ, √(1 − ᾱ)). alpha_bar_t: (B,)."""
    a = _per_sample(alpha_bar_t, x0)
    return a.sqrt() * noise - (1 - a).sqrt() * x0


def x0_from(out: torch.Tensor, x_t: torch.Tensor, alpha_bar_t: torch.Tensor, prediction: str) -> torch.Tensor:
    """x̂0 from the network's output: ε → (x_t − √(1 − ᾱ) ε) / √ᾱ; x0 → itself; v → √ᾱ x_t − √(1 − ᾱ) v."""
    a = _per_sample(alpha_bar_t, x_t)
    if prediction == "eps":
        return (x_t - (1 - a).sqrt() * out) / a.sqrt()
    if prediction == "x0":
        return out
    return a.sqrt() * x_t - (1 - a).sqrt() * out


def eps_from(out: torch.Tensor, x_t: torch.Tensor, alpha_bar_t: torch.Tensor, prediction: str) -> torch.Tensor:
    """ε̂ from the network's output: ε → itself; x0 → (x_t − √ᾱ x0) / √(1 − ᾱ); v → √(1 − ᾱ) x_t + √ᾱ v."""
    a = _per_sample(alpha_bar_t, x_t)
    if prediction == "eps":
        return out
    if prediction == "x0":
        return (x_t - a.sqrt() * out) / (1 - a).sqrt()
    return (1 - a).sqrt() * x_t + a.sqrt() * out


def score_from_eps(eps: torch.Tensor, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    """The score ∇_x log p_t(x) = −ε / √(1 − ᾱ_t): what a noise predictor estimates, up to its factor."""
    return -eps / _per_sample(1 - alpha_bar_t, eps).sqrt()


def ddim_update(x0: torch.Tensor, eps: torch.Tensor, alpha_bar_t: torch.Tensor, alpha_bar_prev: torch.Tensor,
                eta: float = 0.0, noise: torch.Tensor | None = None) -> torch.Tensor:
    """DDIM's step from x̂0 and ε̂ (Song et al. 2021, eq. 12), with stochasticity η ∈ [0, 1]:

        σ = η √((1 − ᾱ_s) / (1 − ᾱ_t)) √(1 − ᾱ_t / ᾱ_s),   x_s = √ᾱ_s x̂0 + √(1 − ᾱ_s − σ²) ε̂ + σ z.

    η = 0 is deterministic (``ddim_step``); η = 1 is the ancestral step (``ddpm_step``), when ε̂ agrees with x̂0."""
    a_t, a_s = _per_sample(alpha_bar_t, x0), _per_sample(alpha_bar_prev, x0)
    sigma = eta * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)).clamp(min=0).sqrt()
    out = a_s.sqrt() * x0 + (1 - a_s - sigma**2).clamp(min=0).sqrt() * eps
    return out if eta == 0 or noise is None else out + sigma * noise


def ddim_step(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: torch.Tensor,
              alpha_bar_prev: torch.Tensor) -> torch.Tensor:
    """One deterministic DDIM step (η = 0) from step t to an earlier step s:

        x̂_0 = clip(predict_x0(x_t, ε, ᾱ_t), −1, 1),   x_s = √ᾱ_s · x̂_0 + √(1 − ᾱ_s) · ε.

    The clip (diffusers' ``clip_sample``, on by default there): near t = T, ᾱ_t ≈ 0 and dividing by √ᾱ_t
    multiplies any error of ε by thousands; without it, the course's models draw saturated noise.
    alpha_bar_t, alpha_bar_prev: (B,) values of ᾱ at t and at s (ᾱ = 1 for s = "before step 0")."""
    x0 = predict_x0(x_t, eps, alpha_bar_t).clamp(-1, 1)
    a_prev = _per_sample(alpha_bar_prev, x_t)
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps


def ddpm_step(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: torch.Tensor, alpha_bar_prev: torch.Tensor,
              noise: torch.Tensor) -> torch.Tensor:
    """One ancestral step from t to s < t: a draw from the Gaussian posterior q(x_s | x_t, x̂_0),

        mean = (√ᾱ_s β / (1 − ᾱ_t)) x̂_0 + (√α (1 − ᾱ_s) / (1 − ᾱ_t)) x_t,  variance = β (1 − ᾱ_s) / (1 − ᾱ_t),

    with α = ᾱ_t / ᾱ_s and β = 1 − α (the step's own α_t, β_t when s = t − 1), x̂_0 from ``predict_x0``
    clipped to [−1, 1]. ``noise``: standard normal, the shape of x_t (ignored where ᾱ_s = 1: the last step
    adds no noise)."""
    a_t, a_s = _per_sample(alpha_bar_t, x_t), _per_sample(alpha_bar_prev, x_t)
    alpha = a_t / a_s
    beta = 1 - alpha
    x0 = predict_x0(x_t, eps, alpha_bar_t).clamp(-1, 1)
    mean = (a_s.sqrt() * beta / (1 - a_t)) * x0 + (alpha.sqrt() * (1 - a_s) / (1 - a_t)) * x_t
    var = beta * (1 - a_s) / (1 - a_t)
    return mean + var.sqrt() * noise


def flow_interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The straight line from data to noise: x_t = (1 − t) · x_0 + t · ε, t: (B,) in [0, 1]."""
    t = _per_sample(t, x0)
    return (1 - t) * x0 + t * noise


def flow_matching_loss(model, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                       labels: torch.Tensor | None = None) -> torch.Tensor:
    """Conditional flow matching: the mean squared error between the velocity of the straight line,
    d x_t / d t = ε − x_0, and the network's v_θ(x_t, t). t: (B,) in [0, 1]."""
    return F.mse_loss(model(flow_interpolate(x0, noise, t), t, labels), noise - x0)


def flow_times(n: int, sampling: str = "uniform", generator: torch.Generator | None = None) -> torch.Tensor:
    """n training times in (0, 1) for flow matching: uniform, or logit-normal (t = sigmoid(u), u ~ N(0, 1);
    Esser et al. 2024, SD3), which spends more of the training on the middle of the path, where the
    velocity is hardest to predict, and less near the ends."""
    if sampling == "uniform":
        return torch.rand(n, generator=generator)
    if sampling == "logit-normal":
        return torch.sigmoid(torch.randn(n, generator=generator))
    raise ValueError(f"Unknown time sampling {sampling!r}. Valid: {', '.join(TIME_SAMPLINGS)}.")


def guided(cond: torch.Tensor, uncond: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free guidance: uncond + w · (cond − uncond). w = 0 ignores the label, w = 1 is the plain
    conditional model, w > 1 pushes further in the direction the label adds (the convention of
    ``guidance_scale`` in diffusers; Ho & Salimans write it as (1 + w') cond − w' uncond, w' = w − 1)."""
    return uncond + w * (cond - uncond)


# ----------------------------------------------------------------------------- the model: network + schedule
@dataclass
class DiffusionConfig:
    image_shape: tuple = (1, 28, 28)
    objective: str = "eps"  # 'eps': DDPM's path and sampler family; 'flow': flow matching (velocity)
    prediction: str = "eps"  # DDPM's path only: the network predicts 'eps' (the noise), 'x0' or 'v'
    zero_terminal_snr: bool = False  # DDPM's path only: ᾱ_T = 0 exactly (needs prediction 'x0' or 'v')
    time_sampling: str = "uniform"  # flow only: training times 'uniform' or 'logit-normal'
    spacing: str = "linspace"  # DDPM's path: a K-step sampler's times, 'linspace' (T−1 … 0) or 'trailing'
    n_classes: int = 0  # > 0: class-conditional, with label dropout for classifier-free guidance
    width: int = 32  # channels of the U-Net's first level (the others have 2×)
    schedule: str = "cosine"  # DDPM only: 'linear' or 'cosine'
    T: int = 1000  # DDPM only: steps of the forward process
    steps: int = 50  # default number of sampler steps
    sampler: str = ""  # default sampler; "" is the first of SAMPLERS[objective] (DDIM, Euler)
    guidance: float = 1.0  # default w: the plain conditional model, one network pass per step (any other w costs
    # two). Not the best FID measured: w = 1.25 scored 16.0 against w = 1's 18.0 in one run of an older conditional
    # flow (benchmarks/RESULTS.md, "Lesson 06 notebook, cpu profile"), inside the floor's spread at that n
    label_dropout: float = 0.1  # fraction of training labels replaced by "no label"
    lr: float = 2e-3
    ema_decay: float = 0.999
    batch_size: int = 64  # when train_diffusion is not given one (genimg train passes the profile's)

    def __post_init__(self):
        self.image_shape = tuple(self.image_shape)
        if self.objective not in OBJECTIVES:
            raise ValueError(f"Unknown objective {self.objective!r}. Valid objectives: {', '.join(OBJECTIVES)}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Unknown noise schedule {self.schedule!r}. Valid schedules: {', '.join(SCHEDULES)}.")
        for name, valid in (("prediction", PREDICTIONS), ("time_sampling", TIME_SAMPLINGS), ("spacing", SPACINGS)):
            if getattr(self, name) not in valid:
                raise ValueError(f"Unknown {name} {getattr(self, name)!r}. Valid: {', '.join(valid)}.")
        if self.objective == "flow" and (self.prediction != "eps" or self.zero_terminal_snr):
            raise ValueError("prediction and zero_terminal_snr are for DDPM's path (objective 'eps'); a flow "
                             "model always predicts the velocity")
        if self.zero_terminal_snr and self.prediction == "eps":
            raise ValueError("zero_terminal_snr needs prediction 'v' or 'x0': at ᾱ_T = 0 the noise is all there "
                             "is to see, and x̂0 = (x_T − ε)/0 cannot be recovered from a noise prediction")
        if len(self.image_shape) != 3 or self.image_shape[1] % 4 or self.image_shape[2] % 4:
            raise ValueError(f"image_shape must be (C, H, W) with H and W divisible by 4, got {self.image_shape}")
        if self.n_classes == 1 or self.n_classes < 0:
            raise ValueError(f"n_classes must be 0 (unconditional) or at least 2, got {self.n_classes}")
        if not 0 <= self.label_dropout < 1:
            raise ValueError(f"label_dropout must be in [0, 1), got {self.label_dropout}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.sampler and self.sampler not in SAMPLERS[self.objective]:
            raise ValueError(f"sampler {self.sampler!r} does not fit objective {self.objective!r}. Valid: "
                             f"{', '.join(SAMPLERS[self.objective])}.")


class DiffusionModel(nn.Module):
    """A U-Net, its moving average (used for samples) and, for DDPM, the noise schedule as buffers."""

    def __init__(self, config: DiffusionConfig | None = None):
        super().__init__()
        self.config = cfg = config or DiffusionConfig()
        self.net = UNet(cfg.image_shape[0], cfg.width, cfg.n_classes)
        self.ema = copy.deepcopy(self.net).requires_grad_(False)
        betas = make_betas(cfg.schedule, cfg.T)
        if cfg.zero_terminal_snr:
            betas = zero_terminal_snr(betas)
        # buffers: saved in checkpoints and moved by .to(device) along with the weights
        self.register_buffer("betas", betas.float())
        self.register_buffer("alpha_bar", torch.cumprod(1 - betas, 0).float())

    @property
    def family(self) -> str:  # the path decides the family; the prediction target is a setting of it
        name = "ddpm" if self.config.objective == "eps" else "flow"
        return ("c" + name) if self.config.n_classes else name

    @property
    def device(self) -> torch.device:
        return self.alpha_bar.device

    def network_time(self, t: torch.Tensor) -> torch.Tensor:
        """The network's time in [0, 1]: DDPM's integer step t of T → (t + 1) / T; flow times as they are."""
        return (t.float() + 1) / self.config.T if self.config.objective == "eps" else t

    def predict(self, x: torch.Tensor, t: torch.Tensor, labels=None, net: nn.Module | None = None):
        """ε_θ (DDPM) or v_θ (flow) at x, t; t: DDPM integer steps or flow times, (B,)."""
        return (net or self.net)(x, self.network_time(t), labels)

    def loss(self, x0: torch.Tensor, labels=None, generator: torch.Generator | None = None,
             loss_fn=None) -> torch.Tensor:
        """The training loss on a batch at random times (DDPM: t uniform in {0 … T−1}; flow: t ~ U(0, 1) or
        logit-normal). The target is the config's prediction: ε (``ddpm_loss``), x0, v, or the velocity
        (``flow_matching_loss``). ``loss_fn`` replaces ``ddpm_loss`` / ``flow_matching_loss`` (lesson 06
        passes the student's)."""
        b = len(x0)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        if labels is not None and self.config.label_dropout > 0:  # "no label" for a random fraction
            drop = torch.rand(b, generator=generator).to(x0.device) < self.config.label_dropout
            labels = torch.where(drop, torch.full_like(labels, self.config.n_classes), labels)
        if loss_fn is not None and self.config.prediction != "eps":
            raise ValueError(f"loss_fn is a loss on the noise ε, but this model predicts {self.config.prediction!r}: "
                             "train it with prediction='eps', or without loss_fn")
        if self.config.objective == "eps":
            t = torch.randint(0, self.config.T, (b,), generator=generator).to(x0.device)
            if self.config.prediction == "eps":
                return (loss_fn or ddpm_loss)(self.predict, x0, t, noise, self.alpha_bar, labels)
            x_t = q_sample(x0, t, noise, self.alpha_bar)
            target = x0 if self.config.prediction == "x0" else v_target(x0, noise, self.alpha_bar[t])
            return F.mse_loss(self.predict(x_t, t, labels), target)
        t = flow_times(b, self.config.time_sampling, generator).to(x0.device)
        return (loss_fn or flow_matching_loss)(self.predict, x0, t, noise, labels)

    # ---------------------------------------------------------------- sampling
    def _labels(self, n: int, labels, device):
        k = self.config.n_classes
        if not k:
            if labels is not None:
                raise ValueError(f"labels are for a conditional model ('c{self.family}'); this "
                                 f"{self.family!r} model is unconditional")
            return None
        return class_labels(n, labels, k, device)

    def _check_sampling(self, steps, sampler, guidance, eta=0.0):
        cfg = self.config
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 <= eta <= 1:
            raise ValueError(f"eta (DDIM's stochasticity) must be a number in [0, 1], got {eta!r}")
        sampler_given = sampler
        sampler = sampler or cfg.sampler or SAMPLERS[cfg.objective][0]
        if eta and sampler != "ddim":
            raise ValueError(f"eta is DDIM's setting; sampler {sampler!r}"
                             f"{'' if sampler_given else ' (the model default)'} has none: pass sampler='ddim'")
        if sampler not in SAMPLERS[cfg.objective]:
            kind = "DDPM-path" if cfg.objective == "eps" else "flow-matching"
            raise ValueError(f"sampler {sampler!r} does not fit a {kind} model. Valid samplers for "
                             f"{self.family!r}: {', '.join(SAMPLERS[cfg.objective])}.")
        steps = cfg.steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if cfg.objective == "eps" and steps > cfg.T:
            raise ValueError(f"steps={steps} is more than the model's T={cfg.T} diffusion steps")
        if guidance is not None and not cfg.n_classes:
            raise ValueError(f"guidance is for a conditional model (cddpm, cflow); this {self.family!r} model "
                             "has no labels to guide with")
        guidance = (cfg.guidance if cfg.n_classes else None) if guidance is None else float(guidance)
        if guidance is not None and not math.isfinite(guidance):
            raise ValueError(f"guidance must be a finite number, got {guidance}")
        return steps, sampler, guidance

    def _model_output(self, net, x, t, labels, guidance, guide_fn):
        """ε or v at (x, t); with labels and guidance w, the classifier-free combination of both passes."""
        b = len(x)
        t = t.expand(b) if t.dim() == 1 and len(t) == 1 else t
        if labels is None or guidance == 1:
            return self.predict(x, t, labels, net)
        if guidance == 0:
            return self.predict(x, t, None, net)
        both = self.predict(torch.cat([x, x]), torch.cat([t, t]),
                            torch.cat([labels, torch.full_like(labels, self.config.n_classes)]), net)
        cond, uncond = both[:b], both[b:]
        return (guide_fn or guided)(cond, uncond, guidance)

    def timesteps(self, steps: int, spacing: str | None = None) -> list[int]:
        """DDPM's path: the ``steps`` integer times a K-step sampler visits, from high noise down (respacing,
        Nichol & Dhariwal 2021); after the last it jumps to ᾱ = 1, the clean image.

        'linspace': evenly from T − 1 down to 0. Its last network evaluation is at t = 0, where the noise is
        below one 8-bit level, so only K − 1 of its K jumps remove noise that matters. 'trailing' (Lin et al.
        2024): T − 1, T − 1 − T/K, …, T/K − 1 (for K = 20 of T = 1000: 999, 949, …, 49): K useful jumps, as
        Euler's K equal steps of t. Flow: not used (its samplers take ``steps`` equal steps of t from 1 to 0)."""
        spacing = spacing or self.config.spacing
        T = self.config.T
        if spacing not in SPACINGS:
            raise ValueError(f"Unknown spacing {spacing!r}. Valid: {', '.join(SPACINGS)}.")
        # Exact integer arithmetic, not a float arange: T − kT/K is often a half-integer, which float noise rounds
        # either way (diffusers' numpy grid and a torch one disagree at K = 48), and arange(T, 0, −T/K) can
        # overshoot to a (K + 1)st element (K = 61: K + 1 network evaluations). tests/test_oracles.py checks it.
        if spacing == "trailing":
            times = [_round_half_even(T * (steps - k), steps) - 1 for k in range(steps)]
        else:
            times = [_round_half_even((T - 1) * (steps - 1 - k), steps - 1) for k in range(steps)] if steps > 1 else [T - 1]
        return torch.tensor(times).clamp(0, T - 1).unique_consecutive().tolist()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels=None, steps: int | None = None,
               sampler: str | None = None, guidance: float | None = None, trajectory: int = 0,
               guide_fn=None, step_fn=None, eta: float = 0.0, spacing: str | None = None,
               clipped_model_output: bool = False):
        """n images (n, C, H, W) in [−1, 1], from the moving-average network.

        steps: sampler steps (default ``config.steps``); sampler: 'ddim' (default), 'ddpm' (ancestral) or
        'heun' (second order: two network evaluations per step but the last) on DDPM's path, 'euler'
        (default) or 'heun' for a flow model; labels (conditional models): a class or n classes (default:
        every class in turn); guidance: the scale w of classifier-free guidance (default ``config.guidance``).
        eta: DDIM's stochasticity in [0, 1] (0: deterministic, 1: ancestral); spacing: 'linspace' or
        'trailing' (``timesteps``; default ``config.spacing``); clipped_model_output: carry forward the ε
        re-derived from the clipped x̂0 instead of the network's own (GLIDE; diffusers'
        ``use_clipped_model_output``). trajectory > 0: also return ``trajectory`` snapshots of x along the
        way, first = pure noise. guide_fn / step_fn replace ``guided`` and the step function (lesson 06 passes
        the student's). The noise comes from ``generator`` on the CPU, so a seed gives the same images on
        every device.
        """
        steps, sampler, guidance = self._check_sampling(steps, sampler, guidance, eta)
        net = self.ema.eval()
        device = self.device
        labels = self._labels(n, labels, device)

        def output(x, t):  # the network's output (ε, x0, v or the velocity) at (x, t), guided
            return self._model_output(net, x, t, labels, guidance, guide_fn)

        x = torch.randn(n, *self.config.image_shape, generator=generator).to(device)
        snapshots = [x.cpu()]
        if self.config.objective == "flow":
            ts = torch.linspace(1, 0, steps + 1)
            for i in range(steps):
                t, t_next = ts[i], ts[i + 1]
                v = output(x, t.expand(n).to(device))
                x_next = (step_fn or euler_step)(x, v, t, t_next)
                if sampler == "heun" and t_next > 0:  # Heun: average the slopes at both ends (Karras et al. 2022)
                    x_next = x + (t_next - t) * (v + output(x_next, t_next.expand(n).to(device))) / 2
                x = x_next
                snapshots.append(x.cpu())
        else:
            times = self.timesteps(steps, spacing)
            ab = self.alpha_bar
            lesson_step = self.config.prediction == "eps" and not clipped_model_output and eta == 0
            for i, t in enumerate(times):
                tt = torch.full((n,), t, device=device, dtype=torch.long)
                out = output(x, tt)
                a_t = ab[tt]
                last = i + 1 == len(times)
                a_prev = torch.ones(n, device=device) if last else ab[times[i + 1]].expand(n)
                noise = None if sampler == "ddim" and not eta else torch.randn(x.shape, generator=generator).to(device)
                if sampler == "ddim" and lesson_step:  # the lesson's own step (the student's, when passed)
                    x = (step_fn or ddim_step)(x, out, a_t, a_prev)
                elif sampler == "ddpm" and lesson_step:
                    x = (step_fn or ddpm_step)(x, out, a_t, a_prev, noise)
                else:
                    x0, eps = self._x0_eps(out, x, a_t, clipped_model_output or sampler == "ddpm")
                    if sampler == "heun" and not last and float(a_t[0]) > 0:
                        # DDIM is Euler's method on the probability-flow ODE in y = x/√ᾱ, σ = √((1 − ᾱ)/ᾱ):
                        # y_s = y_t + (σ_s − σ_t) ε. Heun takes that step, evaluates ε at its end, and redoes
                        # the step with the mean of the two (a step to ᾱ = 1, or from ᾱ = 0, stays Euler).
                        ahead = ddim_update(x0, eps, a_t, a_prev)
                        _, eps_ahead = self._x0_eps(output(ahead, tt.new_full((n,), times[i + 1])), ahead, a_prev,
                                                    clipped_model_output)
                        eps = (eps + eps_ahead) / 2
                        x0 = predict_x0(x, eps, a_t).clamp(-1, 1)
                    x = ddim_update(x0, eps, a_t, a_prev, eta=1.0 if sampler == "ddpm" else eta, noise=noise)
                snapshots.append(x.cpu())
        x = x.clamp(-1, 1)
        if trajectory:
            keep = torch.linspace(0, len(snapshots) - 1, trajectory).round().long().tolist()
            return x, [snapshots[i].clamp(-1, 1) for i in keep]
        return x

    def _x0_eps(self, out, x_t, alpha_bar_t, consistent: bool):
        """x̂0 (clipped to [−1, 1]) and ε̂ from the network's output; ``consistent``: ε̂ re-derived from the
        clipped x̂0, so that the two describe the same point of the path."""
        prediction = self.config.prediction
        x0 = x0_from(out, x_t, alpha_bar_t, prediction).clamp(-1, 1)
        if consistent:
            a = _per_sample(alpha_bar_t, x_t)
            return x0, (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        return x0, eps_from(out, x_t, alpha_bar_t, prediction)

    def evaluations(self, steps: int, sampler: str) -> int:
        """Network evaluations per sample (guidance with 0 < w ≠ 1 doubles each): Heun's are 2K − 1."""
        return 2 * steps - 1 if sampler == "heun" else steps


def _round_half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, halves to the even one (as torch.round and numpy
    do), in exact integer arithmetic."""
    q, r = divmod(numerator, denominator)
    return q + (2 * r > denominator or (2 * r == denominator and q % 2 == 1))


def euler_step(x: torch.Tensor, v: torch.Tensor, t, t_next) -> torch.Tensor:
    """One Euler step of the ODE dx/dt = v from t to t_next (< t: towards the data)."""
    return x + (t_next - t) * v


# ----------------------------------------------------------------------------- training
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema ← decay · ema + (1 − decay) · model, parameter by parameter (buffers copied)."""
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)


def train_diffusion(model: DiffusionModel, images: torch.Tensor, epochs: int, labels: torch.Tensor | None = None,
                    batch_size: int | None = None, device="cpu", seed: int = 0, amp: bool = False,
                    max_seconds: float | None = None, progress_bar: bool = True, loss_fn=None,
                    snapshot=None) -> dict:
    """Train with AdamW, a short warm-up of the learning rate and a moving average of the weights.

    images: (N, C, H, W) in [−1, 1]; labels: (N,) class indices (conditional models only).
    ``snapshot(step, seconds)``, if given, is called after every step (``genimg train --snapshots`` saves the
    model at chosen times with it: quality against training time without retraining).
    Returns {"loss": [per step], "seconds": [elapsed at each step]}.
    """
    cfg = model.config
    conditional = cfg.n_classes > 0
    if conditional and labels is None:
        raise ValueError(f"a conditional model ({model.family!r}) needs the labels of its training images")
    if tuple(images.shape[1:]) != cfg.image_shape:
        raise ValueError(f"images of shape {tuple(images.shape[1:])} do not fit this model's image_shape "
                         f"{cfg.image_shape}")
    device = torch.device(device)
    # channels-last (NHWC) convolutions: the same computation, 23% more images per second on 2 CPU cores
    # (benchmarks/bench_diffusion_throughput.py; RESULTS.md, "Lesson 06, second pass")
    model.to(device, memory_format=torch.channels_last).train()
    batch_size = batch_size or cfg.batch_size
    amp = use_amp(device, amp)
    scaler = grad_scaler(amp)
    opt = torch.optim.AdamW(model.net.parameters(), lr=cfg.lr, weight_decay=0.0)
    warmup = 200  # steps of linear learning-rate warm-up (Adam's early steps are noisy)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
    data = (images,) if not conditional else (images, labels.long())
    loader = make_loader(torch.utils.data.TensorDataset(*data), batch_size, seed=seed,
                         drop_last=len(images) > batch_size)
    g = torch.Generator().manual_seed(seed)
    history = {"loss": [], "seconds": []}
    deadline, step = Deadline(max_seconds), 0
    for _ in progress(range(epochs), model.family, progress_bar):
        for batch in loader:
            x0 = batch[0].to(device).contiguous(memory_format=torch.channels_last)  # (B, C, H, W), stored NHWC
            y = batch[1].to(device) if conditional else None
            with autocast(device, amp):
                loss = model.loss(x0, y, g, loss_fn)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.net.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
            sched.step()
            # warm-up of the average too: average over fewer steps at first
            ema_update(model.ema, model.net, min(cfg.ema_decay, (1 + step) / (10 + step)))
            history["loss"].append(loss.item())
            history["seconds"].append(deadline.elapsed)
            step += 1
            if snapshot is not None:
                snapshot(step, deadline.elapsed)
            if deadline.passed():
                break
        if deadline.passed():
            break
    model.eval()
    return history


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
