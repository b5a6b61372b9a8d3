import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from genimg_course.common import data, viz  # noqa: E402


def test_to_unit_range_guesses_and_obeys():
    x = torch.tensor([-1.0, 0.0, 1.0])
    torch.testing.assert_close(viz.to_unit_range(x), torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(viz.to_unit_range(torch.tensor([0.0, 0.5])), torch.tensor([0.0, 0.5]))
    torch.testing.assert_close(viz.to_unit_range(torch.tensor([0.0, 0.5]), (-1, 1)), torch.tensor([0.5, 0.75]))


def test_image_grid_uses_make_grid():
    gray = torch.zeros(10, 1, 8, 8) - 1  # black in [-1, 1]
    grid = viz.image_grid(gray, nrow=5, padding=2)
    assert grid.shape == (3, 2 * 10 + 2, 5 * 10 + 2)
    assert grid.min() == 0 and grid.max() == 1  # black images, white padding


def test_figures_draw():
    ds = data.load_dataset("shapes", n=12)
    for fig in (viz.show_images(ds.images[:6], nrow=3, title="t"), viz.show_dataset(ds, n=8),
                viz.compare(ds.images[0], ds.images[1]), viz.plot_histogram(ds.images[0]),
                viz.plot_history({"loss": [3, 2, 1]})):
        assert isinstance(fig, plt.Figure)
        fig.canvas.draw()
        plt.close(fig)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        viz.image_grid(torch.zeros(2, 5, 4, 4))
    with pytest.raises(ValueError, match="2 images but 3 titles"):
        viz.compare(torch.zeros(3, 4, 4), torch.zeros(3, 4, 4), titles=["a", "b", "c"])
