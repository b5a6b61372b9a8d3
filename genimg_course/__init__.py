"""genimg-course: image generation with deep generative models, in PyTorch.

The notebooks import the reference implementations from here::

    import genimg_course
    run = genimg_course.setup()      # device, seeds and the profile's settings
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("genimg-course")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["PROFILES", "Run", "setup", "__version__"]


def __getattr__(name):
    # Imported on first use, so tools that need no torch (the grader's worker processes) start fast and small.
    if name in ("PROFILES", "Run", "setup"):
        from genimg_course.common import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'genimg_course' has no attribute {name!r}")
