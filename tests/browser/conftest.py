"""Browser tests: the course in a real JupyterLab in headless Chromium, and the rendered course site.

They are off by default (they need a Chromium and Playwright, and take a few minutes): ``make unit``
and ``pytest tests`` skip them, saying how to turn them on. ``make test-browser`` runs them
(``GENIMG_BROWSER=1``); ``.ci/run`` sets ``GENIMG_BROWSER=require``, which makes a missing Chromium or
Playwright an error instead of a skip, so CI cannot pass by skipping.

The browser is the system's Chromium (Debian: ``apt-get install chromium``; another one with
``GENIMG_CHROMIUM=/path/to/chrome``), driven by Playwright for Python with ``executable_path`` set to it:
``playwright install`` (a browser download) is never needed. Screenshots of every check go to
``browser-artifacts/`` (``GENIMG_BROWSER_ARTIFACTS`` to change it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ENABLE = "GENIMG_BROWSER"
HOW = ("browser tests are off: run `make test-browser` (or GENIMG_BROWSER=1 pytest tests/browser); "
       "they need Chromium (`apt-get install chromium`, or GENIMG_CHROMIUM=/path/to/chrome) and "
       "Playwright (`pip install -e '.[browser]'`; no `playwright install` needed)")


def chromium_path() -> str | None:
    """The Chromium to drive: $GENIMG_CHROMIUM, else `chromium` (Debian) or `chromium-browser` on PATH."""
    return os.environ.get("GENIMG_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def why_not() -> str | None:
    """None when the browser tests can run, else the reason they cannot."""
    if os.environ.get(ENABLE, "").strip().lower() not in ("1", "yes", "true", "require"):
        return HOW
    if chromium_path() is None:
        return "no Chromium found: `apt-get install chromium` (Debian/Ubuntu) or set GENIMG_CHROMIUM=/path/to/chrome"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed: `pip install -e '.[browser]'` (no browser download needed)"
    return None


def pytest_collection_modifyitems(config, items):
    mine = [item for item in items if HERE in Path(str(item.fspath)).resolve().parents]
    if not mine:
        return
    reason = why_not()
    if reason is None:
        return
    if os.environ.get(ENABLE, "").strip().lower() == "require":
        raise pytest.UsageError(f"{ENABLE}=require, but the browser tests cannot run: {reason}")
    for item in mine:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots (and the JupyterLab log, and the test's site build) are saved."""
    path = Path(os.environ.get("GENIMG_BROWSER_ARTIFACTS", REPO / "browser-artifacts")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_json(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


class Lab:
    """A JupyterLab server on localhost serving a temporary copy of notebooks/ and solutions/."""

    def __init__(self, root: Path, port: int, token: str, process: subprocess.Popen, log: Path):
        self.root, self.port, self.token, self.process, self.log = root, port, token, process, log

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/lab/tree/{path}?token={self.token}&reset"

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


@pytest.fixture(scope="session")
def lab(artifacts):
    """Start JupyterLab (a free port, a token, --no-browser) on a temporary copy of the course's notebooks, so
    nothing in the repository gets outputs or checkpoints. Kernels get GENIMG_PROFILE=ci (fast) and
    GENIMG_DASHBOARD=widget (the test suite's own conftest asks for text dashboards; a browser draws widgets)."""
    tmp = Path(tempfile.mkdtemp(prefix="genimg-lab-"))
    root = tmp / "course"
    for folder in ("notebooks", "solutions"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("checkpoints", ".ipynb_checkpoints"))
    settings = tmp / "settings"
    # every cell in the DOM (JupyterLab 4 otherwise only renders the cells in view), and no news pop-up
    write_json(settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings",
               '{"windowingMode": "none"}')
    write_json(settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings",
               '{"fetchNews": "false", "checkForUpdates": false}')
    env = dict(os.environ)
    for name in ("MPLBACKEND", "GENIMG_STRICT", "GENIMG_DASHBOARD", "JUPYTER_PLATFORM_DIRS"):
        env.pop(name, None)  # inline figures, a student's (non-strict) checks, widgets
    env.update(GENIMG_PROFILE="ci", GENIMG_DASHBOARD="widget", JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTER_CONFIG_DIR=str(tmp / "config"))
    port, token = free_port(), os.urandom(16).hex()
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if hasattr(os, "getuid") and os.getuid() == 0:
        command.append("--allow-root")  # containers and CI run as root
    log = artifacts / "jupyterlab.log"
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Lab(root, port, token, process, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {process.returncode}:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within 120 s:\n{server.log_tail()}")
            time.sleep(0.5)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (the system's) driven by Playwright. --no-sandbox: CI runs as root."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.failed_call = report.failed


@pytest.fixture
def page(browser, artifacts, request):
    """A fresh browser tab; when the test fails, a screenshot of the whole page is saved as FAILED-<test>.png."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
        if getattr(request.node, "failed_call", False):
            page.screenshot(path=str(artifacts / f"FAILED-{request.node.name}.png"), full_page=True)
    finally:
        context.close()
