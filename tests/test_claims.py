"""Claims (issue 30): every number in a lesson's prose is a claim filled from the registry or a listed constant;
every claim is shown by its lesson's code and measured; a claim outside its band says so (and fails CI's
strict ci run); the builder names a hand-edited number."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from genimg_course import claims
from genimg_course.course import notebooks, prose

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted(p.stem for p in (ROOT / "solutions").glob("*.ipynb"))
SHOW_RE = re.compile(r"""claims\.show\(\s*["']([\w.\-]+)["']""")


@pytest.fixture(scope="module")
def registry():
    return prose.load_registry()


def _code(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_number_in_the_prose_is_a_claim_or_a_constant(lesson, registry):
    nb = nbformat.read(ROOT / "solutions" / f"{lesson}.ipynb", as_version=4)
    found, missing, used = prose.lesson_report(nb, lesson, registry)
    print(f"{lesson}: {len(found)} claimed numbers ({len({n for _, n, _ in found})} claims), "
          f"{len(used)} listed constants, the rest constants by rule")
    assert not missing, (f"{len(missing)} numbers in {lesson}'s Markdown are neither claims nor constants "
                         f"(mark a run's number <!--claim:NAME--> or list a constant with its source in "
                         f"genimg_course/registry/{lesson}.json; INSTRUCTORS.md, 'Claims'):\n"
                         + "\n".join(map(str, missing)))


@pytest.mark.parametrize("lesson", LESSONS)
def test_listed_constants_have_a_source_and_are_used(lesson, registry):
    nb = nbformat.read(ROOT / "solutions" / f"{lesson}.ipynb", as_version=4)
    constants = registry["constants"].get(lesson, {})
    _, _, used = prose.lesson_report(nb, lesson, registry)
    assert all(isinstance(s, str) and len(s) > 5 for s in constants.values()), \
        f"{lesson}: every constant needs its source: {[c for c, s in constants.items() if len(str(s)) <= 5]}"
    assert set(constants) <= used, f"{lesson}: listed constants its Markdown no longer has: {sorted(set(constants) - used)}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_each_claim_is_shown_by_its_lesson_and_marked_in_its_prose(lesson, registry):
    nb = nbformat.read(ROOT / "solutions" / f"{lesson}.ipynb", as_version=4)
    mine = {n for n, c in registry["claims"].items() if c["lesson"] == lesson}
    shown = set(SHOW_RE.findall(_code(nb)))
    marked = {n for _, n, _ in prose.lesson_report(nb, lesson, registry)[0]}
    assert shown <= mine, f"{lesson}'s code shows claims its registry lacks: {sorted(shown - mine)}"
    assert mine <= shown, f"{lesson}'s registry has claims its code never shows (so no run records them): " \
                          f"{sorted(mine - shown)}"
    assert marked <= mine, f"{lesson}'s Markdown marks unknown claims: {sorted(marked - mine)}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_each_claim_is_measured_in_ci_and_on_two_cores_at_full_and_half_budget(lesson, registry):
    problems = []
    for name, c in registry["claims"].items():
        if c["lesson"] != lesson:
            continue
        runs = c.get("runs", {}).get("cpu", [])
        if c.get("value") is None or "ci" not in c.get("bands", {}) or "cpu" not in c.get("bands", {}):
            problems.append(f"{name}: not measured (value, ci band, cpu band)")
        elif len({r["seed"] for r in runs}) < 3 or {r["budget_scale"] for r in runs} < {1.0, 0.5}:
            problems.append(f"{name}: its cpu band rests on {len(runs)} runs; needs 3 seeds at full and half budget")
        else:
            lo, hi = c["bands"]["cpu"]
            outside = [r for r in runs if not lo <= r["value"] <= hi]
            if outside or not lo <= c["value"] <= hi:
                problems.append(f"{name}: runs outside its own band {lo}–{hi}: {outside}")
    assert not problems, f"{lesson} (python benchmarks/claims.py run/update {lesson}):\n" + "\n".join(problems)


# ----------------------------------------------------------------------------- the machinery

REG = {"claims": {"06.fid": {"what": "FID", "fmt": ".1f", "value": 42.31, "lesson": "06_x",
                             "recorded": {"ci": 300.0, "cpu": 42.31}, "bands": {"ci": [270.0, 330.0], "cpu": [33.0, 52.4]},
                             "runs": {"cpu": [{"seed": s, "budget_scale": b, "value": 40.0} for s in (0, 1, 2)
                                              for b in (1.0, 0.5)]}}},
       "constants": {}}


def test_fill_writes_the_registry_value_and_band_before_each_marker():
    text = "FID 44.8<!--claim:06.fid--> (band 1–2<!--claim:06.fid:band-->), new <!--claim:06.fid:hi-->"
    assert prose.fill(text, REG) == ("FID 42.3<!--claim:06.fid--> (band 33.0–52.4<!--claim:06.fid:band-->), "
                                     "new 52.4<!--claim:06.fid:hi-->")
    with pytest.raises(prose.ClaimsError, match="unknown claim '06.nope'.*06.fid"):
        prose.fill("1<!--claim:06.nope-->", REG, "x cell 3")
    with pytest.raises(prose.ClaimsError, match="no field 'median'.*band"):
        prose.fill("1<!--claim:06.fid:median-->", REG)


def test_rules_and_constants_account_for_numbers():
    src = ("## 3. Title\nSee eq. (4) and lesson 05 (Ho et al., 2020); $x_{10}$ and `steps=50`. "
           "FID 44.8<!--claim:06.fid--> against 1,000 steps and 37.5 and 12 s.")
    left = [u.token for u in prose.unaccounted(src, {"1,000": "T: Ho et al. 2020"})]
    assert left == ["37.5", "12"]
    assert [u.token for u in prose.unaccounted("takes 5 s or 7% but 3 seeds", {})] == ["5", "7%"]


def test_a_hand_edited_claim_fails_the_build_check_naming_claim_lesson_and_cell(tmp_path):
    for folder in ("solutions", "notebooks"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    reg = prose.load_registry()
    lesson, name = next((c["lesson"], n) for n, c in reg["claims"].items() if c.get("value") is not None)
    path = tmp_path / "solutions" / f"{lesson}.ipynb"
    nb = nbformat.read(path, as_version=4)
    i, cell = next((i, c) for i, c in enumerate(nb.cells) if f"<!--claim:{name}-->" in c.source)
    m = re.search(rf"({prose.NUMBER})<!--claim:{re.escape(name)}-->", cell.source)
    cell.source = cell.source[:m.start(1)] + "123456" + cell.source[m.end(1):]
    nbformat.write(nb, path)
    changes = notebooks.build(tmp_path, check=True)
    why = " ".join(c.why for c in changes if c.path == path)
    assert f"{lesson}.ipynb cell {i}: claim {name}" in why and "the Markdown 123456" in why, why


def test_show_says_normal_or_outside_with_reasons_and_records(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(claims, "registry", lambda: REG)
    out = tmp_path / "claims.jsonl"
    monkeypatch.setenv(claims.OUT_ENV, str(out))
    assert claims.show("06.fid", 44.8, "cpu") is True
    assert "FID 44.8: the recorded run had 42.3; 3 seeds on 2 cores, full or half budget: 33.0–52.4: yours is normal" \
        in capsys.readouterr().out
    assert claims.show("06.fid", 80, "cpu") is False
    said = capsys.readouterr().out
    assert "yours is above it" in said and "fewer (or more) training steps" in said
    assert [json.loads(l)["value"] for l in out.read_text().splitlines()] == [44.8, 80.0]
    assert claims.show("06.fid", 80, "gpu") is None
    assert "no band measured for the gpu profile" in capsys.readouterr().out
    with pytest.raises(KeyError, match="06.fid"):
        claims.show("06.other", 1.0, "cpu")


def test_strict_ci_run_fails_outside_the_ci_band(monkeypatch):
    monkeypatch.setattr(claims, "registry", lambda: REG)
    monkeypatch.setenv("GENIMG_STRICT", "1")
    assert claims.show("06.fid", 301.0, "ci") is True
    with pytest.raises(claims.ClaimOutsideBand, match=r"claim '06.fid' \(lesson 06_x\).*below"):
        claims.show("06.fid", 100.0, "ci")
    monkeypatch.setenv("GENIMG_STRICT", "0")
    assert claims.show("06.fid", 100.0, "ci") is False


def test_seed_and_budget_scale_from_the_environment(monkeypatch):
    from genimg_course import zoo

    monkeypatch.setenv("GENIMG_BUDGET_SCALE", "0.5")
    assert zoo.budget_for("dcgan", "cpu", 1437).seconds == zoo.SECONDS["cpu"]["dcgan"] * 0.5
    assert zoo.budget_for("dcgan", "ci", 512).seconds is None  # epochs decide in ci: unchanged
    monkeypatch.setenv("GENIMG_BUDGET_SCALE", "fast")
    with pytest.raises(ValueError, match="GENIMG_BUDGET_SCALE='fast'"):
        zoo.budget_for("dcgan", "cpu", 1437)
    import genimg_course

    monkeypatch.setenv("GENIMG_SEED", "2")
    monkeypatch.setenv("GENIMG_PROFILE", "ci")
    assert genimg_course.setup(seed=0, verbose=False, prepare_data=False).seed == 2
