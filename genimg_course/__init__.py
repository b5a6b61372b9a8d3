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

from genimg_course.runtime import PROFILES, Run, setup  # noqa: E402

__all__ = ["PROFILES", "Run", "setup", "__version__"]
