"""Working copies (issue 32): `genimg workspace` keeps the student's answers in mywork/, which nothing in the course
writes over, and `genimg notebooks` refuses to write over a notebooks/ file someone edited."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from genimg_course.course import notebooks as nbbuild
from genimg_course.course import workspace
from genimg_course.course.cli import main

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ("01_preprocessing", "03_vae")
# a real answer, as a student would write it (lesson 03's first exercise)
ANSWER = ('def reparameterize(mu, logvar):\n'
          '    """my answer"""\n'
          '    eps = torch.randn_like(mu)\n'
          '    return mu + torch.exp(0.5 * logvar) * eps  # STUDENT ANSWER 1234\n')
MARK = "STUDENT ANSWER 1234"


def _course(folder: Path, lessons=LESSONS) -> Path:
    """A course folder with `lessons` of solutions/, built (notebooks/ and its manifest), and the repo's .gitignore."""
    (folder / "solutions").mkdir(parents=True)
    for lesson in lessons:
        shutil.copy(ROOT / "solutions" / f"{lesson}.ipynb", folder / "solutions")
    shutil.copy(ROOT / ".gitignore", folder / ".gitignore")
    nbbuild.build(folder)
    return folder


def _answer(path: Path, text: str = ANSWER) -> None:
    """Write `text` into the answer cell of reparameterize (an nbgrader solution cell), as the student would."""
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "reparameterize")
    assert "raise NotImplementedError()" in cell.source
    cell.source = text
    nbformat.write(nb, path)


def _edit_markdown(solution: Path, note: str) -> None:
    """Upstream edits a Markdown cell of a solved lesson."""
    nb = nbformat.read(solution, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "markdown" and "<!--claim:" not in c.source)
    cell.source += f"\n\n{note}"
    nbformat.write(nb, solution)


def _run(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


GIT_ENV = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0"}


def _git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main",
                             "-c", "commit.gpgsign=false", "-c", "pull.rebase=false", *args],
                            cwd=cwd, env=GIT_ENV, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"git {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_term_with_git_pull_keeps_the_students_answers(tmp_path, capsys):
    upstream = _course(tmp_path / "upstream")
    _git(upstream, "init", "-q")
    _git(upstream, "add", "-A")
    _git(upstream, "commit", "-q", "-m", "week 1")
    assert "notebooks/.genimg-built.json" in _git(upstream, "ls-files")
    clone = tmp_path / "student"
    _git(tmp_path, "clone", "-q", str(upstream), str(clone))

    # week 1: the student opens the course and answers in mywork/
    rc, out, _ = _run(capsys, "workspace", "--root", str(clone))
    assert rc == 0 and "mywork/: created from notebooks/ (2 lessons)" in out
    mywork = clone / "mywork"
    assert sorted(p.name for p in mywork.glob("*.ipynb")) == [f"{lesson}.ipynb" for lesson in LESSONS]
    assert (mywork / workspace.MANIFEST).exists()
    _answer(mywork / "03_vae.ipynb")
    assert _git(clone, "status", "--porcelain") == "", "mywork/ is ignored by git"

    # upstream changes lesson 03 (a Markdown cell), rebuilds notebooks/ and commits
    _edit_markdown(upstream / "solutions" / "03_vae.ipynb", "A paragraph added in week 2.")
    assert main(["notebooks", "--root", str(upstream)]) == 0
    _git(upstream, "commit", "-q", "-am", "week 2: lesson 03 revised")

    # the student pulls (no conflict), rebuilds notebooks/ (nothing of theirs there), updates mywork/
    _git(clone, "pull", "-q")
    rc, out, err = _run(capsys, "notebooks", "--root", str(clone))
    assert rc == 0, err
    assert _run(capsys, "notebooks", "--check", "--root", str(clone))[0] == 0
    rc, out, _ = _run(capsys, "workspace", "--root", str(clone))
    assert rc == 0
    mine = nbformat.read(mywork / "03_vae.ipynb", as_version=4)
    assert any(MARK in c.source for c in mine.cells), "the student's answer is still there"
    assert not any("week 2" in c.source for c in mine.cells), "and their copy was not rewritten"
    sha8 = nbbuild.file_sha256(clone / "notebooks" / "03_vae.ipynb")[:8]
    beside = mywork / f"03_vae.new-{sha8}.ipynb"
    assert beside.read_bytes() == (clone / "notebooks" / "03_vae.ipynb").read_bytes()
    assert any("A paragraph added in week 2." in c.source for c in nbformat.read(beside, as_version=4).cells)
    assert f"03_vae: the released lesson changed since you copied it; its new version is beside yours: {beside.name}" \
        in out
    assert "01_preprocessing:" not in out, "an unchanged lesson is not mentioned"

    # the next run still lists it, as already there, and writes nothing
    files = _files(mywork)
    rc, out, _ = _run(capsys, "workspace", "--root", str(clone))
    assert rc == 0 and f"03_vae: a newer version is beside your copy: {beside.name}" in out
    assert "changed since you copied it" not in out
    assert _files(mywork) == files
    assert _git(clone, "status", "--porcelain") == ""


def test_notebooks_refuses_to_write_over_an_edited_notebook_and_force_does(tmp_path, capsys):
    root = _course(tmp_path)
    student = root / "notebooks" / "03_vae.ipynb"
    _answer(student)
    _edit_markdown(root / "solutions" / "01_preprocessing.ipynb", "Revised.")  # another lesson to write meanwhile
    _edit_markdown(root / "solutions" / "03_vae.ipynb", "Revised too.")  # and the edited one has a new release
    built = nbbuild.read_built(root / "notebooks")
    rc, out, err = _run(capsys, "notebooks", "--root", str(root))
    assert rc == 1
    assert ("notebooks/03_vae.ipynb differs from what genimg notebooks wrote last time (your edits?): not "
            "overwritten. Run 'genimg workspace' to keep your work in mywork/, or pass --force") in err
    assert MARK in student.read_text(), "the edited notebook is left as it is"
    assert "wrote: notebooks/01_preprocessing.ipynb" in out, "the other notebooks are still written"
    assert "Revised." in (root / "notebooks" / "01_preprocessing.ipynb").read_text()
    assert nbbuild.read_built(root / "notebooks")["03_vae.ipynb"] == built["03_vae.ipynb"], \
        "the manifest still holds what was written, so the refusal holds"
    assert _run(capsys, "notebooks", "--root", str(root))[0] == 1, "asked again, it refuses again"
    assert _run(capsys, "notebooks", "--check", "--root", str(root))[0] == 1
    # as told: genimg workspace keeps the work (against the release it was written on), then --force
    rc, out, _ = _run(capsys, "workspace", "--root", str(root))
    assert rc == 0 and "copied YOUR version" in out and MARK in (root / "mywork" / "03_vae.ipynb").read_text()
    rc, out, err = _run(capsys, "notebooks", "--force", "--root", str(root))
    assert rc == 0 and "wrote: notebooks/03_vae.ipynb" in out
    assert MARK not in student.read_text() and "Revised too." in student.read_text()
    assert _run(capsys, "notebooks", "--check", "--root", str(root))[0] == 0
    assert _run(capsys, "notebooks", "--root", str(root))[1] == "notebooks/ and solutions/ are up to date.\n"
    rc, out, _ = _run(capsys, "workspace", "--root", str(root))
    assert "03_vae: the released lesson changed since you copied it" in out, "the new release is offered beside"
    new, = (root / "mywork").glob("03_vae.new-*.ipynb")
    assert "Revised too." in new.read_text() and MARK in (root / "mywork" / "03_vae.ipynb").read_text()


def test_notebooks_without_a_manifest_entry_writes_and_creates_the_manifest(tmp_path, capsys):
    root = _course(tmp_path)
    manifest = root / "notebooks" / nbbuild.BUILT_MANIFEST
    manifest.unlink()  # a course from before the manifest
    _answer(root / "notebooks" / "03_vae.ipynb")
    rc, out, _ = _run(capsys, "notebooks", "--root", str(root))
    assert rc == 0 and "wrote: notebooks/03_vae.ipynb" in out and "notebooks/.genimg-built.json" in out
    assert set(nbbuild.read_built(root / "notebooks")) == {f"{lesson}.ipynb" for lesson in LESSONS}
    assert _run(capsys, "notebooks", "--check", "--root", str(root))[0] == 0


def test_check_reports_a_stale_manifest(tmp_path, capsys):
    root = _course(tmp_path)
    manifest = root / "notebooks" / nbbuild.BUILT_MANIFEST
    assert _run(capsys, "notebooks", "--check", "--root", str(root))[0] == 0
    data = json.loads(manifest.read_text())
    data["notebooks"]["01_preprocessing.ipynb"] = "0" * 64
    manifest.write_text(json.dumps(data))
    rc, out, _ = _run(capsys, "notebooks", "--check", "--root", str(root))
    assert rc == 1 and "differs: notebooks/.genimg-built.json (manifest of what genimg notebooks wrote: does not " \
                       "match notebooks/)" in out
    manifest.unlink()
    rc, out, _ = _run(capsys, "notebooks", "--check", "--root", str(root))
    assert rc == 1 and "notebooks/.genimg-built.json (manifest of what genimg notebooks wrote: missing)" in out
    assert not manifest.exists(), "--check writes nothing"
    manifest.write_text("<<<<<<< HEAD\n")  # a merge conflict: an error naming the file ...
    rc, _, err = _run(capsys, "notebooks", "--root", str(root))
    assert rc == 2 and str(manifest) in err
    assert _run(capsys, "notebooks", "--check", "--root", str(root))[0] == 1
    assert _run(capsys, "notebooks", "--force", "--root", str(root))[0] == 0  # ... which --force rewrites
    assert _run(capsys, "notebooks", "--check", "--root", str(root))[0] == 0


def test_workspace_never_writes_over_or_deletes_a_file(tmp_path, capsys):
    root = _course(tmp_path)
    assert _run(capsys, "workspace", "--root", str(root))[0] == 0
    mywork = root / "mywork"
    _answer(mywork / "03_vae.ipynb")
    (mywork / "01_preprocessing.ipynb").write_text("not even a notebook: the student's own text")
    (mywork / "notes.txt").write_text("mine")
    for lesson in LESSONS:  # both lessons change upstream
        _edit_markdown(root / "solutions" / f"{lesson}.ipynb", "Changed upstream.")
    assert main(["notebooks", "--root", str(root)]) == 0
    sha8 = nbbuild.file_sha256(root / "notebooks" / "01_preprocessing.ipynb")[:8]
    (mywork / f"01_preprocessing.new-{sha8}.ipynb").write_text("already there: left alone")
    before = _files(mywork)
    del before[workspace.MANIFEST]
    rc, out, _ = _run(capsys, "workspace", "--root", str(root))
    assert rc == 0 and "mywork/: 2 lessons; 0 copied now, 2 with a newer version beside yours" in out
    after = _files(mywork)
    for name, data in before.items():
        assert after[name] == data, f"{name} was rewritten"
    new = set(after) - set(before) - {workspace.MANIFEST}
    sha8_vae = nbbuild.file_sha256(root / "notebooks" / "03_vae.ipynb")[:8]
    assert new == {f"03_vae.new-{sha8_vae}.ipynb"}, "only the new version of 03, beside the student's"
    assert f"01_preprocessing: the released lesson changed since you copied it; its new version is beside yours: " \
           f"01_preprocessing.new-{sha8}.ipynb" in out
    state = json.loads((mywork / workspace.MANIFEST).read_text())["lessons"]
    assert state["03_vae.ipynb"]["newer"]["file"] == f"03_vae.new-{sha8_vae}.ipynb"
    assert state["03_vae.ipynb"]["sha256"] != state["03_vae.ipynb"]["newer"]["sha256"]
    assert not list(mywork.glob("*.tmp"))


def test_workspace_settles_once_the_new_version_is_taken(tmp_path, capsys):
    root = _course(tmp_path)
    _run(capsys, "workspace", "--root", str(root))
    mywork = root / "mywork"
    _answer(mywork / "03_vae.ipynb")
    for lesson in LESSONS:
        _edit_markdown(root / "solutions" / f"{lesson}.ipynb", "Changed upstream.")
    main(["notebooks", "--root", str(root)])
    rc, out, _ = _run(capsys, "workspace", "--root", str(root))
    assert "you may replace it with the new one" in out.split("01_preprocessing:")[1].splitlines()[0], \
        "an unedited copy is said to be unedited"
    new01, = mywork.glob("01_preprocessing.new-*.ipynb")
    new03, = mywork.glob("03_vae.new-*.ipynb")
    new01.replace(mywork / "01_preprocessing.ipynb")  # the student takes the new version ...
    new03.unlink()  # ... or merges by hand and deletes it
    rc, out, _ = _run(capsys, "workspace", "--root", str(root))
    assert rc == 0 and f"03_vae: {new03.name} is gone: taken as merged into your copy" in out
    assert "01_preprocessing:" not in out
    rc, out, _ = _run(capsys, "workspace", "--root", str(root))
    assert "03_vae:" not in out and "01_preprocessing:" not in out and "0 with a newer version" in out
    assert MARK in (mywork / "03_vae.ipynb").read_text()


def test_workspace_copies_a_new_lesson(tmp_path, capsys):
    root = _course(tmp_path, ["01_preprocessing"])
    _run(capsys, "workspace", "--root", str(root))
    mywork = root / "mywork"
    (mywork / "01_preprocessing.ipynb").write_text("my week 1")
    shutil.copy(ROOT / "solutions" / "03_vae.ipynb", root / "solutions")  # next week's lesson
    assert main(["notebooks", "--root", str(root)]) == 0
    rc, out, _ = _run(capsys, "workspace", "--root", str(root))
    assert rc == 0 and "copied: 03_vae" in out and "1 copied now" in out
    assert (mywork / "03_vae.ipynb").read_bytes() == (root / "notebooks" / "03_vae.ipynb").read_bytes()
    assert (mywork / "01_preprocessing.ipynb").read_text() == "my week 1"
    assert "03_vae.ipynb" in json.loads((mywork / workspace.MANIFEST).read_text())["lessons"]
    assert sorted(p.name for p in mywork.iterdir()) == [workspace.MANIFEST, "01_preprocessing.ipynb",
                                                        "03_vae.ipynb"], "copies nothing else"


def test_workspace_rescues_answers_written_in_notebooks(tmp_path, capsys):
    root = _course(tmp_path)
    edited = root / "notebooks" / "03_vae.ipynb"
    _answer(edited)  # worked in notebooks/ before mywork/ existed
    rc, out, _ = _run(capsys, "workspace", "--root", str(root))
    assert rc == 0 and "03_vae: notebooks/03_vae.ipynb holds edits" in out and "copied YOUR version" in out
    mywork = root / "mywork"
    assert (mywork / "03_vae.ipynb").read_bytes() == edited.read_bytes()
    assert MARK not in (mywork / "01_preprocessing.ipynb").read_text()
    state = json.loads((mywork / workspace.MANIFEST).read_text())["lessons"]["03_vae.ipynb"]
    assert state["sha256"] == nbbuild.read_built(root / "notebooks")["03_vae.ipynb"], "recorded against the release"
    # notebooks/ can now go back to the release: the student's copy is up to date against it
    assert main(["notebooks", "--force", "--root", str(root)]) == 0
    rc, out, _ = _run(capsys, "workspace", "--root", str(root))
    assert "03_vae:" not in out and MARK in (mywork / "03_vae.ipynb").read_text()


def test_workspace_adopts_a_copy_it_did_not_make(tmp_path, capsys):
    """A student moved their edited notebook into mywork/ by hand (`git pull` stopped on their notebooks/ edits)."""
    root = _course(tmp_path)
    mywork = root / "mywork"
    mywork.mkdir()
    shutil.copy(root / "notebooks" / "03_vae.ipynb", mywork)
    _answer(mywork / "03_vae.ipynb")
    shutil.copy(root / "notebooks" / "01_preprocessing.ipynb", mywork)  # an untouched copy of the release
    mine = _files(mywork)
    rc, out, _ = _run(capsys, "workspace", "--root", str(root))
    assert rc == 0 and _files(mywork)["03_vae.ipynb"] == mine["03_vae.ipynb"]
    sha8 = nbbuild.file_sha256(root / "notebooks" / "03_vae.ipynb")[:8]
    assert (f"03_vae: mywork/03_vae.ipynb was not copied by genimg workspace and differs from the released lesson; "
            f"it is beside yours: 03_vae.new-{sha8}.ipynb") in out
    assert "01_preprocessing:" not in out, "a copy equal to the release is simply up to date"
    assert sorted(p.name for p in mywork.glob("*.ipynb")) == ["01_preprocessing.ipynb", "03_vae.ipynb",
                                                             f"03_vae.new-{sha8}.ipynb"]


def test_workspace_errors_are_one_line_naming_the_path(tmp_path, capsys):
    root = _course(tmp_path)
    (root / "work.txt").write_text("a file")
    rc, out, err = _run(capsys, "workspace", "--root", str(root), "--dir", "work.txt")
    assert rc == 2 and err.startswith("genimg workspace: error: ") and str(root / "work.txt") in err
    assert len(err.strip().splitlines()) == 1 and (root / "work.txt").read_text() == "a file"
    _run(capsys, "workspace", "--root", str(root))
    state = root / "mywork" / workspace.MANIFEST
    state.write_text("{broken")
    rc, _, err = _run(capsys, "workspace", "--root", str(root))
    assert rc == 2 and str(state) in err and state.read_text() == "{broken"
    rc, _, err = _run(capsys, "workspace", "--root", str(tmp_path / "nowhere"))
    assert rc == 2 and str(tmp_path / "nowhere" / "notebooks") in err


def test_workspace_dir_and_absolute_paths(tmp_path, capsys):
    root = _course(tmp_path / "course")
    rc, out, _ = _run(capsys, "workspace", "--root", str(root), "--dir", str(tmp_path / "elsewhere"))
    assert rc == 0 and (tmp_path / "elsewhere" / "03_vae.ipynb").exists() and not (root / "mywork").exists()


def test_make_lab_opens_the_workspace_and_git_ignores_it(tmp_path):
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    result = subprocess.run(["make", "-n", "-B", "lab"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    workspace_at = lines.index(".venv/bin/genimg workspace")
    assert lines[workspace_at + 1].startswith("cd mywork && ../.venv/bin/jupyter lab")
    assert "/mywork/" in (ROOT / ".gitignore").read_text().splitlines()


def test_workspace_does_not_import_torch(tmp_path):
    root = _course(tmp_path)
    code = (f"import sys\nfrom genimg_course.course.cli import main\n"
            f"assert main(['workspace', '--root', {str(root)!r}]) == 0\n"
            "assert 'torch' not in sys.modules, 'imported torch'\n"
            "assert 'nbformat' not in sys.modules, 'imported nbformat (slow to start)'\nprint('NO TORCH')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0 and "NO TORCH" in result.stdout, result.stderr
