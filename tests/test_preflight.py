"""``flyte wandb check`` / ``check()``: one row per check, the fix when it fails, never the key.

The W&B server is a real local HTTP server on 127.0.0.1 standing in for the W&B cloud API (there
is no network here): it answers ``/healthz`` and the one GraphQL query of the access check, and
checks the key it is sent. Silent and failing servers are real sockets too.
"""

from __future__ import annotations

import base64
import http.server
import json
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flyteplugins.wandb import CheckResult, check
from flyteplugins.wandb._cli import wandb_group
from flyteplugins.wandb._layers import reload_settings

FAKE_KEY = "preflightfakekey" + "7" * 24


@pytest.fixture(autouse=True)
def hard_timeout() -> Iterator[None]:
    """End the test process, with every thread's traceback, if a test here hangs."""
    import faulthandler

    faulthandler.dump_traceback_later(120, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def no_netrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


class FakeWandb(http.server.BaseHTTPRequestHandler):
    """The W&B cloud API at its HTTP boundary: health, and the access query."""

    entities: frozenset[str] = frozenset({"team"})
    projects: frozenset[str] = frozenset({"team/proj"})
    status = 200
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self._reply(self.status, b"ok" if self.status < 400 else b"error")

    def do_POST(self) -> None:
        self.requests.append(self.path)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        expected = "Basic " + base64.b64encode(f"api:{FAKE_KEY}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self._reply(401, b'{"errors": [{"message": "unauthorized"}]}')
            return
        variables = body["variables"]
        entity, project = variables["entity"], variables["project"]
        data: dict[str, Any] = {"viewer": {"entity": "me"}}
        if variables["withEntity"]:
            data["entity"] = {"id": "E1"} if entity in self.entities else None
            data["project"] = {"id": "P1"} if f"{entity}/{project}" in self.projects else None
        self._reply(200, json.dumps({"data": data}).encode())

    def _reply(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(monkeypatch: pytest.MonkeyPatch, **attributes: Any) -> Iterator[tuple[str, list[str]]]:
    requests: list[str] = []
    handler = type("Handler", (FakeWandb,), {"requests": requests, **attributes})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("WANDB_BASE_URL", url)
    monkeypatch.setenv("WANDB_MODE", "online")
    reload_settings()
    try:
        yield url, requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[str]]]:
    yield from _serve(monkeypatch)


@pytest.fixture
def failing_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[str]]]:
    yield from _serve(monkeypatch, status=503)


@pytest.fixture
def silent_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A server that accepts connections and never answers; yields the listening socket."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{sock.getsockname()[1]}")
        reload_settings()
        yield sock


def rows_by_name(rows: list[CheckResult]) -> dict[str, CheckResult]:
    return {row.name: row for row in rows}


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(wandb_group, ["check", *args])
    return result.exit_code, result.output


# --- offline and disabled: no network ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["offline", "disabled"])
def test_offline_and_disabled_pass_without_touching_the_network(
    mode: str, silent_server: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", mode)
    reload_settings()
    code, out = run_cli("--online")
    assert code == 0, out
    assert [line.split()[1] for line in out.splitlines()] == ["configuration", "mode"]
    assert f"{mode} (from env WANDB_MODE)" in out
    silent_server.setblocking(False)
    with pytest.raises(BlockingIOError):
        silent_server.accept()  # nobody connected


# --- online --------------------------------------------------------------------------------------


def test_everything_in_place_passes_and_never_shows_the_key(
    server: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, requests = server
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    code, out = run_cli("--online", "-c", "wandb_entity=team", "-c", "wandb_project=proj")
    assert code == 0, out
    assert FAKE_KEY not in out
    rows = rows_by_name(check(online=True, context={"wandb_entity": "team", "wandb_project": "proj"}))
    assert all(row.ok for row in rows.values())
    assert rows["credentials"].detail == "WANDB_API_KEY is set"
    assert rows["server"].detail.startswith(url)
    assert rows["access"].detail == "entity team and project proj are accessible"
    assert requests.count("/graphql") == 2 and "/healthz" in requests


def test_without_online_the_access_check_is_not_made(
    server: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, requests = server
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    rows = rows_by_name(check())
    assert "access" not in rows and all(row.ok for row in rows.values())
    assert requests == ["/healthz"]


def test_missing_credentials_fail_with_the_fix(server: tuple[str, list[str]]) -> None:
    code, out = run_cli("--online")
    assert code == 1
    row = rows_by_name(check(online=True))["credentials"]
    assert not row.ok
    assert "WANDB_API_KEY is not set" in row.detail
    assert "flyte.Secret" in row.fix and "wandb login" in row.fix
    assert "fix: add secrets=flyte.Secret" in out


def test_a_netrc_entry_for_the_server_counts_as_credentials(
    server: tuple[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1\n  login user\n  password {FAKE_KEY}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    rows = rows_by_name(check(online=True, context={"wandb_entity": "team", "wandb_project": "proj"}))
    assert rows["credentials"].detail == "a netrc entry for 127.0.0.1"
    assert rows["access"].ok  # the key from netrc reached the server
    assert FAKE_KEY not in repr(rows)


def test_a_refused_key_fails_access_without_showing_it(
    server: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "wrong" + FAKE_KEY)
    code, out = run_cli("--online", "-c", "wandb_entity=team")
    assert code == 1
    assert "FAIL  access" in out and "refused the API key (HTTP 401)" in out
    assert FAKE_KEY not in out


def test_an_unknown_entity_fails_and_a_new_project_passes(
    server: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    unknown = rows_by_name(check(online=True, context={"wandb_entity": "nobody", "wandb_project": "p"}))[
        "access"
    ]
    assert not unknown.ok and "entity nobody does not exist" in unknown.detail and unknown.fix
    new = rows_by_name(check(online=True, context={"wandb_entity": "team", "wandb_project": "fresh"}))[
        "access"
    ]
    assert new.ok and "project fresh will be created" in new.detail


def test_a_failing_server_fails_the_server_check(
    failing_server: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    code, out = run_cli("--online")
    assert code == 1
    assert "answers HTTP 503" in out
    assert "access" not in out  # not asked of a failing server


def test_a_silent_server_fails_within_the_timeout(
    silent_server: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    started = time.monotonic()
    rows = rows_by_name(check(online=True, context={"wandb_timeout": "1"}))
    assert time.monotonic() - started < 5
    assert not rows["server"].ok and "no answer within 1 s" in rows["server"].detail


def test_bad_configuration_is_one_failing_row_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_RUN_MODE", "sometimes")
    reload_settings()
    (row,) = check()
    assert (row.name, row.ok) == ("configuration", False)
    assert "run_mode" in row.detail and "env FLYTEPLUGINS_WANDB_RUN_MODE" in row.detail
    code, out = run_cli()
    assert code == 1 and "FAIL  configuration" in out


# --- as a given task would ------------------------------------------------------------------------


WORKFLOW = textwrap.dedent(
    """
    import flyte
    from flyteplugins.wandb import wandb_init

    env = flyte.TaskEnvironment(
        name="checked",
        secrets=[flyte.Secret(key="team-wandb-key", as_env_var="WANDB_API_KEY")],
    )
    plain = flyte.TaskEnvironment(name="plain")

    @wandb_init(project="proj", entity="team", mode="online")
    @env.task
    async def train() -> None:
        pass

    @wandb_init(project="proj", entity="team", mode="online")
    @plain.task
    async def train_without_secret() -> None:
        pass
    """
)


def test_a_task_is_checked_with_its_decorator_and_its_environments_secret(
    server: tuple[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")  # the decorator's mode="online" wins
    reload_settings()
    path = tmp_path / "workflow.py"
    path.write_text(WORKFLOW)
    code, out = run_cli("--task", f"{path}:train", "--online")
    assert code == 0, out
    rows = rows_by_name(check(f"{path}:train", online=True))
    assert rows["mode"].detail.startswith("online (from @wandb_init(...))")
    assert rows["credentials"].detail == (
        "flyte.Secret(key='team-wandb-key', as_env_var='WANDB_API_KEY') on the task's environment"
    )
    assert rows["access"].ok and "not checked here" in rows["access"].detail

    code, out = run_cli("--task", f"{path}:train_without_secret")
    assert code == 1 and "FAIL  credentials" in out


def test_a_task_spec_that_does_not_name_a_task_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty.py").write_text("")
    code, out = run_cli("--task", f"{tmp_path / 'empty.py'}:missing")
    assert code == 2 and "--task" in out
    code, out = run_cli("--task", "nowhere.py")
    assert code == 2 and "FILE:TASK" in out
