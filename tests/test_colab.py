"""The first code cell of every notebook: installs the course on a fresh runtime (Colab), does nothing elsewhere.

The cell's logic is tested by executing its exact source with ``subprocess`` and ``importlib`` mocked (no
network); then, in a real running kernel, it installs a tiny local package and the same kernel imports it,
where the old README's ``pip install -e`` left the kernel with ``ModuleNotFoundError``.
"""

import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from genimg_course.course import lessons

TORCH_VERSIONS = {"torch": "2.5.1+cu121", "torchvision": "0.20.1+cu121"}  # what a Colab runtime might have


def run_cell(monkeypatch, importable: bool, versions: dict[str, str], source: str | None = None):
    """Execute the install cell with mocks; returns (pip commands run, constraint files' text, printed text)."""
    calls, constraints = [], []

    def find_spec(name, *args):
        return object() if importable else None

    def version(name):
        if name not in versions:
            raise importlib.metadata.PackageNotFoundError(name)
        return versions[name]

    def check_call(cmd, *args, **kwargs):
        calls.append(cmd)
        if "-c" in cmd:
            constraints.append(Path(cmd[cmd.index("-c") + 1]).read_text())
        return 0

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setattr(subprocess, "check_call", check_call)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("the cell must use check_call only"))
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        exec(compile(source or lessons.bootstrap_source(), "install-cell", "exec"), {})
    return calls, constraints, out.getvalue()


def test_the_cell_is_short_stdlib_only_and_names_the_repository():
    source = lessons.bootstrap_source()
    assert source.startswith(lessons.BOOTSTRAP_MARK) and len(source.splitlines()) <= 48
    assert repr(lessons.COURSE_REQUIREMENT) in source
    assert lessons.COURSE_REQUIREMENT == f"genimg-course @ git+https://github.com/{lessons.REPOSITORY}@{lessons.BRANCH}"
    assert " -e" not in source and "editable" not in source.replace("non-editable", "")
    imported = {name.strip().split(" as ")[0].split(".")[0]
                for line in source.splitlines() if line.startswith("import ") for name in line[7:].split(",")}
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


def test_importable_course_runs_nothing(monkeypatch):
    for name in ("BINDER_LAUNCH_HOST", "BINDER_REPO_URL"):
        monkeypatch.delenv(name, raising=False)
    calls, _, out = run_cell(monkeypatch, importable=True, versions=TORCH_VERSIONS)
    assert calls == []
    assert out == "genimg_course is installed: nothing to do\n"


def test_on_binder_the_first_cell_says_how_to_keep_the_work(monkeypatch):
    for name in ("BINDER_LAUNCH_HOST", "BINDER_REPO_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BINDER_LAUNCH_HOST", "https://mybinder.org/")
    _, _, out = run_cell(monkeypatch, importable=True, versions=TORCH_VERSIONS)
    assert out.splitlines()[0] == "genimg_course is installed: nothing to do"
    assert "Binder deletes this session" in out and "File → Download" in out


def test_torch_in_range_is_kept_as_a_constraint(monkeypatch):
    calls, constraints, out = run_cell(monkeypatch, importable=False, versions=TORCH_VERSIONS)
    assert len(calls) == 1
    cmd = calls[0]
    assert cmd[:6] == [sys.executable, "-m", "pip", "install", "-q", lessons.COURSE_REQUIREMENT]
    assert cmd[6] == "-c" and len(cmd) == 8
    assert constraints == ["torch==2.5.1+cu121\ntorchvision==0.20.1+cu121\n"]
    assert "keeping: torch==2.5.1+cu121, torchvision==0.20.1+cu121" in out
    assert out.rstrip().endswith("no restart needed")


def test_torch_out_of_range_or_missing_is_not_pinned(monkeypatch):
    calls, constraints, out = run_cell(monkeypatch, importable=False, versions={"torch": "2.1.0", "torchvision": "0.16.0"})
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", lessons.COURSE_REQUIREMENT]]
    assert constraints == []
    assert "torch 2.1.0 is outside the course's range: pip replaces it" in out
    calls, constraints, _ = run_cell(monkeypatch, importable=False, versions={})  # no torch at all
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", lessons.COURSE_REQUIREMENT]]
    # torch in range but torchvision too old: only torch is kept, pip picks the torchvision that matches it
    _, constraints, _ = run_cell(monkeypatch, importable=False, versions={"torch": "2.4.0", "torchvision": "0.9.0"})
    assert constraints == ["torch==2.4.0\n"]


def test_upper_bounds_and_prereleases(monkeypatch):
    monkeypatch.setattr(lessons, "TORCH_REQUIREMENTS", ("torch>=2.2,<3", "torchvision>=0.17"))
    assert lessons.torch_ranges() == {"torch": ((2, 2), (3,)), "torchvision": ((0, 17), None)}
    source = lessons.bootstrap_source()
    _, constraints, _ = run_cell(monkeypatch, False, {"torch": "3.0.0", "torchvision": "0.30.0"}, source)
    assert constraints == ["torchvision==0.30.0\n"]
    _, constraints, _ = run_cell(monkeypatch, False, {"torch": "2.6.0.dev20250101+cpu"}, source)
    assert constraints == ["torch==2.6.0.dev20250101+cpu\n"]
    monkeypatch.setattr(lessons, "TORCH_REQUIREMENTS", ("torch~=2.2",))
    with pytest.raises(ValueError, match="only"):  # the cell understands >= and < only: fail loudly, not silently
        lessons.torch_ranges()


# ------------------------------------------------------------------ in a real kernel
def _wheel(folder: Path, name: str, module: str, version: str = "0.1", requires: tuple[str, ...] = ()) -> Path:
    """A minimal pure-Python wheel (no build step, no network)."""
    init = ("from importlib.metadata import version\n\n"  # like genimg_course: the version from its installed metadata
            f"__version__ = version({name!r})\n\n\ndef hello():\n    return 'hello from the same kernel'\n")
    name = name.replace("-", "_")  # the wheel's file name and .dist-info use the normalised name
    info = f"{name}-{version}.dist-info"
    files = {f"{module}/__init__.py": init,
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                 + "".join(f"Requires-Dist: {r}\n" for r in requires),
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join(record + [f"{info}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return wheel


def _source_tree(folder: Path, name: str, module: str) -> Path:
    (folder / module).mkdir(parents=True)
    (folder / module / "__init__.py").write_text("")
    (folder / "pyproject.toml").write_text(f'[build-system]\nrequires = ["setuptools"]\nbuild-backend = '
                                           f'"setuptools.build_meta"\n[project]\nname = "{name}"\nversion = "0.1"\n'
                                           f'[tool.setuptools]\npackages = ["{module}"]\n')
    return folder


def _fresh_venv(venv: Path) -> str:
    """A new, empty virtual environment that sees this one's packages (ipykernel, pip, torch) read-only; its purelib."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "_course_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return purelib


@pytest.fixture
def fresh_kernel(tmp_path):
    """A kernel in a new, empty virtual environment that sees this one's packages (ipykernel, pip, torch) read-only."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    venv = tmp_path / "venv"
    purelib = _fresh_venv(venv)
    spec_dir = tmp_path / "kernels" / "fresh-runtime"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [str(venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fresh runtime", "language": "python",
        "env": {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"}}))
    km = KernelManager(kernel_name="fresh-runtime", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_dir.parent)]))
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)

    def execute(code: str) -> tuple[str, list[str]]:
        out, errors = [], []

        def hook(msg):
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                errors.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")

        kc.execute_interactive(code, output_hook=hook, timeout=240)
        return "".join(out), errors

    yield execute, purelib
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def test_the_cell_makes_the_course_importable_in_the_same_kernel(tmp_path, fresh_kernel):
    execute, purelib = fresh_kernel
    out, errors = execute("import os, sys; print(os.getpid(), sys.prefix)")
    assert not errors
    pid = out.split()[0]

    # the bug of the old README cell: an editable install is not importable by the kernel that ran pip
    old = _source_tree(tmp_path / "old_course", "old-course", "old_course_pkg")
    out, errors = execute(f"import subprocess, sys\nsubprocess.check_call([sys.executable, '-m', 'pip', 'install', '-q', "
                          f"'--no-build-isolation', '-e', {str(old)!r}])\nimport old_course_pkg")
    assert errors == ["ModuleNotFoundError: No module named 'old_course_pkg'"], (out, errors)

    # the install cell, with a local wheel in place of the repository's URL: same kernel, importable at once
    wheel = _wheel(tmp_path, "tiny-course", "tiny_course_pkg")
    cell = lessons.bootstrap_source(requirement=f"tiny-course @ {wheel.as_uri()}", module="tiny_course_pkg")
    out, errors = execute(cell)
    assert not errors, (out, errors)
    assert "keeping: torch==" in out, out  # this environment's torch is in range: pinned, not reinstalled
    assert "installed tiny_course_pkg 0.1: no restart needed" in out
    out, errors = execute("import os, tiny_course_pkg\nprint(os.getpid(), tiny_course_pkg.hello(), tiny_course_pkg.__file__)")
    assert not errors, errors
    assert out.split()[0] == pid, "the same kernel process"
    assert "hello from the same kernel" in out and out.split()[-1].startswith(purelib)  # a normal install, in the venv
    out, errors = execute(cell)  # run again: now it does nothing
    assert out == "tiny_course_pkg is installed: nothing to do\n" and not errors


# ------------------------------------------------------------------ a package the kernel had imported, replaced on disk
def _install_after_importing_fakepkg_1(tmp_path: Path, course_requires: str) -> str:
    """In a fresh runtime that has imported fakepkg 1.0, run the install cell on a local course wheel requiring
    ``course_requires`` (pip offline: fakepkg 1.0 and 2.0 from a local folder); what the runtime printed."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    fakepkg_1 = _wheel(wheels, "fakepkg", "fakepkg", "1.0")
    _wheel(wheels, "fakepkg", "fakepkg", "2.0")
    course = _wheel(tmp_path, "tiny-course", "tiny_course_pkg", requires=(course_requires,))
    venv = tmp_path / "venv"
    _fresh_venv(venv)
    python = str(venv / "bin" / "python")
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PYTHONNOUSERSITE": "1", "PYTHONIOENCODING": "utf-8"}
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(fakepkg_1)], env=env, check=True, timeout=120)
    cell = lessons.bootstrap_source(requirement=f"tiny-course @ {course.as_uri()}", module="tiny_course_pkg")
    runtime = ("import fakepkg  # imported before the install cell, as a Colab kernel has numpy or PIL\n" + cell
               + "\nimport importlib.metadata\nprint('live', fakepkg.__version__, 'disk', importlib.metadata.version('fakepkg'))\n")
    done = subprocess.run([python, "-c", runtime], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_replaced_imported_package_asks_for_a_restart(tmp_path):
    out = _install_after_importing_fakepkg_1(tmp_path, "fakepkg==2.0")
    assert out.splitlines()[-1] == "live 1.0 disk 2.0", out  # the situation: the kernel runs 1.0, the disk has 2.0
    restart = [line for line in out.splitlines() if "Restart" in line]
    assert restart == ["Restart the session (Runtime → Restart session) and run this cell again: the install replaced "
                       "fakepkg 1.0 (imported) with 2.0 (on disk), which this kernel cannot reload."], out
    assert "no restart needed" not in out


def test_no_restart_line_when_nothing_imported_was_replaced(tmp_path):
    out = _install_after_importing_fakepkg_1(tmp_path, "fakepkg>=1.0")  # 1.0 satisfies it: pip leaves it alone
    assert out.splitlines()[-1] == "live 1.0 disk 1.0", out
    assert "installed tiny_course_pkg 0.1: no restart needed" in out
    assert "Restart" not in out and "restart the session" not in out.lower(), out
