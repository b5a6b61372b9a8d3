import math

import torch

from genimg_course import divergence as dv

P = dv.Mixture(weights=(0.6, 0.4), means=(-2.5, 2.5), stds=(0.5, 0.5))


def test_mixture_density_integrates_to_one_and_has_its_moments():
    x = dv.grid()
    p = P.log_density(x).exp()
    assert abs(dv.integrate(p, x).item() - 1) < 1e-6
    assert abs(dv.integrate(x * p, x).item() - P.mean()) < 1e-6
    assert abs(dv.integrate((x - P.mean()) ** 2 * p, x).item() - P.var()) < 1e-5
    # E_p[x] = 0.6·(−2.5) + 0.4·2.5 = −0.5; Var = 0.25 + 6.25 − 0.25 = 6.25 (by hand)
    assert abs(P.mean() + 0.5) < 1e-12 and abs(P.var() - 6.25) < 1e-12


def test_kl_matches_the_closed_form_between_two_gaussians():
    x = dv.grid()
    p = dv.Mixture(weights=(1.0,), means=(0.3,), stds=(0.8,))
    q = torch.distributions.Normal(-0.5, 1.7)
    log_q = q.log_prob(x)
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(0.3, 0.8), q).item()
    assert abs(dv.forward_kl(p.log_density(x), log_q, x).item() - expected) < 1e-6
    assert abs(dv.reverse_kl(log_q, p.log_density(x), x).item() - expected) < 1e-6


def test_js_is_symmetric_zero_for_equal_and_at_most_log_2():
    x = dv.grid()
    log_p = P.log_density(x)
    assert abs(dv.js(log_p, log_p, x).item()) < 1e-9
    for mu, sigma in [(0.0, 1.0), (-2.5, 0.5), (4.0, 0.3), (0.0, 3.0)]:
        log_q = dv.gaussian_log_density(x, mu, sigma)
        value = dv.js(log_p, log_q, x).item()
        assert 0 < value <= math.log(2) + 1e-9
        assert abs(value - dv.js(log_q, log_p, x).item()) < 1e-12
    # nearly disjoint supports: JS → log 2
    far = dv.js(dv.gaussian_log_density(x, -6, 0.3), dv.gaussian_log_density(x, 6, 0.3), x).item()
    assert abs(far - math.log(2)) < 1e-6


def test_forward_kl_fit_is_moment_matching():
    mu, sigma, _ = dv.fit_gaussian(dv.forward_kl, P)
    assert abs(mu - P.mean()) < 1e-3
    assert abs(sigma - math.sqrt(P.var())) < 1e-3


def test_reverse_kl_and_js_land_on_one_mode():
    for divergence in (dv.reverse_kl, dv.js):
        mu, sigma, value = dv.fit_gaussian(divergence, P)
        assert abs(mu - (-2.5)) < 0.05 and abs(sigma - 0.5) < 0.05, (divergence.__name__, mu, sigma)
    # on the heavier mode q = that component exactly, and KL(q‖p) = −log 0.6 (p = 0.6 q there)
    _, _, value = dv.fit_gaussian(dv.reverse_kl, P)
    assert abs(value + math.log(0.6)) < 1e-3


def test_landscape_has_one_valley_for_forward_kl_and_one_per_mode_for_reverse_kl_and_js():
    mus = torch.linspace(-5, 5, 101, dtype=torch.float64)
    sigmas = torch.logspace(-1, 0.7, 40, dtype=torch.float64)

    def local_minima(f):  # the μ where min over σ of the divergence has a local minimum
        v = dv.divergence_grid(f, P, mus, sigmas).min(dim=1).values
        return mus[1:-1][(v[1:-1] < v[:-2]) & (v[1:-1] < v[2:])].tolist()

    minima = local_minima(dv.forward_kl)
    assert len(minima) == 1 and abs(minima[0] + 0.5) < 1e-9, minima
    for f in (dv.reverse_kl, dv.js):
        minima = local_minima(f)
        assert any(abs(m + 2.5) < 1e-9 for m in minima) and any(abs(m - 2.5) < 1e-9 for m in minima), minima
