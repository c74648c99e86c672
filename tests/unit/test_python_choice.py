"""The Makefile builds its virtualenvs with a supported Python: 3.12 first, then 3.13, 3.11, python3;
each on PATH or installed by pyenv."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make") or "make"
STAMP = ".venv/.installed"


def interpreter(
    bin_dir: Path, name: str, version: str, *, with_venv: bool = True, starts: bool = True
) -> None:
    """A stand-in that answers the Makefile's probes as a Python of `version` would."""
    script = bin_dir / name
    answers = [
        *([] if with_venv else ["*ensurepip*) exit 1 ;;"]),
        f'--version) echo "Python {version}.0" ;;',
        f"*) echo {version} ;;",
    ]
    start = "" if starts else "exit 127\n"
    script.write_text(f'#!/bin/sh\n{start}case "$*" in\n' + "\n".join(answers) + "\nesac\n")
    script.chmod(0o755)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The Makefile and infra/infra.mk with a pyproject.toml, where only stand-in interpreters are found."""
    (tmp_path / "infra").mkdir()
    shutil.copy(ROOT / "Makefile", tmp_path)
    shutil.copy(ROOT / "infra" / "infra.mk", tmp_path / "infra")
    (tmp_path / "pyproject.toml").touch()
    (tmp_path / "bin").mkdir()
    return tmp_path


def make(project: Path, *args: str, dry_run: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAKE, *(["-n"] if dry_run else []), *args],
        cwd=project,
        env={"PATH": str(project / "bin")},
        capture_output=True,
        text=True,
        check=False,
    )


def chosen(project: Path, *args: str) -> str:
    """The interpreter `make` would build .venv with (a dry run prints the recipe, PYTHON expanded)."""
    result = make(project, STAMP, *args)
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if " -m venv .venv" in line]
    return line.rsplit(" -m venv", 1)[0].rsplit(";", 1)[-1].strip()


def virtualenv(project: Path, version: str, *, starts: bool = True) -> None:
    """An installed .venv (stamp newer than pyproject.toml) whose interpreter is a stand-in."""
    bin_dir = project / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (project / ".venv" / "pyvenv.cfg").write_text(f"version = {version}.0\n")
    interpreter(bin_dir, "python", version, starts=starts)
    (project / STAMP).touch()


def test_the_lambda_runtimes_version_comes_first(project: Path) -> None:
    for name, version in [("python3.11", "3.11"), ("python3.13", "3.13"), ("python3.12", "3.12")]:
        interpreter(project / "bin", name, version)
    assert chosen(project) == "python3.12"


def test_then_313_then_311(project: Path) -> None:
    interpreter(project / "bin", "python3.11", "3.11")
    assert chosen(project) == "python3.11"
    interpreter(project / "bin", "python3.13", "3.13")
    assert chosen(project) == "python3.13"


def test_a_python_without_its_venv_module_or_that_fails_to_start_is_passed_over(project: Path) -> None:
    # GIVEN python3.12 without ensurepip (Debian without python3.12-venv) and a broken python3.13 shim
    interpreter(project / "bin", "python3.12", "3.12", with_venv=False)
    interpreter(project / "bin", "python3.13", "3.13", starts=False)
    interpreter(project / "bin", "python3.11", "3.11")
    assert chosen(project) == "python3.11"


def test_python3_is_used_only_when_it_is_a_supported_version(project: Path) -> None:
    interpreter(project / "bin", "python3", "3.13")
    assert chosen(project) == "python3"
    interpreter(project / "bin", "python3", "3.10")
    # WHEN no supported Python is found THEN make stops before building anything, naming the versions
    result = make(project, STAMP, dry_run=False)
    assert result.returncode != 0
    assert "needs one of Python 3.12 3.13 3.11" in result.stderr
    assert not (project / ".venv").exists()


def test_python_on_the_command_line_overrides_the_choice(project: Path) -> None:
    interpreter(project / "bin", "python3.12", "3.12")
    interpreter(project / "bin", "python3.11", "3.11")
    assert chosen(project, "PYTHON=python3.11") == "python3.11"


def test_a_working_virtualenv_of_another_supported_version_is_kept(project: Path) -> None:
    interpreter(project / "bin", "python3.12", "3.12")
    virtualenv(project, "3.11")
    result = make(project, STAMP)
    assert result.returncode == 0, result.stderr
    assert "is up to date" in result.stdout


def test_a_virtualenv_whose_python_no_longer_starts_is_rebuilt_with_a_message(project: Path) -> None:
    interpreter(project / "bin", "python3.12", "3.12")
    virtualenv(project, "3.11", starts=False)
    result = make(project, STAMP)
    assert "rebuilding .venv: its Python no longer starts" in result.stdout
    assert chosen(project) == "python3.12"


def test_a_virtualenv_of_another_version_than_python_names_is_rebuilt_with_a_message(project: Path) -> None:
    interpreter(project / "bin", "python3.13", "3.13")
    virtualenv(project, "3.11")
    result = make(project, STAMP, "PYTHON=python3.13")
    assert "rebuilding .venv: it runs Python 3.11 and PYTHON=python3.13 is 3.13" in result.stdout


def test_checkovs_virtualenv_is_chosen_the_same_way(project: Path) -> None:
    interpreter(project / "bin", "python3.13", "3.13")
    interpreter(project / "bin", "python3.11", "3.11")
    result = make(project, "build/checkov-venv/.installed")
    assert result.returncode == 0, result.stderr
    assert "python3.13 -m venv build/checkov-venv" in result.stdout


def test_a_version_pyenv_installed_but_did_not_select_is_found(project: Path) -> None:
    # GIVEN python3.11 on PATH, and pyenv with a 3.12 installed whose shim answers only when selected
    interpreter(project / "bin", "python3.11", "3.11")
    installed = project / "pyenv" / "versions" / "3.12.1"
    (installed / "bin").mkdir(parents=True)
    interpreter(installed / "bin", "python3.12", "3.12")
    pyenv = project / "bin" / "pyenv"
    pyenv.write_text(
        "#!/bin/sh\n"
        'case "$1 $2" in\n'
        '"latest 3.12") echo 3.12.1 ;;\n'
        f'"prefix 3.12.1") echo {installed} ;;\n'
        "*) exit 1 ;;\n"
        "esac\n"
    )
    pyenv.chmod(0o755)
    # WHEN make looks for a Python THEN it takes pyenv's 3.12, the Lambda runtime's version
    assert chosen(project) == f"{installed}/bin/python3.12"
