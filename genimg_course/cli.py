"""The ``genimg`` command: ``genimg doctor``, ``genimg notebooks [--check]``."""

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
    from genimg_course.data import data_dir, offline_status
    from genimg_course.runtime import pick_device, resolve_profile

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
    print(f"datasets (cache: {data_dir()}):")
    for name, ok in offline_status().items():
        state = "available offline" if ok is True else ("not cached: downloads on first use (needs network)"
                                                         if ok is False else ok)
        print(f"  {name:<14} {state}")
    return 0


def cmd_notebooks(args) -> int:
    """Write notebooks/ from solutions/, or report what differs with --check."""
    from genimg_course.notebooks import BuildError, build, find_course_root

    try:
        root = Path(args.root) if args.root else find_course_root()
        changes = build(root, check=args.check)
    except (BuildError, FileNotFoundError) as err:
        print(f"genimg notebooks: {err}", file=sys.stderr)
        return 2
    for change in changes:
        verb = "differs" if args.check else "wrote"
        print(f"{verb}: {change.path.relative_to(root)} ({change.why})")
    if args.check and changes:
        print("notebooks/ is not what solutions/ builds: run `genimg notebooks` (or `make notebooks`) "
              "and commit the result.", file=sys.stderr)
        return 1
    if not changes:
        print("notebooks/ and solutions/ are up to date.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genimg", description="genimg-course: image generation with PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("doctor", help="versions, device, profile and which datasets work offline")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("notebooks", help="build the student notebooks/ from solutions/")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if notebooks/ is out of date")
    p.add_argument("--root", help="the course folder (default: the nearest folder holding solutions/)")
    p.set_defaults(func=cmd_notebooks)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
