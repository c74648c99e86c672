"""The built artifacts: every handler imports from them alone, they fit in Lambda, and they are
reproducible (equal inputs, byte-equal zips, so a redeploy of unchanged code changes nothing)."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra.build import (
    CODE_ZIP,
    LAMBDA,
    LAYER_ZIP,
    UNZIPPED_LIMIT,
    Manifest,
    Target,
    build,
    runtime_dependencies,
)

REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9._-]+")
HANDLERS = ("producers.lifecycle", "producers.trueup", "consumers.apply")
# The same build for this machine's interpreter: the Lambda one (arm64, Python 3.12) cannot load here.
HOST = Target(name=f"this machine (Python {sys.version_info.major}.{sys.version_info.minor})", pip_args=())


@pytest.fixture(scope="module")
def host_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    out = tmp_path_factory.mktemp("host")
    return out, build(out, HOST)


@pytest.fixture(scope="module")
def lambda_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    out = tmp_path_factory.mktemp("lambda")
    return out, build(out, LAMBDA)


def names(archive: Path) -> list[str]:
    with zipfile.ZipFile(archive) as opened:
        return opened.namelist()


def test_each_handler_imports_from_the_artifacts_in_a_clean_virtualenv(
    host_build: tuple[Path, Manifest], tmp_path: Path
) -> None:
    out, _manifest = host_build
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    code, layer = tmp_path / "code", tmp_path / "layer"
    for archive, target in ((out / CODE_ZIP, code), (out / LAYER_ZIP, layer)):
        with zipfile.ZipFile(archive) as opened:
            opened.extractall(target)
    # Lambda puts the function's code and each layer's python/ on the path, and sets no SGMESH_*:
    # importing must need nothing else (settings are read on the first invocation, not at import).
    script = (
        "import importlib\n"
        f"for name in {HANDLERS!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    assert callable(module.handler), name\n"
        "    print(module.__file__)\n"
    )
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script],
        env={"PYTHONPATH": f"{code}:{layer / 'python'}", "PYTHONNOUSERSITE": "1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [Path(line).relative_to(code).as_posix() for line in result.stdout.split()] == [
        f"{name.replace('.', '/')}.py" for name in HANDLERS
    ]


def test_the_lambda_artifacts_are_for_arm64_python312_and_fit(
    lambda_build: tuple[Path, Manifest], capsys: pytest.CaptureFixture[str]
) -> None:
    out, manifest = lambda_build
    with capsys.disabled():
        print("\n" + manifest.report())
    assert manifest.unzipped_bytes < UNZIPPED_LIMIT
    extensions = [name for name in names(out / LAYER_ZIP) if name.endswith(".so")]
    assert extensions
    assert all(name.endswith(("-aarch64-linux-gnu.so", ".abi3.so")) for name in extensions), extensions
    assert any("cpython-312-aarch64" in name for name in extensions)
    assert all(name.startswith("python/") for name in names(out / LAYER_ZIP))
    # Every runtime dependency of pyproject.toml is in the layer.
    wanted = {_normalized(REQUIREMENT_NAME.match(requirement)[0]) for requirement in runtime_dependencies()}  # type: ignore[index]
    assert wanted <= {_normalized(name) for name in manifest.packages}


def test_the_code_artifact_holds_the_packages_only_and_is_reproducible(
    host_build: tuple[Path, Manifest], lambda_build: tuple[Path, Manifest]
) -> None:
    code = names(lambda_build[0] / CODE_ZIP)
    assert {f"{name.replace('.', '/')}.py" for name in HANDLERS} <= set(code)
    assert not [
        name for name in code if ".dist-info/" in name or name.startswith(("tests/", "infra/", "sgmesh/"))
    ]
    # Two separate builds (for two platforms) give the same bytes for the platform-free code zip.
    assert host_build[1].code.sha256 == lambda_build[1].code.sha256


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-")
