"""Shared fixtures: every test runs with real wandb in offline mode inside its own temporary
directory, with the W&B and plugin environment variables cleared."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flyte
import pytest

from flyteplugins.wandb import _compat, reload_settings
from flyteplugins.wandb._settings import WATCHED_ENV_VARS

_CLEARED = (
    *WATCHED_ENV_VARS,
    "WANDB_API_KEY",
    "WANDB_DIR",
    "WANDB_SILENT",
    "WANDB_CONSOLE",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
)


@pytest.fixture(autouse=True)
def wandb_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Offline wandb writing under tmp_path; returns the directory holding wandb's run folders."""
    for var in _CLEARED:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    reload_settings()
    yield tmp_path / "wandb"
    reload_settings()
    _forget_wandb_settings()


def _forget_wandb_settings() -> None:
    # wandb reads WANDB_DIR and friends once per process, into its setup singleton: drop it after
    # a test that used wandb, so that the next test's runs land in that test's own directory.
    if _compat.wandb_is_set_up():
        _compat.teardown_wandb()
    # wandb announces its service process to child processes through WANDB_SERVICE; a subprocess
    # started by a later test must not join this one (it refuses a second writer of a run id).
    os.environ.pop("WANDB_SERVICE", None)


@dataclass
class LocalRun:
    """What a local Flyte run returned and the links Flyte rendered for each action."""

    outputs: Any
    links: dict[str, list[tuple[str, str]]]  # task short name -> links, in start order
    links_by_action: dict[str, list[tuple[str, str]]]
    task_of_action: dict[str, str]


def run_local(task: Any, *args: Any, custom_context: dict[str, str] | None = None, **kwargs: Any) -> LocalRun:
    """Run ``task`` as a real local Flyte run, recording the links Flyte renders for each action."""
    if not _compat.flyte_initialized():
        flyte.init()
    tracker = _compat.action_tracker()
    run = flyte.with_runcontext(mode="local", custom_context=custom_context or {}, _tracker=tracker).run(
        task, *args, **kwargs
    )
    outputs = run.outputs()
    value = (
        outputs[0] if hasattr(outputs, "__getitem__") and not isinstance(outputs, (str, bytes)) else outputs
    )
    links: dict[str, list[tuple[str, str]]] = {}
    by_action: dict[str, list[tuple[str, str]]] = {}
    task_of: dict[str, str] = {}
    for action_id, node in _compat.tracked_actions(tracker):
        name = node.task_name.split(".")[-1]
        task_of[action_id] = name
        by_action[action_id] = list(node.log_links or [])
        links.setdefault(name, []).extend(node.log_links or [])
    return LocalRun(value, links, by_action, task_of)


@pytest.fixture
def wandb_root(wandb_sandbox: Path) -> Path:
    """The directory under which wandb writes this test's offline run folders."""
    return wandb_sandbox


def task_run() -> Any:
    """The W&B run of the code running here; fails the test when there is none."""
    from flyteplugins.wandb import get_wandb_run

    run = get_wandb_run()
    assert run is not None, "no W&B run here"
    return run


def log_losses(steps: int) -> dict[str, str]:
    """Log ``loss = 1/(step+1)`` for ``steps`` steps into the run here; say which run and if offline."""
    run = task_run()
    for step in range(steps):
        run.log({"loss": 1.0 / (step + 1)})
    return {"run_id": str(run.id), "offline": str(run.offline)}


@pytest.fixture
def init_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of every ``wandb.init`` call; the real ``wandb.init`` still runs."""
    import wandb

    calls: list[dict[str, Any]] = []
    real = wandb.init

    @functools.wraps(real)
    def counting_init(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(wandb, "init", counting_init)
    return calls


os.environ.setdefault("FLYTE_LOG_LEVEL", "WARNING")


def requires_wandb(version: str, why: str) -> pytest.MarkDecorator:
    """Skip a test of wandb behaviour that the installed (older, still supported) wandb lacks."""
    return pytest.mark.skipif(
        not _compat.wandb_at_least(version),
        reason=f"needs wandb>={version} ({why}); wandb {_compat.wandb_version()} is installed",
    )


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One run of ``python -m flyteplugins.wandb.demo`` from a fresh directory, as ``make demo`` does,
    shared by the tests that read what it printed and wrote (none of them writes there)."""
    cwd = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "FLYTEPLUGINS_WANDB_"))}
    result = subprocess.run(
        [sys.executable, "-m", "flyteplugins.wandb.demo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, cwd
