"""The built wheel: installs into a clean environment next to another ``flyteplugins-*`` package,
ships its type information and no ``flyteplugins/__init__.py``, registers ``flyte wandb``, and wins
over the reference plugin's release of the same name when an installer sees both.

The clean environment is a fresh venv whose only installed package is the wheel; the project's
dependencies (flyte, wandb, flyteplugins-pytorch, ...) are made importable through a ``.pth`` file
pointing at the project venv's site-packages, added after the venv's own, so that nothing is
downloaded and the wheel, not the editable checkout, provides ``flyteplugins.wandb``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
# The release of the reference plugin this package replaces (docs/versions.md, "Version number").
REFERENCE = "2.12.1"


def _project_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        # No PYTHONPATH and a neutral working directory: only the venv decides what is imported.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _build_wheel(out: Path) -> Path:
    try:
        import build  # noqa: F401
    except ImportError:
        pytest.skip("the 'build' package is not installed (pip install build): cannot build the wheel")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        # Building needs the build backend (hatchling), fetched from the package index into an
        # isolated environment: without an index there is nothing to build with.
        reason = (result.stderr or result.stdout).strip().splitlines()[-1:]
        pytest.skip(f"cannot build the wheel (no build backend available?): {' '.join(reason)}")
    (wheel,) = out.glob("flyteplugins_wandb-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(root / "dist")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # A path line in a .pth file is appended to sys.path without processing the .pth files found
    # there, so the project's editable install (a .pth of its own) stays out.
    Path(site, "project-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return Installed(wheel, venv)


def test_wheel_ships_type_information_and_no_namespace_init(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert "flyteplugins/wandb/py.typed" in names
    assert "flyteplugins/wandb/__init__.py" in names
    assert "flyteplugins/__init__.py" not in names
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)


def test_wheel_declares_the_flyte_cli_entry_point(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = wheel.read(entry_points).decode()
    assert "[flyte.plugins.cli.commands]" in text
    assert "wandb = flyteplugins.wandb._cli:wandb_group" in text


def test_installed_wheel_shares_the_namespace_with_another_flyteplugins_package(
    installed: Installed, tmp_path: Path
) -> None:
    code = (
        "import flyteplugins.pytorch, flyteplugins.wandb, sys\n"
        "print(flyteplugins.wandb.__file__)\n"
        "print(flyteplugins.pytorch.__file__)\n"
        "print('wandb' in sys.modules)\n"
    )
    result = installed.run(str(installed.python), "-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    wandb_file, pytorch_file, imported_wandb = result.stdout.split()
    # The wheel, not the checkout, provides flyteplugins.wandb; flyteplugins.pytorch comes from
    # another distribution, so flyteplugins is a namespace package spanning both.
    assert Path(wandb_file).is_relative_to(installed.venv)
    assert not Path(wandb_file).is_relative_to(REPO)
    assert not Path(pytorch_file).is_relative_to(installed.venv)
    assert imported_wandb == "False"


def test_installed_wheel_registers_flyte_wandb_explain(installed: Installed, tmp_path: Path) -> None:
    flyte = installed.venv / "bin" / "flyte"
    # The flyte console script of the clean environment: flyte's own, run by its interpreter.
    flyte.write_text(f"#!{installed.python}\nimport sys\nfrom flyte.cli.main import main\nsys.exit(main())\n")
    flyte.chmod(0o755)
    env = {"WANDB_PROJECT": "from-wheel"}
    result = subprocess.run(
        [str(flyte), "wandb", "explain"],
        cwd=tmp_path,
        env={**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["field", "value", "from", "overrides"]
    assert any(line.split()[:4] == ["project", "from-wheel", "env", "WANDB_PROJECT"] for line in lines)
    where = installed.run(
        str(installed.python), "-c", "import flyteplugins.wandb._cli as c; print(c.__file__)", cwd=tmp_path
    )
    assert Path(where.stdout.strip()).is_relative_to(installed.venv)


def test_the_version_sorts_after_the_reference_release() -> None:
    # Under the same distribution name, an installer picks the highest version it sees: this
    # package must be the higher one, or `pip install flyteplugins-wandb` with this package's
    # wheel on hand still installs the reference.
    assert Version(_project_version()) > Version(REFERENCE)
    assert not Version(_project_version()).is_prerelease


def test_the_docs_state_the_version_in_pyproject() -> None:
    # docs/versions.md explains the version number; it must be the one pyproject.toml sets.
    text = (REPO / "docs" / "versions.md").read_text()
    assert f"This package is version **{_project_version()}**" in text


@pytest.mark.timeout(240)
def test_the_built_wheel_wins_over_the_reference_release(installed: Installed, tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    shutil.copy(installed.wheel, links)
    fetched = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            f"flyteplugins-wandb=={REFERENCE}",
            "--dest",
            str(links),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if fetched.returncode != 0:
        reason = [line for line in fetched.stderr.splitlines() if "ERROR" in line][-1:] or ["no output"]
        pytest.skip(
            f"cannot fetch the reference flyteplugins-wandb=={REFERENCE} from the package index "
            f"(no registry reachable?): {reason[0]}"
        )
    names = sorted(p.name for p in links.iterdir())
    assert names == sorted([installed.wheel.name, f"flyteplugins_wandb-{REFERENCE}-py3-none-any.whl"])
    # A throwaway environment that sees nothing else: pip chooses between the two wheels only.
    # --no-deps keeps it to that choice (seconds, no dependency install); the project's
    # dependencies play no part in which version wins.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-index",
            "--find-links",
            str(links),
            "--no-deps",
            "--disable-pip-version-check",
            "flyteplugins-wandb",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    code = "import importlib.metadata as m; print(m.version('flyteplugins-wandb'))"
    got = installed.run(str(python), "-c", code, cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == _project_version()
    # ...and the files are this package's: its CLI module exists only here, not in the reference.
    site = Path(
        installed.run(
            str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path
        ).stdout.strip()
    )
    assert (site / "flyteplugins" / "wandb" / "_layers.py").is_file()
