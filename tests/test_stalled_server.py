"""A stalled W&B server delays a task by at most the ``timeout`` setting, then the run goes offline.

The servers are real local sockets on 127.0.0.1: one accepts connections and never answers (a
wedged proxy), one answers every request with HTTP 500 or 503 (a server under load). wandb runs
for real, online first, with a fake API key; nothing of the plugin is mocked.
"""

from __future__ import annotations

import http.server
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import flyte
import pytest
from conftest import log_losses, run_local
from test_offline_fallback import FAKE_KEY, online_wandb_at

from flyteplugins.wandb import wandb_init
from flyteplugins.wandb._offline import find_offline_run_dirs, read_offline_run

env = flyte.TaskEnvironment(name="stalled_server")

TIMEOUT_S = 3.0
# A local Flyte run, the offline start after the fallback and the offline finish, on a busy machine.
SLACK_S = 4.0
HARD_TIMEOUT_S = 120


@pytest.fixture(autouse=True)
def hard_timeout() -> Iterator[None]:
    """End the whole test process, with every thread's traceback, if a test here hangs."""
    import faulthandler

    faulthandler.dump_traceback_later(HARD_TIMEOUT_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def silent_server(wandb_sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Online wandb pointed at a server that accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        with online_wandb_at(f"http://127.0.0.1:{server.getsockname()[1]}", monkeypatch) as url:
            yield url


class _Failing(http.server.BaseHTTPRequestHandler):
    status = 500

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(self.status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"error")

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _serving(
    handler: type[http.server.BaseHTTPRequestHandler], monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 with ``handler``, and online wandb pointed at it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with online_wandb_at(f"http://127.0.0.1:{server.server_address[1]}", monkeypatch) as url:
            yield url
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=[500, 503])
def failing_server(
    request: pytest.FixtureRequest, wandb_sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Online wandb pointed at a server that answers every request with HTTP 500 or 503."""
    handler = type("Handler", (_Failing,), {"status": request.param})
    with _serving(handler, monkeypatch) as url:
        yield url


@wandb_init(project="proj-stall", entity="ent-stall", timeout=TIMEOUT_S)
@env.task
async def train(steps: int) -> dict[str, str]:
    return log_losses(steps)


def _assert_bounded_offline_run(
    server: str, wandb_root: Path, caplog: pytest.LogCaptureFixture, elapsed: float, outputs: dict[str, str]
) -> None:
    assert elapsed < TIMEOUT_S + SLACK_S, f"the task took {elapsed:.1f} s with timeout={TIMEOUT_S}"
    assert outputs["offline"] == "True"
    offline = [
        d for d in find_offline_run_dirs(wandb_root, outputs["run_id"]) if d.name.startswith("offline-run-")
    ]
    assert len(offline) == 1, offline
    run = read_offline_run(offline[0], wait=15)
    assert (run.project, run.entity, run.exit_code) == ("proj-stall", "ent-stall", 0)
    assert run.column("loss") == [1.0 / (step + 1) for step in range(4)]
    warnings = [r.getMessage() for r in caplog.records if r.name == "flyteplugins.wandb"]
    assert len(warnings) == 1, warnings
    assert str(offline[0]) in warnings[0] and f"wandb sync {offline[0]}" in warnings[0]
    assert server in warnings[0]
    assert FAKE_KEY not in caplog.text
    _assert_key_not_stored(wandb_root)


def _assert_key_not_stored(wandb_root: Path) -> None:
    """No file wandb or the plugin wrote (logs, metadata, transaction logs) holds the API key."""
    for path in wandb_root.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_a_server_that_never_answers_costs_at_most_the_timeout(
    silent_server: str, wandb_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flyteplugins.wandb")
    started = time.monotonic()
    result = run_local(train, 4)
    _assert_bounded_offline_run(silent_server, wandb_root, caplog, time.monotonic() - started, result.outputs)


def test_a_server_answering_5xx_costs_at_most_the_timeout(
    failing_server: str, wandb_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flyteplugins.wandb")
    started = time.monotonic()
    result = run_local(train, 4)
    _assert_bounded_offline_run(
        failing_server, wandb_root, caplog, time.monotonic() - started, result.outputs
    )


# --- a server that accepts the run, then stalls --------------------------------------------------


class _StallsAfterStart(http.server.BaseHTTPRequestHandler):
    """A stand-in for the W&B cloud service (there is no network here), at its HTTP boundary.

    It answers the two GraphQL requests of a run's start (``UpsertBucket``, and an organisation
    query answered with empty data), then stalls every request from the run's first
    ``file_stream`` upload on: the server went away while the task ran.
    """

    stalled = threading.Event()
    release = threading.Event()

    def do_POST(self) -> None:
        import json

        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "file_stream" in self.path or self.stalled.is_set():
            self.stalled.set()
            self.release.wait(60)
            return
        query = str(json.loads(body or b"{}").get("query", ""))
        data: dict[str, object] = {}
        if "upsertBucket" in query:
            data = {
                "upsertBucket": {
                    "inserted": True,
                    "bucket": {
                        "id": "b1",
                        "name": "stall-finish",
                        "displayName": "stall-finish",
                        "description": "",
                        "config": "{}",
                        "sweepName": None,
                        "historyLineCount": 0,
                        "project": {
                            "id": "p1",
                            "name": "proj-stall",
                            "entity": {"id": "e1", "name": "ent-stall"},
                        },
                    },
                }
            }
        payload = json.dumps({"data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PUT = do_POST

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server_stalling_after_start(wandb_sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    handler = type(
        "Handler", (_StallsAfterStart,), {"stalled": threading.Event(), "release": threading.Event()}
    )
    with _serving(handler, monkeypatch) as url:
        try:
            yield url
        finally:
            handler.release.set()  # let the stalled requests end before the server does


@wandb_init(project="proj-stall", entity="ent-stall", id="stall-finish", timeout=TIMEOUT_S)
@env.task
async def train_then_lose_the_server(steps: int) -> dict[str, str]:
    return log_losses(steps)


def test_a_finish_that_cannot_upload_keeps_the_data_on_disk_and_the_task_completes(
    server_stalling_after_start: str, wandb_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flyteplugins.wandb")
    started = time.monotonic()
    result = run_local(train_then_lose_the_server, 4)
    elapsed = time.monotonic() - started

    assert result.outputs == {"run_id": "stall-finish", "offline": "False"}
    assert elapsed < TIMEOUT_S + SLACK_S, f"the task took {elapsed:.1f} s with timeout={TIMEOUT_S}"
    (run_dir,) = find_offline_run_dirs(wandb_root, "stall-finish")
    run = read_offline_run(run_dir, wait=15)
    assert not run.offline  # the online run's own folder: `wandb sync` uploads the rest from it
    assert run.column("loss") == [1.0 / (step + 1) for step in range(4)]
    assert run.exit_code == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "flyteplugins.wandb"]
    assert len(warnings) == 1, warnings
    assert f"wandb sync {run_dir}" in warnings[0]
    assert FAKE_KEY not in caplog.text
    _assert_key_not_stored(wandb_root)


@pytest.mark.parametrize("text", ["soon", "0", "-1", "inf"])
def test_a_bad_timeout_names_the_setting_its_layer_and_what_is_allowed(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flyteplugins.wandb import WandbConfigError, wandb_config
    from flyteplugins.wandb._layers import reload_settings, resolve

    monkeypatch.setenv("FLYTEPLUGINS_WANDB_TIMEOUT", text)
    reload_settings()
    with pytest.raises(WandbConfigError) as env_error:
        resolve(context={})
    assert (env_error.value.field, env_error.value.origin) == ("timeout", "env FLYTEPLUGINS_WANDB_TIMEOUT")
    assert "seconds" in str(env_error.value)
    monkeypatch.delenv("FLYTEPLUGINS_WANDB_TIMEOUT")
    reload_settings()
    with pytest.raises(WandbConfigError) as context_error:
        resolve(context={"wandb_timeout": text})
    assert context_error.value.origin == "custom_context key wandb_timeout"
    if text != "soon":
        with pytest.raises(WandbConfigError, match="timeout"):
            wandb_config(timeout=float(text))


def test_the_time_a_task_works_does_not_count_against_its_budget(wandb_root: Path) -> None:
    from flyteplugins.wandb._layers import resolve
    from flyteplugins.wandb._run import RunScope, plan_task_run

    resolved = resolve(context={"wandb_timeout": "1.5"})
    scope = RunScope(plan_task_run(resolved, run_name="r", action_name="a0", remote=False), resolved)
    scope.start()
    assert scope.run is not None
    time.sleep(1.6)  # the task's own work, longer than the whole budget
    assert scope.budget.remaining() > 1.0  # what the start left is still there for the finish
    scope.finish(failed=False)
    assert read_offline_run(find_offline_run_dirs(wandb_root, "r-a0")[0], wait=15).exit_code == 0
