"""The offline-run reader against real wandb offline runs: what a run logs reads back exactly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wandb
from conftest import requires_wandb

from flyteplugins.wandb import _compat
from flyteplugins.wandb._offline import (
    OfflineRunFormatError,
    find_offline_run_dirs,
    iter_records,
    read_offline_run,
    read_offline_runs,
)

pytestmark = pytest.mark.smoke

CONFIG = {"lr": 0.001, "layers": [64, 32], "optimizer": {"name": "adam", "betas": [0.9, 0.999]}, "seed": 7}
# wandb's service writes the end of a run's log after run.finish() has returned.
WAIT = 30.0
STEPS = [
    {"loss": 2.5, "acc": 0.1, "phase": "warmup"},
    {"loss": 1.25, "acc": 0.5, "grad": {"norm": 3.5, "clipped": True}},
    {"loss": 0.625, "acc": 0.75, "maybe": None},
]


_started: list[Any] = []


@pytest.fixture
def runs_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory for wandb.init(dir=...); a run a failing test left open is finished afterwards."""
    yield tmp_path / "runs"
    while _started:
        _started.pop().finish()  # a no-op for a finished run


def start(root: Path, run_id: str, **kwargs: Any) -> Any:
    """A real offline run writing under ``root``, next to any other live run of this process."""
    settings = {"silent": True, "console": "off", **kwargs.pop("settings", {})}
    kwargs.setdefault("project", "reader-tests")
    run = wandb.init(
        mode="offline",
        dir=str(root),
        id=run_id,
        reinit="create_new",
        settings=wandb.Settings(**settings),
        **kwargs,
    )
    _started.append(run)
    return run


def logged(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History rows without wandb's own _step/_runtime/_timestamp columns."""
    return [{k: v for k, v in row.items() if not k.startswith("_")} for row in history]


def test_finished_run_reads_back_exactly(runs_dir: Path) -> None:
    run = start(
        runs_dir,
        "run-ok",
        entity="my-team",
        name="first try",
        group="experiment-1",
        job_type="train",
        tags=["baseline", "cpu"],
        notes="reads back",
        config=CONFIG,
    )
    for step in STEPS:
        run.log(step)
    run.config.update({"epochs": 3})
    run.summary["best_acc"] = 0.75
    run.summary["report"] = {"rows": [1, 2], "ok": True}
    run.finish(exit_code=0)

    (run_dir,) = find_offline_run_dirs(runs_dir)
    recorded = read_offline_run(run_dir, wait=WAIT)

    assert recorded.path == run_dir
    assert run_dir.name.startswith("offline-run-") and run_dir.name.endswith("-run-ok")
    assert (recorded.run_id, recorded.project, recorded.entity) == ("run-ok", "reader-tests", "my-team")
    assert (recorded.name, recorded.group, recorded.job_type) == ("first try", "experiment-1", "train")
    assert recorded.tags == ("baseline", "cpu")
    assert recorded.notes == "reads back"
    assert recorded.config == {**CONFIG, "epochs": 3}
    assert logged(recorded.history) == [{k: v for k, v in s.items()} for s in STEPS]
    assert [row["_step"] for row in recorded.history] == [0, 1, 2]
    assert recorded.column("loss") == [2.5, 1.25, 0.625]
    user_summary = {k: v for k, v in recorded.summary.items() if not k.startswith("_")}
    assert user_summary == {
        "loss": 0.625,
        "acc": 0.75,
        "phase": "warmup",
        "grad": {"norm": 3.5, "clipped": True},
        "best_acc": 0.75,
        "report": {"rows": [1, 2], "ok": True},
    }
    assert recorded.summary["_step"] == 2
    assert recorded.exit_code == 0 and recorded.finished
    assert recorded.resumed is False
    assert (recorded.label, recorded.primary, recorded.shared_mode) == (None, None, False)
    assert "requirements.txt" in recorded.files
    # wandb before 0.20 also registers its wandb-metadata.json.
    assert "requirements.txt" in recorded.file_records
    assert recorded.start_time is not None and abs(recorded.start_time - time.time()) < 600
    assert recorded.truncated is False and recorded.offline is True
    kinds = [record.WhichOneof("record_type") for record in iter_records(run_dir)]
    assert kinds[:2] == ["header", "run"] and kinds[-1] == "exit"


def test_failed_run_records_its_exit_code(runs_dir: Path) -> None:
    run = start(runs_dir, "run-failed", config={"a": 1})
    run.log({"loss": 1.0})
    run.finish(exit_code=1)

    (recorded,) = read_offline_runs(runs_dir, "run-failed", wait=WAIT)
    assert recorded.exit_code == 1
    assert recorded.config == {"a": 1}
    assert recorded.column("loss") == [1.0]


@requires_wandb("0.31.0", "x_transaction_log_flush_interval: older releases buffer a live run's log")
def test_live_run_has_no_exit_code_until_finished(runs_dir: Path) -> None:
    # A short flush interval makes the service write the log while the run is still going.
    run = start(runs_dir, "run-live", settings={"x_transaction_log_flush_interval": 0.1})
    try:
        for i in range(3):
            run.log({"i": i})
        deadline = time.monotonic() + 20
        recorded = None
        while time.monotonic() < deadline:
            dirs = find_offline_run_dirs(runs_dir, "run-live")
            if dirs:
                recorded = read_offline_run(dirs[0])
                if len(recorded.history) == 3:
                    break
            time.sleep(0.1)
        assert recorded is not None and recorded.column("i") == [0, 1, 2]
        assert recorded.exit_code is None and not recorded.finished
    finally:
        run.finish()
    (done,) = read_offline_runs(runs_dir, "run-live", wait=WAIT)
    assert done.exit_code == 0


def test_log_cut_anywhere_reads_its_complete_prefix(runs_dir: Path, tmp_path: Path) -> None:
    run = start(runs_dir, "run-cut")
    for i in range(5):
        run.log({"i": i})
    run.finish(exit_code=3)
    (run_dir,) = find_offline_run_dirs(runs_dir)
    full = read_offline_run(run_dir, wait=WAIT)
    assert full.exit_code == 3 and not full.truncated
    data = (run_dir / "run-run-cut.wandb").read_bytes()
    assert len(data) < 32 * 1024  # one block: chunks follow each other, 7-byte header + payload
    boundaries = [7]
    while boundaries[-1] < len(data):
        boundaries.append(
            boundaries[-1] + 7 + int.from_bytes(data[boundaries[-1] + 4 : boundaries[-1] + 6], "little")
        )
    assert boundaries[-1] == len(data) and len(boundaries) - 1 == len(list(iter_records(run_dir)))

    copy_dir = tmp_path / "cut" / run_dir.name
    copy_dir.mkdir(parents=True)
    copy = copy_dir / "run-run-cut.wandb"
    # Every cut inside the file header, and around and inside every record.
    cuts = set(range(8)) | {b + d for b in boundaries[:-1] for d in (-1, 1, 3, 6, 8)} | set(boundaries[:-1])
    steps_seen = 0
    for cut in sorted(c for c in cuts if 0 <= c < len(data)):
        copy.write_bytes(data[:cut])
        partial = read_offline_run(copy_dir)
        assert partial.exit_code is None
        assert partial.column("i") == list(range(len(partial.history)))
        assert len(partial.history) >= steps_seen
        steps_seen = len(partial.history)
        # Only a cut right after the file header or after a record is not mid-record.
        assert partial.truncated is (cut not in boundaries), cut
    copy.write_bytes(data)
    whole = read_offline_run(copy_dir)
    assert (whole.history, whole.exit_code, whole.truncated) == (full.history, 3, False)


def test_records_larger_than_a_block(runs_dir: Path) -> None:
    big = "x" * 100_000  # spans several 32 KiB blocks, so it is split into chunks
    run = start(runs_dir, "run-big", config={"blob": big})
    for i in range(400):
        run.log({"i": i, "text": f"step {i}"})
    run.finish()

    (run_dir,) = find_offline_run_dirs(runs_dir)
    recorded = read_offline_run(run_dir, wait=WAIT)
    assert (run_dir / "run-run-big.wandb").stat().st_size > 4 * 32 * 1024
    assert recorded.config == {"blob": big}
    assert recorded.column("i") == list(range(400))
    assert recorded.column("text")[-1] == "step 399"
    assert recorded.exit_code == 0 and not recorded.truncated


def test_resumed_run_is_a_second_directory(runs_dir: Path) -> None:
    first = start(runs_dir, "run-resume", config={"stage": 1})
    first.log({"x": 1})
    first.finish(exit_code=1)
    second = start(runs_dir, "run-resume", resume="allow", config={"stage": 2})
    second.log({"x": 2})
    second.finish()

    dirs = find_offline_run_dirs(runs_dir, "run-resume")
    assert len(dirs) == 2
    before, after = read_offline_runs(runs_dir, "run-resume", wait=WAIT)
    assert [before.path, after.path] == dirs
    assert (before.resumed, before.exit_code, before.config, before.column("x")) == (
        False,
        1,
        {"stage": 1},
        [1],
    )
    assert (after.exit_code, after.config, after.column("x")) == (0, {"stage": 2}, [2])
    # The run record's "resume" field is written from wandb 0.30 on.
    assert after.resumed is _compat.wandb_at_least("0.30.0")
    # Offline, wandb cannot know the earlier steps: the second directory counts from 0 again.
    assert after.history[0]["_step"] == 0


def test_ids_with_dashes_and_same_second_suffixes(runs_dir: Path) -> None:
    # "a" twice in one second gives offline-run-<t>-a and offline-run-<t>-a-1; the id "a-1" then
    # lands in offline-run-<t>-a-1-1 (or its own second). Only the logs' names tell them apart.
    for run_id in ("a", "a", "a-1"):
        run = start(runs_dir, run_id, config={"id": run_id})
        run.finish()

    assert [r.config["id"] for r in read_offline_runs(runs_dir, "a", wait=WAIT)] == ["a", "a"]
    assert [r.run_id for r in read_offline_runs(runs_dir, "a-1", wait=WAIT)] == ["a-1"]
    assert len(find_offline_run_dirs(runs_dir)) == 3


SECONDARY_WRITER = """
import sys, wandb
settings = wandb.Settings(silent=True, console="off", x_label="rank1", x_primary=False,
                          x_update_finish_state=False)
run = wandb.init(mode="offline", dir=sys.argv[1], project="reader-tests", id="run-shared", settings=settings)
run.log({"loss": 2.0})
run.finish()
"""


@requires_wandb("0.26.1", "an offline writer with x_update_finish_state=False never finishes before")
def test_several_writers_to_one_run(runs_dir: Path) -> None:
    # Distributed writers of one run, offline: one directory each. One wandb service refuses a
    # second live run with the same id ("run ID ... is in use"), and a child process inherits
    # its parent's service through WANDB_SERVICE, so the other writer gets its own service.
    primary = start(runs_dir, "run-shared", settings={"x_label": "rank0", "x_primary": True})
    primary.log({"loss": 1.0})
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    subprocess.run([sys.executable, "-c", SECONDARY_WRITER, str(runs_dir)], check=True, timeout=120, env=env)
    primary.finish()

    writers = read_offline_runs(runs_dir, "run-shared", wait=WAIT)
    assert sorted((w.label, w.primary) for w in writers) == [("rank0", True), ("rank1", False)]
    by_label = {w.label: w for w in writers}
    assert by_label["rank0"].column("loss") == [1.0]
    assert by_label["rank1"].column("loss") == [2.0]
    assert "requirements.txt" in by_label["rank0"].files
    assert "requirements.txt" not in by_label["rank1"].files
    assert all(w.exit_code == 0 for w in writers)


FALLBACK_AFTER_UNREACHABLE = """
import socket, sys, wandb
probe = socket.socket(); probe.bind(("127.0.0.1", 0)); port = probe.getsockname()[1]; probe.close()
common = dict(dir=sys.argv[1], project="reader-tests", id="run-fallback", reinit="create_new")
try:
    wandb.init(mode="online", settings=wandb.Settings(silent=True, console="off", init_timeout=1,
               base_url=f"http://127.0.0.1:{port}", api_key="x" * 40), **common)
    sys.exit("reached a server that cannot exist")
except wandb.Error:
    pass
# The service keeps the failed run's id ("run ID ... is in use"): only a new service frees it.
wandb.teardown()
run = wandb.init(mode="offline", settings=wandb.Settings(silent=True, console="off"), **common)
run.log({"x": 1})
run.finish()
"""


@requires_wandb("0.28.2", "wandb.teardown() after a failed online start waits forever before")
@pytest.mark.timeout(150)
def test_an_online_start_that_failed_leaves_a_run_directory(runs_dir: Path) -> None:
    # Falling back to offline after the server could not be reached: the failed online start
    # keeps its own run-... directory, which records the run and an exit but no history.
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    subprocess.run(
        [sys.executable, "-c", FALLBACK_AFTER_UNREACHABLE, str(runs_dir)], check=True, timeout=120, env=env
    )
    attempt, fallback = read_offline_runs(runs_dir, "run-fallback", wait=WAIT)
    assert attempt.path.name.startswith("run-") and not attempt.offline
    assert (attempt.history, attempt.project) == ([], "reader-tests")
    assert fallback.offline and fallback.column("x") == [1] and fallback.exit_code == 0


def test_root_can_be_the_dir_the_wandb_dir_or_a_run_dir(runs_dir: Path) -> None:
    run = start(runs_dir, "run-where")
    run.finish()
    (run_dir,) = find_offline_run_dirs(runs_dir)
    read_offline_run(run_dir, wait=WAIT)
    assert find_offline_run_dirs(runs_dir / "wandb") == [run_dir]
    assert find_offline_run_dirs(run_dir) == [run_dir]
    assert find_offline_run_dirs(runs_dir, "someone-else") == []
    assert read_offline_run(run_dir / "run-run-where.wandb") == read_offline_run(run_dir)


def test_what_is_not_a_log(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_offline_run(tmp_path / "missing")
    empty_run = tmp_path / "offline-run-20250101_000000-abc"
    empty_run.mkdir()
    with pytest.raises(FileNotFoundError):
        read_offline_run(empty_run)
    (empty_run / "run-abc.wandb").write_bytes(b"not a wandb log at all")
    with pytest.raises(OfflineRunFormatError):
        read_offline_run(empty_run)
    (empty_run / "run-abc.wandb").write_bytes(b"")
    just_created = read_offline_run(empty_run)
    assert (just_created.run_id, just_created.history, just_created.truncated) == ("abc", [], True)


def test_importing_the_reader_does_not_import_wandb() -> None:
    code = "import sys, flyteplugins.wandb._offline; assert 'wandb' not in sys.modules, 'wandb imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
