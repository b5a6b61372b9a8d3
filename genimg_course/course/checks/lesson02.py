"""Lesson 02's exercise checks (02_mlp_generator.ipynb): from an MLP to a generator.

Each check is its exercise's specification: tests on small inputs, compared with an oracle, with
feedback that names the input, the expected and the actual result. The notebook calls them after
each exercise (``check.mlp_forward(mlp_forward)``); ``genimg_course.course.exercises`` says how a check
reports and what it returns.
"""

from __future__ import annotations

import torch

from genimg_course import mlp
from genimg_course.course.handin import before_hand_in  # noqa: F401 (the lesson's last cell)
from genimg_course.course.exercises import Tester, exercise


def _mlp_weights(d_in: int, hidden: int, d_out: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(hidden, d_in, generator=g) / d_in**0.5, torch.randn(hidden, generator=g) * 0.1,
            torch.randn(d_out, hidden, generator=g) / hidden**0.5, torch.randn(d_out, generator=g) * 0.1)


@exercise(lesson="02_mlp_generator", points=2, reference=mlp.mlp_forward)
def mlp_forward(t: Tester, fn):
    """mlp_forward(x, W1, b1, W2, b2): h = ReLU(x W1ᵀ + b1), y = h W2ᵀ + b2."""
    W1, b1, W2, b2 = _mlp_weights(6, 5, 4, seed=11)
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(12))
    oracle = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 4))
    with torch.no_grad():
        oracle[0].weight.copy_(W1), oracle[0].bias.copy_(b1), oracle[2].weight.copy_(W2), oracle[2].bias.copy_(b2)
        expected = oracle(x)
    t.close(fn, (x, W1, b1, W2, b2), expected, input="x (3, 6), W1 (5, 6), b1 (5,), W2 (4, 5), b2 (4,) "
            "(compared with torch.nn.Linear → ReLU → Linear)", hint="x @ W1.T has shape (3, 5); nn.Linear stores "
            "its weight as (out_features, in_features)")
    t.close(fn, (x[:1], W1, b1, W2, b2), expected[:1], input="a batch of one: x (1, 6)")
    W1n = -W1.abs()  # every pre-activation negative for x >= 0 and b1 <= 0: ReLU must zero them all
    xp, b1n = x.abs(), -b1.abs()
    t.close(fn, (xp, W1n, b1n, W2, b2), b2.expand(3, 4).clone(), input="weights that make every hidden "
            "pre-activation negative: the output must be just b2", hint="apply torch.relu to the hidden layer")


@exercise(lesson="02_mlp_generator", points=1, reference=mlp.reconstruction_loss)
def reconstruction_loss(t: Tester, fn):
    """reconstruction_loss(x_hat, x): squared error summed over pixels, averaged over the batch."""
    g = torch.Generator().manual_seed(13)
    x, x_hat = torch.rand(4, 1, 3, 3, generator=g), torch.rand(4, 1, 3, 3, generator=g)
    expected = torch.nn.functional.mse_loss(x_hat, x, reduction="sum") / 4
    t.close(fn, (x_hat, x), expected, input="x_hat and x of shape (4, 1, 3, 3)",
            hint="sum over the pixels of each image, then the mean over the 4 images: a 0-dim tensor")
    t.close(fn, (x, x), torch.tensor(0.0), input="x_hat equal to x: the loss must be 0")
    y = torch.zeros(2, 3, 2, 2)
    t.close(fn, (y + 0.5, y), torch.tensor(12 * 0.25), input="colour images (2, 3, 2, 2) all off by 0.5: "
            "12 pixel values × 0.25 = 3.0 per image")
    t.gradient(fn, (x_hat, x), 0, mlp.reconstruction_loss, input="x_hat that requires grad", what="x_hat")


def _mmd2_by_loops(x, y, sigmas):
    """The MMD² definition written with explicit sums (an oracle independent of any vectorised code)."""
    x, y = x.flatten(1).double(), y.flatten(1).double()

    def k(a, b):
        d2 = ((a - b) ** 2).sum()
        return sum(torch.exp(-d2 / (2 * s**2)) for s in sigmas)

    kxx = sum(k(a, b) for a in x for b in x) / len(x) ** 2
    kyy = sum(k(a, b) for a in y for b in y) / len(y) ** 2
    kxy = sum(k(a, b) for a in x for b in y) / (len(x) * len(y))
    return (kxx + kyy - 2 * kxy).float()


@exercise(lesson="02_mlp_generator", points=2, reference=mlp.mmd2)
def mmd2(t: Tester, fn):
    """mmd2(x, y, sigmas): mean k(x,x') + mean k(y,y') − 2 mean k(x,y) with k a sum of Gaussian kernels."""
    g = torch.Generator().manual_seed(14)
    x, y = torch.randn(5, 3, generator=g), torch.randn(4, 3, generator=g) + 1.0
    t.close(fn, (x, y, (1.0,)), _mmd2_by_loops(x, y, (1.0,)), input="x (5, 3), y (4, 3), sigmas=(1.0,) "
            "(compared with the definition written as explicit sums)",
            hint="k(a, b) = exp(−‖a − b‖² / (2σ²)); torch.cdist(x, y) gives all the distances ‖a − b‖")
    t.close(fn, (x, y, (0.5, 2.0)), _mmd2_by_loops(x, y, (0.5, 2.0)), input="the same, sigmas=(0.5, 2.0): "
            "the kernel is the *sum* of one Gaussian kernel per σ")
    t.close(fn, (x, x, (1.0,)), torch.tensor(0.0), input="x against itself: MMD² must be 0")
    imgs_x, imgs_y = torch.rand(3, 1, 2, 2, generator=g), torch.rand(3, 1, 2, 2, generator=g)
    t.close(fn, (imgs_x, imgs_y, (1.0,)), _mmd2_by_loops(imgs_x, imgs_y, (1.0,)),
            input="images (3, 1, 2, 2): flatten each image to a vector first", hint="x.flatten(1)")
    t.gradient(fn, (x, y, (0.5, 2.0)), 0, mlp.mmd2, input="x (5, 3) requiring grad (the generator's samples: "
               "it learns through them)", what="x")
