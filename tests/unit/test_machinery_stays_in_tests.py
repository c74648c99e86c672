"""Test machinery lives in tests/ (docs/architecture.md, Layers): no product module imports unittest.mock or
changes the process environment; the product takes its environment, endpoint and clock as arguments."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("schemas", "batches", "producers", "consumers", "cloud", "sgmesh", "infra")
ENVIRONMENT_WRITES = frozenset(
    {"update", "setdefault", "pop", "popitem", "clear", "__setitem__", "__delitem__"}
)


def machinery(source: str) -> list[str]:
    """What in `source` patches the process: an import of unittest or mock, a write to os.environ."""
    tree = ast.parse(source)
    os_names, environ_names = _os_aliases(tree)

    def is_environ(node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in environ_names
        return isinstance(node, ast.Attribute) and node.attr == "environ" and _named(node.value, os_names)

    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and _imports_mock(node):
            found.append(f"line {node.lineno}: imports unittest or mock")
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            changed = [target.value if isinstance(target, ast.Subscript) else target for target in targets]
            if any(is_environ(target) for target in changed):
                found.append(f"line {node.lineno}: writes os.environ")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method = node.func
            if (method.attr in ENVIRONMENT_WRITES and is_environ(method.value)) or (
                method.attr in ("putenv", "unsetenv") and _named(method.value, os_names)
            ):
                found.append(f"line {node.lineno}: calls {method.attr} on the environment")
    return found


def _imports_mock(node: ast.Import | ast.ImportFrom) -> bool:
    modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
    return any(module.split(".")[0] in ("unittest", "mock") for module in modules)


def _named(node: ast.expr, names: set[str]) -> bool:
    return isinstance(node, ast.Name) and node.id in names


def _os_aliases(tree: ast.Module) -> tuple[set[str], set[str]]:
    """The names this module binds to the os module, and to os.environ itself."""
    os_names: set[str] = set()
    environ_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_names |= {alias.asname or alias.name for alias in node.names if alias.name == "os"}
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            environ_names |= {alias.asname or alias.name for alias in node.names if alias.name == "environ"}
    return os_names, environ_names


@pytest.mark.parametrize(
    "source",
    [
        "from unittest import mock",
        "import unittest.mock as um",
        "from unittest.mock import patch",
        "import mock",
        "import os\nos.environ['AWS_ENDPOINT_URL'] = 'http://127.0.0.1:5000'",
        "import os as o\no.environ.setdefault('AWS_REGION', 'us-east-1')",
        "import os\nos.environ.update({'AWS_REGION': 'us-east-1'})",
        "import os\ndel os.environ['AWS_REGION']",
        "import os\nos.environ = {}",
        "from os import environ\nenviron['AWS_REGION'] = 'us-east-1'",
        "from os import environ as env\nenv.pop('AWS_REGION')",
        "import os\nos.putenv('AWS_REGION', 'us-east-1')",
    ],
)
def test_the_check_finds_each_kind_of_patching(source: str) -> None:
    assert machinery(source)


@pytest.mark.parametrize(
    "source",
    [
        "import os\nregion = os.environ.get('AWS_REGION')",
        "import os\nhandler = bind(os.environ, clients)",
        "def bind(environ):\n    environ = dict(environ)\n    environ['AWS_REGION'] = 'us-east-1'",
        "import unittesting",
    ],
)
def test_the_check_leaves_reading_the_environment_alone(source: str) -> None:
    assert machinery(source) == []


def test_no_product_module_imports_mock_or_changes_the_environment() -> None:
    modules = sorted(path for package in PRODUCT for path in (ROOT / package).rglob("*.py"))
    assert len(modules) > 50, "the product's modules were not found"

    found = {
        str(path.relative_to(ROOT)): problems for path in modules if (problems := machinery(path.read_text()))
    }

    assert found == {}
