"""A W&B server that cannot be reached does not cost a task its result: the run continues offline.

The server is a local port nothing listens on (the network is closed here, and a refused
connection is what an unreachable server looks like to wandb); wandb really runs, online first.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import flyte
import pytest
from conftest import log_losses, requires_wandb, run_local, task_run

from flyteplugins.wandb import _fallback, wandb_init
from flyteplugins.wandb._offline import find_offline_run_dirs, read_offline_run

pytestmark = [pytest.mark.smoke, pytest.mark.timeout(120)]

env = flyte.TaskEnvironment(name="offline_fallback")


FAKE_KEY = "fallbackfake" + "0" * 28


def closed_port() -> int:
    """A local port that refuses connections: bound to get a free number, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def online_wandb_at(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Online wandb with a fake API key, pointed at ``url``, started afresh for this test."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_BASE_URL", url)
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    # wandb reads its environment once per process: start it again with this one.
    wandb.teardown()
    _fallback._probe_cache.clear()
    try:
        yield url
    finally:
        wandb.teardown()
        _fallback._probe_cache.clear()


@pytest.fixture
def unreachable_server(wandb_sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Online wandb pointed at a server that refuses connections; yields its base URL."""
    with online_wandb_at(f"http://127.0.0.1:{closed_port()}", monkeypatch) as url:
        yield url


@wandb_init(project="proj-off", entity="ent-off")
@env.task
async def train(steps: int) -> dict[str, str]:
    return log_losses(steps)


def test_an_unreachable_server_falls_back_to_an_offline_run_quickly(
    unreachable_server: str, wandb_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flyteplugins.wandb")
    started = time.monotonic()
    result = run_local(train, 3)
    elapsed = time.monotonic() - started

    assert elapsed < 10, f"the fallback took {elapsed:.1f} s"
    run_id = result.outputs["run_id"]
    assert result.outputs["offline"] == "True"
    (run_dir,) = find_offline_run_dirs(wandb_root, run_id)
    run = read_offline_run(run_dir, wait=15)
    assert run.offline
    assert (run.project, run.entity, run.exit_code) == ("proj-off", "ent-off", 0)
    assert run.column("loss") == [1.0, 0.5, 1.0 / 3]

    warnings = [r.getMessage() for r in caplog.records if r.name == "flyteplugins.wandb"]
    assert len(warnings) == 1, warnings
    (warning,) = warnings
    assert unreachable_server in warning
    assert str(run_dir) in warning
    assert f"wandb sync {run_dir}" in warning
    assert FAKE_KEY not in warning
    assert result.links["train"] == [
        ("Weights & Biases", f"{unreachable_server}/ent-off/proj-off/runs/{run_id}")
    ]


@wandb_init
@env.task
async def child(tag: str) -> str:
    task_run().log({f"child_{tag}": 1})
    return str(task_run().id)


@wandb_init(project="proj-off", entity="ent-off")
@env.task
async def parent() -> list[str]:
    from flyteplugins.wandb import wandb_config

    attached = await child("attached")
    with wandb_config(run_mode="new"):
        own = await child("own")
    return [str(task_run().id), attached, own]


def test_every_run_of_a_workflow_falls_back_once_and_children_still_attach(
    unreachable_server: str, wandb_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flyteplugins.wandb")
    started = time.monotonic()
    parent_id, attached_id, own_id = run_local(parent).outputs
    elapsed = time.monotonic() - started

    assert elapsed < 10, f"the fallback took {elapsed:.1f} s"
    assert attached_id == parent_id != own_id
    warnings = [r.getMessage() for r in caplog.records if r.name == "flyteplugins.wandb"]
    assert len(warnings) == 2, warnings
    for run_id, keys in ((parent_id, ["child_attached"]), (own_id, ["child_own"])):
        (run_dir,) = find_offline_run_dirs(wandb_root, run_id)
        run = read_offline_run(run_dir, wait=15)
        assert run.exit_code == 0
        assert [k for row in run.history for k in row if not k.startswith("_")] == keys
        assert sum(f"wandb sync {run_dir}" in w for w in warnings) == 1


@wandb_init(project="proj-off", entity="ent-off", mode="offline")
@env.task
async def explicitly_offline() -> str:
    task_run().log({"x": 1})
    return str(task_run().id)


def test_an_offline_run_neither_probes_the_server_nor_warns(
    unreachable_server: str,
    wandb_root: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    probed: list[tuple[str, int]] = []
    real_probe = _fallback._probe

    def recording_probe(host: str, port: int) -> str | None:
        probed.append((host, port))
        return real_probe(host, port)

    monkeypatch.setattr(_fallback, "_probe", recording_probe)
    caplog.set_level(logging.WARNING, logger="flyteplugins.wandb")

    run_id = run_local(explicitly_offline).outputs

    assert probed == []
    assert [r for r in caplog.records if r.name == "flyteplugins.wandb"] == []
    assert read_offline_run(find_offline_run_dirs(wandb_root, run_id)[0], wait=15).column("x") == [1]


@pytest.fixture
def silent_server(wandb_sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Online wandb pointed at a server that accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        with online_wandb_at(f"http://127.0.0.1:{server.getsockname()[1]}", monkeypatch) as url:
            yield url


def _short_init_timeout() -> Any:
    import wandb

    return wandb.Settings(init_timeout=0.5)


@wandb_init(project="proj-off", entity="ent-off", settings=_short_init_timeout())
@env.task
async def train_with_short_timeout() -> str:
    task_run().log({"loss": 0.25})
    return str(task_run().id)


def test_a_server_that_never_answers_falls_back_after_the_init_timeout(
    silent_server: str, wandb_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flyteplugins.wandb")
    started = time.monotonic()
    run_id = run_local(train_with_short_timeout).outputs
    elapsed = time.monotonic() - started

    # The connection succeeds, so only wandb.init's own timeout (the user's setting) finds it out.
    assert elapsed < 20, f"the fallback took {elapsed:.1f} s"
    offline = [d for d in find_offline_run_dirs(wandb_root, run_id) if d.name.startswith("offline-run-")]
    assert len(offline) == 1
    run = read_offline_run(offline[0], wait=15)
    assert (run.project, run.entity, run.exit_code, run.column("loss")) == ("proj-off", "ent-off", 0, [0.25])
    warnings = [r.getMessage() for r in caplog.records if r.name == "flyteplugins.wandb"]
    assert len(warnings) == 1, warnings
    assert f"wandb sync {offline[0]}" in warnings[0]


def test_a_remote_tasks_shared_mode_run_also_falls_back_offline(
    unreachable_server: str, wandb_root: Path
) -> None:
    # In a remote run every task's run is started in W&B shared mode; the plan and the scope are
    # the ones a remote task uses (a local Flyte run cannot be remote).
    from flyteplugins.wandb._layers import resolve
    from flyteplugins.wandb._run import RunScope, plan_task_run

    resolved = resolve(context={"wandb_project": "proj-remote", "wandb_entity": "ent-remote"})
    plan = plan_task_run(resolved, run_name="r1", action_name="a0", remote=True)
    assert plan.shared is not None and plan.shared["mode"] == "shared"
    scope = RunScope(plan, resolved)
    scope.start()
    assert scope.run is not None
    assert (scope.run.settings.mode, scope.run.settings.x_label) == ("offline", "a0")
    scope.run.log({"remote_metric": 1})
    scope.finish(failed=False)

    (run_dir,) = find_offline_run_dirs(wandb_root, "r1-a0")
    run = read_offline_run(run_dir, wait=15)
    assert (run.project, run.entity, run.exit_code) == ("proj-remote", "ent-remote", 0)
    assert run.column("remote_metric") == [1]


@wandb_init(run_mode="new", settings=_short_init_timeout())
@env.task
async def silent_child(i: int) -> str:
    task_run().log({"loss": 1.0 / (i + 1)})
    return str(task_run().id)


@wandb_init(project="proj-off", entity="ent-off", settings=_short_init_timeout())
@env.task
async def silent_parent() -> list[str]:
    import asyncio

    return [str(task_run().id), *await asyncio.gather(*(silent_child(i) for i in range(3)))]


def test_children_beside_a_live_run_go_offline_once_the_server_was_found_silent(
    silent_server: str, wandb_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The parent's start finds the server silent and continues offline; its run is then live, so
    # wandb's service cannot be restarted to free a child's id after a failed start of its own.
    # The children do not try: the server's silence is remembered, and they start offline at once.
    caplog.set_level(logging.WARNING, logger="flyteplugins.wandb")
    started = time.monotonic()
    parent_id, *child_ids = run_local(silent_parent).outputs
    elapsed = time.monotonic() - started
    assert elapsed < 20, f"the fan-out took {elapsed:.1f} s"
    for i, run_id in enumerate(child_ids):
        (folder,) = [
            d for d in find_offline_run_dirs(wandb_root, run_id) if d.name.startswith("offline-run-")
        ]
        run = read_offline_run(folder, wait=15)
        assert (run.exit_code, run.column("loss")) == (0, [1.0 / (i + 1)])
    (parent_folder,) = [
        d for d in find_offline_run_dirs(wandb_root, parent_id) if d.name.startswith("offline-run-")
    ]
    assert read_offline_run(parent_folder, wait=15).exit_code == 0
    # One warning per run, each naming its folder; the children's say the server was found silent.
    warnings = [r.getMessage() for r in caplog.records if r.name == "flyteplugins.wandb"]
    assert len(warnings) == 4, warnings


@wandb_init(project="proj-off", entity="ent-off", mode="offline")
@env.task
async def offline_parent_of_silent_children() -> list[str]:
    return [await silent_child(0), await silent_child(1)]


@requires_wandb("0.28.2", "before it a failed online start wedges the whole service: no other start succeeds")
def test_a_start_whose_id_is_held_beside_a_live_run_continues_offline_under_another_id(
    silent_server: str, wandb_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The parent's run is offline and alive; the first child's online start fails on the silent
    # server, and its id stays held by wandb's service, which cannot be restarted under the live
    # parent. The child's task still succeeds: its run continues offline as `<id>-offline`, and
    # the warning says how to upload it under its own id. The next child knows the server is
    # silent and starts offline at once, under its own id.
    caplog.set_level(logging.WARNING, logger="flyteplugins.wandb")
    first, second = run_local(offline_parent_of_silent_children).outputs
    assert first.endswith("-offline") and not second.endswith("-offline")
    own_id = first.removesuffix("-offline")
    (held,) = find_offline_run_dirs(wandb_root, first)
    assert read_offline_run(held, wait=15).column("loss") == [1.0]
    (direct,) = [d for d in find_offline_run_dirs(wandb_root, second) if d.name.startswith("offline-run-")]
    assert read_offline_run(direct, wait=15).column("loss") == [0.5]
    warnings = [r.getMessage() for r in caplog.records if r.name == "flyteplugins.wandb"]
    assert len(warnings) == 2, warnings
    assert f"wandb sync --id {own_id} {held}" in warnings[0]
    assert "did not answer" in warnings[1] and f"wandb sync {direct}" in warnings[1]


WEDGE = """\
import flyte
import wandb
from flyteplugins.wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="wedge")

@wandb_init(run_mode="new", settings=wandb.Settings(init_timeout=0.5))
@env.task
async def child() -> str:
    get_wandb_run().log({"loss": 1.0})
    return str(get_wandb_run().id)

@wandb_init(project="proj-off", entity="ent-off", mode="offline")
@env.task
async def parent() -> str:
    return await child()

flyte.init()
try:
    print("RESULT", flyte.with_runcontext(mode="local").run(parent).outputs(), flush=True)
except Exception as exc:
    print("FAILED", type(exc).__name__, flush=True)
"""


def test_a_process_whose_failed_start_was_held_beside_a_live_run_still_exits(tmp_path: Path) -> None:
    # The offline parent's run is live when the child's online start fails on a silent server. From
    # wandb 0.28.2 on the child continues offline under another id; before, a failed start wedges
    # wandb's service (the child fails, as wandb does), and wandb's exit hook would wait for that
    # service for ever. Either way the process exits, as a pod must.
    import os
    import subprocess
    import sys

    from flyteplugins.wandb import _compat

    script = tmp_path / "wedge.py"
    script.write_text(WEDGE)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "FLYTEPLUGINS_WANDB"))}
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env={
                **environ,
                "WANDB_MODE": "online",
                "WANDB_BASE_URL": url,
                "WANDB_API_KEY": FAKE_KEY,
                "FLYTEPLUGINS_WANDB_TIMEOUT": "6",
            },
            capture_output=True,
            text=True,
            timeout=90,
        )
        elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    # W&B may cost each run its timeout (6 s), start and finish together, and nothing at exit.
    assert elapsed < 20, f"the process took {elapsed:.1f} s to exit"
    if _compat.failed_start_wedges_service():
        assert "FAILED" in done.stdout, done.stdout
    else:
        (result,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
        assert result.endswith('-offline")'), result
    assert FAKE_KEY not in done.stdout + done.stderr
