"""The package's layout is its architecture (README, "How the package is laid out"); these tests keep it so.

Three layers, imports pointing down only:

    genimg_course/course/   the course's machinery (exercises, checks, notebook builder, grader, site, CLI)
    genimg_course/*.py      the lessons' code (one module per idea) and the model zoo
    genimg_course/common/   the helpers every lesson calls (runtime, data, training, pictures, widgets)

Every import counts, the ones inside functions too: a lazy import still ties two modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "genimg_course"
ROOT = "genimg_course"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def course_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports anywhere in its code (a package's ``__init__`` by its name).

    ``from genimg_course import __version__`` (a name of the package root, not a module) is no edge:
    the root is the façade that ``setup()`` and the version are read from.
    """
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from pkg import sub` imports the module pkg.sub when there is one, else a name of pkg
            targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                       for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: use absolute imports (`from genimg_course... import`), "
                                 f"as the rest of the package does")
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import genimg_course.gan.x` -> genimg_course.gan
                target = target.rpartition(".")[0]
            if target and target != ROOT:
                found.add(target)
    return found


def layer(module: str) -> str:
    if module in (ROOT, f"{ROOT}.__main__"):
        return "root"
    if module.startswith(f"{ROOT}.common"):
        return "common"
    if module.startswith(f"{ROOT}.course"):
        return "course"
    return "lessons"  # every module directly in genimg_course/ is a lesson's (or the zoo of their models)


RANK = {"common": 0, "lessons": 1, "course": 2, "root": 3}


def graph() -> dict[str, set[str]]:
    modules = course_modules()
    return {name: imports_of(path, set(modules)) - {name} for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (depth-first search with a path stack)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_imports_point_down_the_layers():
    wrong = [f"{a} ({layer(a)}) imports {b} ({layer(b)})"
             for a, targets in graph().items() for b in sorted(targets)
             if layer(a) != "root" and RANK[layer(b)] > RANK[layer(a)]]
    assert not wrong, ("a module imports from a layer above it; the lessons' code never imports the course's "
                       "machinery, and the common helpers import neither:\n  " + "\n  ".join(wrong))


def test_no_import_circles():
    cycle = find_cycle(graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_one_checks_module_per_lesson_with_exercises():
    from genimg_course.course import lessons

    with_exercises = [item.slug for item in lessons.LESSONS if item.exercises]
    assert with_exercises, "no lesson declares exercises?"
    for slug in with_exercises:
        assert (PACKAGE / "course" / "checks" / f"lesson{slug[:2]}.py").is_file(), slug
        assert {ex for ex in lessons.lesson(slug).exercises}  # declared in its own module (read from source)
    checks = sorted(p.stem for p in (PACKAGE / "course" / "checks").glob("lesson*.py"))
    assert checks == [f"lesson{slug[:2]}" for slug in with_exercises]


def test_modules_stay_readable():
    """One idea per module, each small enough to read beside its notebook (the issue's ~600 lines)."""
    long = {name: n for name, path in course_modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 700}
    assert not long, f"split these modules: {long}"


# ----------------------------------------------------------------------------- the checks above can fail
def test_the_cycle_finder_finds_a_circle_and_passes_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("source,target", [("from genimg_course.course import exercises\n", "course"),
                                           ("def f():\n    import genimg_course.course.cli\n", "course"),
                                           ("from genimg_course import gan\n", "lessons")])
def test_an_upward_import_is_seen(tmp_path, source, target):
    path = tmp_path / "x.py"
    path.write_text(source)
    found = imports_of(path, set(course_modules()))
    assert [layer(m) for m in found] == [target]
