"""The live training dashboard, driven without a browser."""

import pytest
import torch

from genimg_course.common import dashboard as dash
from genimg_course import gan


def _history(n):
    return {"loss_d": [1.0 + 0.01 * i for i in range(n)], "loss_g": [0.7] * n, "d_real": [0.6] * n,
            "d_fake": [0.4] * n}


def test_mode_choice(monkeypatch):
    monkeypatch.delenv(dash.ENV, raising=False)
    assert dash.choose_mode("auto") == "text"  # pytest is not a Jupyter kernel
    assert dash.choose_mode("widget") == "widget"
    monkeypatch.setenv(dash.ENV, "text")
    assert dash.choose_mode() == "text"
    with pytest.raises(ValueError, match="Valid modes: auto, widget, text"):
        dash.choose_mode("plot")
    monkeypatch.setenv(dash.ENV, "fancy")
    with pytest.raises(ValueError, match="GENIMG_DASHBOARD='fancy'"):
        dash.choose_mode()


def test_widget_mode_displays_once_and_redraws_in_place(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.extend(objs))
    model = gan.DCGAN(gan.GANConfig(width=8))
    board = dash.TrainingDashboard(every=10, total=40, n_samples=8, mode="widget", title="test")
    pictures = []
    for step in range(1, 41):
        redrew = board.update(step, _history(step), model)
        assert redrew == (step % 10 == 0)
        if redrew:
            pictures.append((bytes(board._curves.value), bytes(board._samples.value)))
    board.close()
    assert len(shown) == 1  # one display area, updated in place
    assert board.redraws == 4
    assert all(c.startswith(b"\x89PNG") and s.startswith(b"\x89PNG") for c, s in pictures)
    assert pictures[0][0] != pictures[-1][0]  # the curves grew
    assert "step 40/40" in board._status.value and "loss_d 1.390" in board._status.value


def test_samples_come_from_fixed_noise_and_leave_training_mode_alone():
    model = gan.DCGAN(gan.GANConfig(width=8, ema_decay=0.0)).train()
    board = dash.TrainingDashboard(every=1, n_samples=4, mode="text")
    a, b = board.samples(model), board.samples(model)
    assert a.shape == (4, 1, 28, 28) and torch.equal(a, b)
    assert all(m.training for m in model.modules())


def test_text_mode_is_a_progress_bar_with_the_latest_numbers(capsys):
    board = dash.TrainingDashboard(every=5, total=10, mode="text", title="toy")
    for step in range(1, 11):
        board.update(step, _history(step))
    board.close()
    err = capsys.readouterr().err
    assert "toy" in err and "10/10" in err and "loss_d" in err
    assert board.redraws == 2


def test_train_gan_drives_the_dashboard():
    calls = []

    class Recorder:
        def update(self, step, history, model):
            calls.append((step, len(history["loss_d"])))

        def close(self):
            calls.append("closed")

    images = torch.rand(20, 1, 28, 28) * 2 - 1
    gan.train_gan(gan.DCGAN(gan.GANConfig(width=8)), images, 2, batch_size=10, dashboard=Recorder())
    assert calls == [(1, 1), (2, 2), (3, 3), (4, 4), "closed"]


def test_history_figure_is_not_shown():
    fig = dash.history_figure(_history(30), title="t")
    assert len(fig.axes) == 2 and fig.axes[1].get_ylim() == (0.0, 1.0)


def test_bad_every():
    with pytest.raises(ValueError, match="every must be at least 1"):
        dash.TrainingDashboard(every=0)


def test_close_draws_the_last_step_when_it_fell_between_redraws(monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: None)
    model = gan.DCGAN(gan.GANConfig(width=8))
    board = dash.TrainingDashboard(every=10, total=16, n_samples=8, mode="widget", title="test")
    for step in range(1, 17):
        board.update(step, _history(step), model)
    assert "step 10/16" in board._status.value and board.redraws == 1
    board.close()
    assert "step 16/16" in board._status.value and board.redraws == 2
    board.close()  # a second close draws nothing more
    assert board.redraws == 2
