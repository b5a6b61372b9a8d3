"""Install and CI plumbing: environment.yml, version ranges, README, .ci/run, the genimg command."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from genimg_course.course.cli import main

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
# conda-forge names some packages differently from PyPI
CONDA_NAMES = {"torch": {"pytorch", "pytorch-cpu"}}


def _environment_names() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            if item.startswith("-"):
                continue
            name = item.split("=")[0].split("<")[0].split(">")[0].split("[")[0].strip()
            names.add(canonicalize_name(name))
    return names


def test_environment_yml_has_every_runtime_dependency():
    names = _environment_names()
    missing = [r.name for r in RUNTIME
               if not ({canonicalize_name(r.name)} | CONDA_NAMES.get(r.name, set())) & names]
    assert not missing, f"runtime dependencies missing from environment.yml: {missing}"


@pytest.mark.parametrize("package,version", [("torch", "2.14.1"), ("torchvision", "0.29.1")])
def test_declared_ranges_admit_this_machines_torch(package, version):
    req = next(r for r in RUNTIME if r.name == package)
    assert Version(version) in req.specifier, f"{req} must admit {package}=={version}"
    assert not any(s.operator == "==" for s in req.specifier), "ranges in pyproject.toml, pins only in env files"


def test_readme_starts_with_the_two_commands():
    lines = [line.strip() for line in (ROOT / "README.md").read_text().splitlines()]
    commands = [line for line in lines if line.startswith("make ")]
    assert commands[:2] == ["make lab", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_genimg_doctor(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "profile: ci" in out
    assert "digits         available offline" in out
    assert "lessons train on: digits (colour sections: shapes)" in out  # the ci profile's data


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("genimg")
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "doctor" in result.stdout and "notebooks" in result.stdout


# ------------------------------------------------------------------ issue 14: Binder, Colab, the lesson list, the CLI
DEV = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["dev"]]


def _environment_pins() -> dict[str, str]:
    """{canonical name: pinned version} of environment.yml (conda `name=version` and pip `name==version`)."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pins = {}
    for dep in env["dependencies"]:
        for item in dep["pip"] if isinstance(dep, dict) else [dep]:
            if item.startswith("-"):
                continue
            req = Requirement(item) if "==" in item else Requirement(item.replace("=", "==", 1)) if "=" in item else None
            name = canonicalize_name(req.name if req else item.strip())
            version = next((s.version for s in req.specifier), None) if req else None
            pins[name] = version
    return pins


def test_environment_yml_and_pyproject_name_the_same_packages_with_versions_in_range():
    pins = _environment_pins()
    declared = {canonicalize_name(r.name): r for r in RUNTIME + DEV}
    assert set(pins) - {"python", "pip"} == set(declared), "environment.yml = the runtime dependencies + the dev extra"
    for name, req in declared.items():
        assert pins[name], f"environment.yml pins every package: {name} has no version"
        assert Version(pins[name]) in req.specifier, f"environment.yml pins {name}=={pins[name]}, outside {req}"
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    assert not [item for item in pip if item.split()[-1] == "."], \
        "Binder builds environment.yml before it copies the repository: install the course in postBuild"


def test_binder_postbuild_installs_the_course():
    post = ROOT / "postBuild"
    assert post.stat().st_mode & 0o111, "postBuild must be executable"
    lines = [line.strip() for line in post.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert "python -m pip install --no-deps ." in lines


def test_the_install_cell_uses_pyprojects_torch_ranges():
    from genimg_course.course import lessons

    declared = {r.name: str(r) for r in RUNTIME if r.name in ("torch", "torchvision")}
    assert {Requirement(r).name: str(Requirement(r)) for r in lessons.TORCH_REQUIREMENTS} == declared
    assert PYPROJECT["project"]["name"] == lessons.PACKAGE


def _make_dry_run(tmp_path, *args):
    for name in ("Makefile", "pyproject.toml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    result = subprocess.run(["make", "-n", "-B", *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if "pip install" in line]


@pytest.mark.parametrize("target", ["lab", "test"])
def test_make_torch_cpu_installs_cpu_wheels_first(tmp_path, target):
    pip = _make_dry_run(tmp_path, target, "TORCH=cpu")
    assert pip[1] == ".venv/bin/python -m pip install --quiet --index-url https://download.pytorch.org/whl/cpu torch torchvision"
    assert pip[2] == '.venv/bin/python -m pip install --quiet -e ".[dev,nbgrader]"'
    default = _make_dry_run(tmp_path, target)
    assert not any("download.pytorch.org" in line for line in default), "the default stays PyPI's build"


def test_readme_lesson_table_is_generated_from_the_lesson_list():
    from genimg_course.course import lessons

    readme = (ROOT / "README.md").read_text()
    assert lessons.readme_block() in readme, "README's lesson table is stale: run `genimg notebooks`"
    assert lessons.with_readme_block(readme) == readme
    block = readme[readme.index(lessons.README_BEGIN):readme.index(lessons.README_END)]
    for item in lessons.LESSONS:
        assert lessons.colab_badge(item.slug) in block and lessons.binder_badge(item.slug) in block
        assert item.colab_url() == (f"https://colab.research.google.com/github/{lessons.REPOSITORY}/blob/"
                                    f"{lessons.BRANCH}/notebooks/{item.slug}.ipynb")
        assert item.binder_url() == (f"https://mybinder.org/v2/gh/{lessons.REPOSITORY}/{lessons.BRANCH}"
                                     f"?urlpath=lab/tree/notebooks/{item.slug}.ipynb")


def test_a_lesson_without_a_badge_fails(monkeypatch):
    from genimg_course.course import lessons

    readme = (ROOT / "README.md").read_text()
    extra = lessons.Lesson("06_diffusion", "Diffusion", "DDPM")
    monkeypatch.setattr(lessons, "LESSONS", lessons.LESSONS + (extra,))
    assert lessons.readme_block() not in readme  # the test above would fail
    assert lessons.colab_url("06_diffusion") in lessons.readme_block()


def test_every_notebook_has_one_lesson_entry():
    from genimg_course.course import lessons

    slugs = [item.slug for item in lessons.LESSONS]
    assert slugs == sorted(p.stem for p in (ROOT / "solutions").glob("*.ipynb")), \
        "genimg_course/course/lessons.py LESSONS must list every notebook of solutions/, in order, once"
    assert all(item.title and item.summary for item in lessons.LESSONS)


def test_lesson_exercises_are_read_from_check_py_without_torch():
    from genimg_course.course import checks

    checks.load_all()  # declares every exercise
    from genimg_course.course import lessons
    from genimg_course.course.exercises import EXERCISES, exercises_for

    assert lessons.declared_exercises() == {n: (ex.lesson, ex.points) for n, ex in EXERCISES.items()}
    for item in lessons.LESSONS:
        assert item.exercises == [ex.name for ex in exercises_for(item.slug)]


def _torch_free(code: str) -> subprocess.CompletedProcess:
    probe = f"import sys\n{code}\nassert 'torch' not in sys.modules, 'imported torch'\nprint('NO TORCH')"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("argv", [["--help"], ["doctor", "--help"], ["notebooks", "--help"], ["train", "--help"]])
def test_cli_help_does_not_import_torch(argv):
    result = _torch_free(f"from genimg_course.course.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit as e:\n"
                         f"    assert e.code == 0, e.code")
    assert result.returncode == 0 and "NO TORCH" in result.stdout, result.stderr
    assert "usage: genimg" in result.stdout


def test_genimg_notebooks_does_not_import_torch(tmp_path):
    import shutil

    for folder in ("solutions", "notebooks"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    result = _torch_free(f"from genimg_course.course.cli import main\nmain(['notebooks', '--root', {str(tmp_path)!r}])\n"
                         f"assert main(['notebooks', '--check', '--root', {str(tmp_path)!r}]) == 0")
    assert result.returncode == 0 and "NO TORCH" in result.stdout, result.stderr + result.stdout
    import genimg_course.course.lessons  # noqa: F401 - and the lesson list itself is torch-free
    assert _torch_free("import genimg_course.course.lessons as L\nL.readme_block()\nL.bootstrap_source()").returncode == 0


def test_cli_model_names_match_the_zoo():
    from genimg_course.course.cli import MODEL_NAMES
    from genimg_course.zoo import MODELS

    assert list(MODEL_NAMES) == list(MODELS)


def test_cli_diffusion_and_sampler_names_match_the_zoo():
    from genimg_course import diffusion
    from genimg_course.course.cli import DIFFUSION_NAMES, SAMPLER_NAMES
    from genimg_course.zoo import MODELS

    assert list(DIFFUSION_NAMES) == [name for name, f in MODELS.items() if f.model is diffusion.DiffusionModel]
    samplers = set().union(*diffusion.SAMPLERS.values())
    assert set(SAMPLER_NAMES) == samplers and len(SAMPLER_NAMES) == len(samplers)


def test_cli_reports_course_errors_in_one_line(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["sample", str(bad), "--out", str(tmp_path / "x.png")]) == 2
    assert "genimg sample: error:" in capsys.readouterr().err
