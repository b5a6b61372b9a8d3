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

from genimg_course.cli import main

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


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("genimg")
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "doctor" in result.stdout and "notebooks" in result.stdout
