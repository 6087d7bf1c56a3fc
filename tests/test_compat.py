"""The compatibility module: the one home of wandb and flyte internals, and the version gates.

The gates are exercised for real on the oldest supported wandb by the CI matrix; here the
installed version is pretended (``versions.wandb_version`` patched, nothing else) to check what
each gate does on the other side of its threshold.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import flyte
import pytest
import wandb

from flyteplugins.wandb import _compat
from flyteplugins.wandb._active import global_run, running_actions
from flyteplugins.wandb._compat import versions, wandb_state

pytestmark = pytest.mark.smoke

COMPAT = Path(_compat.__file__).parent
PACKAGE = COMPAT.parent
PRIVATE_MODULES = ("wandb.sdk", "wandb.proto", "wandb.util", "wandb.apis.internal", "flyte._", "flyte.cli")
PRIVATE_NAMES = {
    "_set_global_run",
    "unset_globals",
    "_singleton",
    "most_recent_active_run",
    "WhichOneof",
    "HasField",
    "_interface",
    "publish_python_packages",
    "_nodes",
    "model_computed_fields",
    "model_fields_set",
    "_is_finished",
    "working_set",
    "_initialize",
    "_task",
    "_internal",
    "_local_step",
    "_step",
}


def _private_uses(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.Attribute):
            through_compat = isinstance(node.value, ast.Name) and node.value.id == "_compat"
            names = [node.attr] if node.attr in PRIVATE_NAMES and not through_compat else []
        else:
            continue
        found += [
            f"line {node.lineno}: {n}" for n in names if n in PRIVATE_NAMES or n.startswith(PRIVATE_MODULES)
        ]
    return found


def _private_uses_outside_compat(package: Path) -> dict[str, list[str]]:
    """The private wandb/flyte uses of each module of ``package`` outside its ``_compat`` package."""
    return {
        str(module.relative_to(package)): uses
        for module in sorted(package.rglob("*.py"))
        if "_compat" not in module.relative_to(package).parts[:-1]
        and (uses := _private_uses(module.read_text()))
    }


def test_wandb_and_flyte_internals_are_used_only_in_the_compat_package() -> None:
    assert _private_uses_outside_compat(PACKAGE) == {}
    # The check sees them where they are, in the compat package's modules.
    compat_modules = {module.name for module in COMPAT.glob("*.py") if _private_uses(module.read_text())}
    assert {"versions.py", "wandb_state.py", "records.py", "flyte.py", "cold_start.py"} <= compat_modules


def test_the_internals_check_catches_a_private_import_outside_the_compat_package(tmp_path: Path) -> None:
    (tmp_path / "_compat").mkdir()
    (tmp_path / "_compat" / "records.py").write_text("from wandb.proto import wandb_internal_pb2\n")
    (tmp_path / "_compat.py").write_text("from flyte._task import AsyncFunctionTaskTemplate\n")
    run_module = "import wandb.sdk.wandb_setup\nrun._is_finished\n_compat.run_is_finished(run)\n"
    (tmp_path / "_run.py").write_text(run_module)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "_compat_helpers.py").write_text("from wandb.sdk.lib import module\n")
    assert _private_uses_outside_compat(tmp_path) == {
        "_compat.py": ["line 1: flyte._task", "line 1: flyte._task.AsyncFunctionTaskTemplate"],
        "_run.py": ["line 1: wandb.sdk.wandb_setup", "line 2: _is_finished"],
        "sub/_compat_helpers.py": ["line 1: wandb.sdk.lib", "line 1: wandb.sdk.lib.module"],
    }


def test_the_floors_match_pyproject() -> None:
    pyproject = (PACKAGE.parents[1] / "pyproject.toml").read_text()
    assert f'"wandb>={_compat.MIN_WANDB},<1"' in pyproject
    assert f'"flyte>={_compat.MIN_FLYTE},<3"' in pyproject


def test_the_installed_wandb_is_supported() -> None:
    assert _compat.wandb_at_least(_compat.MIN_WANDB)


@pytest.fixture
def pretend_wandb(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> pytest.MonkeyPatch:
    caplog.set_level(logging.WARNING, logger="flyteplugins.wandb")
    monkeypatch.setattr(versions, "_warned", set())
    return monkeypatch


def test_a_non_primary_offline_writer_drops_the_finish_state_setting_on_older_wandb(
    pretend_wandb: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    offline_writer = {"x_label": "rank-1", "x_primary": False, "x_update_finish_state": False}
    shared_writer = {**offline_writer, "mode": "shared"}
    pretend_wandb.setattr(versions, "wandb_version", lambda: "0.31.0")
    assert _compat.settings_for_installed_wandb(offline_writer) == offline_writer
    assert caplog.records == []

    pretend_wandb.setattr(versions, "wandb_version", lambda: "0.25.0")
    assert _compat.settings_for_installed_wandb(shared_writer) == shared_writer
    assert _compat.settings_for_installed_wandb(offline_writer) == {"x_label": "rank-1", "x_primary": False}
    _compat.settings_for_installed_wandb(offline_writer)
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "needs wandb>=0.26.1" in warning and "wandb 0.25.0 is installed" in warning
    # What is left is accepted by the real wandb.Settings.
    wandb.Settings(**_compat.settings_for_installed_wandb(offline_writer))


def test_a_setting_newer_than_the_installed_wandb_is_dropped_with_a_warning_naming_the_feature(
    pretend_wandb: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fields = versions._settings_fields() - {"x_sync_dir_suffix"}
    pretend_wandb.setattr(versions, "_settings_fields", lambda: fields)
    pretend_wandb.setattr(versions, "wandb_version", lambda: "0.22.0")
    settings = {"mode": "shared", "x_label": "rank-1", "x_sync_dir_suffix": "rank-1"}
    assert _compat.settings_for_installed_wandb(settings) == {"mode": "shared", "x_label": "rank-1"}
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "one local folder per writer" in warning
    assert "needs wandb>=0.23.0" in warning and "wandb 0.22.0 is installed" in warning
    # A setting the user wrote is never dropped: wandb names it in its own error.
    assert _compat.settings_for_installed_wandb({"x_made_up": 1}) == {"x_made_up": 1}


def test_a_stuck_service_of_an_older_wandb_is_asked_to_stop_then_ended(
    pretend_wandb: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Before wandb 0.28.2 the service never stops after a failed online start, and wandb's
    # teardown waits for its process for ever. Here a real process that does not stop stands for
    # it, and a teardown that waits for it as wandb's does.
    import subprocess
    import sys
    import time

    service = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    asked: list[bool] = []

    def teardown_waiting_for_ever() -> None:
        asked.append(True)
        service.wait()

    pretend_wandb.setattr(versions, "wandb_version", lambda: "0.28.0")
    pretend_wandb.setattr(wandb_state, "teardown_wandb", teardown_waiting_for_ever)
    pretend_wandb.setattr(wandb_state, "service_process", lambda: service)
    try:
        started = time.monotonic()
        assert _compat.restart_service_after_failed_init(10.0) is True
        assert time.monotonic() - started < 3.0
        assert asked == [True] and service.poll() is not None  # asked first, then ended
    finally:
        service.kill()
        service.wait()
    assert not caplog.records


def test_no_service_restart_after_a_failed_start_where_wandb_would_wait_forever(
    pretend_wandb: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # An older wandb whose service process cannot be found: nothing is stopped, the error stands.
    torn_down: list[bool] = []
    pretend_wandb.setattr(wandb_state, "teardown_wandb", lambda: torn_down.append(True))
    pretend_wandb.setattr(wandb_state, "service_process", lambda: None)
    pretend_wandb.setattr(versions, "wandb_version", lambda: "0.28.0")
    assert _compat.restart_service_after_failed_init() is False
    assert torn_down == []
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "needs wandb>=0.28.2" in warning and "wandb 0.28.0 is installed" in warning

    pretend_wandb.setattr(versions, "wandb_version", lambda: "0.28.2")
    assert _compat.restart_service_after_failed_init() is True
    assert torn_down == [True]


def test_record_fields_missing_from_the_schema_read_as_unset() -> None:
    record = _compat.parse_record(b"")
    assert _compat.record_field(record.run, "a_field_of_a_future_wandb", "unset") == "unset"
    assert _compat.record_field(None, "run_id", "") == ""
    assert _compat.record_time(record.run, "start_time") is None


def test_the_sdks_own_step_count_is_the_services(wandb_root: Path) -> None:
    # The report tab asks its helper for the page with the run's next step, without the round
    # trip of run.step to wandb's service.
    run = wandb.init(project="compat")
    try:
        for step in range(3):
            run.log({"loss": 1.0 / (step + 1)})
        run.log({"partial": 1}, commit=False)
        assert _compat.next_local_step(run) == run.step == 3
        run.log({"jump": 1}, step=10)
        assert _compat.next_local_step(run) == run.step == 10
    finally:
        run.finish()


# --- what a process runs, and wandb.run ---------------------------------------------------------

compat_env = flyte.TaskEnvironment(name="compat_actions")


@compat_env.task
async def counts_the_actions_running_here() -> list[str]:
    return [str(name) for name in running_actions() or ("not watched",)]


def test_the_actions_running_in_the_process_are_counted(wandb_root: Path) -> None:
    from conftest import run_local

    assert running_actions() == ()
    result = run_local(counts_the_actions_running_here)
    # One action ran: the task itself, and nothing stays counted after it.
    assert len(result.outputs) == 1 and result.outputs != ["not watched"]
    assert running_actions() == ()


def test_wandb_run_keeps_what_a_user_or_a_test_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _compat.follow_global_run(global_run)
    mine = object()
    monkeypatch.setattr(wandb, "run", mine)
    assert wandb.run is mine
    monkeypatch.undo()
    assert wandb.run is None
