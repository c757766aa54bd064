"""The `test` extra lists every third-party package the tests import.

A static check, fast enough for every run: each top-level module imported anywhere under
tests/ (found with ast, so imports inside functions count too) must belong to a distribution
named directly in pyproject.toml's runtime dependencies or its `test` extra. Coming in only
as a dependency of a dependency is not enough (it can disappear on any upgrade), and being
installed on this machine by chance is exactly what a fresh venv does not reproduce.
bench/ is not covered: its scripts are not run by the suite and compare optional clients.
"""
from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .conftest import REPO_ROOT

FIRST_PARTY = {"extserver", "tests"}


def imported_modules(root: Path) -> dict[str, set[str]]:
    """Top-level module -> files importing it, for absolute imports of non-stdlib modules."""
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".", 1)[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                    found.setdefault(top, set()).add(str(path.relative_to(root)))
    return found


def declared_distributions(pyproject: Path, extra: str = "test") -> set[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"][extra]]
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def undeclared_imports(root: Path, pyproject: Path) -> list[str]:
    """One line per imported module that no declared distribution provides."""
    declared = declared_distributions(pyproject)
    providers = packages_distributions()
    problems = []
    for module, files in sorted(imported_modules(root).items()):
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        where = ", ".join(sorted(files))
        if not dists:
            problems.append(f"{module} (imported by {where}) is not installed: add its distribution to the test extra")
        elif not dists & declared:
            problems.append(f"{module} (imported by {where}) comes from {', '.join(sorted(dists))}, "
                            f"which the test extra does not list")
    return problems


def test_every_third_party_import_of_the_tests_is_declared():
    assert undeclared_imports(REPO_ROOT / "tests", REPO_ROOT / "pyproject.toml") == []


def test_the_check_sees_imports_inside_functions(tmp_path):
    (tmp_path / "test_x.py").write_text("def f():\n    import yaml.constructor\n    from requests import get\n")
    assert set(imported_modules(tmp_path)) == {"yaml", "requests"}


def test_the_check_reports_an_undeclared_and_a_missing_package(tmp_path):
    """Negative control: pip is installed in every venv but no extra lists it."""
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_x.py").write_text("import os\nimport pytest\nimport pip._internal\n"
                                     "from extserver import api\nimport no_such_module_for_extserver\n")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = []\n[project.optional-dependencies]\ntest = ["pytest>=8"]\n')
    problems = undeclared_imports(tests, pyproject)
    assert len(problems) == 2, problems
    assert problems[0].startswith("no_such_module_for_extserver (imported by test_x.py) is not installed")
    assert problems[1] == "pip (imported by test_x.py) comes from pip, which the test extra does not list"
