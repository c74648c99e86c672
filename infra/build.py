"""Build the Lambda artifacts from pyproject.toml: one code zip for all functions and a dependency layer."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "build" / "lambda"
CODE_ZIP = "code.zip"
LAYER_ZIP = "layer.zip"
MANIFEST = "manifest.json"
# Lambda's limit on a function's code and all its layers, unzipped.
UNZIPPED_LIMIT = 250 * 1024 * 1024
# Fixed entry times and modes make equal inputs give byte-equal zips, so an unchanged build keeps its
# content hash, its S3 key and therefore its stack: redeploying the same code changes nothing.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# What the wheel build never needs from the project directory (virtualenvs, caches, outputs).
NOT_SOURCES = (
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    "tests",
)


@dataclass(frozen=True)
class Target:
    """Where the layer's wheels must run: pip's platform selection arguments."""

    name: str
    pip_args: tuple[str, ...]


# The template's functions: python3.12 on arm64 (Amazon Linux 2023, glibc 2.34). pip takes each
# platform tag literally, so every manylinux generation the runtime can load is named.
LAMBDA = Target(
    name="python3.12-arm64",
    pip_args=(
        "--platform=manylinux2014_aarch64",
        "--platform=manylinux_2_28_aarch64",
        "--platform=manylinux_2_34_aarch64",
        "--implementation=cp",
        "--python-version=3.12",
        "--only-binary=:all:",
    ),
)


@dataclass(frozen=True)
class Artifact:
    path: str
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    files: int


@dataclass(frozen=True)
class Manifest:
    target: str
    code: Artifact
    layer: Artifact
    packages: dict[str, str]

    @property
    def unzipped_bytes(self) -> int:
        return self.code.unzipped_bytes + self.layer.unzipped_bytes

    def report(self) -> str:
        lines = [f"Lambda artifacts for {self.target}:"]
        for label, artifact in (("code", self.code), ("layer", self.layer)):
            lines.append(
                f"  {label:<5} {artifact.path}: {_mib(artifact.zipped_bytes)} zipped, "
                f"{_mib(artifact.unzipped_bytes)} unzipped, {artifact.files} files"
            )
        lines.append(f"  total unzipped {_mib(self.unzipped_bytes)} of Lambda's {_mib(UNZIPPED_LIMIT)}")
        lines.append("  layer packages: " + ", ".join(f"{n}=={v}" for n, v in sorted(self.packages.items())))
        return "\n".join(lines)


class BuildError(Exception):
    """The artifacts could not be built or would not fit in Lambda."""


def runtime_dependencies(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The project's own dependency list: the layer has no second, hand-kept one."""
    project = tomllib.loads(pyproject.read_text())["project"]
    dependencies: list[str] = project["dependencies"]
    return dependencies


def build(out_dir: Path = DEFAULT_OUT, target: Target = LAMBDA, project: Path = ROOT) -> Manifest:
    """Write code.zip, layer.zip and manifest.json into out_dir and return the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sgmesh-build-") as scratch:
        work = Path(scratch)
        code = _build_code(project, work, out_dir / CODE_ZIP)
        layer, packages = _build_layer(
            runtime_dependencies(project / "pyproject.toml"), target, work, out_dir / LAYER_ZIP
        )
    manifest = Manifest(target=target.name, code=code, layer=layer, packages=packages)
    if manifest.unzipped_bytes > UNZIPPED_LIMIT:
        raise BuildError(manifest.report() + "\nthe artifacts exceed Lambda's unzipped size limit")
    (out_dir / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2, sort_keys=True) + "\n")
    return manifest


# The operator CLI and the local runtime (moto, rich) ship in the wheel but never run in Lambda.
OPERATOR_TOOLS = ("sgmesh/",)


def _build_code(project: Path, work: Path, destination: Path) -> Artifact:
    # The project's own wheel decides what is packaged (setuptools' package list and package data).
    # It is built from a copy: setuptools keeps build/lib in the source tree between builds, where a
    # module deleted since the last build would still be packaged.
    copy, wheels = work / "source", work / "wheel"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    _pip("wheel", "--no-deps", f"--wheel-dir={wheels}", str(copy))
    (wheel,) = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        entries = [
            (info.filename, archive.read(info))
            for info in archive.infolist()
            if not info.is_dir()
            and ".dist-info/" not in info.filename
            and not info.filename.startswith(OPERATOR_TOOLS)
        ]
    return _write_zip(destination, entries)


def _build_layer(
    dependencies: Sequence[str], target: Target, work: Path, destination: Path
) -> tuple[Artifact, dict[str, str]]:
    site = work / "layer" / "python"
    report = work / "report.json"
    _pip(
        "install",
        "--no-compile",
        f"--target={site}",
        f"--report={report}",
        *target.pip_args,
        *dependencies,
    )
    installed = json.loads(report.read_text())["install"]
    packages = {item["metadata"]["name"]: item["metadata"]["version"] for item in installed}
    entries = [
        (f"python/{path.relative_to(site).as_posix()}", path.read_bytes())
        for path in sorted(site.rglob("*"))
        # Console scripts are of no use in a layer, and bytecode is compiled by the runtime.
        if path.is_file() and path.relative_to(site).parts[0] != "bin" and path.suffix != ".pyc"
    ]
    return _write_zip(destination, entries), packages


def _write_zip(destination: Path, entries: Iterable[tuple[str, bytes]]) -> Artifact:
    unzipped = 0
    count = 0
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
            unzipped += len(data)
            count += 1
    content = destination.read_bytes()
    return Artifact(
        path=str(destination),
        sha256=hashlib.sha256(content).hexdigest(),
        zipped_bytes=len(content),
        unzipped_bytes=unzipped,
        files=count,
    )


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise BuildError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (%(default)s)")
    args = parser.parse_args(argv)
    try:
        manifest = build(args.out)
    except BuildError as error:
        print(error, file=sys.stderr)
        return 1
    print(manifest.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
