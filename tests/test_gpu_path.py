"""The GPU path of train_gan / train_vae (issue #13): the CPU computes exactly what it did before it,
torch.compile falls back to eager, the data kept on the device gives the DataLoader's batches, and the
path itself (simulated on the CPU) trains the same steps."""

import pytest
import torch

from genimg_course import gan, vae
from genimg_course.common import training

pytestmark = pytest.mark.usefixtures("one_thread")

# Recorded on the CPU, one thread, torch 2.14.1, by the code before the GPU path (gan.py, vae.py and
# training.py as of commit 7e0cefc), with the runs of ``_runs`` below. "params": the sum and the sum of
# absolute values of the trained model's floating-point state_dict, in float64.
EXPECTED = {
    "dcgan": {
        "loss_d": [1.9601762, 1.879295, 1.8398542, 1.7361915, 1.6226285, 1.4524559, 1.3315214, 1.2664574],
        "loss_g": [-0.018753339, -0.04256324, -0.0854399, -0.12184021, -0.16486618, -0.23065333, -0.16721365,
                   -0.047117088],
        "d_real": [0.5625, 0.9375, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        "d_fake": [0.4375, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        "logit_real": [0.035985585, 0.14261398, 0.2250333, 0.36211964, 0.5192119, 0.7455762, 0.9484595, 1.029211],
        "logit_fake": [-0.0038381978, 0.021908991, 0.064887576, 0.09831118, 0.1418404, 0.19803199, 0.24831194,
                       0.20881835],
        "params": [63.93717542404977, 1938.2474617948674],
    },
    "cgan": {
        "loss_d": [2.1194978, 2.004944, 2.0692236, 1.8559778, 1.8667893, 1.8371247, 1.7259045, 1.7358782],
        "loss_g": [0.04489177, 0.095828064, 0.00812844, -0.0014614761, -0.062272005, -0.058794443, -0.052557517,
                   -0.119039886],
        "d_real": [0.125, 0.4375, 0.5, 0.8125, 0.875, 0.6875, 0.875, 1.0],
        "d_fake": [0.3125, 0.3125, 0.5625, 0.5625, 0.4375, 0.5625, 0.5, 0.5625],
        "logit_real": [-0.19285612, -0.0812333, -0.0063345507, 0.21999559, 0.21416825, 0.27650774, 0.45172763,
                       0.4344424],
        "logit_fake": [-0.14416012, -0.14170131, -0.0020222096, 0.013338161, 0.013750132, 0.042922016, 0.074489735,
                       0.0937801],
        "params": [108.60691110997311, 3947.037563509518],
    },
    "conv_vae": {
        "loss": [542.9685, 543.0659, 542.01184, 542.7604, 542.28687, 543.6101, 541.7007, 543.19916],
        "recon": [542.9278, 543.0298, 541.9811, 542.73364, 542.2652, 543.5929, 541.6881, 543.1896],
        "kl": [0.040717237, 0.03614702, 0.030775324, 0.0267172, 0.021735698, 0.01724602, 0.012569919, 0.009567037],
        "params": [-7.885183002981648, 1599.5007435207735],
    },
    "mlp_vae": {
        "loss": [2409.9346, 2385.8884, 2344.48, 2285.9954, 2306.2415, 2338.9023],
        "recon": [2409.8389, 2385.6138, 2343.836, 2285.0806, 2304.9905, 2337.356],
        "kl": [0.095675625, 0.27434936, 0.64408344, 0.91466326, 1.2512053, 1.5462426],
        "params": [-9.722309377340935, 2801.580120354227],
    },
}


def _images(n=64, seed=123):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _runs(**options):
    """(name, trained model, history) of the four recorded runs: 64 images, 2 epochs each."""
    x = _images()
    torch.manual_seed(0)
    m = gan.DCGAN(gan.GANConfig(width=8))  # the lesson's recipe: hinge, spectral norm, EMA
    yield "dcgan", m, gan.train_gan(m, x, 2, batch_size=16, seed=3, progress_bar=False, **options)
    torch.manual_seed(1)
    m = gan.ConditionalGAN(gan.GANConfig(width=8, n_classes=3, augment="color,translation,cutout", r1_gamma=1.0))
    yield "cgan", m, gan.train_gan(m, x, 2, labels=torch.arange(64) % 3, batch_size=16, seed=4,
                                   progress_bar=False, **options)
    torch.manual_seed(2)
    m = vae.ConvVAE(vae.VAEConfig(z_dim=4, hidden=32, channels=4))
    yield "conv_vae", m, vae.train_vae(m, x, 2, batch_size=16, seed=5, augment_shift=1, progress_bar=False, **options)
    torch.manual_seed(3)
    m = vae.MLPVAE(vae.VAEConfig(z_dim=4, hidden=32, likelihood="gaussian"))  # 24, 24, 16: a smaller last batch
    yield "mlp_vae", m, vae.train_vae(m, x, 2, batch_size=24, seed=6, progress_bar=False, **options)


def _fingerprint(model):
    values = [v.double() for v in model.state_dict().values() if v.is_floating_point()]
    return [float(sum(v.sum() for v in values)), float(sum(v.abs().sum() for v in values))]


def _check(name, model, history, tol=1e-6):
    expected = EXPECTED[name]
    assert list(history) == [k for k in expected if k != "params"]
    for key, values in history.items():
        assert all(type(v) is float for v in values), key
        assert values == pytest.approx(expected[key], rel=tol, abs=tol), f"{name}: {key}"
    assert _fingerprint(model) == pytest.approx(expected["params"], rel=tol), f"{name}: parameters"


# ----------------------------------------------------------------------------- (a) the CPU is unchanged
def test_cpu_training_is_what_it_was_before_the_gpu_path():
    for name, model, history in _runs():
        _check(name, model, history)
        assert not any("_orig_mod" in k for k in model.state_dict())


# ----------------------------------------------------------------------------- (b) torch.compile and its fallback
def test_maybe_compile_leaves_the_module_alone_off_cuda_or_when_disabled(monkeypatch):
    def no_compile(*args, **kwargs):
        raise AssertionError("torch.compile must not be called")

    monkeypatch.setattr(torch, "compile", no_compile)
    net = torch.nn.Linear(2, 2)
    for device in ("cpu", "mps", torch.device("cpu")):
        assert not training.can_compile(device)
        assert training.maybe_compile(net, device, True) is net
    assert training.maybe_compile(net, "cuda", False) is net  # disabled: not even asks about the GPU


def test_maybe_compile_falls_back_when_compiling_raises(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("no triton here\nsecond line")

    monkeypatch.setattr(training, "can_compile", lambda device: True)
    monkeypatch.setattr(torch, "compile", broken)
    net = torch.nn.Linear(2, 2)
    assert training.maybe_compile(net, "cuda", True) is net
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "torch.compile failed for Linear" in out and "no triton here" in out


def test_a_failing_first_call_trains_uncompiled_with_one_line_per_network(monkeypatch, capsys):
    calls = []

    def compile_that_fails_when_called(fn, **kwargs):
        def compiled(*args, **kw):
            calls.append(type(fn).__name__)
            raise RuntimeError("inductor: sm_60 is too old")
        return compiled

    monkeypatch.setattr(training, "can_compile", lambda device: True)
    monkeypatch.setattr(torch, "compile", compile_that_fails_when_called)
    name, model, history = next(_runs(compile=True))
    _check(name, model, history)  # the failed call changed nothing: the same steps as the plain loop
    assert calls == ["Generator", "Discriminator"]  # each tried once, then never again
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("torch.compile failed" in line and "sm_60" in line for line in lines)
    assert isinstance(model.generator, gan.Generator) and not any("_orig_mod" in k for k in model.state_dict())


def test_compiled_networks_are_what_the_loop_calls_and_the_model_stays_plain(monkeypatch):
    real_compile, compiled = torch.compile, []

    def eager_backend(fn, **kwargs):  # dynamo traces for real; the "eager" backend skips the slow code generation
        compiled.append(type(fn).__name__ if isinstance(fn, torch.nn.Module) else fn.__qualname__)
        return real_compile(fn, backend="eager", **kwargs)

    monkeypatch.setattr(training, "can_compile", lambda device: True)
    monkeypatch.setattr(torch, "compile", eager_backend)
    torch.manual_seed(0)
    model = gan.DCGAN(gan.GANConfig(width=8))
    history = gan.train_gan(model, _images(32), 1, batch_size=16, progress_bar=False, compile=True)
    assert len(history["loss_d"]) == 2 and all(map(torch.isfinite, map(torch.tensor, history["loss_d"])))
    torch.manual_seed(0)
    r1 = gan.DCGAN(gan.GANConfig(width=8, r1_gamma=1.0))
    gan.train_gan(r1, _images(32), 1, batch_size=16, progress_bar=False, compile=True)
    conv = vae.ConvVAE(vae.VAEConfig(z_dim=4, hidden=32, channels=4))
    vae.train_vae(conv, _images(32), 1, batch_size=16, progress_bar=False, compile=True)
    # R1 differentiates D twice, which compiled graphs cannot: D stays uncompiled there
    assert compiled == ["Generator", "Discriminator", "Generator", "VAE.losses"]
    for m in (model, r1, conv):
        assert not any("_orig_mod" in k for k in m.state_dict())  # checkpoints load into a plain model


# ----------------------------------------------------------------------------- (c) the data on the device
@pytest.mark.parametrize("n,batch_size,drop_last", [(64, 16, False), (70, 16, True), (70, 16, False), (10, 16, True),
                                                    (10, 16, False)])
def test_device_loader_gives_the_dataloaders_batches(n, batch_size, drop_last):
    x, y = torch.randn(n, 1, 4, 4), torch.arange(n)
    loader = training.make_loader(torch.utils.data.TensorDataset(x, y), batch_size, seed=7, drop_last=drop_last)
    device_loader = training.DeviceLoader((x, y), batch_size, "cpu", seed=7, drop_last=drop_last)
    assert len(device_loader) == len(loader)
    for _ in range(3):  # epochs: each draws a new permutation
        ours, theirs = list(device_loader), list(loader)
        assert len(ours) == len(theirs)
        for (a, b), (c, d) in zip(ours, theirs):
            assert torch.equal(a, c) and torch.equal(b, d)
        seen = torch.cat([b for _, b in ours] + [y[:0]])
        assert len(seen) == len(seen.unique()) == (n - n % batch_size if drop_last else n)  # each image once


def test_off_cuda_the_loops_get_the_cpu_helpers():
    assert isinstance(training.batches((torch.zeros(4, 1),), 2, "cpu"), torch.utils.data.DataLoader)
    assert isinstance(training.batches((torch.zeros(4, 1),), 2, "cuda", fast=False), torch.utils.data.DataLoader)
    g = training.noise_generator("cpu", 5)
    assert g.device.type == "cpu" and torch.equal(torch.randn(3, generator=g),
                                                  torch.randn(3, generator=torch.Generator().manual_seed(5)))
    assert training.adam_options("cpu") == {} and training.adam_options("cuda", fast=False) == {}
    assert training.StepLog.every_for("cpu") == 1 and training.StepLog.every_for("cuda", fast=False) == 1


def test_random_shift_is_the_image_by_image_crop():
    x, g = torch.rand(6, 2, 5, 7), torch.Generator().manual_seed(3)
    padded = torch.nn.functional.pad(x, [2] * 4)
    dx, dy = torch.randint(0, 5, (2, 6), generator=torch.Generator().manual_seed(3))
    expected = torch.stack([padded[i, :, dy[i]:dy[i] + 5, dx[i]:dx[i] + 7] for i in range(6)])
    shifted = vae.random_shift(x, 2, g)
    assert torch.equal(shifted, expected) and shifted.is_contiguous()


def test_step_log_copies_every_few_steps_and_on_flush():
    history = {"a": [], "b": []}
    log = training.StepLog(history, every=3)
    for i in range(7):
        log.add(a=torch.tensor(i + 0.5), b=torch.tensor(float(-i)))
        assert len(history["a"]) == (i + 1) // 3 * 3
    log.flush()
    assert history == {"a": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5], "b": [0.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0]}
    assert all(type(v) is float for v in history["a"])


# ----------------------------------------------------------------------------- the GPU path, simulated on the CPU
@pytest.fixture
def gpu_path_on_cpu(monkeypatch):
    """The GPU path's plumbing (data kept on the device, noise from a generator there, numbers copied
    every SYNC_EVERY steps, fused Adam) on the CPU, where it must train the same steps."""
    monkeypatch.setattr(training, "fast_path", lambda device, fast=True: bool(fast))


def test_the_gpu_path_trains_the_same_steps(gpu_path_on_cpu):
    assert isinstance(training.batches((torch.zeros(4, 1),), 2, "cpu"), training.DeviceLoader)
    assert training.StepLog.every_for("cpu") == training.SYNC_EVERY > 8  # so only the final flush fills the history
    for name, model, history in _runs():
        _check(name, model, history, tol=1e-5)  # fused Adam rounds a little differently


def test_the_gpu_path_keeps_the_dashboards_history_up_to_date(gpu_path_on_cpu):
    seen = []

    class Board:
        every = 2  # redraws every 2 steps: the history must be complete then

        def update(self, step, history, model):
            if step % self.every == 0:
                seen.append((step, len(history["loss_d"])))

        def close(self):
            seen.append("closed")

    history = gan.train_gan(gan.DCGAN(gan.GANConfig(width=8)), _images(50), 1, batch_size=10, dashboard=Board())
    assert seen == [(2, 2), (4, 4), "closed"] and len(history["loss_d"]) == 5
