"""The course as a static web site: every solved notebook run in one profile, rendered to HTML, plus an index.

    python -m genimg_course.course.site --profile cpu --out site      # what `make site PROFILE=cpu` runs

Each notebook of ``solutions/`` runs top to bottom in its own fresh kernel (nbclient), in the chosen profile,
with strict checks, inside a scratch copy of the folder (so the repository gets no outputs and no
checkpoints; lessons run in order, so lesson 05 finds the models of 02 to 04). Its wall time, kernel start
included, is measured. Each is rendered with nbconvert's HTMLExporter (figures embedded as PNG data URIs,
widgets as their final state), and ``index.html`` lists the lessons: what each teaches, its exercises,
the time it took in this build, and links to open it in Colab or on Binder (from ``lessons.py``).
``timings.json`` records the same numbers for benchmarks/RESULTS.md.

Imports no torch: the notebooks run in their own kernels.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import nbformat

from genimg_course.course import lessons

PROFILES = ("ci", "cpu", "gpu")
REPO = Path(__file__).resolve().parents[2]  # genimg_course/course/site.py → the repository


@dataclass
class Page:
    slug: str
    title: str
    summary: str
    exercises: list[str]
    seconds: float = 0.0
    error: str | None = None  # the first line of the error when the notebook failed
    figures: int = 0  # <img> with PNG data in the rendered page
    colab: str = ""
    binder: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def file(self) -> str:
        return f"{self.slug}.html"


def describe_lesson(path: Path, nb) -> Page:
    """The lesson's title, summary and exercises from lessons.py; for a notebook not listed there, its heading."""
    slug = path.stem
    try:
        item = lessons.lesson(slug)
        return Page(slug, item.title, item.summary, item.exercises, colab=item.colab_url(), binder=item.binder_url())
    except KeyError:
        heading = next((line.lstrip("# ").strip() for cell in nb.cells if cell.cell_type == "markdown"
                        for line in cell.source.splitlines() if line.startswith("# ")), slug)
        return Page(slug, heading, "", [], colab=lessons.colab_url(slug), binder=lessons.binder_url(slug))


def kernel_env(profile: str) -> dict[str, str]:
    """The kernels' environment: the profile, strict checks, inline figures, widget dashboards."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the test suite sets Agg; the kernel must choose its inline backend
    env.update(GENIMG_PROFILE=profile, GENIMG_STRICT="1", GENIMG_DASHBOARD="widget")
    return env


def execute(nb, workdir: Path, profile: str, timeout: int) -> tuple[float, str | None]:
    """Run ``nb`` in place in a fresh kernel with ``workdir`` as its working directory.

    Returns (wall seconds including the kernel's start, None) or (seconds, the error's first line)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}},
                            store_widget_state=True, record_timing=True)
    start = time.perf_counter()
    try:
        client.execute(env=kernel_env(profile), cwd=str(workdir))
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        lines = [line for line in str(error).splitlines() if line.strip()]
        message = next((line for line in reversed(lines) if re.match(r"\w*(Error|Exception|Interrupt)\b", line)),
                       lines[-1] if lines else type(error).__name__)
        return time.perf_counter() - start, message
    return time.perf_counter() - start, None


NAV_STYLE = """
.genimg-nav { position: sticky; top: 0; z-index: 100; background: #24292f; color: #eee; padding: .5em 1em;
              font: 14px system-ui, sans-serif; display: flex; gap: 1.2em; flex-wrap: wrap; align-items: center; }
.genimg-nav a { color: #9cd0ff; text-decoration: none; }
.genimg-nav .failed { color: #ff9c9c; font-weight: bold; }
"""
INDEX_STYLE = NAV_STYLE + """
body { font-family: system-ui, sans-serif; margin: 0; color: #222; }
main.index { max-width: 1100px; margin: 2em auto; padding: 0 1em; }
main.index table { border-collapse: collapse; width: 100%; }
main.index th, main.index td { border-bottom: 1px solid #ddd; padding: .6em .5em; text-align: left; vertical-align: top; }
main.index td.num { text-align: right; white-space: nowrap; }
main.index code { background: #f3f3f3; padding: 0 .2em; }
a.button { display: inline-block; margin: .1em 0; padding: .15em .5em; border: 1px solid #888; border-radius: 4px;
           text-decoration: none; color: #222; font-size: 90%; white-space: nowrap; }
.failed { color: #b00; font-weight: bold; }
"""


def navigation(page: Page, profile: str) -> str:
    state = (f'<span class="failed">this notebook failed: {html.escape(page.error)}</span>' if page.error
             else f"ran top to bottom in {page.seconds:.0f} s (profile <code>{profile}</code>)")
    return (f'<nav class="genimg-nav"><a href="index.html">← genimg-course</a>'
            f"<b>{html.escape(page.slug[:2])} · {html.escape(page.title)}</b><span>{state}</span>"
            f'<a href="{html.escape(page.colab)}">Open in Colab</a>'
            f'<a href="{html.escape(page.binder)}">Launch Binder</a></nav>')


def for_reading(nb):
    """A copy of ``nb`` whose install cell (30 lines that do nothing on a machine with the course) is one line
    saying what it does: the site is read, not run."""
    nb = nbformat.from_dict(nb)  # a deep copy
    for cell in nb.cells:
        if cell.get("id") == lessons.BOOTSTRAP_ID or cell.source.startswith(lessons.BOOTSTRAP_MARK):
            cell.source = ("# The notebook's first cell installs the course where it is missing (Colab): "
                           "pip install genimg-course")
            cell.outputs = []
    return nb


def render_lesson(nb, page: Page, profile: str) -> str:
    """The executed notebook as one self-contained HTML page (figures as data URIs), with a navigation bar."""
    from nbconvert import HTMLExporter

    nb = for_reading(nb)
    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": f"{page.slug} · genimg-course"}})
    # nbconvert's MathJax configuration turns on automatic line breaking, which breaks a formula in a Markdown
    # table cell after every operator (the cell is measured before the formula is laid out): turn it off
    body = re.sub(r"(CommonHTML:\s*\{\s*linebreaks:\s*\{\s*automatic:\s*)true", r"\1false", body)
    bar = f"<style>{NAV_STYLE}</style>" + navigation(page, profile)
    body, n = re.subn(r"(<body[^>]*>)", lambda m: m.group(1) + bar, body, count=1)
    if not n:
        body = bar + body
    page.figures = len(re.findall(r'<img[^>]+src="data:image/png;base64,', body))
    return body


def render_index(pages: list[Page], profile: str, total: float) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "?"
    rows = []
    for page in pages:
        exercises = ", ".join(f"<code>{html.escape(name)}</code>" for name in page.exercises) or "none"
        time_cell = (f'<span class="failed">failed after {page.seconds:.0f} s</span>' if page.error
                     else f"{page.seconds:.0f} s")
        rows.append(
            f'<tr><td class="num">{html.escape(page.slug[:2])}</td>'
            f'<td><a href="{page.file}"><b>{html.escape(page.title)}</b></a><br>{html.escape(page.summary)}</td>'
            f"<td>{exercises}</td><td class=\"num\">{time_cell}</td>"
            f'<td><a class="button" href="{html.escape(page.colab)}">Open in Colab</a><br>'
            f'<a class="button" href="{html.escape(page.binder)}">Launch Binder</a></td></tr>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>genimg-course: image generation in PyTorch</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{INDEX_STYLE}</style></head>
<body><main class="index">
<h1>genimg-course: image generation with deep generative models, in PyTorch</h1>
<p>Each lesson is a Jupyter notebook that explains, shows and asks. The pages below are the solved notebooks,
run top to bottom in the <code>{profile}</code> profile on {html.escape(platform.machine())} with
{os.cpu_count()} CPU cores (PyTorch {html.escape(torch_version)}, Python {platform.python_version()}),
on {when}; the whole build took {total:.0f} s. To work on a lesson yourself, open its student notebook in
Colab or on Binder, or clone the repository and run <code>make lab</code>.
Widgets (the latent explorer, the training dashboards) show their final state, drawn by
the ipywidgets script from a CDN.</p>
<table><thead><tr><th>#</th><th>lesson: what you learn</th><th>exercises</th><th>time to run ({profile})</th>
<th>open</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<p>Source: <a href="{lessons.REPOSITORY_URL}">{lessons.REPOSITORY_URL}</a></p>
</main></body></html>
"""


def build(out: Path | str = "site", profile: str = "cpu", solutions: Path | str = REPO / "solutions",
          only: list[str] | None = None, timeout: int = 3600, log=print) -> list[Page]:
    """Run and render every solved notebook (or those whose names start with one of ``only``) into ``out``."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; the profiles are {', '.join(PROFILES)}")
    out, solutions = Path(out), Path(solutions)
    paths = sorted(p for p in solutions.glob("[0-9][0-9]_*.ipynb")
                   if not only or any(p.stem.startswith(prefix) for prefix in only))
    if not paths:
        raise FileNotFoundError(f"no notebooks NN_*.ipynb in {solutions}" + (f" matching {only}" if only else ""))
    out.mkdir(parents=True, exist_ok=True)
    pages: list[Page] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="genimg-site-") as scratch:
        work = Path(scratch)
        for path in paths:
            shutil.copy(path, work / path.name)
        for path in paths:
            nb = nbformat.read(work / path.name, as_version=4)
            page = describe_lesson(path, nb)
            log(f"{path.name}: running in the {profile} profile ...", flush=True)
            page.seconds, page.error = execute(nb, work, profile, timeout)
            (out / page.file).write_text(render_lesson(nb, page, profile), encoding="utf-8")
            status = f"FAILED: {page.error}" if page.error else "ok"
            log(f"{path.name}: {page.seconds:.1f} s, {page.figures} figures, {status} -> {out / page.file}", flush=True)
            pages.append(page)
    total = time.perf_counter() - start
    (out / "index.html").write_text(render_index(pages, profile, total), encoding="utf-8")
    record = {"profile": profile, "total_seconds": round(total, 1), "cpu_count": os.cpu_count(),
              "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "lessons": [{k: v for k, v in asdict(p).items() if k not in ("extra",)} | {"seconds": round(p.seconds, 1)}
                          for p in pages]}
    (out / "timings.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    log(f"site: {len(pages)} lessons in {total:.0f} s -> {out / 'index.html'}", flush=True)
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genimg_course.course.site", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=os.environ.get("GENIMG_PROFILE") or "cpu", choices=PROFILES,
                        help="the profile every notebook runs in (default: $GENIMG_PROFILE, else cpu)")
    parser.add_argument("--out", default="site", help="the folder to write (default: site)")
    parser.add_argument("--solutions", default=str(REPO / "solutions"), help="the solved notebooks")
    parser.add_argument("--only", nargs="*", help="only the notebooks whose names start with these (e.g. 00 03)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one cell may run (default 3600)")
    args = parser.parse_args(argv)
    pages = build(args.out, args.profile, args.solutions, args.only, args.timeout)
    failed = [p.slug for p in pages if p.error]
    if failed:
        print(f"site: {len(failed)} notebook(s) failed: {', '.join(failed)} (their pages show the error)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
