"""Who may import whom, checked on the source with ``ast`` (lazy imports inside functions too).

- Nothing under ``verifier/`` outside ``verifier/cli`` imports ``verifier.cli``: the commands
  parse arguments and call the library, never the other way round.
- The bench imports no ``verifier.cli`` and no private name (leading underscore) of the library.
- The service package (``verifier/service``) imports no bench code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Exceptions to the bench's no-private-names rule, as (file, dotted name): none. The cure for
# a bench that needs one is a public accessor in the library, not an entry here.
KNOWN_PRIVATE_ATTRIBUTES: set[tuple[str, str]] = set()


def imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The dotted names one import binds: ``a.b`` for ``import a.b`` and ``from a import b``;
    a relative import is resolved against ``module``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    return [base, *(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")]


def library_modules_bound(tree: ast.AST) -> dict[str, str]:
    """Local name -> library module, for ``from verifier import x`` and ``import verifier.x as y``."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if _under(node.module, "verifier"):
                for alias in node.names:
                    bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and _under(alias.name, "verifier"):
                    bound[alias.asname] = alias.name
    return bound


def violations(source: str, path: str) -> list[str]:
    """``LINE: RULE: NAME`` for each import rule ``source`` breaks; ``path`` is the file's path
    relative to the repository. RULE is ``cli``, ``bench`` or ``private``."""
    tree = ast.parse(source, filename=path)
    is_package = path.endswith("__init__.py")
    module = ".".join(Path(path).with_suffix("").parts).removesuffix(".__init__")
    in_bench = path.startswith("bench/")
    rules = []  # (rule, does a name break it)
    if (path.startswith("verifier/") and not path.startswith("verifier/cli/")) or in_bench:
        rules.append(("cli", lambda n: _under(n, "verifier.cli")))
    if path.startswith("verifier/service/"):
        rules.append(("bench", lambda n: _under(n, "bench")))
    if in_bench:
        rules.append(("private", lambda n: _under(n, "verifier") and _private(n.split(".")[1:])))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = imported_names(node, module, is_package)
            for rule, breaks in rules:
                bad = [n for n in names if breaks(n)]
                if bad:
                    found.append(f"{node.lineno}: {rule}: {bad[0]}")
    if in_bench:
        bound = library_modules_bound(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound
                and _private([node.attr])
            ):
                name = f"{bound[node.value.id]}.{node.attr}"
                if (path, name) not in KNOWN_PRIVATE_ATTRIBUTES:
                    found.append(f"{node.lineno}: private: {name}")
    return sorted(found)


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _private(parts: list[str]) -> bool:
    return any(p.startswith("_") and not p.startswith("__") for p in parts)


def source_files() -> list[str]:
    files = [*(ROOT / "verifier").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    return sorted(str(p.relative_to(ROOT)) for p in files)


@pytest.mark.parametrize("path", source_files())
def test_import_rules(path: str) -> None:
    assert violations((ROOT / path).read_text(encoding="utf-8"), path) == []


# The checker itself, on imports it must catch (and must not).
CASES = [
    # (file, source, the rules broken)
    ("verifier/core.py", "from verifier.cli.common import x", ["cli"]),
    ("verifier/core.py", "from verifier import cli", ["cli"]),
    ("verifier/store/memory.py", "def f():\n    import verifier.cli.main", ["cli"]),  # lazy
    ("verifier/service/app.py", "from ..cli import admin", ["cli"]),  # relative
    ("verifier/cli/demo.py", "from verifier.cli.common import qr_text", []),  # cli among itself
    ("verifier/service/app.py", "from bench.http1 import parse_response", ["bench"]),
    ("verifier/service/app.py", "import bench", ["bench"]),
    ("verifier/service/app.py", "import benchmark_tools", []),  # only the package bench
    ("bench/race.py", "from verifier.cli.common import x", ["cli"]),
    ("bench/race.py", "from verifier.core import _split", ["private"]),
    ("bench/race.py", "from verifier._native import lib", ["private"]),
    ("bench/race.py", "from verifier import paseto\npaseto._pae3(b'')", ["private"]),
    ("bench/race.py", "import verifier.core as c\nc._cache.clear()", ["private"]),
    ("bench/race.py", "from verifier import paseto\npaseto.__name__", []),  # dunder
    ("bench/race.py", "from bench.engine import _Conn", []),  # the bench's own privates
    ("bench/race.py", "from verifier.keyfiles import read_secret_key", []),
]


@pytest.mark.parametrize(("path", "source", "rules"), CASES)
def test_the_checker_catches(path: str, source: str, rules: list[str]) -> None:
    found = violations(source, path)
    assert [v.split(": ")[1] for v in found] == rules, found
