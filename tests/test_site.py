"""The course site's pages without running notebooks (the browser test builds and opens the real site)."""

from __future__ import annotations

import re

import nbformat
import pytest

from genimg_course.course import lessons, site


def test_index_lists_every_lesson_with_time_exercises_and_links():
    pages = []
    for n, item in enumerate(lessons.LESSONS):
        page = site.describe_lesson(site.REPO / "solutions" / f"{item.slug}.ipynb", nbformat.v4.new_notebook())
        page.seconds = 10.0 + n
        pages.append(page)
    pages[-1].error = "ValueError: boom"
    index = site.render_index(pages, "ci", 99.0)
    for n, item in enumerate(lessons.LESSONS):
        assert f'href="{item.slug}.html"' in index and item.title in index
        assert item.colab_url() in index and item.binder_url() in index
        for name in item.exercises:
            assert f"<code>{name}</code>" in index
    assert f">{10 + len(lessons.LESSONS) - 2:.0f} s<" in index  # the time of a lesson that ran
    assert "failed after" in index  # and one that did not
    assert "<code>ci</code>" in index


def test_a_notebook_missing_from_the_lesson_list_gets_its_heading():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 09 · Something new\n\ntext")])
    page = site.describe_lesson(site.REPO / "solutions" / "09_new.ipynb", nb)
    assert page.title == "09 · Something new" and page.exercises == []
    assert page.colab == lessons.colab_url("09_new")


def test_lesson_page_has_the_navigation_bar_and_counts_figures():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output(
        "display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})])])
    page = site.Page("03_vae", "Variational autoencoders", "", [], seconds=12.3, colab="C", binder="B")
    body = site.render_lesson(nb, page, "ci")
    assert 'class="genimg-nav"' in body and 'href="index.html"' in body and "12 s" in body
    assert page.figures == 1
    # MathJax's automatic line breaking (on in nbconvert's template) stacks a table cell's formula token by token
    linebreaks = re.findall(r"linebreaks:\s*\{\s*automatic:\s*(\w+)", body)
    assert linebreaks == ["false"], linebreaks


def test_lesson_page_shows_the_install_cell_as_one_line():
    install = nbformat.v4.new_code_cell(lessons.bootstrap_source(), id=lessons.BOOTSTRAP_ID, outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="genimg_course is installed: nothing to do\n")])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 03 · x"), install,
                                         nbformat.v4.new_code_cell("print('lesson code')", id="c1")])
    page = site.Page("03_vae", "Variational autoencoders", "", [], seconds=1.0, colab="C", binder="B")
    body = site.render_lesson(nb, page, "ci")
    assert "installs the course where it is missing" in body and "lesson code" in body
    assert "KEEP" not in body and "subprocess" not in body and "nothing to do" not in body
    assert nb.cells[1].source == lessons.bootstrap_source()  # the notebook itself is untouched


def test_unknown_profile_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown profile"):
        site.build(tmp_path, profile="fast")
