"""The ``genimg`` command: doctor, notebooks, train, sample, eval, grade.

Building the parser imports no torch (``genimg --help``, ``genimg notebooks`` answer in a fraction of a
second); each command imports what it needs.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path


def cmd_doctor(args) -> int:
    """Versions, device, profile and the datasets that work offline."""
    import numpy
    import sklearn
    import torch
    import torchvision

    import genimg_course
    from genimg_course.common.data import data_dir, offline_status
    from genimg_course.common.runtime import (COLOUR_DATASET_ENV, DATASET_ENV, PROFILES, pick_device, resolve_profile,
                                       wanted_datasets)

    print(f"genimg-course {genimg_course.__version__}")
    print(f"python {platform.python_version()} | torch {torch.__version__} | torchvision {torchvision.__version__}"
          f" | numpy {numpy.__version__} | scikit-learn {sklearn.__version__}")
    device = pick_device()
    cuda = f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}" if device.type == "cuda" else "no CUDA"
    print(f"device: {device} ({cuda}); CPU threads: {torch.get_num_threads()}")
    try:
        profile, why = resolve_profile(None, device)
        print(f"profile: {profile} ({why})")
    except ValueError as err:
        print(f"profile: ERROR {err}")
        return 1
    try:
        gray, colour, _ = wanted_datasets(PROFILES[profile])
    except ValueError as err:
        print(f"datasets: ERROR {err}")
        return 1
    print(f"lessons train on: {gray} (colour sections: {colour}); set {DATASET_ENV} / {COLOUR_DATASET_ENV} "
          "to choose; a set that cannot be downloaded falls back to digits / shapes")
    print(f"datasets (cache: {data_dir()}):")
    for name, ok in offline_status().items():
        state = "available offline" if ok is True else ("not cached: downloads on first use (needs network)"
                                                         if ok is False else ok)
        print(f"  {name:<14} {state}")
    return 0


def cmd_notebooks(args) -> int:
    """Write notebooks/ from solutions/, or report what differs with --check."""
    from genimg_course.course.notebooks import BuildError, build, find_course_root

    try:
        root = Path(args.root) if args.root else find_course_root()
        changes = build(root, check=args.check, force=args.force)
    except (BuildError, FileNotFoundError) as err:
        print(f"genimg notebooks: {err}", file=sys.stderr)
        return 2
    refused = [change for change in changes if change.refused]
    for change in changes:
        if not change.refused:
            verb = "differs" if args.check else "wrote"
            print(f"{verb}: {change.path.relative_to(root)} ({change.why})")
    if args.check and changes:
        print("notebooks/ is not what solutions/ builds: run `genimg notebooks` (or `make notebooks`) "
              "and commit the result.", file=sys.stderr)
        return 1
    for change in refused:
        print(f"genimg notebooks: {change.path.relative_to(root)} {change.why}. Run 'genimg workspace' to keep "
              "your work in mywork/, or pass --force to overwrite it.", file=sys.stderr)
    if refused:
        return 1
    if not changes:
        print("notebooks/ and solutions/ are up to date.")
    return 0


def cmd_workspace(args) -> int:
    """Create or update the student's working folder (default mywork/) from notebooks/; never overwrite in it."""
    from genimg_course.course.workspace import find_course_root, sync  # no nbformat: make lab starts at once

    root = Path(args.root) if args.root else find_course_root()
    print(sync(root, args.dir).text())
    return 0


def cmd_train(args) -> int:
    """Train a model of the course; write DIR/model.pt, DIR/history.json and DIR/samples.png."""
    import json
    import time

    import torch
    from torchvision.utils import save_image

    import genimg_course
    from genimg_course.common.checkpoint import save_checkpoint
    from genimg_course.common.data import load_dataset, prepare_dataset
    from genimg_course.common.training import UNBOUNDED, images_of, labels_of
    from genimg_course.zoo import MODELS, build_model, default_config, epochs_for, steps_of

    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    if args.seconds is not None and not args.seconds > 0:
        raise ValueError(f"--seconds must be a positive number of seconds, got {args.seconds}")
    snapshot_times = parse_snapshots(args.snapshots)
    # the dataset is settled here, not by setup: an explicit --dataset that cannot be had is an error
    run = genimg_course.setup(seed=args.seed, profile=args.profile, verbose=False, prepare_data=False)
    name = args.dataset
    if name is None:  # the profile's dataset (mnist in the gpu profile) or GENIMG_DATASET's, or its offline stand-in
        name, note = prepare_dataset(run.dataset)
        if note:
            print(note)
    print(f"genimg-course {genimg_course.__version__} | profile={run.profile} device={run.device} seed={run.seed}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {str(out)!r} is a file; give a folder (it is created if missing)")
    dataset = load_dataset(name, split="train")
    images, labels = images_of(dataset, run.n_train), labels_of(dataset, run.n_train)
    if args.model == "latent-flow" and name.startswith("folder"):  # as lesson 07 does: duplicates out, then checks
        from genimg_course.latent import check_folder_for_training, drop_duplicates

        before = len(images)
        images, labels = drop_duplicates(images, labels, name, images.shape[-1])
        if len(images) < before:
            print(f"dropped {before - len(images)} exact or near duplicate image(s) (genimg_course.folder.audit_folder)")
        check_folder_for_training(images, labels, list(dataset.classes), name)
    family = MODELS[args.model]
    config = default_config(args.model, tuple(images.shape[1:]), n_classes=len(dataset.classes), profile=run.profile)
    model = build_model(args.model, {**config, **training_options(args)})
    if args.epochs is not None:
        epochs = args.epochs
    elif args.seconds is not None:
        epochs = UNBOUNDED  # the budget in seconds stops it
    else:
        epochs = epochs_for(args.model, run.profile, len(images))
    budget = f"{args.seconds:g} s" + (f" or {epochs} epochs" if args.epochs is not None else "") \
        if args.seconds is not None else f"{epochs} epochs"
    print(f"training {args.model} ({family.about}) on {name}: {len(images)} images, {budget}; "
          f"{torch.get_num_threads()} CPU threads")
    options = {"labels": labels}
    if snapshot_times:
        if args.model not in ("dcgan", "cgan", "ddpm", "flow", "cddpm", "cflow"):
            raise ValueError(f"--snapshots is for dcgan, cgan, ddpm, flow, cddpm and cflow, not {args.model!r}")
        options["snapshot"] = Snapshots(model, snapshot_times, out / "snapshots", name,
                                        {"profile": run.profile, "seed": args.seed})
    made_by = provenance()  # the code as it was when training started
    start = time.perf_counter()
    history = family.train(model, images, run, epochs, args.seed, max_seconds=args.seconds, **options)
    seconds = time.perf_counter() - start
    steps = steps_of(history)
    extra = {"epochs": epochs if args.seconds is None else None, "budget_seconds": args.seconds,
             "seconds": round(seconds, 2), "steps": steps, "profile": run.profile, "seed": args.seed,
             "threads": torch.get_num_threads(), "argv": list(getattr(args, "argv", None) or []), **made_by}
    if hasattr(model, "_code_scale"):
        extra["code_scale"] = float(model._code_scale)
    save_checkpoint(out / "model.pt", model, name, extra)
    (out / "history.json").write_text(json.dumps({**extra, "history": history}, indent=1))
    samples = model.sample(run.n_samples, torch.Generator().manual_seed(args.seed)).cpu()
    save_image((samples + 1) / 2, out / "samples.png", nrow=8)
    last = {k: round(v[-1], 4) for k, v in history.items() if v}
    print(f"done in {seconds:.1f} s; last {last}; wrote {out / 'model.pt'}, history.json, samples.png")
    return 0


def parse_snapshots(text: str | None) -> list[float]:
    """--snapshots "60,120,300" as sorted seconds; a bad list is an error naming it."""
    if not text:
        return []
    try:
        times = sorted(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"--snapshots takes comma-separated seconds, e.g. 60,120,300; got {text!r}") from None
    if not times or times[0] <= 0:
        raise ValueError(f"--snapshots takes positive seconds, got {text!r}")
    return times


class Snapshots:
    """Called after every training step: saves the model once each of ``times`` (seconds) has passed."""

    def __init__(self, model, times, folder: Path, dataset: str, extra: dict):
        self.model, self.times, self.folder, self.dataset, self.extra = model, list(times), folder, dataset, extra

    def __call__(self, step: int, seconds: float) -> None:
        from genimg_course.common.checkpoint import save_checkpoint

        while self.times and seconds >= self.times[0]:
            t = self.times.pop(0)
            was_training = self.model.training
            save_checkpoint(self.folder / f"model_{t:g}s.pt", self.model.eval(), self.dataset,
                            {**self.extra, "seconds": round(seconds, 2), "steps": step})
            self.model.train(was_training)


def provenance() -> dict:
    """What made a run, beside its settings: the code's version and commit, the machine, the libraries."""
    import os
    import subprocess

    import torch

    import genimg_course

    commit = None
    try:
        here = Path(genimg_course.__file__).resolve().parent.parent
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        if commit and dirty:
            commit += "+uncommitted"
    except (OSError, subprocess.SubprocessError):
        pass
    return {"course_version": genimg_course.__version__, "commit": commit, "torch": str(torch.__version__),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}",
            "python": platform.python_version()}


def training_options(args) -> dict:
    """--prediction, --zero-snr and --time-sampling as configuration of a diffusion or flow model."""
    options = {}
    if args.prediction is not None or args.zero_snr:
        if args.model not in ("ddpm", "cddpm"):
            raise ValueError(f"--prediction and --zero-snr are for models on DDPM's path (ddpm, cddpm), not "
                             f"{args.model!r}")
        if args.prediction is not None:
            options["prediction"] = args.prediction
        if args.zero_snr:
            options["zero_terminal_snr"] = True
    if args.time_sampling is not None:
        if args.model not in ("flow", "cflow"):
            raise ValueError(f"--time-sampling is for flow models (flow, cflow), not {args.model!r}")
        options["time_sampling"] = args.time_sampling
    return options


def draw_samples(model, n: int, seed: int, labels=None, **sampling):
    """n samples (N, C, H, W), about [-1, 1], on the CPU, drawn 500 at a time (bounded memory);
    labels: None, or the class of each sample (conditional models); sampling: steps, sampler, guidance
    (diffusion and flow models)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    chunks = []
    for i in range(0, n, 500):
        kwargs = dict(sampling) if labels is None else {"labels": labels[i:i + 500], **sampling}
        chunks.append(model.sample(min(500, n - i), g, **kwargs).float().cpu())
    return torch.cat(chunks)


def sampling_options(args, model, family: str) -> dict:
    """--steps, --sampler and --guidance as keyword arguments of the model's ``sample``; an error for a
    model that has no sampler steps (they are only the diffusion and flow models')."""
    options = {k: getattr(args, k) for k in ("steps", "sampler", "guidance", "eta", "spacing")
               if getattr(args, k, None) is not None}
    if getattr(args, "clipped_eps", False):
        options["clipped_model_output"] = True
    if options and family not in SAMPLING_NAMES:
        flags = ", ".join(f"--{k}" for k in options)
        raise ValueError(f"{flags}: only for diffusion and flow models ({', '.join(SAMPLING_NAMES)}); "
                         f"this checkpoint holds a {family!r} model")
    if options.get("steps") is not None and options["steps"] < 1:
        raise ValueError(f"--steps must be at least 1, got {options['steps']}")
    if "guidance" in options and not getattr(model.config, "n_classes", 0):
        raise ValueError(f"--guidance is for a class-conditional model (cddpm, cflow, a latent-flow with classes); this checkpoint holds "
                         f"an unconditional {family!r} model")
    return options


PRETRAINED = "pretrained:"


def checkpoint_path(text: str) -> Path:
    """A checkpoint named on the command line: a path, or ``pretrained:NAME`` for a model shipped with the course
    (its sha256 checked first)."""
    if text.startswith(PRETRAINED):
        from genimg_course import pretrained

        return pretrained.path_of(text[len(PRETRAINED):])
    return Path(text)


def cmd_sample(args) -> int:
    """Write N generated images: a float32 array (N, C, H, W) in [0, 1] (.npy) or a grid (.png)."""
    import numpy as np
    import torch
    from torchvision.utils import save_image

    from genimg_course.zoo import load_checkpoint
    from genimg_course.common.runtime import pick_device

    out = Path(args.out)
    if out.suffix not in (".npy", ".png"):
        raise ValueError(f"--out must end in .npy (an array of images) or .png (a grid), got {str(out)!r}")
    if args.n < 1:
        raise ValueError(f"-n must be at least 1, got {args.n}")
    device = torch.device(args.device) if args.device else pick_device()
    model, payload = load_checkpoint(checkpoint_path(args.checkpoint), device=device)
    if args.dataset is not None:  # a check, for scripts: the data a checkpoint models is fixed when it is trained
        from genimg_course.common.data import canonical_name

        trained_on = payload.get("dataset")
        if canonical_name(args.dataset) != trained_on:
            raise ValueError(f"--dataset {args.dataset}: {str(args.checkpoint)!r} was trained on {trained_on!r}; "
                             f"train one on {args.dataset} with: genimg train {payload['family']} --dataset "
                             f"{args.dataset} --out DIR")
    sampling = sampling_options(args, model, payload["family"])
    labels = None
    if args.label is not None:
        if not getattr(model.config, "n_classes", 0):
            raise ValueError(f"--label is for a conditional model (cgan, cddpm, cflow, a latent-flow with classes); {str(args.checkpoint)!r} "
                             f"holds a {payload['family']!r} model")
        labels = torch.full((args.n,), args.label)  # the model itself rejects a class it does not know
    images = ((draw_samples(model, args.n, args.seed, labels, **sampling) + 1) / 2).clamp(0, 1)  # in [0, 1]
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, images.numpy().astype(np.float32))
    else:
        save_image(images, out, nrow=max(1, int(args.n**0.5)))
    print(f"wrote {args.n} {payload['family']} samples of shape {tuple(images.shape[1:])} to {out}")
    return 0


def cmd_eval(args) -> int:
    """Every metric of lesson 05 for a checkpoint (sampled here) or a .npy array of images in [0, 1]."""
    import json

    import numpy as np
    import torch

    from genimg_course.zoo import load_checkpoint
    from genimg_course.metrics import evaluate_images

    source = checkpoint_path(args.source)
    if args.n is not None and args.n < 1:
        raise ValueError(f"-n must be at least 1, got {args.n}")
    if source.suffix == ".npy":
        if any(getattr(args, k, None) is not None for k in ("steps", "sampler", "guidance", "eta", "spacing")):
            raise ValueError("--steps, --sampler, --guidance, --eta and --spacing are for sampling a checkpoint; "
                             f"{str(source)!r} already holds images")
        if not source.is_file():
            raise FileNotFoundError(f"No file {str(source)!r}")
        try:
            array = np.load(source, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f"{str(source)!r} is not a NumPy array file: {err}") from None
        if not isinstance(array, np.ndarray):  # np.load opens a .npz archive whatever the file is called
            names = ", ".join(array.files)
            array.close()
            raise ValueError(f"{str(source)!r} is a .npz archive (arrays: {names}), not a .npy array; save the "
                             "images with np.save (or genimg sample --out FILE.npy)")
        if array.ndim != 4:
            raise ValueError(f"{str(source)!r} holds an array of shape {array.shape}; expected (N, C, H, W)")
        if array.size == 0:
            raise ValueError(f"{str(source)!r} holds no images (shape {array.shape})")
        if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
            raise ValueError(f"{str(source)!r} holds {array.dtype} values; expected float images in [0, 1]")
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ValueError(f"{str(source)!r}: values must be finite and in [0, 1] (got min {np.nanmin(array):.3g}, "
                             f"max {np.nanmax(array):.3g}); save images as (x + 1) / 2 if they are in [-1, 1]")
        dataset = args.dataset or "digits"
        images, asked = torch.from_numpy(array.astype(np.float32)) * 2 - 1, None
        if args.n:
            images = images[: args.n]
        what = f"{len(images)} images from {source.name}"
    else:
        model, payload = load_checkpoint(source)
        sampling = sampling_options(args, model, payload["family"])
        dataset = args.dataset or payload["dataset"]
        if args.source.startswith(PRETRAINED) and not args.dataset:  # a shipped model's data, made here if need be
            from genimg_course import pretrained

            dataset = pretrained.dataset_of(args.source[len(PRETRAINED):])
        n = args.n or 1000
        k = getattr(model.config, "n_classes", 0)
        asked = torch.arange(n) % k if k else None  # a conditional model is asked for every class in turn
        images = draw_samples(model, n, args.seed, asked, **sampling)
        bad = int((~torch.isfinite(images)).flatten(1).any(1).sum())
        if bad:
            raise ValueError(f"{str(source)!r}: {bad} of the {n} samples contain NaN or infinite values (the model "
                             "diverged during training?); retrain it, e.g. with a lower learning rate")
        how = ", ".join(f"{k} {v}" for k, v in sampling.items())
        what = f"{n} samples of {payload['family']} ({source.name}{'; ' + how if how else ''})"
    if source.suffix != ".npy" and payload["family"] == "latent-flow" and dataset.startswith("folder"):
        # the student's own images: lesson 07's metrics (no classifier was trained on them)
        from genimg_course.latent import evaluate_folder

        results = evaluate_folder(model, images, dataset, seed=payload.get("extra", {}).get("seed", 0))
        if args.json:
            print(json.dumps(results))
            return 0
        print(f"{what}, against the {results['n_real']} held-out images of {dataset!r} (Laplacian-pyramid "
              "features, latent.pyramid_features; nothing downloaded):")
        for key in ("fid", "fid_floor", "precision", "recall", "density", "coverage", "nn_ratio_median",
                    "nn_ratio_median_held_out", "memorised_fraction"):
            print(f"  {key:<26} {results[key]:.4g}")
        return 0
    results = evaluate_images(images, dataset, asked=asked)
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{what}, against the {results['n_real']} test images of {dataset!r} (classifier features):")
    for key in ("fid", "kid", "precision", "recall", "density", "coverage", "inception_score", "classes_present",
                "largest_class_share", "memorised_fraction", "nn_ratio_median"):
        value = results[key]
        print(f"  {key:<20} {value:.4g}" if isinstance(value, float) else f"  {key:<20} {value}")
    if "conditional_accuracy" in results:
        print(f"  {'conditional_accuracy':<20} {results['conditional_accuracy']:.4g}  (asked for class k, got class k)")
    print(f"  {'class histogram':<20} {results['histogram']}")
    return 0


def cmd_grade(args) -> int:
    """Grade submitted notebooks; exit 0 only when every submission could be graded."""
    from genimg_course.course.grading.grader import Limits, grade_batch, summary_table
    from genimg_course.course.notebooks import find_course_root

    root = Path(args.root) if args.root else find_course_root()
    extra = None
    if args.extra_tests:
        extra_path = Path(args.extra_tests)
        if not extra_path.is_file():
            raise FileNotFoundError(f"--extra-tests: no file {str(extra_path)!r}")
        extra = extra_path.read_text(encoding="utf-8")
        compile(extra, str(extra_path), "exec")  # a syntax error here is the instructor's: report it now
    for name in ("timeout_cell", "timeout", "memory", "j"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    limits = Limits(timeout_cell=args.timeout_cell, timeout=args.timeout, memory=args.memory)
    results = grade_batch(args.submissions, Path(args.out), root, limits, jobs=args.j, lesson=args.lesson,
                          extra_tests=extra)
    print(summary_table(results))
    pages = len({r.student for r in results})
    from genimg_course.course.grading.grader import grading_batch_paths

    print(f"\nwrote {grading_batch_paths.get('grades', Path(args.out) / 'grades.csv')} and {pages} feedback page(s) "
          f"in {Path(args.out) / 'feedback'}")
    failed = [r for r in results if not r.graded]
    if failed:
        print(f"{len(failed)} submission(s) could not be graded (see the table).", file=sys.stderr)
    return 1 if failed else 0


def cmd_check(args) -> int:
    """Grade one saved notebook as ``genimg grade`` would and say what would cost points; exit 0 only for full marks
    with nothing to fix."""
    from genimg_course.course.grading.grader import Limits
    from genimg_course.course.handin import check_notebook, format_report

    limits = Limits(timeout_cell=args.timeout_cell, timeout=args.timeout, memory=args.memory)
    print(f"Grading the saved {Path(args.notebook).name} in a fresh kernel...", file=sys.stderr, flush=True)
    report = check_notebook(args.notebook, Path(args.root) if args.root else None, limits=limits)
    print(format_report(report, args.notebook))
    return 0 if report.full_marks and not any(report.costs.values()) and not report.warnings else 1


# genimg_course.zoo.MODELS's names, here so that the parser needs no torch (a test compares the two)
MODEL_NAMES = ("mlp-ae", "mlp-mmd", "vae", "conv-vae", "dcgan", "cgan", "ddpm", "flow", "cddpm", "cflow",
               "latent-flow")
DIFFUSION_NAMES = ("ddpm", "flow", "cddpm", "cflow")
SAMPLING_NAMES = DIFFUSION_NAMES + ("latent-flow",)  # the models whose sampler takes --steps, --sampler, --guidance
SAMPLER_NAMES = ("ddim", "ddpm", "heun", "euler")  # genimg_course.diffusion.SAMPLERS, all of them


def add_sampling_arguments(p) -> None:
    p.add_argument("--steps", type=int, help="sampler steps (diffusion and flow models; default: the model's, 25 "
                                             "for a model `genimg train` made)")
    p.add_argument("--sampler", choices=SAMPLER_NAMES,
                   help="heun (second order, 2K − 1 network evaluations; the default for a model `genimg train` "
                        "made), ddim or ddpm (ancestral) for ddpm/cddpm; heun (default) or euler for flow/cflow")
    p.add_argument("--eta", type=float, help="DDIM's stochasticity in [0, 1] (0, the default: deterministic; "
                                             "1: ancestral)")
    p.add_argument("--spacing", choices=("linspace", "trailing"),
                   help="which of the T steps a ddpm/cddpm sampler visits: trailing (T−1, T−1−T/K, …, T/K−1; the "
                        "default for a model `genimg train` made) or linspace (T−1 … 0)")
    p.add_argument("--clipped-eps", action="store_true",
                   help="ddpm/cddpm: carry forward the ε re-derived from the clipped x̂0, not the network's")
    p.add_argument("--guidance", type=float,
                   help="classifier-free guidance scale w for cddpm/cflow (0: ignore the label, 1: plain "
                        "conditional: the default, the best FID measured)")


def _user_errors() -> tuple[type[BaseException], ...]:
    """The errors reported as one line (exit 2) rather than a traceback; the course's own error classes only
    when their module was imported (an error cannot come from a module that never ran)."""
    errors: list[type[BaseException]] = [ValueError, SyntaxError, FileNotFoundError, NotADirectoryError]
    for module, name in (("genimg_course.common.checkpoint", "CheckpointError"),
                         ("genimg_course.common.data", "DatasetUnavailableError"),
                         ("genimg_course.course.grading.grader", "CourseChanged")):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="genimg", description="genimg-course: image generation with PyTorch.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="models shipped with the course (trained for tens of minutes; GENIMG_PRETRAINED=0 makes the lessons "
               "train everything themselves):\n"
               "  genimg sample pretrained:dcgan -n 64 --out grid.png\n"
               "  genimg eval pretrained:flow -n 1000\n"
               "  names: conv-vae, dcgan, cgan, ddpm, flow, cddpm, cflow, latent-flow")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("doctor", help="versions, device, profile and which datasets work offline")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("notebooks", help="build the student notebooks/ from solutions/")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if notebooks/ is out of date")
    p.add_argument("--force", action="store_true",
                   help="also write over student notebooks edited since genimg notebooks wrote them")
    p.add_argument("--root", help="the course folder (default: the nearest folder holding solutions/)")
    p.set_defaults(func=cmd_notebooks)

    p = sub.add_parser("workspace", help="your working copies of the lessons, in mywork/: copies the lessons you "
                                         "do not have yet, never writes over yours")
    p.add_argument("--dir", default="mywork", help="the working folder, relative to the course folder "
                                                   "(default: mywork)")
    p.add_argument("--root", help="the course folder (default: the nearest folder holding solutions/)")
    p.set_defaults(func=cmd_workspace)

    p = sub.add_parser("train", help="train a model; writes DIR/model.pt, DIR/history.json, DIR/samples.png")
    p.add_argument("model", choices=MODEL_NAMES, help="the model family")
    p.add_argument("--dataset", help="digits, shapes, mnist, fashion-mnist, cifar10 or folder:PATH (default: the "
                                     "profile's, digits on a CPU and mnist on a GPU, or digits when mnist cannot be "
                                     "downloaded); an online set asked for by name is downloaded once and cached, "
                                     "and is an error when it cannot be")
    p.add_argument("--profile", choices=["ci", "cpu", "gpu"], help="the hardware profile (default: automatic)")
    p.add_argument("--epochs", type=int, help="passes over the data (default: the profile's; with --seconds, no cap)")
    p.add_argument("--seconds", type=float, help="a training budget in seconds of wall time: training stops when "
                                                 "it is spent (or after --epochs, if given, whichever comes first)")
    p.add_argument("--snapshots", help="comma-separated times in seconds (e.g. 60,120,300): the model as it was at "
                                       "each is saved to DIR/snapshots/model_Ts.pt (quality against training time)")
    p.add_argument("--prediction", choices=("eps", "x0", "v"),
                   help="ddpm/cddpm: what the network predicts: v (the default), eps (the noise) or x0")
    p.add_argument("--zero-snr", action="store_true", help="ddpm/cddpm: rescale the schedule so that ᾱ_T = 0 "
                                                           "(needs --prediction v or x0)")
    p.add_argument("--time-sampling", choices=("uniform", "logit-normal"),
                   help="flow/cflow: the training times, logit-normal (the default) or uniform")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="generate images from a checkpoint or pretrained:NAME (.npy array in [0, 1] "
                                      "or .png grid)")
    p.add_argument("checkpoint", help="a model.pt written by genimg train, or pretrained:NAME for a model shipped "
                                      "with the course (pretrained:dcgan, pretrained:flow, ...; names in README)")
    p.add_argument("-n", type=int, default=64, help="number of images (default 64)")
    p.add_argument("--out", required=True, help="FILE.npy (float32 (N, C, H, W) in [0, 1]) or FILE.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    p.add_argument("--label", type=int, help="class index K: only class K (conditional models: cgan, cddpm, cflow, latent-flow on a folder with classes)")
    p.add_argument("--dataset", help="a check: an error unless the checkpoint was trained on this dataset "
                                     "(a checkpoint always samples the data it was trained on)")
    add_sampling_arguments(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("eval", help="FID, KID, precision/recall, ... for a checkpoint, pretrained:NAME or a .npy "
                                    "of images")
    p.add_argument("source", help="a model.pt (sampled here), pretrained:NAME (a model shipped with the course) "
                                  "or a .npy array (N, C, H, W) in [0, 1]")
    p.add_argument("--dataset", help="the dataset to compare with (default: the checkpoint's; digits for .npy)")
    p.add_argument("-n", type=int, help="number of samples (default 1000 for a checkpoint, all for .npy)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--seed", type=int, default=0)
    add_sampling_arguments(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("grade", help="grade submitted notebooks: DIR/grades.csv and DIR/feedback/STUDENT.html")
    p.add_argument("submissions", nargs="+", help="notebooks, a folder of them, or a folder per student")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--lesson", help="the lesson being graded, e.g. 01_preprocessing (default: what most are)")
    p.add_argument("--timeout-cell", type=int, default=60, help="seconds per cell (default 60)")
    p.add_argument("--timeout", type=int, default=300, help="seconds per notebook (default 300)")
    p.add_argument("--memory", type=int, default=2048, help="MB of memory per notebook (default 2048)")
    p.add_argument("-j", type=int, default=1, help="notebooks graded at the same time (default 1)")
    p.add_argument("--extra-tests", help="a Python file of instructor-only tests: def test_EXERCISE(fn): ...")
    p.add_argument("--root", help="the course folder holding notebooks/ (default: found from here)")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("check", help="before handing in: grade your saved notebook as `genimg grade` will and say "
                                     "what would cost points")
    p.add_argument("notebook", help="your notebook, e.g. mywork/03_vae.ipynb (the saved file is what is graded)")
    p.add_argument("--timeout-cell", type=int, default=60, help="seconds per cell (default 60, as genimg grade)")
    p.add_argument("--timeout", type=int, default=300, help="seconds per notebook (default 300, as genimg grade)")
    p.add_argument("--memory", type=int, default=2048, help="MB of memory (default 2048, as genimg grade)")
    p.add_argument("--root", help="the course folder holding notebooks/ (default: found from the notebook's folder)")
    p.set_defaults(func=cmd_check)

    args = parser.parse_args(argv)
    args.argv = ["genimg", *(sys.argv[1:] if argv is None else argv)]  # recorded with what a command writes
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"genimg {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - re-raised unless it is one of the expected errors
        if not isinstance(err, _user_errors()):
            raise
        print(f"genimg {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
