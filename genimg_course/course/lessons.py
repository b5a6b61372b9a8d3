"""The lesson list, and where the course lives: one place for the repository, the links and the install cell.

Everything that names the repository (the README's Colab and Binder badges, the
course site's links, the first code cell of every notebook) is generated from
``REPOSITORY`` and ``BRANCH`` below; change them there and run ``genimg notebooks``.

No torch here: ``genimg notebooks`` and the course site import this module, and
the exercises of each lesson are read from the source of ``checks/lessonNN.py``, not imported.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

REPOSITORY = "genimg-course/genimg-course"  # GitHub owner/name
BRANCH = "main"
REPOSITORY_URL = f"https://github.com/{REPOSITORY}"
PACKAGE = "genimg-course"  # the distribution name (pyproject.toml); the import name is genimg_course
# What the install cell installs on a runtime without the course (non-editable: see bootstrap_source).
COURSE_REQUIREMENT = f"{PACKAGE} @ git+{REPOSITORY_URL}@{BRANCH}"
# The course's PyTorch ranges, exactly as pyproject.toml declares them (a test compares the two).
# Only ">=" and "<" clauses: the install cell compares versions without the `packaging` library.
TORCH_REQUIREMENTS = ("torch>=2.2", "torchvision>=0.17")


@dataclass(frozen=True)
class Lesson:
    slug: str  # the notebook's file name without .ipynb, e.g. "03_vae"
    title: str
    summary: str  # what you learn, one line

    @property
    def number(self) -> str:
        return self.slug[:2]

    @property
    def exercises(self) -> list[str]:
        """The names of the lesson's exercises, in the order its checks module declares them."""
        return [name for name, (lesson, _) in declared_exercises().items() if lesson == self.slug]

    def colab_url(self, folder: str = "notebooks") -> str:
        return colab_url(self.slug, folder)

    def binder_url(self, folder: str = "notebooks") -> str:
        return binder_url(self.slug, folder)


LESSONS: tuple[Lesson, ...] = (
    Lesson("00_setup_and_tour", "Setting up, and a tour of the data",
           "devices and profiles; the datasets as pictures"),
    Lesson("01_preprocessing", "Preprocessing images",
           "brightness, contrast, stretching, equalisation, colour balance, normalisation, augmentation, "
           "loading your own folder"),
    Lesson("02_mlp_generator", "From an autoencoder to an MLP generator",
           "an MLP autoencoder (reconstructs, does not generate), then an MLP generator trained with kernel MMD; "
           "the MMD witness function and a two-sample test"),
    Lesson("03_vae", "Variational autoencoders",
           "the ELBO and its gap to log p(x), reparameterisation, closed-form KL, Bernoulli and Gaussian decoders, "
           "MLP and conv VAEs, a 2-D latent map, a latent explorer widget, KL per dimension, a β sweep and "
           "posterior collapse, test ELBO and IWAE NLL in nats; forward vs reverse KL"),
    Lesson("04_gans", "Generative adversarial networks",
           "the GAN game and its losses; a 2-D GAN whose mode collapse you can see, the saturating loss failing, "
           "R1; WGAN-GP; DCGAN with hinge loss, spectral norm, augmentation and a moving average of G; a latent "
           "walk and truncation; a conditional GAN; a live training dashboard"),
    Lesson("05_evaluation", "Evaluating generative models",
           "FID, KID, precision/recall, density/coverage, a classifier Inception Score, class coverage and "
           "memorisation, on the course's own classifier; what each misses; every model of the course in one table"),
    Lesson("06_diffusion", "Diffusion models and flow matching",
           "the forward process and its schedules, DDPM with a small U-Net, DDIM, rectified flow, quality against "
           "sampler steps, scores and the probability-flow ODE on a 2-D toy, classifier-free guidance; diffusion "
           "joins the comparison table"),
    Lesson("07_your_images", "Your own images: Stable Diffusion in miniature",
           "a folder of your images audited (sizes, modes, EXIF, broken files, duplicates), a KL autoencoder and its "
           "latent scale factor, flow matching in latent space against pixel space, did it learn or copy (nearest "
           "neighbours), an offline evaluation validated on your folder; export a grid, a GIF and the checkpoint"),
)


def lesson(slug: str) -> Lesson:
    for item in LESSONS:
        if item.slug == slug:
            return item
    raise KeyError(f"No lesson {slug!r}; the lessons are {', '.join(x.slug for x in LESSONS)}")


# ------------------------------------------------------------------ exercises, without importing torch
@functools.cache
def declared_exercises() -> dict[str, tuple[str, int]]:
    """{exercise name: (lesson, points)} in declaration order, read from the ``@exercise(...)`` lines of checks/.

    Reading the source (rather than importing the checks, which import torch) keeps ``genimg notebooks`` and
    the site light; a test compares the result with ``genimg_course.course.exercises.EXERCISES``. A declaration whose
    lesson or points is not a literal falls back to importing the checks.
    """
    found: dict[str, tuple[str, int]] = {}
    nodes = [node for path in sorted(Path(__file__).with_name("checks").glob("lesson*.py"))
             for node in ast.parse(path.read_text(encoding="utf-8")).body]
    for node in nodes:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            func = getattr(deco, "func", None)
            if getattr(func, "id", getattr(func, "attr", None)) != "exercise":
                continue
            kwargs = {k.arg: k.value for k in deco.keywords}
            try:
                found[node.name] = (ast.literal_eval(kwargs["lesson"]), ast.literal_eval(kwargs["points"]))
            except (KeyError, ValueError):
                return _imported_exercises()
    return found


def _imported_exercises() -> dict[str, tuple[str, int]]:
    from genimg_course.course import checks

    checks.load_all()  # declares every exercise
    from genimg_course.course.exercises import EXERCISES

    return {name: (ex.lesson, ex.points) for name, ex in EXERCISES.items()}


# ------------------------------------------------------------------ links and badges
def colab_url(slug: str, folder: str = "notebooks") -> str:
    """Opens the notebook from GitHub in Colab."""
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/{folder}/{slug}.ipynb"


def binder_url(slug: str, folder: str = "notebooks") -> str:
    """Builds (or reuses) the repository's Binder image and opens the notebook in JupyterLab."""
    return f"https://mybinder.org/v2/gh/{REPOSITORY}/{BRANCH}?urlpath=lab/tree/{folder}/{slug}.ipynb"


COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
BINDER_BADGE = "https://mybinder.org/badge_logo.svg"


def colab_badge(slug: str, folder: str = "notebooks") -> str:
    return f"[![Open in Colab]({COLAB_BADGE})]({colab_url(slug, folder)})"


def binder_badge(slug: str, folder: str = "notebooks") -> str:
    return f"[![Launch Binder]({BINDER_BADGE})]({binder_url(slug, folder)})"


README_BEGIN, README_END = "<!-- lessons:begin -->", "<!-- lessons:end -->"


def readme_block() -> str:
    """The README's lesson table (between the markers, markers included): one row and two badges per lesson."""
    rows = [README_BEGIN,
            "<!-- generated from genimg_course/course/lessons.py by `genimg notebooks`: edit there, not here -->",
            "| notebook | what you learn | exercises | open |", "|---|---|---|---|"]
    for item in LESSONS:
        exercises = ", ".join(f"`{name}`" for name in item.exercises) or "none"
        rows.append(f"| `{item.slug}` | {item.summary} | {exercises} | "
                    f"{colab_badge(item.slug)} {binder_badge(item.slug)} |")
    rows.append(README_END)
    return "\n".join(rows)


def with_readme_block(text: str) -> str:
    """``text`` (README.md) with its marked block replaced by ``readme_block()``."""
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise ValueError(f"README.md has no '{README_BEGIN}' ... '{README_END}' block for the lesson list")
    return text[:begin] + readme_block() + text[end + len(README_END):]


# ------------------------------------------------------------------ the first code cell of every notebook
BOOTSTRAP_MARK = "# Colab, or any Python without the course:"
BOOTSTRAP_ID = "install-course"
_BOOTSTRAP = Template('''\
$mark install it; elsewhere this does nothing.
import importlib, importlib.metadata as md, importlib.util, os, re, site, subprocess, sys, tempfile
COURSE, MODULE = $requirement, $module
KEEP = $ranges  # [low, high): a torch in range is kept
if importlib.util.find_spec(MODULE):
    print(f"{MODULE} is installed: nothing to do")
    if os.environ.get("BINDER_LAUNCH_HOST") or os.environ.get("BINDER_REPO_URL"):  # set by mybinder.org
        print("Binder deletes this session and its files after ~10 idle minutes or when the tab closes: keep your "
              "answers with File → Download before you leave.")
else:
    def version(dist):  # the version installed on disk now; None when it cannot be told
        try:
            return md.version(dist)
        except Exception:
            return None
    # pip may replace a package this kernel has already imported (numpy, PIL...): the kernel would go on with the
    # old code next to the new files, which breaks in odd ways. So note their versions now, and compare after.
    dists = md.packages_distributions()  # import name -> distributions, e.g. PIL -> Pillow
    imported = {(m, d): version(d) for m in list(sys.modules) if "." not in m for d in dists.get(m, ())}
    pins = []
    for name, (low, high) in KEEP.items():
        if not (have := version(name)):
            continue
        v = tuple(int(x) for x in re.findall(r"\\d+", have.split("+")[0])[:3])
        if v >= low and (high is None or v < high):
            pins.append(f"{name}=={have}")  # a constraint: pip keeps this one, downloads nothing for it
        else:
            print(f"{name} {have} is outside the course's range: pip replaces it")
    cmd = [sys.executable, "-m", "pip", "install", "-q", COURSE]
    if pins:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("\\n".join(pins) + "\\n")
        cmd += ["-c", f.name]
    print("running:", " ".join(cmd), "| keeping:", ", ".join(pins) or "nothing")
    subprocess.check_call(cmd)
    importlib.invalidate_caches()  # a non-editable install is importable now, in this kernel
    for d in site.getsitepackages() + [site.getusersitepackages()]:
        if os.path.isdir(d) and d not in sys.path:
            sys.path.append(d)
    replaced = [f"{m} {was} (imported) with {now} (on disk)" for (m, d), was in imported.items()
                if was and (now := version(d)) not in (None, was)]
    if replaced:
        print("Restart the session (Runtime → Restart session) and run this cell again: the install replaced",
              ", ".join(replaced) + ", which this kernel cannot reload.")
    else:
        print(f"installed {MODULE} {importlib.import_module(MODULE).__version__}: no restart needed")''')


def torch_ranges() -> dict[str, tuple[tuple[int, ...], tuple[int, ...] | None]]:
    """{"torch": (low, high or None), ...} from ``TORCH_REQUIREMENTS``: low <= version < high."""
    ranges = {}
    for requirement in TORCH_REQUIREMENTS:
        name, clauses = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", requirement).groups()
        low, high = None, None
        for clause in filter(None, (c.strip() for c in clauses.split(","))):
            match = re.fullmatch(r"(>=|<)\s*(\d+(?:\.\d+)*)", clause)
            if not match:
                raise ValueError(f"{requirement!r}: the install cell understands only '>=X' and '<Y' clauses")
            op, version = match.groups()
            bound = tuple(int(x) for x in version.split("."))
            low, high = (bound, high) if op == ">=" else (low, bound)
        if low is None:
            raise ValueError(f"{requirement!r}: the install cell needs a lower bound ('>=')")
        ranges[name] = (low, high)
    return ranges


def bootstrap_source(requirement: str = COURSE_REQUIREMENT, module: str = "genimg_course") -> str:
    """The first code cell of every notebook (stdlib only: it runs before the course exists).

    When ``module`` imports, it prints one line. Otherwise it pip-installs ``requirement`` *non-editable* (an
    editable install is only seen by a new process), keeps a torch/torchvision already inside the course's
    range by passing the installed version as a pip constraint, then makes the package importable in the
    same kernel. When the install replaced on disk a package the kernel had already imported (numpy, PIL...: the
    versions, from ``importlib.metadata``, of the top-level modules of ``sys.modules`` before pip, against after),
    it prints one line asking for a restart instead. Tests pass a local ``requirement`` and ``module`` to run it
    without a network.
    """
    return _BOOTSTRAP.substitute(mark=BOOTSTRAP_MARK, requirement=repr(requirement), module=repr(module),
                                 ranges=repr(torch_ranges()))
