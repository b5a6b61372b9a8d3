"""A live training dashboard: loss curves, D's verdicts on real and fake images and a sample grid,
updated in place.

In Jupyter with ipywidgets it is one widget box displayed once; every ``every`` steps
its two images (the curves and the samples) are replaced, so the notebook's output
does not grow. Without a widget front end (a terminal, ``genimg train``, nbval) it is a
plain text progress bar showing the latest numbers.

``mode``: "widget", "text", or "auto" (the default): widgets inside a Jupyter kernel
with ipywidgets installed, unless the environment variable GENIMG_DASHBOARD=text asks
for text (the test suite sets it for nbval, which has no front end to draw widgets).
"""

from __future__ import annotations

import io
import os

import torch

MODES = ("auto", "widget", "text")
ENV = "GENIMG_DASHBOARD"


def in_jupyter_kernel() -> bool:
    """True inside a Jupyter (ipykernel) kernel, False in a terminal or plain Python."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def choose_mode(mode: str = "auto") -> str:
    """'widget' or 'text' for a requested mode (see the module's docstring)."""
    if mode not in MODES:
        raise ValueError(f"Unknown dashboard mode {mode!r}. Valid modes: {', '.join(MODES)}.")
    if mode != "auto":
        return mode
    wanted = os.environ.get(ENV, "auto").strip().lower()
    if wanted not in MODES:
        raise ValueError(f"{ENV}={wanted!r} is not a dashboard mode. Valid: {', '.join(MODES)}.")
    if wanted != "auto":
        return wanted
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return "text"
    return "widget" if in_jupyter_kernel() else "text"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return buf.getvalue()


def _smooth(values: list[float], window: int) -> list[float]:
    """Running mean over ``window`` steps (GAN losses are noisy step to step)."""
    if window <= 1 or len(values) < 2:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    c = torch.cat([torch.zeros(1, dtype=torch.float64), t.cumsum(0)])
    idx = torch.arange(1, len(t) + 1)
    lo = (idx - window).clamp(min=0)
    return ((c[idx] - c[lo]) / (idx - lo)).tolist()


def history_figure(history: dict, smooth: int = 20, title: str = "", fig=None):
    """Losses left, right the fraction of real and of generated images that D calls real (history's
    ``d_real``, ``d_fake``), smoothed over ``smooth`` steps, drawn into ``fig``
    (default: a new matplotlib Figure outside pyplot, so nothing is displayed by accident;
    pass ``plt.figure(figsize=(10, 3))`` to show it in a notebook)."""
    if fig is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8, 2.6))
    ax_loss, ax_d = fig.subplots(1, 2)
    for key, label in (("loss_d", "loss D"), ("loss_g", "loss G")):
        if history.get(key):
            ax_loss.plot(_smooth(history[key], smooth), label=label)
    ax_loss.set_xlabel("step")
    ax_loss.legend(loc="upper right", fontsize=8)
    ax_loss.set_title(title or "losses")
    # the sign of D's logit is its verdict under BCE and hinge alike; σ(logit) is a probability only under BCE
    for key, label in (("d_real", "real: D(x) > 0"), ("d_fake", "fake: D(G(z)) > 0")):
        if history.get(key):
            ax_d.plot(_smooth(history[key], smooth), label=label)
    ax_d.set_ylim(0, 1)
    ax_d.axhline(0.5, color="gray", lw=0.5, ls=":")
    ax_d.set_xlabel("step")
    ax_d.legend(loc="upper right", fontsize=8)
    ax_d.set_title("fraction that D calls real")
    fig.tight_layout()
    return fig


class TrainingDashboard:
    """``update(step, history, model)`` after every step; redraws every ``every`` steps
    (default: about 40 times over ``total`` steps).

    model: anything with ``sample(n, generator)`` (the samples come from fixed noise, so the
    grid shows the *same* z changing over training). ``total``: steps expected (progress bar).
    """

    def __init__(self, every: int | None = None, total: int | None = None, n_samples: int = 32, nrow: int = 8,
                 mode: str = "auto", title: str = "", seed: int = 0):
        if every is None:  # about 40 redraws per run: each costs a plot and a few samples
            every = max(10, total // 40) if total else 50
        if every < 1:
            raise ValueError(f"every must be at least 1 step, got {every}")
        self.every, self.total, self.n_samples, self.nrow, self.title = every, total, n_samples, nrow, title
        self.mode = choose_mode(mode)
        self.seed = seed
        self.redraws = 0
        self._bar = self._box = None
        self._pending = None  # (step, history, model) of the last update that was not drawn

    # -- the two front ends
    def _open(self) -> None:
        if self.mode == "widget":
            import ipywidgets as widgets
            from IPython.display import display

            self._status = widgets.HTML(value=f"<b>{self.title}</b> starting…")
            # each picture shrinks to its half of the row, so a narrow window never cuts the grid off
            fit = dict(max_width="50%", height="auto", object_fit="contain")
            self._curves = widgets.Image(format="png", layout=widgets.Layout(**fit))
            self._samples = widgets.Image(format="png", layout=widgets.Layout(**fit))
            self._box = widgets.VBox([self._status, widgets.HBox([self._curves, self._samples])])
            display(self._box)  # the only output the dashboard ever makes
        else:
            from tqdm import tqdm  # plain text, also inside a kernel

            self._bar = tqdm(total=self.total, desc=self.title or "training", leave=True, mininterval=1.0)

    def update(self, step: int, history: dict, model=None) -> bool:
        """Called after each step; returns True when it redrew."""
        if self._bar is None and self._box is None:
            self._open()
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
        if step % self.every:
            self._pending = (step, history, model)
            return False
        self._pending = None
        latest = {k: v[-1] for k, v in history.items() if isinstance(v, list) and v and isinstance(v[-1], float)}
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.3f}" for k, v in latest.items()}, refresh=False)
        else:
            self._redraw_widgets(step, history, model, latest)
        self.redraws += 1
        return True

    def _redraw_widgets(self, step, history, model, latest) -> None:
        from genimg_course.common.viz import image_grid
        from genimg_course.common.widgets import tensor_to_png

        numbers = " · ".join(f"{k} {v:.3f}" for k, v in latest.items())
        of = f"/{self.total}" if self.total else ""
        self._status.value = f"<b>{self.title}</b> step {step}{of} · {numbers}"
        self._curves.value = _png(history_figure(history, title=self.title))
        if model is not None:
            samples = self.samples(model)
            grid = image_grid(samples, nrow=self.nrow, value_range=(-1, 1)) * 2 - 1  # (C, H', W') in [-1, 1]
            self._samples.value = tensor_to_png(grid, scale=2)

    def samples(self, model) -> torch.Tensor:
        """Samples from the same noise every time (the generator's RNG is seeded afresh)."""
        was_training = [m.training for m in model.modules()]
        try:
            return model.sample(self.n_samples, torch.Generator().manual_seed(self.seed)).float().cpu()
        finally:  # sample() switches to eval mode; hand the model back as it was
            for m, t in zip(model.modules(), was_training):
                m.train(t)

    def close(self) -> None:
        """Draw the last step if it fell between two redraws (the box then shows the end of training)."""
        if self._box is not None and self._pending is not None:
            step, history, model = self._pending
            latest = {k: v[-1] for k, v in history.items() if isinstance(v, list) and v and isinstance(v[-1], float)}
            self._redraw_widgets(step, history, model, latest)
            self.redraws += 1
            self._pending = None
        if self._bar is not None:
            self._bar.close()
