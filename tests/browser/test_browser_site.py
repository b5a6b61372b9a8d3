"""The course site (`make site`) as a reader sees it: the index lists every lesson with its links, and every
lesson page shows its figures and no error.

The site is built here in the ci profile (GENIMG_SITE=folder checks a site built already, e.g. by
`make site PROFILE=cpu`, instead).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from genimg_course.course import lessons

REPO = Path(__file__).resolve().parents[2]
SLUGS = sorted(p.stem for p in (REPO / "solutions").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="session")
def built_site(artifacts) -> Path:
    given = os.environ.get("GENIMG_SITE")
    if given:
        return Path(given).resolve()
    from genimg_course.course import site

    out = artifacts / "site"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    site.build(out, profile="ci")
    print(f"site built in the ci profile in {time.perf_counter() - start:.1f} s -> {out}")
    return out


# Debian's MathJax 2.7 (`libjs-mathjax`, `fonts-mathjax`): with it, the CDN's MathJax is served from disk, so the
# screenshots show the maths as a reader online sees it. Without it the maths stays as raw $…$ (CI has no network).
LOCAL_MATHJAX = Path("/usr/share/javascript/mathjax")
MATHJAX_CDN = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/"


def _serve_local_mathjax(route) -> None:
    # every file by its path under the version folder; latest.js (which asks the CDN for the newest release) is
    # replaced by a loader of MathJax.js from the same folder, so that MathJax finds its root from that name
    url = route.request.url
    path = url[len(MATHJAX_CDN):].split("?")[0].split("/", 1)[-1]
    if path == "latest.js":
        query = url.split("?", 1)[1] if "?" in url else ""
        src = url.split("?")[0][: -len("latest.js")] + "MathJax.js" + (f"?{query}" if query else "")
        route.fulfill(content_type="application/javascript",
                      body=f"var s = document.createElement('script'); s.src = {src!r}; document.head.appendChild(s);")
        return
    local = LOCAL_MATHJAX / path
    if local.is_file():
        route.fulfill(path=str(local))
    else:
        route.abort()


def open_file(page, path: Path) -> bool:
    """Open a site page; True when its maths was typeset (local MathJax present)."""
    assert path.is_file(), f"{path} was not written"
    mathjax = (LOCAL_MATHJAX / "MathJax.js").is_file()
    if mathjax:
        page.route(MATHJAX_CDN + "**", _serve_local_mathjax)
    # domcontentloaded: the pages also ask a CDN for the widget manager, which CI cannot reach
    page.goto(path.as_uri(), wait_until="domcontentloaded")
    if mathjax and page.locator("script[src*='mathjax']").count():
        page.wait_for_function("() => window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0 "
                               "&& document.querySelector('.MathJax_CHTML, mjx-container') !== null", timeout=60_000)
        return True
    return False


def test_site_index_lists_every_lesson(built_site, page, artifacts):
    open_file(page, built_site / "index.html")
    page.screenshot(path=str(artifacts / "site_index.png"), full_page=True)
    rows = page.locator("main.index tbody tr")
    assert rows.count() == len(SLUGS), f"{rows.count()} lessons on the index, {len(SLUGS)} in solutions/"
    for n, slug in enumerate(SLUGS):
        row = rows.nth(n)
        link = row.locator(f'a[href="{slug}.html"]')
        assert link.count() == 1, f"the index has no link to {slug}.html"
        text = row.inner_text()
        assert "failed" not in text, f"{slug}: the build says it failed: {text}"
        try:
            item = lessons.lesson(slug)
        except KeyError:
            continue
        assert item.title in text and item.summary[:40] in text, f"{slug}: title or summary missing: {text}"
        for name in item.exercises:
            assert name in text, f"{slug}: exercise {name} is not listed: {text}"
        hrefs = row.locator("a").evaluate_all("links => links.map(a => a.href)")
        assert item.colab_url() in hrefs and item.binder_url() in hrefs, f"{slug}: Colab/Binder links: {hrefs}"
        assert row.locator("td.num").nth(1).inner_text().strip().endswith(" s"), f"{slug}: no time to run: {text}"


@pytest.mark.parametrize("slug", SLUGS)
def test_site_lesson_page_has_figures_and_no_error(built_site, page, artifacts, slug):
    typeset = open_file(page, built_site / f"{slug}.html")
    page.screenshot(path=str(artifacts / f"site_{slug}.png"))
    if typeset:  # no formula left as raw TeX in the text a reader sees
        raw = [t for t in page.locator(".jp-MarkdownOutput p, .jp-MarkdownOutput li").all_inner_texts()
               if "$$" in t or "\\frac" in t or "\\mathbb" in t]
        assert not raw, f"{slug}.html: maths not typeset: {raw[:3]}"
    nav = page.locator("nav.genimg-nav").inner_text()
    assert "failed" not in nav and "ran top to bottom" in nav, nav
    figures = page.locator('img[src^="data:image/png"]')
    assert figures.count() > 0, f"{slug}.html has no figures"
    assert page.locator(".jp-Cell").count() > 5, f"{slug}.html has almost no cells"
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    bad = [t[:500] for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
    assert not bad, f"{slug}.html shows errors:\n" + "\n---\n".join(bad)
    # a figure in the middle of the page, where a reader would scroll to
    figures.nth(figures.count() // 2).scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / f"site_{slug}_figure.png"))
