"""What a student sees in JupyterLab: run all cells in a real browser, then look at the outputs.

Lesson 03 (solved): the latent explorer renders and its image changes when a slider is dragged.
Lesson 04 (student version): every check says "not done yet" under its cell; the training dashboards are
one widget box each, redrawn in place; a wrong answer typed into an exercise cell gets the check's specific
feedback. In both: no cell shows an error. Each check saves a screenshot in browser-artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

# s: in the ci profile a lesson runs in about a minute; a loaded machine (or a first run that trains and caches
# the feature classifiers of lesson 05's metrics) takes longer
RUN_ALL_TIMEOUT = float(os.environ.get("GENIMG_BROWSER_TIMEOUT", 1500))

# JavaScript run in the page. Cells are numbered as in the .ipynb (markdown cells included).
JS_STATE = """() => {
  const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
  return {status: indicator ? indicator.dataset.status : null,
          prompts: Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'))
                        .map(e => e.textContent.trim())};
}"""
JS_OUTPUTS = """(i) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
  return Array.from(cell.querySelectorAll('.jp-OutputArea-output')).map(o => ({
    mime: o.dataset.mimeType || '', text: o.innerText, widget: !!o.querySelector('.jupyter-widgets')}));
}"""
JS_ERRORS = """() => {
  const found = [];
  document.querySelectorAll('.jp-Notebook .jp-Cell').forEach((cell, i) => {
    cell.querySelectorAll('.jp-OutputArea-output').forEach(o => {
      const text = o.innerText;
      if (o.dataset.mimeType === 'application/vnd.jupyter.stderr'
          && (/Traceback|\\w+Error\\b|Exception\\b/.test(text)))
        found.push({cell: i, text: text.slice(0, 800)});
    });
  });
  return found;
}"""
# Some cell is queued ([*]) or has run ([n])
JS_ANY_RAN = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'))
  .some(e => e.textContent.trim() !== '[ ]:')"""
# A fingerprint of an <img>'s bytes (widgets draw PNGs through blob: URLs)
JS_IMAGE_HASH = """async (img) => {
  if (!img.src) return '';
  const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
  let h = 0;
  for (const b of bytes) h = (Math.imul(h, 31) + b) >>> 0;
  return bytes.length + ':' + h;
}"""
# Record every change of a widget image inside a cell (the dashboard redraws several times a second)
JS_WATCH_IMAGES = """() => {
  window.__imageChanges = [];
  const cells = () => Array.from(document.querySelectorAll('.jp-Notebook .jp-Cell'));
  const record = (img) => {
    const cell = img.closest('.jp-Cell');
    if (img.src) window.__imageChanges.push({cell: cells().indexOf(cell), src: img.src, t: Date.now()});
  };
  new MutationObserver(records => {
    for (const r of records) {
      if (r.type === 'attributes' && r.target.tagName === 'IMG' && r.target.classList.contains('widget-image'))
        record(r.target);
      if (r.type === 'childList')
        r.addedNodes.forEach(n => n.querySelectorAll && n.querySelectorAll('img.widget-image').forEach(record));
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
}"""


def cell_index(nb, predicate, what: str) -> list[int]:
    found = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and predicate(c.source)]
    assert found, f"no cell {what} in the notebook"
    return found


class Notebook:
    """One notebook opened in JupyterLab, in a Playwright page."""

    def __init__(self, page, lab, path: str, artifacts: Path):
        self.page, self.lab, self.path, self.artifacts = page, lab, path, artifacts
        self.nb = nbformat.read(lab.root / path, as_version=4)
        page.goto(lab.url(path))
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=120_000)
        n = len(self.nb.cells)  # the cells render in batches; all of them are in the DOM (windowingMode none)
        try:
            page.wait_for_function(f"() => document.querySelectorAll('.jp-Notebook .jp-Cell').length >= {n}")
        finally:
            count = page.locator(".jp-Notebook .jp-Cell").count()
            assert count == n, f"{path}: {count} cells in the page, {n} in the file"

    def cell(self, i: int):
        return self.page.locator(".jp-Notebook .jp-Cell").nth(i)

    def outputs(self, i: int) -> list[dict]:
        return self.page.evaluate(JS_OUTPUTS, i)

    def text(self, i: int) -> str:
        return "\n".join(o["text"] for o in self.outputs(i))

    def wait_idle(self, timeout: float = RUN_ALL_TIMEOUT) -> dict:
        """Until the kernel is idle and no cell is queued or running ([*])."""
        start = time.monotonic()
        time.sleep(1)
        while True:
            state = self.page.evaluate(JS_STATE)
            if state["status"] == "idle" and "[*]:" not in state["prompts"]:
                time.sleep(0.5)  # let the last outputs render
                again = self.page.evaluate(JS_STATE)
                if again["status"] == "idle" and "[*]:" not in again["prompts"]:
                    return again
            assert time.monotonic() - start < timeout, f"{self.path}: still running after {timeout} s: {state}"
            time.sleep(0.5)

    def prompt(self, i: int) -> str:
        return self.cell(i).locator(".jp-InputPrompt").inner_text().strip()

    def run_selected(self, i: int, timeout: float = 120) -> None:
        """Shift+Enter on the selected cell i; waits until its prompt shows a new execution count."""
        before = self.prompt(i)
        self.page.keyboard.press("Shift+Enter")
        deadline = time.monotonic() + timeout
        while not (re.fullmatch(r"\[\d+\]:", now := self.prompt(i)) and now != before):
            assert time.monotonic() < deadline, f"cell {i} did not finish within {timeout} s (prompt {now})"
            time.sleep(0.25)
        self.wait_idle(timeout)

    def run_all(self, tries: int = 3) -> float:
        """Run → Run All Cells (the menu, as a student does); returns the seconds until the kernel is idle.

        JupyterLab marks a queued cell [*] at once, before the kernel answers. A click that queued nothing (CI,
        2026-12-07: the first lesson of a fresh JupyterLab showed no [*] for 60 s; a toast or a menu still
        opening can take the click) is tried again, after Escape closes whatever is open."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout  # the browser extra: imported on use

        start = time.monotonic()
        for attempt in range(1, tries + 1):
            self.page.keyboard.press("Escape")
            self.page.locator(".lm-MenuBar-item", has_text="Run").click()
            item = self.page.locator('.lm-Menu-item[data-command="runmenu:run-all"]')
            item.wait_for(state="visible")
            item.click()
            try:
                self.page.wait_for_function(JS_ANY_RAN, timeout=20_000)
                break
            except PlaywrightTimeout:
                shot = self.artifacts / f"run_all_try{attempt}_{Path(self.path).stem}.png"
                self.page.screenshot(path=str(shot))
                assert attempt < tries, f"{self.path}: Run → Run All Cells queued no cell in {tries} tries " \
                                        f"(screenshots {shot.parent}/run_all_try*.png)"
        state = self.wait_idle()
        not_run = [p for p in state["prompts"] if not re.fullmatch(r"\[\d+\]:", p)]
        assert not not_run, f"{self.path}: some cells did not run ({len(not_run)} prompts {set(not_run)}); " \
                            f"errors: {self.page.evaluate(JS_ERRORS)}"
        return time.monotonic() - start

    def assert_no_errors(self):
        errors = self.page.evaluate(JS_ERRORS)
        assert not errors, f"{self.path}: cells show errors:\n" + "\n".join(
            f"cell {e['cell']}: {e['text']}" for e in errors)

    def screenshot(self, i: int, path) -> None:
        self.cell(i).scroll_into_view_if_needed()
        self.cell(i).screenshot(path=str(path))


def toward_the_middle(handle) -> int:
    """+1 when a slider's handle sits in the lower half of its range (move it right), else -1."""
    now, low, high = (float(handle.get_attribute(a)) for a in ("aria-valuenow", "aria-valuemin", "aria-valuemax"))
    return 1 if now <= (low + high) / 2 else -1


def redrawn(image, before: str, timeout: float = 60) -> str:
    """The widget image's hash once it differs from ``before`` (the kernel redrew it), or ``before`` after
    ``timeout`` seconds."""
    deadline, now = time.monotonic() + timeout, before
    while now == before and time.monotonic() < deadline:
        time.sleep(0.25)
        now = image.evaluate(JS_IMAGE_HASH)
    return now


@pytest.fixture
def shutdown_kernels(lab):
    """Each test's kernel is shut down afterwards (a ci-profile lesson holds about 1 GB). Request it before
    ``page``, so that a failing test's screenshot is taken first."""
    yield
    headers = {"Authorization": f"token {lab.token}"}
    base = f"http://127.0.0.1:{lab.port}/api/kernels"
    with urllib.request.urlopen(urllib.request.Request(base, headers=headers), timeout=10) as r:
        kernels = json.load(r)
    for kernel in kernels:
        urllib.request.urlopen(urllib.request.Request(f"{base}/{kernel['id']}", method="DELETE", headers=headers),
                               timeout=30).close()


def test_lesson03_latent_explorer_follows_the_slider(lab, shutdown_kernels, page, artifacts):
    notebook = Notebook(page, lab, "solutions/03_vae.ipynb", artifacts)
    seconds = notebook.run_all()
    print(f"solutions/03_vae.ipynb: Run All Cells took {seconds:.1f} s in the browser")
    page.screenshot(path=str(artifacts / "03_vae_after_run_all.png"))
    notebook.assert_no_errors()
    for i in cell_index(notebook.nb, lambda s: re.match(r"\w+ = check\.\w+\(", s), "calling a check"):
        assert "✅" in notebook.text(i), f"cell {i}: a solved exercise's check did not pass:\n{notebook.text(i)}"

    (i,) = cell_index(notebook.nb, lambda s: "LatentExplorer(" in s, "showing the latent explorer")
    cell = notebook.cell(i)
    image = cell.locator("img.widget-image")
    handles = cell.locator(".widget-slider .noUi-handle")
    assert image.count() == 1 and handles.count() >= 2, \
        f"the latent explorer did not render (cell {i}: {notebook.outputs(i)})"
    image.first.wait_for()
    before = image.first.evaluate(JS_IMAGE_HASH)
    readout = cell.locator(".widget-readout").first.inner_text()
    assert before, "the latent explorer's image is empty"
    notebook.screenshot(i, artifacts / "03_latent_explorer_before.png")

    # drag the first slider's handle with the mouse, 50 px towards the far end of its range
    handle = handles.first
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    dx = 50 * toward_the_middle(handle)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx / 2, y, steps=5)
    page.mouse.move(x + dx, y, steps=5)
    page.mouse.up()
    after = redrawn(image.first, before)
    moved = cell.locator(".widget-readout").first.inner_text()
    notebook.screenshot(i, artifacts / "03_latent_explorer_after_slider.png")
    assert moved != readout, f"dragging the slider did not move it (readout {readout!r} → {moved!r})"
    assert after != before, f"z[0] went from {readout} to {moved}, but the decoded image did not change"

    # and by keyboard: focus the second handle, three steps towards the far end
    handles.nth(1).focus()
    key = "ArrowRight" if toward_the_middle(handles.nth(1)) > 0 else "ArrowLeft"
    for _ in range(3):
        page.keyboard.press(key)
    keyed = redrawn(image.first, after)
    notebook.screenshot(i, artifacts / "03_latent_explorer_after_keyboard.png")
    assert keyed != after, "moving z[1] with the arrow keys did not change the image"
    notebook.assert_no_errors()


def test_lesson04_student_dashboard_and_check_feedback(lab, shutdown_kernels, page, artifacts):
    notebook = Notebook(page, lab, "notebooks/04_gans.ipynb", artifacts)
    page.evaluate(JS_WATCH_IMAGES)
    seconds = notebook.run_all()
    print(f"notebooks/04_gans.ipynb: Run All Cells took {seconds:.1f} s in the browser")
    page.screenshot(path=str(artifacts / "04_gans_after_run_all.png"))
    notebook.assert_no_errors()

    # every check of an unsolved exercise says so under its cell, and the notebook went on
    checks = cell_index(notebook.nb, lambda s: re.match(r"\w+ = check\.\w+\(", s), "calling a check")
    for i in checks:
        text = notebook.text(i)
        assert "not done yet" in text and "reference implementation" in text, \
            f"cell {i} ({notebook.nb.cells[i].source.splitlines()[0]}): no 'not done yet' feedback:\n{text}"
    notebook.screenshot(checks[0], artifacts / "04_check_not_attempted.png")

    # the lesson's last cell, the check before hand-in: nothing answered in the saved file, so it says so at once
    handin = cell_index(notebook.nb, lambda s: s.startswith("check.before_hand_in("), "the check before hand-in")[0]
    assert "No exercise is answered in the saved 04_gans.ipynb" in notebook.text(handin), notebook.text(handin)
    notebook.screenshot(handin, artifacts / "04_before_hand_in.png")

    # the dashboards: one widget box per training cell, its images replaced several times during training
    changes = page.evaluate("() => window.__imageChanges")
    dashboards = cell_index(notebook.nb, lambda s: "TrainingDashboard(" in s, "with a training dashboard")
    for n, i in enumerate(dashboards):
        outputs = notebook.outputs(i)
        widgets = [o for o in outputs if o["widget"]]
        assert len(widgets) == 1, f"cell {i}: {len(widgets)} widget outputs, expected one dashboard: {outputs}"
        assert re.search(r"step \d+", widgets[0]["text"]), f"cell {i}: the dashboard shows no step: {widgets[0]}"
        images = notebook.cell(i).locator("img.widget-image")
        assert images.count() == 2, f"cell {i}: the dashboard has {images.count()} images, expected 2"
        for k in range(2):
            assert images.nth(k).evaluate(JS_IMAGE_HASH), f"cell {i}: dashboard image {k} is empty"
        seen = {c["src"] for c in changes if c["cell"] == i}
        assert seen, f"cell {i}: the dashboard's images were never drawn while it trained"
        notebook.screenshot(i, artifacts / f"04_dashboard_{n}.png")

    # The ci profile trains for a few steps only (one redraw per dashboard): a student's own cell at the end of
    # the notebook trains the lesson's DCGAN for 6 more steps with a redraw at every step.
    last = len(notebook.nb.cells) - 1
    notebook.cell(last).click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")  # a new cell below, in command mode
    page.keyboard.press("Enter")  # edit it
    page.keyboard.type('demo = TrainingDashboard(every=1, total=6, title="typed in the browser")\n'
                       "_ = gan.train_gan(dcgan, x_digits[:96], 1, batch_size=16, device=run.device, seed=1, "
                       "dashboard=demo)\n"
                       'print("redraws:", demo.redraws)')
    demo = last + 1
    page.evaluate("() => { window.__imageChanges = []; }")
    notebook.run_selected(demo)
    changes = page.evaluate("() => window.__imageChanges")
    outputs = notebook.outputs(demo)
    notebook.screenshot(demo, artifacts / "04_dashboard_redraws_in_place.png")
    assert "redraws: 6" in notebook.text(demo), outputs
    assert [o["widget"] for o in outputs] == [True, False], f"expected one dashboard box and the print: {outputs}"
    assert "step 6/6" in outputs[0]["text"], outputs[0]
    samples = {c["src"] for c in changes if c["cell"] == demo}
    assert len(samples) >= 6, f"the dashboard's two images changed {len(samples)} times in 6 redraws"

    # a wrong answer, typed in the browser: the check under it says what is wrong
    (exercise,) = cell_index(notebook.nb, lambda s: s.startswith("def generator_loss("), "defining generator_loss")
    (check,) = cell_index(notebook.nb, lambda s: s.startswith("generator_loss = check."), "checking generator_loss")
    assert check == exercise + 1
    editor = notebook.cell(exercise).locator(".cm-content")
    editor.scroll_into_view_if_needed()
    editor.click()
    page.keyboard.press("Control+a")
    # the minimax-style mistake: log(sigmoid) underflows to -inf where D rejects every fake
    page.keyboard.type("def generator_loss(fake_logits): return -torch.log(torch.sigmoid(fake_logits)).mean()")
    notebook.run_selected(exercise)  # Shift+Enter: runs the exercise cell, selects the check cell
    notebook.run_selected(check)  # Shift+Enter: runs the check
    text = notebook.text(check)
    notebook.screenshot(exercise, artifacts / "04_wrong_answer_cell.png")
    notebook.screenshot(check, artifacts / "04_wrong_answer_feedback.png")
    assert "❌ generator_loss" in text, f"no failure feedback under the check:\n{text}"
    assert "a D that rejects every fake" in text, f"the feedback does not name the failing input:\n{text}"
    assert "reference implementation" in text, text
    notebook.assert_no_errors()


def test_lesson06_guidance_slider_redraws_the_class_grid(lab, shutdown_kernels, page, artifacts):
    notebook = Notebook(page, lab, "solutions/06_diffusion.ipynb", artifacts)
    seconds = notebook.run_all()
    print(f"solutions/06_diffusion.ipynb: Run All Cells took {seconds:.1f} s in the browser")
    notebook.assert_no_errors()
    for i in cell_index(notebook.nb, lambda s: re.match(r"\w+ = check\.\w+\(", s), "calling a check"):
        assert "✅" in notebook.text(i), f"cell {i}: a solved exercise's check did not pass:\n{notebook.text(i)}"

    (i,) = cell_index(notebook.nb, lambda s: "GuidanceExplorer(" in s, "showing the guidance slider")
    cell = notebook.cell(i)
    image, handle = cell.locator("img.widget-image"), cell.locator(".widget-slider .noUi-handle")
    assert image.count() == 1 and handle.count() == 1, \
        f"the guidance explorer did not render (cell {i}: {notebook.outputs(i)})"
    image.first.wait_for()
    before, readout = image.first.evaluate(JS_IMAGE_HASH), cell.locator(".widget-readout").first.inner_text()
    assert before, "the guidance explorer's grid is empty"
    notebook.screenshot(i, artifacts / "06_guidance_before.png")
    # keyboard: two steps of 0.5 towards the far end (the slider redraws on release, not while dragging)
    handle.first.focus()
    key = "ArrowRight" if toward_the_middle(handle.first) > 0 else "ArrowLeft"
    for _ in range(2):
        page.keyboard.press(key)
    after = redrawn(image.first, before)
    moved = cell.locator(".widget-readout").first.inner_text()
    notebook.screenshot(i, artifacts / "06_guidance_after.png")
    assert moved != readout, f"the arrow keys did not move the slider (readout {readout!r} → {moved!r})"
    assert after != before, f"w went from {readout} to {moved}, but the class grid was not redrawn"
    notebook.assert_no_errors()
