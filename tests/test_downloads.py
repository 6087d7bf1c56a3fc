"""Downloading runs and sweeps: from the W&B API, and from the local folders of offline runs.

The W&B cloud API cannot be reached from here: where a test needs it, ``wandb.Api`` is replaced by
a small fake with the same shape (``run(path)`` with ``files()``, ``summary``, ``scan_history()``;
``sweep(path)`` with ``runs``) that raises wandb's own error classes. Everything else is real:
Flyte local runs, offline wandb runs written to disk, and the files the helpers write.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import flyte
import pytest
from conftest import run_local

from flyteplugins.wandb import (
    WandbRunError,
    download_wandb_run_dir,
    download_wandb_sweep_dirs,
    get_wandb_run,
    wandb_config,
    wandb_init,
)
from flyteplugins.wandb._download_local import find_local_run_dirs

env = flyte.TaskEnvironment(name="download_tests")

SECRET = "0123456789abcdef0123456789abcdef01234567"


# --- a stand-in for the W&B public API -----------------------------------------------------------


class FakeFile:
    def __init__(self, name: str, content: str) -> None:
        self.name = name
        self.content = content

    def download(self, root: str = ".", replace: bool = False, **_: Any) -> None:
        path = Path(root) / self.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.content)


class FakeRun:
    def __init__(
        self, run_id: str, files: dict[str, str], summary: dict[str, Any], rows: list[dict[str, Any]]
    ):
        self.id = run_id
        self._files = [FakeFile(name, content) for name, content in files.items()]
        self.summary = summary
        self._rows = rows

    def files(self) -> list[FakeFile]:
        return self._files

    def scan_history(self) -> list[dict[str, Any]]:
        return self._rows


class FakeSweep:
    def __init__(self, runs: list[FakeRun]) -> None:
        self.runs = runs


class FakeApi:
    """Answers from dicts; ``failures`` maps a path to the exception looking it up raises."""

    def __init__(self) -> None:
        self.runs: dict[str, FakeRun] = {}
        self.sweeps: dict[str, FakeSweep] = {}
        self.failures: dict[str, Exception] = {}
        self.requested: list[str] = []

    def __call__(self, *_: Any, **__: Any) -> FakeApi:  # stands in for the wandb.Api class
        return self

    def run(self, path: str) -> FakeRun:
        self.requested.append(path)
        if path in self.failures:
            raise self.failures[path]
        if path not in self.runs:
            raise ValueError(f"Could not find run {path}")
        return self.runs[path]

    def sweep(self, path: str) -> FakeSweep:
        self.requested.append(f"sweep:{path}")
        if path in self.failures:
            raise self.failures[path]
        return self.sweeps[path]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    """wandb.Api replaced by a fake, and W&B online (so that the API is what gets asked)."""
    import wandb

    fake = FakeApi()
    monkeypatch.setattr(wandb, "Api", fake)
    monkeypatch.setenv("WANDB_MODE", "online")
    return fake


@pytest.fixture
def downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default download folder (``<temp dir>/wandb_runs``), moved into this test's tmp_path."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp / "wandb_runs"


def a_run(run_id: str = "r1") -> FakeRun:
    return FakeRun(
        run_id,
        {"config.yaml": "lr:\n  value: 0.1\n", "media/images/plot.png": "png"},
        {"loss": 0.25, "nested": {"best": 1}},
        [{"_step": 0, "loss": 0.5}, {"_step": 1, "loss": 0.25}],
    )


# --- from the W&B API ----------------------------------------------------------------------------


def test_run_is_downloaded_from_its_entity_and_project(api: FakeApi, downloads: Path) -> None:
    api.runs["team/proj/r1"] = a_run()

    path = Path(download_wandb_run_dir("r1", entity="team", project="proj"))

    assert api.requested == ["team/proj/r1"]
    assert path == downloads / "r1"
    assert (path / "config.yaml").read_text() == "lr:\n  value: 0.1\n"
    assert (path / "media/images/plot.png").read_text() == "png"
    assert json.loads((path / "summary.json").read_text()) == {"loss": 0.25, "nested": {"best": 1}}
    assert json.loads((path / "metrics_history.json").read_text()) == [
        {"_step": 0, "loss": 0.5},
        {"_step": 1, "loss": 0.25},
    ]


def test_history_can_be_left_out(api: FakeApi, tmp_path: Path) -> None:
    api.runs["team/proj/r1"] = a_run()

    path = Path(
        download_wandb_run_dir(
            "r1", str(tmp_path / "out"), include_history=False, entity="team", project="proj"
        )
    )

    assert path == tmp_path / "out"
    assert (path / "summary.json").exists()
    assert not (path / "metrics_history.json").exists()


def test_configured_entity_and_project_are_used_for_an_explicit_run_id(
    api: FakeApi, downloads: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_ENTITY", "env-team")
    monkeypatch.setenv("WANDB_PROJECT", "env-proj")
    api.runs["env-team/env-proj/r1"] = a_run()

    download_wandb_run_dir("r1")

    assert api.requested == ["env-team/env-proj/r1"]


@env.task
async def download_parents_run() -> str:
    return download_wandb_run_dir()


def test_without_a_run_id_the_parents_run_is_downloaded_where_it_really_lives(
    api: FakeApi, downloads: Path
) -> None:
    api.runs["run-team/run-proj/parent-run"] = a_run("parent-run")
    context = {
        # The configuration names another project than the one the parent's run was started in.
        **wandb_config(project="cfg-proj", entity="cfg-team"),
        "_wandb_run_id": "parent-run",
        "_wandb_run_entity": "run-team",
        "_wandb_run_project": "run-proj",
    }

    run = run_local(download_parents_run, custom_context=context)

    assert api.requested == ["run-team/run-proj/parent-run"]
    assert run.outputs == str(downloads / "parent-run")


def test_no_run_id_and_no_active_run_is_a_clear_error(api: FakeApi) -> None:
    with pytest.raises(WandbRunError, match=r"no W&B run to download: no run_id was given"):
        download_wandb_run_dir()
    assert api.requested == []


def test_authentication_failure_is_clear_and_hides_the_key(
    api: FakeApi, downloads: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wandb

    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    api.failures["team/proj/r1"] = wandb.errors.AuthenticationError(f"invalid key {SECRET}")

    with pytest.raises(
        WandbRunError, match=r"authentication failed while looking up W&B run 'team/proj/r1'"
    ) as info:
        download_wandb_run_dir("r1", entity="team", project="proj")

    assert SECRET not in str(info.value)
    assert "WANDB_API_KEY" in str(info.value)


def test_missing_api_key_is_an_authentication_failure(
    monkeypatch: pytest.MonkeyPatch, downloads: Path
) -> None:
    import wandb

    def no_key(*_: Any, **__: Any) -> Any:
        raise wandb.errors.UsageError("No API key configured. Use `wandb login` to log in.")

    monkeypatch.setattr(wandb, "Api", no_key)
    monkeypatch.setenv("WANDB_MODE", "online")

    with pytest.raises(
        WandbRunError, match=r"authentication failed .* no API key is configured; set WANDB_API_KEY"
    ):
        download_wandb_run_dir("r1", entity="team", project="proj")


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ValueError("Could not find run <Run team/proj/r1>"), id="run-not-found"),
        pytest.param("comm-404", id="comm-error-404"),
    ],
)
def test_unknown_run_is_reported_as_not_found(api: FakeApi, downloads: Path, error: Any) -> None:
    import wandb

    api.failures["team/proj/r1"] = (
        wandb.errors.CommError("404 Not Found: run does not exist") if error == "comm-404" else error
    )

    with pytest.raises(WandbRunError, match=r"W&B run 'team/proj/r1' was not found on the W&B server"):
        download_wandb_run_dir("r1", entity="team", project="proj")


def test_unwritable_target_names_the_path(api: FakeApi, tmp_path: Path) -> None:
    api.runs["team/proj/r1"] = a_run()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = blocker / "downloads"

    with pytest.raises(WandbRunError, match=r"cannot write W&B downloads to .*a-file/downloads"):
        download_wandb_run_dir("r1", str(target), entity="team", project="proj")
    assert api.requested == [], "nothing is fetched when it cannot be written"


def test_unreachable_server_without_a_local_copy_is_an_error(api: FakeApi, downloads: Path) -> None:
    import wandb

    api.failures["team/proj/r1"] = wandb.errors.CommError("Connection refused")

    with pytest.raises(WandbRunError, match=r"cannot reach the W&B server to download run 'team/proj/r1'"):
        download_wandb_run_dir("r1", entity="team", project="proj")


async def test_traced_download_returns_the_folder_as_a_flyte_dir(api: FakeApi, downloads: Path) -> None:
    from flyte.io import Dir

    from flyteplugins.wandb import download_wandb_run_logs

    api.runs["team/proj/r1"] = a_run()

    result = await download_wandb_run_logs("r1", entity="team", project="proj")

    assert isinstance(result, Dir)
    assert Path(result.path) == downloads / "r1"
    assert (downloads / "r1" / "summary.json").is_file()


# --- sweeps through the API ----------------------------------------------------------------------


def test_sweep_runs_are_downloaded_each_into_its_folder(api: FakeApi, tmp_path: Path) -> None:
    api.sweeps["team/proj/sw1"] = FakeSweep([a_run("t1"), a_run("t2")])
    api.runs["team/proj/t1"] = a_run("t1")
    api.runs["team/proj/t2"] = a_run("t2")

    paths = download_wandb_sweep_dirs("sw1", str(tmp_path / "sweep"), entity="team", project="proj")

    assert paths == [str(tmp_path / "sweep" / "t1"), str(tmp_path / "sweep" / "t2")]
    assert api.requested == ["sweep:team/proj/sw1", "team/proj/t1", "team/proj/t2"]
    for path in paths:
        assert json.loads((Path(path) / "summary.json").read_text())["loss"] == 0.25


def test_partial_sweep_failure_warns_with_each_failed_run(
    api: FakeApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import wandb

    api.sweeps["team/proj/sw1"] = FakeSweep([a_run("t1"), a_run("t2"), a_run("t3")])
    api.runs["team/proj/t1"] = a_run("t1")
    api.failures["team/proj/t2"] = wandb.errors.AuthenticationError("forbidden")
    api.failures["team/proj/t3"] = ValueError("Could not find run t3")
    caplog.set_level(logging.WARNING, logger="flyteplugins.wandb")

    paths = download_wandb_sweep_dirs("sw1", str(tmp_path / "sweep"), entity="team", project="proj")

    assert paths == [str(tmp_path / "sweep" / "t1")]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "2 of 3 runs of W&B sweep team/proj/sw1 could not be downloaded" in warning
    assert "t2: W&B authentication failed" in warning
    assert "t3: W&B run 'team/proj/t3' was not found" in warning


def test_sweep_fails_only_when_every_run_fails(api: FakeApi, tmp_path: Path) -> None:
    api.sweeps["team/proj/sw1"] = FakeSweep([a_run("t1"), a_run("t2")])

    with pytest.raises(
        WandbRunError, match=r"none of the 2 runs of W&B sweep team/proj/sw1 could be downloaded: t1: .*t2: "
    ):
        download_wandb_sweep_dirs("sw1", str(tmp_path / "sweep"), entity="team", project="proj")


def test_no_sweep_id_and_no_sweep_is_a_clear_error(api: FakeApi) -> None:
    with pytest.raises(WandbRunError, match=r"no W&B sweep to download: no sweep_id was given"):
        download_wandb_sweep_dirs()


# --- from the local folders of offline runs ------------------------------------------------------


@wandb_init(project="proj", entity="team", download_logs=True, config={"lr": 0.1})
@env.task
async def train_and_download(steps: int) -> str:
    run = get_wandb_run()
    assert run is not None
    for step in range(steps):
        run.log({"loss": 1.0 / (step + 1)})
    run.summary["best"] = 7
    return str(run.id)


@wandb_init(project="proj", entity="team", download_logs=True)
@env.task
def train_and_download_sync() -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"loss": 0.5})
    return str(run.id)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def test_download_logs_copies_the_offline_run_after_the_task(downloads: Path) -> None:
    run = run_local(train_and_download, 3)

    folder = downloads / run.outputs
    summary = read_json(folder / "summary.json")
    assert (summary["loss"], summary["best"], summary["_step"]) == (pytest.approx(1 / 3), 7, 2)
    history = read_json(folder / "metrics_history.json")
    assert [row["loss"] for row in history] == [pytest.approx(1.0), pytest.approx(0.5), pytest.approx(1 / 3)]
    assert (folder / "requirements.txt").is_file()
    assert "lr:\n  value: 0.1" in (folder / "config.yaml").read_text()


def test_download_logs_works_in_sync_tasks(downloads: Path) -> None:
    run = run_local(train_and_download_sync)

    summary = read_json(downloads / run.outputs / "summary.json")
    assert summary["loss"] == 0.5


def test_failed_download_keeps_the_result_and_warns_once(
    downloads: Path, caplog: pytest.LogCaptureFixture
) -> None:
    downloads.write_text("a file where the download folder should go")
    caplog.set_level(logging.WARNING, logger="flyteplugins.wandb")

    run = run_local(train_and_download, 1)

    assert find_local_run_dirs(run.outputs), "the task returned its own run's id"
    warnings = [r.getMessage() for r in caplog.records if "download_logs" in r.getMessage()]
    assert len(warnings) == 1
    assert f"could not download W&B run team/proj/{run.outputs}" in warnings[0]
    assert "the task's result is kept" in warnings[0]
    assert f"cannot write W&B downloads to '{downloads / run.outputs}'" in warnings[0]


def test_failed_download_in_a_sync_task_keeps_the_result(
    downloads: Path, caplog: pytest.LogCaptureFixture
) -> None:
    downloads.write_text("a file where the download folder should go")
    caplog.set_level(logging.WARNING, logger="flyteplugins.wandb")

    run = run_local(train_and_download_sync)

    assert run.outputs
    warnings = [r.getMessage() for r in caplog.records if "download_logs" in r.getMessage()]
    assert len(warnings) == 1 and f"could not download W&B run team/proj/{run.outputs}" in warnings[0]


def test_offline_run_is_downloaded_by_id_outside_a_task(downloads: Path, tmp_path: Path) -> None:
    run = run_local(train_and_download, 2)

    path = Path(download_wandb_run_dir(run.outputs, str(tmp_path / "again")))

    assert [row["loss"] for row in read_json(path / "metrics_history.json")] == [1.0, 0.5]


def test_download_without_a_flyte_controller_still_downloads_and_says_where(
    downloads: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flyte._internal.controllers import _ControllerState

    from flyteplugins.wandb._codec import RunIdentity
    from flyteplugins.wandb._download_trace import _can_record_traces, download_after_task_sync

    run = run_local(train_and_download, 2)
    shutil.rmtree(downloads / run.outputs)  # the task's own download_logs already fetched it
    # What a worker process of an Elastic task sees: no Flyte controller, so no trace can be recorded.
    monkeypatch.setattr(_ControllerState, "controller", None)
    assert not _can_record_traces()

    with caplog.at_level(logging.WARNING, logger="flyteplugins.wandb"):
        download_after_task_sync(RunIdentity(run.outputs, "team", "proj"))

    messages = [r.getMessage() for r in caplog.records]
    assert any(f"W&B run {run.outputs} downloaded to" in m for m in messages), messages
    folder = downloads / run.outputs
    assert [row["loss"] for row in read_json(folder / "metrics_history.json")] == [1.0, 0.5]


def test_unknown_run_offline_names_the_local_folders_searched(wandb_root: Path, downloads: Path) -> None:
    with pytest.raises(
        WandbRunError, match=r"'nope' was not found in the local W&B folders \(.*wandb\); W&B runs offline"
    ):
        download_wandb_run_dir("nope")

    assert not (downloads / "nope").exists(), "a failed download leaves no folder behind"


def test_failed_api_download_leaves_no_folder_behind(api: FakeApi, downloads: Path) -> None:
    with pytest.raises(WandbRunError, match="was not found on the W&B server"):
        download_wandb_run_dir("r1", entity="team", project="proj")

    assert not (downloads / "r1").exists()


def test_unreachable_server_falls_back_to_the_runs_local_folder(
    api: FakeApi,
    downloads: Path,
    wandb_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import wandb

    # An online run's local folder has the same layout as an offline one, named run-<time>-<id>.
    monkeypatch.setenv("WANDB_MODE", "offline")
    run = run_local(train_and_download, 2)
    monkeypatch.setenv("WANDB_MODE", "online")
    folders = find_local_run_dirs(run.outputs)
    assert folders
    for folder in folders:
        shutil.move(str(folder), str(folder.with_name(folder.name.removeprefix("offline-"))))
    api.failures[f"team/proj/{run.outputs}"] = wandb.errors.CommError("Connection refused by api.wandb.ai")
    caplog.set_level(logging.WARNING, logger="flyteplugins.wandb")

    path = Path(
        download_wandb_run_dir(run.outputs, str(tmp_path / "fallback"), entity="team", project="proj")
    )

    assert api.requested == [f"team/proj/{run.outputs}"]
    assert [row["loss"] for row in read_json(path / "metrics_history.json")] == [1.0, 0.5]
    assert any(
        "W&B server unreachable" in r.getMessage() and "local folder" in r.getMessage()
        for r in caplog.records
    )


# --- import cost ---------------------------------------------------------------------------------


def test_importing_the_download_module_imports_neither_wandb_nor_flyte_io() -> None:
    code = (
        "import sys, flyteplugins.wandb._download as d, flyteplugins.wandb._sweep; "
        "print('wandb' in sys.modules, 'flyte.io' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=dict(os.environ)
    )
    assert out.stdout.split() == ["False", "False"]
