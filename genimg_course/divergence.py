"""Forward KL, reverse KL and Jensen–Shannon, fitted to a 1-D mixture. See 03_vae.ipynb (last section).

A bimodal mixture p and a single Gaussian q = N(μ, σ²) that cannot fit it. Which q is "best" depends on
the divergence minimised:

* forward KL(p‖q) = ∫ p log(p/q): maximum likelihood, what a VAE trains (through the ELBO). Mass-covering:
  its optimum is moment matching, μ = E_p[x], σ² = Var_p[x], which puts mass between the modes.
* reverse KL(q‖p) = ∫ q log(q/p): mode-seeking; q sits on one mode and ignores the other.
* JS(p, q) = ½ KL(p‖m) + ½ KL(q‖m), m = (p + q)/2: the original GAN's divergence (for the optimal
  discriminator); between the two, and on well-separated modes it, too, drops one.

Every integral is a sum over a fine, fixed grid of x (the trapezoid rule): in 1-D this is accurate to many
digits, deterministic (no Monte Carlo noise in the fit) and differentiable in (μ, σ). It is only possible in
very few dimensions, which is why VAEs and GANs work with samples instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

LOG_2PI = math.log(2 * math.pi)


def grid(lo: float = -10.0, hi: float = 10.0, n: int = 1001) -> torch.Tensor:
    """The integration grid: n points from lo to hi, float64 (spacing 0.02 by default)."""
    return torch.linspace(lo, hi, n, dtype=torch.float64)


def integrate(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """∫ f(x) dx by the trapezoid rule, f sampled on the grid x (last dimension)."""
    return torch.trapezoid(values, x)


def gaussian_log_density(x: torch.Tensor, mu, sigma) -> torch.Tensor:
    """log N(x; μ, σ²) = −½((x − μ)/σ)² − log σ − ½ log 2π, elementwise."""
    mu, sigma = torch.as_tensor(mu, dtype=x.dtype), torch.as_tensor(sigma, dtype=x.dtype)
    return -0.5 * ((x - mu) / sigma) ** 2 - sigma.log() - 0.5 * LOG_2PI


@dataclass
class Mixture:
    """p(x) = Σ_k w_k N(x; m_k, s_k²): a 1-D Gaussian mixture."""

    weights: tuple[float, ...] = (0.5, 0.5)  # w_k, summing to 1
    means: tuple[float, ...] = (-2.0, 2.0)  # m_k
    stds: tuple[float, ...] = (0.5, 0.5)  # s_k

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = logsumexp_k (log w_k + log N(x; m_k, s_k²)): stable far in the tails."""
        terms = torch.stack([math.log(w) + gaussian_log_density(x, m, s)
                             for w, m, s in zip(self.weights, self.means, self.stds)])  # (K, len(x))
        return torch.logsumexp(terms, dim=0)

    def mean(self) -> float:
        """E_p[x] = Σ_k w_k m_k."""
        return sum(w * m for w, m in zip(self.weights, self.means))

    def var(self) -> float:
        """Var_p[x] = Σ_k w_k (s_k² + m_k²) − E_p[x]²."""
        return sum(w * (s**2 + m**2) for w, m, s in zip(self.weights, self.means, self.stds)) - self.mean() ** 2


# ----------------------------------------------------------------------------- the three divergences
# Each takes log p and log q on the grid x (last dimension) and returns the divergence in nats.
def forward_kl(log_p: torch.Tensor, log_q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) = ∫ p(x) (log p(x) − log q(x)) dx: large wherever p has mass and q has none."""
    return integrate(log_p.exp() * (log_p - log_q), x)


def reverse_kl(log_p: torch.Tensor, log_q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """KL(q‖p) = ∫ q(x) (log q(x) − log p(x)) dx: large wherever q has mass and p has none."""
    return integrate(log_q.exp() * (log_q - log_p), x)


def js(log_p: torch.Tensor, log_q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """JS(p, q) = ½ KL(p‖m) + ½ KL(q‖m), m = (p + q)/2. Symmetric, between 0 and log 2."""
    log_m = torch.logaddexp(log_p, log_q) - math.log(2)
    return 0.5 * forward_kl(log_p, log_m, x) + 0.5 * forward_kl(log_q, log_m, x)


DIVERGENCES = {"forward KL(p‖q)": forward_kl, "reverse KL(q‖p)": reverse_kl, "JS(p, q)": js}


@torch.no_grad()
def divergence_grid(divergence, p: Mixture, mus: torch.Tensor, sigmas: torch.Tensor,
                    x: torch.Tensor | None = None) -> torch.Tensor:
    """divergence(p, N(μ, σ²)) for every μ in ``mus`` and σ in ``sigmas``: (len(mus), len(sigmas)).

    The landscape a fit walks on: one valley (forward KL) or one valley per mode (reverse KL, JS).
    """
    x = grid() if x is None else x
    log_p = p.log_density(x)  # (len(x),)
    rows = []
    for mu in mus.tolist():  # one row at a time keeps memory at len(sigmas) × len(x)
        log_q = gaussian_log_density(x[None, :], mu, sigmas.to(x.dtype)[:, None])  # (S, len(x))
        rows.append(divergence(log_p, log_q, x))  # every σ at once: the integrals run along x
    return torch.stack(rows)


def fit_gaussian(divergence, p: Mixture, mus: torch.Tensor | None = None, sigmas: torch.Tensor | None = None,
                 steps: int = 300, lr: float = 0.01, x: torch.Tensor | None = None) -> tuple[float, float, float]:
    """The Gaussian N(μ, σ²) that minimises divergence(p, q): returns (μ, σ, the divergence there).

    1. the best (μ, σ) on a grid: reverse KL and JS have one local minimum per mode, so a purely
       local method would land on whichever the start is nearest; the grid finds the global one;
    2. polished by gradient descent (Adam on μ and log σ), so the answer is not limited to the grid.
    """
    x = grid() if x is None else x
    mus = torch.linspace(-6, 6, 121, dtype=torch.float64) if mus is None else mus
    sigmas = torch.logspace(-1, 0.7, 60, dtype=torch.float64) if sigmas is None else sigmas  # 0.1 to 5
    landscape = divergence_grid(divergence, p, mus, sigmas, x)  # (len(mus), len(sigmas))
    i, j = divmod(landscape.argmin().item(), len(sigmas))
    log_p = p.log_density(x)  # fixed: only q moves
    mu = mus[i].clone().requires_grad_()
    log_sigma = sigmas[j].log().clone().requires_grad_()
    opt = torch.optim.Adam([mu, log_sigma], lr=lr)
    for _ in range(steps):
        loss = divergence(log_p, gaussian_log_density(x, mu, log_sigma.exp()), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        final = divergence(log_p, gaussian_log_density(x, mu, log_sigma.exp()), x)
    return mu.item(), log_sigma.exp().item(), final.item()
