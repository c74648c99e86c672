"""The layers hold: pure modules load no AWS SDK or Powertools, and imports point one way only
(sgmesh -> producers, consumers -> cloud -> schemas)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = ("schemas", "cloud", "producers", "consumers", "sgmesh", "infra")

# The planning modules: decisions over plain data, no I/O, no clock, no logging. Every module under
# schemas/ is pure as well and is found on its own. Keep this list up to date when modules move.
PURE_MODULES = (
    "consumers.adoption",
    "consumers.attribution",
    "consumers.budget",
    "consumers.errors",
    "consumers.prefix_lists",
    "consumers.reconcile",
    "consumers.review",
    "consumers.sharding",
    "consumers.signatures",
    "consumers.state",
    "consumers.steps",
    "producers.snapshot",
    "sgmesh.leaving",
    "sgmesh.wiring",
)
# What a pure module must not load: the AWS SDK and the Lambda toolkit.
FORBIDDEN_ROOTS = frozenset({"boto3", "botocore", "aws_lambda_powertools"})

# Package -> the product packages it must never import (all imports count: at module level, inside
# functions, and under TYPE_CHECKING).
NEVER_IMPORTS = {
    "schemas": {"cloud", "producers", "consumers", "sgmesh", "infra"},
    "cloud": {"producers", "consumers", "sgmesh", "infra"},
    "producers": {"consumers", "sgmesh", "infra"},
    "consumers": {"producers", "sgmesh", "infra"},
}

LOADED_FORBIDDEN = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
forbidden = set(sys.argv[2].split(","))
print(json.dumps(sorted(name for name in sys.modules if name.partition(".")[0] in forbidden)))
"""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PRODUCT_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def pure_modules() -> list[str]:
    schemas = [name for name in product_modules() if name.partition(".")[0] == "schemas"]
    return sorted({*PURE_MODULES, *schemas})


def imports_of(source: str, package: str, modules: set[str]) -> Iterator[str]:
    """Every module `source` imports, anywhere in it; `from package import module` names the module.

    `package` is the one the module is in, for relative imports; `modules`, the product's modules.
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules)


def import_graph() -> dict[str, set[str]]:
    modules = product_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = set(imports_of(path.read_text(), package, set(modules)))
    return graph


def import_chains(start: str, graph: dict[str, set[str]]) -> dict[str, str]:
    """Every module `start` imports, directly or through product modules -> how ("a -> b -> c")."""
    chains = {start: start}
    pending = [start]
    while pending:
        importer = pending.pop()
        for name in sorted(graph.get(importer, set()) - chains.keys()):
            chains[name] = f"{chains[importer]} -> {name}"
            pending.append(name)
    del chains[start]
    return chains


def test_every_listed_pure_module_exists() -> None:
    missing = [name for name in PURE_MODULES if name not in product_modules()]
    assert not missing, f"moved or renamed: update PURE_MODULES in {Path(__file__).name}: {missing}"


def test_importing_a_pure_module_loads_no_aws_sdk_and_no_powertools() -> None:
    # Each in a fresh interpreter: what it really loads, through third-party packages too.
    modules = pure_modules()
    runs = {
        name: subprocess.Popen(
            [sys.executable, "-c", LOADED_FORBIDDEN, name, ",".join(sorted(FORBIDDEN_ROOTS))],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in modules
    }
    loaded: dict[str, list[str]] = {}
    for name, run in runs.items():
        stdout, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, f"importing {name} failed:\n{stderr}"
        loaded[name] = json.loads(stdout)

    assert {name: forbidden for name, forbidden in loaded.items() if forbidden} == {}
    assert len(loaded) == len(modules) > len(PURE_MODULES)


def test_no_pure_module_imports_aws_sdk_or_powertools_even_inside_a_function() -> None:
    # The fresh interpreter sees only imports that ran; a lazy import waits in a function body.
    graph = import_graph()
    offenders = {
        chain
        for name in pure_modules()
        for imported, chain in import_chains(name, graph).items()
        if imported.partition(".")[0] in FORBIDDEN_ROOTS
    }
    assert offenders == set()


def test_imports_point_one_way_between_packages() -> None:
    graph = import_graph()
    offenders = {
        f"{importer} imports {imported}"
        for importer, names in graph.items()
        for imported in names
        if imported.partition(".")[0] in NEVER_IMPORTS.get(importer.partition(".")[0], set())
    }
    assert offenders == set()


def test_the_import_graph_sees_every_kind_of_import() -> None:
    # GIVEN a module of consumers/ with an import at the top, a relative one, one under TYPE_CHECKING
    # and one inside a function
    source = (
        "from typing import TYPE_CHECKING\n"
        "import schemas.events\n"
        "from consumers import reconcile\n"
        "from . import state\n"
        "from .sharding import ShardPlan\n"
        "if TYPE_CHECKING:\n"
        "    from mypy_boto3_ec2 import EC2Client\n"
        "def later() -> None:\n"
        "    import boto3\n"
    )
    # WHEN its imports are read
    names = set(imports_of(source, "consumers", set(product_modules())))

    # THEN each is seen, and `from package import module` names the module
    assert names == {
        "typing",
        "schemas.events",
        "consumers",
        "consumers.reconcile",
        "consumers.state",
        "consumers.sharding",
        "mypy_boto3_ec2",
        "boto3",
    }
