"""The numbers in a lesson's prose: filled from the claims registry, or listed as constants (issue 30).

A number a lesson's Markdown quotes from a run is written with a marker that names its claim::

    the DCGAN reaches FID 44.8<!--claim:06.fid_dcgan--> in its budget (3 seeds: 33–52<!--claim:06.fid_dcgan:band-->)

The marker is an HTML comment, so a reader sees only the number. ``genimg notebooks`` rewrites the number in
front of each marker from ``genimg_course/registry/NN_slug.json`` (``fill``), so the prose says what the registry says,
and ``genimg notebooks --check`` (a test) fails when someone edits it by hand. Fields after the name: none
(the recorded run's value), ``band`` (the cpu profile's band, "lo–hi"), ``lo``, ``hi``, ``ci`` (the ci
profile's recorded value), ``runs`` (how many runs the cpu band rests on).

Every other number in the prose must be a *constant*: one the rules below recognise, or one listed for its
lesson in the registry's ``constants`` with its source ("T = 1,000: Ho et al. 2020", "28 × 28: the image
size"). ``unaccounted`` returns the rest; the test fails on any. Rules (each a kind of number that cannot drift
with a run): numbers inside maths ($…$), code (`…`, fenced blocks) and link targets; lesson numbers ("lesson
05", "lessons 04–07", "06_diffusion"); a heading's or a numbered list's own number; references to
equations, sections, tables, figures and cells ("eq. (3)", "section 2", "Table 1", "[33]"); years
(1900–2099 beside a name or in parentheses); single digits that are not a percentage or a time.

Nothing here imports torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from genimg_course.common.registry import REGISTRY, ClaimsError, format_value, load_registry  # noqa: F401 - the builder's


NUMBER = r"[-−+]?\d[\d,]*(?:\.\d+)?%?"
MARKER_RE = re.compile(rf"(?P<old>{NUMBER}(?:[–-]{NUMBER})?)?<!--claim:(?P<name>[\w.\-]+)(?::(?P<field>[\w-]+))?-->")
FIELDS = ("value", "band", "lo", "hi", "ci", "runs")
TOKEN_RE = re.compile(r"(?<![\w.])\d(?:[\d,]*\d)?(?:\.\d+)?(?:%|(?=\W)|$)")  # "1,437"; "0, and" → "0"

_RULES = [  # (what, pattern): the spans a rule exempts; applied in this order, each blanking what it matched
    ("fenced code", re.compile(r"```.*?```", re.S)),
    ("display maths", re.compile(r"\$\$.*?\$\$", re.S)),
    ("inline maths", re.compile(r"(?<!\\)\$(?:[^$\n]|\n(?!\s*\n))+?\$")),  # may wrap, within a paragraph
    ("code", re.compile(r"`(?:[^`\n]|\n(?!\s*\n))+`")),  # may wrap, within a paragraph
    ("link target", re.compile(r"\]\([^)\s]+\)|<https?://[^>]+>|https?://\S+")),
    ("HTML tag", re.compile(r"<[^>\n]+>")),
    ("lesson file", re.compile(r"\b\d\d_[a-z_]+\b")),
    ("lesson number", re.compile(r"\b[Ll]essons?\s+\d\d(?:\s*(?:[–-]|,|and|or|to)\s*\d\d)*")),
    ("heading number", re.compile(r"^#+\s+\d+(?:\.\d+)*\.?", re.M)),
    ("list number", re.compile(r"^\s*\d+\.\s", re.M)),
    ("reference", re.compile(r"\b(?:[Ee]q(?:uation)?s?\.?|[Ss]ections?|§|[Tt]ables?|[Ff]ig(?:ure)?s?\.?|[Cc]ells?|"
                             r"[Ss]teps?\s+(?=\d\b)|[Aa]lgorithm|[Ee]xercises?|[Ii]ssues?|#|[Pp]art|[Cc]hapter|[Aa]ppendix|p\.)"
                             r"\s*\(?\d+(?:\.\d+)?[a-z]?\)?(?:\s*(?:[–-]|,|and|or)\s*\(?\d+(?:\.\d+)?\)?)*")),
    ("cell reference", re.compile(r"\[\d+\](?:\s*[–-]\s*\[\d+\])?(?!\()")),
    ("lesson number", re.compile(r"(?<![\d.,])0\d\b(?![.,]\d)")),  # "01 preprocessing", "**06 · diffusion**"
    ("name with a number", re.compile(r"\b[A-Za-z]+-\d+\b")),  # CIFAR-10
]
# a year: 1900-2099 within a citation ("Ho et al., 2020", "(2014)", "Karras et al., 2019, 2020; Song 2021")
_YEAR = re.compile(r"(?<![\d.,])(?:19|20)\d\d[a-z]?(?![\d]|[.,]\d)")
_CITATION_BEFORE = re.compile(r"(?:et\s+al\.?,?|\(|[\"”],|[A-Z]\w+,?|(?:19|20)\d\d[a-z]?[,;])\s*$")
_SINGLE_DIGIT = re.compile(r"^\d$")
_TIME_OR_PERCENT_AFTER = re.compile(r"^\s*(?:%|s\b|min\b|seconds?\b|minutes?\b|ms\b)")


@dataclass(frozen=True)
class Unaccounted:
    lesson: str
    cell: int
    token: str
    context: str

    def __str__(self) -> str:
        return (f"{self.lesson} cell {self.cell}: {self.token!r} is neither a claim nor a constant "
                f"(…{self.context}…)")


def field_text(claim: dict, field: str, name: str) -> str:
    """The text of one field of a claim, as the prose shows it."""
    fmt = claim.get("fmt", "")
    cpu = claim.get("bands", {}).get("cpu")
    if field == "value":
        return format_value(claim["value"], fmt)
    if field == "ci":
        if "ci" not in claim.get("recorded", {}):
            raise ClaimsError(f"claim {name!r} has no recorded ci value")
        return format_value(claim["recorded"]["ci"], fmt)
    if field == "runs":
        return str(len(claim.get("runs", {}).get("cpu", [])))
    if cpu is None:
        raise ClaimsError(f"claim {name!r} has no cpu band yet, so its {field!r} cannot be shown")
    return {"band": format_value(cpu, fmt), "lo": format_value(cpu[0], fmt), "hi": format_value(cpu[1], fmt)}[field]


def fill(text: str, registry: dict, where: str = "") -> str:
    """``text`` with the number before each claim marker rewritten from the registry."""
    claims = registry.get("claims", {})

    def one(m: re.Match) -> str:
        name, field = m["name"], m["field"] or "value"
        if name not in claims:
            close = [n for n in claims if n.split(".")[0] == name.split(".")[0]]
            raise ClaimsError(f"{where}: unknown claim {name!r}; this lesson's claims: {', '.join(close) or 'none'}")
        if field not in FIELDS:
            raise ClaimsError(f"{where}: claim {name!r} has no field {field!r}; valid fields: {', '.join(FIELDS)}")
        if claims[name].get("value") is None:  # not measured yet: the text stays (the measured test fails)
            return m.group(0)
        return field_text(claims[name], field, name) + m.group(0)[len(m["old"] or ""):]

    return MARKER_RE.sub(one, text)


def markers(text: str) -> list[tuple[str, str]]:
    """(claim name, field) of every marker in ``text``."""
    return [(m["name"], m["field"] or "value") for m in MARKER_RE.finditer(text)]


def _blank(text: str, span: tuple[int, int]) -> str:
    a, b = span
    return text[:a] + " " * (b - a) + text[b:]


def unaccounted(source: str, constants: dict[str, str], lesson: str = "", cell: int = -1) -> list[Unaccounted]:
    """The numbers of one Markdown cell that are neither claims, nor constants by rule, nor listed in
    ``constants`` (token → source)."""
    text = source
    for m in list(MARKER_RE.finditer(text)):
        text = _blank(text, m.span())
    for _, rule in _RULES:
        for m in list(rule.finditer(text)):
            text = _blank(text, m.span())
    for m in list(_YEAR.finditer(text)):
        if _CITATION_BEFORE.search(source[max(0, m.start() - 30):m.start()]):
            text = _blank(text, m.span())
    found = []
    for m in TOKEN_RE.finditer(text):
        token = m.group(0)
        after = text[m.end():m.end() + 12]
        if _SINGLE_DIGIT.match(token) and not _TIME_OR_PERCENT_AFTER.match(after):
            continue
        if token.rstrip(".,") in constants or token in constants:
            continue
        context = source[max(0, m.start() - 40):m.end() + 30].replace("\n", " ")
        found.append(Unaccounted(lesson, cell, token, context))
    return found


def lesson_report(nb, lesson: str, registry: dict) -> tuple[list[tuple[int, str, str]], list[Unaccounted], set[str]]:
    """For one solved notebook: its markers (cell, name, field), its unaccounted numbers, and the listed
    constants it uses."""
    constants = registry.get("constants", {}).get(lesson, {})
    found_markers, missing, used = [], [], set()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        found_markers += [(i, name, field) for name, field in markers(cell.source)]
        missing += unaccounted(cell.source, constants, lesson, i)
        used |= {c for c in constants if re.search(rf"(?<![\w.]){re.escape(c)}(?![\w])", cell.source)}
    return found_markers, missing, used
