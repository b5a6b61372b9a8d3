"""The model zoo: every model family of the course by its command-line name, how to train it, and how to
load it back from a checkpoint.

"Model zoo" is the field's name for a collection of ready-to-use models (Caffe's Model Zoo, torchvision's
``models``); here it is lessons 02–06's models side by side. ``genimg train MODEL``, ``load_checkpoint``
and the lessons' "load if present, else train" (``load_or_train``) use this table; each entry points at
the model's own module, where the model and its training loop are written out. It sits above the
lessons' modules (it imports them all) and below the course's machinery.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Callable

import torch

from genimg_course import diffusion, gan, latent, mlp, vae
from genimg_course.common.checkpoint import CheckpointError, read_checkpoint, save_checkpoint


@dataclass(frozen=True)
class Family:
    model: type  # the nn.Module class
    config: type  # its configuration dataclass
    train: Callable  # train(model, images, run, epochs, seed, max_seconds, progress_bar, labels[, snapshot]) -> history
    about: str


def _train_ae(model, images, run, epochs, seed, max_seconds=None, progress_bar=True, labels=None):
    return mlp.train_autoencoder(model, images, epochs, batch_size=run.batch_size, device=run.device, seed=seed,
                                 max_seconds=max_seconds, progress_bar=progress_bar)


def _train_mmd(model, images, run, epochs, seed, max_seconds=None, progress_bar=True, labels=None):
    return mlp.train_mmd_generator(model, images, epochs, batch_size=max(run.batch_size, 256), device=run.device,
                                   seed=seed, max_seconds=max_seconds, progress_bar=progress_bar)


def _train_vae(model, images, run, epochs, seed, max_seconds=None, progress_bar=True, labels=None):
    small = len(images) < 10_000  # digits: shift augmentation keeps the VAE from memorising
    return vae.train_vae(model, images, epochs, batch_size=run.batch_size, device=run.device, seed=seed,
                         amp=run.amp, augment_shift=2 if small and isinstance(model, vae.ConvVAE) else 0,
                         max_seconds=max_seconds, progress_bar=progress_bar)


def _train_gan(model, images, run, epochs, seed, max_seconds=None, progress_bar=True, labels=None, snapshot=None):
    return gan.train_gan(model, images, epochs, labels=labels if model.config.n_classes else None,
                         device=run.device, seed=seed, max_seconds=max_seconds, progress_bar=progress_bar,
                         snapshot=snapshot)


def _train_diffusion(model, images, run, epochs, seed, max_seconds=None, progress_bar=True, labels=None,
                     snapshot=None):
    return diffusion.train_diffusion(model, images, epochs, labels=labels if model.config.n_classes else None,
                                     batch_size=run.batch_size, device=run.device, seed=seed, amp=run.amp,
                                     max_seconds=max_seconds, progress_bar=progress_bar, snapshot=snapshot)


def _train_latent_flow(model, images, run, epochs, seed, max_seconds=None, progress_bar=True, labels=None):
    # a fifth of the images is held out for `genimg eval` (latent.evaluate_folder draws the same split from the
    # seed); the autoencoder gets half the flow's epochs: it sees each image once per epoch, the flow twice (mirrored)
    train_idx, _ = latent.split_held_out(len(images), 0.2, seed, labels)
    images, labels = images[train_idx], (None if labels is None else labels[train_idx])
    # a budget in seconds is shared as lesson 07 shares it: 40% for the autoencoder, 60% for the flow
    ae_seconds = None if max_seconds is None else 0.4 * max_seconds
    flow_seconds = None if max_seconds is None else max_seconds - ae_seconds
    return latent.train_latent_flow(model, images, max(1, epochs // 2), epochs, labels=labels, batch_size=32,
                                    device=run.device, seed=seed, progress_bar=progress_bar,
                                    ae_seconds=ae_seconds, flow_seconds=flow_seconds)


MODELS: dict[str, Family] = {
    "mlp-ae": Family(mlp.MLPAutoencoder, mlp.AutoencoderConfig, _train_ae,
                     "two-layer MLP autoencoder (lesson 02): reconstructs, but is not a generator"),
    "mlp-mmd": Family(mlp.MLPGenerator, mlp.GeneratorConfig, _train_mmd,
                      "MLP generator trained with kernel MMD (lesson 02)"),
    "vae": Family(vae.MLPVAE, vae.VAEConfig, _train_vae, "MLP VAE, 784-400-20 style (lesson 03)"),
    "conv-vae": Family(vae.ConvVAE, vae.VAEConfig, _train_vae, "convolutional VAE (lesson 03)"),
    "dcgan": Family(gan.DCGAN, gan.GANConfig, _train_gan,
                    "DCGAN with hinge loss, spectral norm and a moving average of G (lesson 04)"),
    "cgan": Family(gan.ConditionalGAN, gan.GANConfig, _train_gan,
                   "class-conditional DCGAN, projection discriminator (lesson 04); sample with --label K"),
    "ddpm": Family(diffusion.DiffusionModel, diffusion.DiffusionConfig, _train_diffusion,
                   "DDPM's path, v-prediction (lesson 06); Heun 25 steps by default, or --sampler ddim|ddpm --steps K"),
    "flow": Family(diffusion.DiffusionModel, diffusion.DiffusionConfig, _train_diffusion,
                   "flow matching (rectified flow), logit-normal t (lesson 06); Heun 25 steps by default, or --sampler euler"),
    "cddpm": Family(diffusion.DiffusionModel, diffusion.DiffusionConfig, _train_diffusion,
                    "class-conditional DDPM with classifier-free guidance (lesson 06); --label K --guidance W"),
    "cflow": Family(diffusion.DiffusionModel, diffusion.DiffusionConfig, _train_diffusion,
                    "class-conditional flow matching with classifier-free guidance (lesson 06); --label K --guidance W"),
    "latent-flow": Family(latent.LatentFlow, latent.LatentFlowConfig, _train_latent_flow,
                          "flow matching in the latent space of a small KL autoencoder, Stable Diffusion in miniature "
                          "(lesson 07); for your own images: --dataset folder:PATH; --label K --guidance W when the "
                          "folder has class sub-folders"),
}

# what sets the diffusion families apart: the objective, and whether they take labels
_DIFFUSION = {"ddpm": ("eps", False), "flow": ("flow", False), "cddpm": ("eps", True), "cflow": ("flow", True)}
CONDITIONAL = ("cgan", "cddpm", "cflow")
# what `genimg train` and the lessons train and sample with unless told otherwise, chosen by measurement
# (benchmarks/RESULTS.md, "Lesson 06, second pass": every model trained for the same 3 minutes, 1,000 samples,
# 3 seeds): on DDPM's path v-prediction and Heun's sampler on the trailing grid, for flow matching logit-normal
# training times and Heun's sampler; 25 Heun steps are 49 network evaluations. (Lesson 06 trains its DDPM
# with the ε-target of the student's ddpm_loss, and says why the course's default is v.)
DIFFUSION_DEFAULTS = {"eps": {"prediction": "v", "spacing": "trailing", "sampler": "heun", "steps": 25},
                      "flow": {"time_sampling": "logit-normal", "sampler": "heun", "steps": 25}}
# the U-Net's width per profile: on 2 CPU cores a width of 16 takes 2.3 times as many training steps per second
# as 32 (benchmarks/RESULTS.md, "Lesson 06"); a GPU affords 64
DIFFUSION_WIDTH = {"ci": 16, "cpu": 16, "gpu": 64}

# epochs of each family per profile, sized so a lesson trains in minutes on 2 CPU cores
EPOCHS = {
    "ci": {"mlp-ae": 1, "mlp-mmd": 2, "vae": 1, "conv-vae": 1, "dcgan": 1, "cgan": 1,
           "ddpm": 1, "flow": 1, "cddpm": 1, "cflow": 1, "latent-flow": 2},
    "cpu": {"mlp-ae": 30, "mlp-mmd": 300, "vae": 100, "conv-vae": 100, "dcgan": 60, "cgan": 60,
            "ddpm": 40, "flow": 40, "cddpm": 40, "cflow": 40, "latent-flow": 60},
    "gpu": {"mlp-ae": 100, "mlp-mmd": 1000, "vae": 300, "conv-vae": 300, "dcgan": 400, "cgan": 400,
            "ddpm": 400, "flow": 400, "cddpm": 400, "cflow": 400, "latent-flow": 400},  # diffusion: 4,500 steps of 128 on digits
}


# The cpu profile trains each model for a budget in *seconds*, not epochs (issue 29): a slow machine (Binder's
# shared cores, an old laptop) gets a slightly weaker model in the same time, never a longer lesson. Seconds of
# wall time per model, chosen so that every lesson runs in under 150 s on 2 CPU cores (benchmarks/RESULTS.md,
# "Issue 29"); the lessons print the steps each model reached. The ci profile keeps its fixed epochs (its runs
# must be deterministic), the gpu profile its epochs sized for a Colab T4.
SECONDS = {
    "cpu": {"mlp-ae": 6, "mlp-mmd": 40, "vae": 10, "conv-vae": 30, "dcgan": 20, "cgan": 15,
            "ddpm": 15, "flow": 15, "cddpm": 15, "cflow": 15, "latent-flow": 60},
}

DIGITS_TRAIN = 1437  # the training images of ``digits``, for which EPOCHS are sized


@dataclass(frozen=True)
class Budget:
    """How long a lesson trains a model: ``epochs`` passes, or until ``seconds`` of wall time are spent."""

    epochs: int  # UNBOUNDED when the seconds decide
    seconds: float | None  # None: the epochs decide

    def __str__(self) -> str:
        return f"{self.seconds:g} s" if self.seconds is not None else f"{self.epochs} epochs"


def budget_for(family: str, profile: str, n_images: int, share: float = 1.0, base: int | None = None,
               sized_for: int = DIGITS_TRAIN) -> Budget:
    """The training budget of ``family`` in ``profile``: ``share`` of its seconds in a timed profile (``cpu``),
    else its epochs (``epochs_for``; ``base``/``sized_for`` as there, or ``share`` of the table's epochs).

    >>> budget_for("dcgan", "cpu", 1437)        # Budget(epochs=1000000, seconds=35)
    >>> budget_for("dcgan", "ci", 512)          # Budget(epochs=1, seconds=None)
    """
    from genimg_course.common.training import UNBOUNDED

    if family not in MODELS:
        raise ValueError(f"Unknown model {family!r}. Valid models: {', '.join(MODELS)}.")
    if not share > 0:
        raise ValueError(f"share must be positive, got {share!r}")
    if profile in SECONDS:
        return Budget(epochs=UNBOUNDED, seconds=SECONDS[profile][family] * share * budget_scale())
    if base is None and share != 1.0:
        base = max(1, round(EPOCHS.get(profile, {}).get(family, 1) * share))
    return Budget(epochs=epochs_for(family, profile, n_images, base, sized_for), seconds=None)


BUDGET_SCALE_ENV = "GENIMG_BUDGET_SCALE"


def budget_scale() -> float:
    """``GENIMG_BUDGET_SCALE`` (default 1): a factor on every budget in seconds. ``benchmarks/claims.py`` sets 0.5
    to see what a machine twice as slow reaches in a lesson."""
    text = os.environ.get(BUDGET_SCALE_ENV, "").strip()
    try:
        scale = float(text) if text else 1.0
    except ValueError:
        scale = -1.0
    if not scale > 0:
        raise ValueError(f"{BUDGET_SCALE_ENV}={text!r}: expected a positive number such as 0.5")
    return scale


def steps_line(name: str, history: dict, budget: Budget, seconds: float, model: torch.nn.Module | None = None) -> str:
    """The line a lesson prints after training a model: the steps it reached in its budget, so that a student can
    compare with the recorded run ("DCGAN: 2,140 steps in 35 s (budget 35 s)"). Under ``benchmarks/claims.py``
    the run's record gets the same facts and, given ``model``, its full configuration."""
    from genimg_course import claims

    claims.record("model", name=name, steps=steps_of(history), seconds=round(seconds, 2), budget=str(budget),
                  budget_seconds=budget.seconds, budget_epochs=budget.epochs,
                  **({"family": getattr(model, "family", type(model).__name__), "config": claims.model_config(model)}
                     if model is not None else {}))
    return f"{name}: {steps_of(history):,} steps in {seconds:.0f} s (budget {budget})"


def steps_of(history: dict) -> int:
    """The optimisation steps a training loop's history holds: one loss per step (the GANs log D's as loss_d, the
    MMD generator its mmd2)."""
    return len(next((history[k] for k in ("loss", "loss_d", "mmd2") if history.get(k)), []))


def epochs_for(family: str, profile: str, n_images: int, base: int | None = None,
               sized_for: int = DIGITS_TRAIN) -> int:
    """Epochs of ``family`` in ``profile`` on ``n_images`` training images.

    ``EPOCHS`` is sized for the 1,437 training digits; a larger set (MNIST's 60,000, CIFAR-10's 50,000) gets
    the same number of images seen, so fewer epochs (at least one): about 10 epochs of MNIST for the gpu
    profile's DCGAN instead of 400. Smaller sets (the ci profile's 512) keep the table's count.
    ``base`` epochs sized for ``sized_for`` images replace the table's (a lesson's colour section: a share of
    the table's epochs, sized for the profile's ``n_shapes``).
    """
    if family not in MODELS:
        raise ValueError(f"Unknown model {family!r}. Valid models: {', '.join(MODELS)}.")
    if profile not in EPOCHS:
        raise ValueError(f"Unknown profile {profile!r}. Valid profiles: {', '.join(EPOCHS)}.")
    base = EPOCHS[profile][family] if base is None else base
    return max(1, round(base * sized_for / max(int(n_images), sized_for)))


def build_model(family: str, config: dict | None = None) -> torch.nn.Module:
    """A fresh model of ``family`` from a config dict (lists become tuples, unknown keys are an error)."""
    if family not in MODELS:
        raise ValueError(f"Unknown model {family!r}. Valid models: {', '.join(MODELS)}.")
    spec = MODELS[family]
    config = dict(config or {})
    names = {f.name for f in dataclasses.fields(spec.config)}
    unknown = set(config) - names
    if unknown:
        raise ValueError(f"Unknown configuration for {family!r}: {sorted(unknown)}. Valid keys: {sorted(names)}.")
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    if family == "conv-vae":
        config = {"z_dim": 16, "hidden": 256, **config}
    if family in _DIFFUSION:
        objective, conditional = _DIFFUSION[family]
        if config.setdefault("objective", objective) != objective:
            raise ValueError(f"{family!r} has objective {objective!r}, got objective={config['objective']!r}")
        if conditional and config.setdefault("n_classes", 10) < 2:
            raise ValueError(f"{family!r} is class-conditional: n_classes must be at least 2, "
                             f"got {config['n_classes']}")
        if not conditional and config.get("n_classes", 0):
            raise ValueError(f"{family!r} is unconditional (n_classes=0); for labels use 'c{family}'")
    return spec.model(spec.config(**config))


def default_config(family: str, image_shape, likelihood: str | None = None, n_classes: int | None = None,
                   profile: str | None = None) -> dict:
    """The configuration the course trains ``family`` with on images of ``image_shape``
    (``n_classes``: the dataset's number of classes, which a conditional model needs; ``profile``: the
    diffusion models' U-Net is wider in the ``gpu`` profile)."""
    config = {"image_shape": list(image_shape)}
    if family in ("vae", "conv-vae"):
        config["likelihood"] = likelihood or ("bernoulli" if image_shape[0] == 1 else "gaussian")
    if family in CONDITIONAL:
        if not n_classes or n_classes < 2:
            raise ValueError(f"{family!r} is class-conditional: it needs a dataset with at least 2 classes, "
                             f"got {n_classes}")
        config["n_classes"] = n_classes
    if family in _DIFFUSION:
        config["width"] = DIFFUSION_WIDTH.get(profile, DIFFUSION_WIDTH["cpu"])
        config.update(DIFFUSION_DEFAULTS[_DIFFUSION[family][0]])
    if family == "latent-flow":  # conditional when the folder has class sub-folders; the U-Net on 8 × 8 latents
        config["n_classes"] = n_classes if n_classes and n_classes > 1 else 0
        config["width"] = 64 if profile == "gpu" else 32
    return config


def load_or_train(family: str, dataset: str, run, directory="checkpoints", verbose: bool = True,
                  progress_bar: bool = True):
    """The model an earlier lesson saved in ``directory/{family}_{dataset}.pt``, if it was trained in
    this profile; otherwise train one now (in the current profile) and save it there. Returns the model.
    """
    import time
    from pathlib import Path

    from genimg_course.common.data import load_dataset
    from genimg_course.common.training import images_of, labels_of

    path = Path(directory) / f"{family}_{dataset}.pt"
    if path.exists():
        try:
            model, payload = load_checkpoint(path, family=family)
            if payload.get("extra", {}).get("profile") == run.profile:
                if verbose:
                    print(f"{family}: loaded {path} (trained by an earlier lesson, profile {run.profile})")
                return model
        except CheckpointError as err:
            if verbose:
                print(f"{family}: cannot use {path} ({err}); training a new one")
    train = load_dataset(dataset, split="train")
    images, labels = images_of(train, run.n_train), labels_of(train, run.n_train)
    model = build_model(family, default_config(family, tuple(images.shape[1:]), n_classes=len(train.classes),
                                               profile=run.profile))
    start = time.perf_counter()
    budget = budget_for(family, run.profile, len(images))
    history = MODELS[family].train(model, images, run, budget.epochs, run.seed, max_seconds=budget.seconds,
                                   progress_bar=progress_bar, labels=labels)
    model = model.cpu().float().eval()
    seconds = time.perf_counter() - start
    extra = {"profile": run.profile, "seconds": round(seconds, 1), "budget": str(budget),
             "steps": steps_of(history)}
    if hasattr(model, "_code_scale"):
        extra["code_scale"] = float(model._code_scale)
    from genimg_course import claims

    claims.record("model", name=family, family=family, config=claims.model_config(model), dataset=dataset,
                  seed=run.seed, **extra)
    save_checkpoint(path, model, dataset, extra)
    if verbose:
        print(f"{family}: {extra['steps']:,} steps in {seconds:.0f} s (budget {budget}, {len(images):,} {dataset} "
              f"images), saved to {path}")
    return model


def load_checkpoint(path, family: str | None = None, device="cpu"):
    """Rebuild the model saved at ``path``; returns (model in eval mode, checkpoint dict).

    ``family`` (for example ``"conv-vae"``) makes a checkpoint of another family an error.
    """
    payload = read_checkpoint(path)
    saved = payload["family"]
    if family is not None and saved != family:
        raise CheckpointError(f"{str(path)!r} holds a {saved!r} model, not a {family!r} model.")
    if saved not in MODELS:
        raise CheckpointError(f"{str(path)!r} holds an unknown model family {saved!r}. "
                              f"Known families: {', '.join(MODELS)}.")
    if saved in ("dcgan", "cgan"):  # saved before D's kernel size was a setting: it was 4 × 4
        payload["config"].setdefault("d_kernel", 4)
    model = build_model(saved, payload["config"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"{str(path)!r}: the weights do not fit a {saved!r} model with its saved "
                              f"configuration: {str(err).splitlines()[0]}") from None
    extra = payload.get("extra", {})
    if "code_scale" in extra:  # the autoencoder remembers the size of its codes
        model._code_scale = torch.tensor(extra["code_scale"])
    return model.to(device).eval(), payload
