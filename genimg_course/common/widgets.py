"""Interactive widgets for the notebooks (ipywidgets), with callbacks that tests can drive.

``LatentExplorer``: one slider per latent dimension; moving a slider decodes the new
z and redraws the image. The redraw is a plain method, ``set(i, value)``, so a test
(or a notebook without a widget front end) can call it directly.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import torch
from PIL import Image


def tensor_to_png(image: torch.Tensor, scale: int = 6) -> bytes:
    """One image (C, H, W) in [-1, 1] → PNG bytes, enlarged ``scale`` times (nearest neighbour)."""
    x = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte()  # (C, H, W) uint8
    array = x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()
    pil = Image.fromarray(array)
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


class LatentExplorer:
    """Sliders over latent dimensions of a VAE, redrawing the decoded image.

    dims: how many dimensions (the first ``dims``), or which ones (a list of indices, for example
    the dimensions with the largest KL, ``vae.kl_per_dimension(model, images).argsort(descending=True)[:6]``).
    """

    def __init__(self, model, dims: int | Sequence[int] = 4, z: torch.Tensor | None = None, limit: float = 3.0,
                 scale: int = 6):
        import ipywidgets as widgets

        self.model, self.scale = model.eval(), scale
        z_dim = model.config.z_dim
        self.z = (z.detach().clone().float().cpu().view(z_dim) if z is not None else torch.zeros(z_dim))
        self.indices = list(range(min(dims, z_dim))) if isinstance(dims, int) else [int(i) for i in dims]
        if any(not 0 <= i < z_dim for i in self.indices):
            raise IndexError(f"latent dimensions {self.indices} out of range 0..{z_dim - 1}")
        self.dims = len(self.indices)
        _, h, w = model.config.image_shape
        self.image = widgets.Image(format="png", width=w * scale, height=h * scale)
        self.sliders = []
        for i in self.indices:
            slider = widgets.FloatSlider(value=float(self.z[i]), min=-limit, max=limit, step=0.1,
                                         description=f"z[{i}]", continuous_update=True)
            slider.observe(lambda change, i=i: self.set(i, change["new"]), names="value")
            self.sliders.append(slider)
        self.redraw()
        self.widget = widgets.HBox([widgets.VBox(self.sliders), self.image])

    @torch.no_grad()
    def decode(self) -> torch.Tensor:
        """The decoder's mean at the current z, as an image (C, H, W) in [-1, 1]."""
        device = next(self.model.parameters()).device
        return torch.sigmoid(self.model.decode(self.z[None].to(device)))[0].cpu() * 2 - 1

    def redraw(self) -> torch.Tensor:
        image = self.decode()
        self.image.value = tensor_to_png(image, self.scale)
        return image

    def set(self, i: int, value: float) -> torch.Tensor:
        """Set z[i] = value and redraw (the sliders' callback). Returns the new image."""
        if not 0 <= i < len(self.z):
            raise IndexError(f"latent dimension {i} out of range 0..{len(self.z) - 1}")
        self.z[i] = float(value)
        return self.redraw()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


class GuidanceExplorer:
    """A slider for the classifier-free guidance scale w of a conditional diffusion or flow model, redrawing
    a class grid (one row per class, from a fixed seed, so only w changes) at every release.

    ``set(w)`` is the slider's callback, callable without a widget front end. ``guide_fn`` replaces the
    library's ``guided`` (lesson 06 passes the student's); ``sampler``: the model's default unless given.
    """

    def __init__(self, model, n_per_class: int = 6, steps: int = 20, seed: int = 0, w: float | None = None,
                 limit: float = 6.0, scale: int = 2, guide_fn=None, sampler: str | None = None):
        import ipywidgets as widgets

        if not getattr(model.config, "n_classes", 0):
            raise ValueError(f"GuidanceExplorer needs a class-conditional model (cddpm, cflow), got {model.family!r}")
        self.model, self.n_per_class, self.steps, self.seed, self.scale = model.eval(), n_per_class, steps, seed, scale
        self.guide_fn, self.sampler = guide_fn, sampler
        self.w = float(model.config.guidance if w is None else w)
        _, h, w = model.config.image_shape  # the grid's size in pixels (make_grid, padding 1), so JupyterLab
        k = model.config.n_classes          # shows it at `scale` instead of stretching it to the cell's width
        self.image = widgets.Image(format="png", width=(n_per_class * (w + 1) + 1) * scale,
                                   height=(k * (h + 1) + 1) * scale)
        self.slider = widgets.FloatSlider(value=self.w, min=0.0, max=limit, step=0.5, description="w",
                                          continuous_update=False)  # one redraw per release: sampling takes seconds
        self.slider.observe(lambda change: self.set(change["new"]), names="value")
        self.redraw()
        self.widget = widgets.VBox([self.slider, self.image])

    def grid(self) -> torch.Tensor:
        """The class grid at the current w: (K · n_per_class, C, H, W) in [-1, 1], rows in class order."""
        k = self.model.config.n_classes
        labels = torch.arange(k).repeat_interleave(self.n_per_class)
        return self.model.sample(len(labels), torch.Generator().manual_seed(self.seed), labels=labels,
                                 steps=self.steps, sampler=self.sampler, guidance=self.w,
                                 guide_fn=self.guide_fn).cpu()

    def redraw(self) -> torch.Tensor:
        from torchvision.utils import make_grid

        images = self.grid()
        self.image.value = tensor_to_png(make_grid(images, nrow=self.n_per_class, pad_value=1.0, padding=1),
                                         self.scale)
        return images

    def set(self, w: float) -> torch.Tensor:
        """Set the guidance scale and redraw (the slider's callback). Returns the new grid's images."""
        self.w = float(w)
        return self.redraw()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
