"""Preemption loses nothing: a real process, a real signal, the run's transaction log read back.

Each test starts ``tests/preempt_worker.py`` (a local Flyte run of a ``@wandb_init`` task, wandb
offline), waits until the task has logged its steps, sends SIGTERM or SIGINT, and reads what wandb
wrote. The handler mechanics (chaining, restoring, reference counting) are also tested in this
process with real signals raised by ``signal.raise_signal``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flyte
import pytest
from conftest import run_local, task_run
from dist_worker import clean_env

from flyteplugins.wandb import _signals, wandb_init
from flyteplugins.wandb._offline import find_offline_run_dirs, read_offline_run, read_offline_runs

WORKER = Path(__file__).with_name("preempt_worker.py")
READY_TIMEOUT_S = 60.0
GONE_WITHIN_S = 15.0


def _start(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-u", str(WORKER), *args],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_ready(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.strip() == "READY":
            return lines
    proc.kill()
    pytest.fail("the worker never became ready:\n" + "".join(lines))


def _stop(proc: subprocess.Popen[str], signum: int) -> tuple[float, str]:
    """Send ``signum``; return how long the process took to end, and its remaining output."""
    started = time.monotonic()
    proc.send_signal(signum)
    try:
        out, _ = proc.communicate(timeout=GONE_WITHIN_S + 5)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"the process was still running {GONE_WITHIN_S + 5} s after the signal:\n{out}")
    return time.monotonic() - started, out


@pytest.mark.parametrize(
    ("signum", "sync"), [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGTERM, True)]
)
def test_a_signal_finishes_the_run_as_preempted_with_every_step(
    tmp_path: Path, signum: int, sync: bool
) -> None:
    proc = _start(tmp_path, *(["--sync"] if sync else []))
    _wait_ready(proc)
    elapsed, out = _stop(proc, signum)

    assert elapsed < GONE_WITHIN_S, out
    # The signal took its usual course after the run was finished: SIGTERM's default action ends
    # the process by the signal; SIGINT becomes KeyboardInterrupt, which ends it non-zero.
    if signum == signal.SIGTERM:
        assert proc.returncode == -signal.SIGTERM, out
    else:
        assert proc.returncode != 0, out
    (run_dir,) = find_offline_run_dirs(tmp_path / "wandb", "preempted-run")
    run = read_offline_run(run_dir, wait=5)
    assert run.column("loss") == [1.0 / (step + 1) for step in range(50)]
    assert run.exit_code == 128 + signum
    assert run.preempting
    assert not run.truncated


def test_a_handler_installed_before_is_called_after_the_run_is_finished(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--user-handler", "--run-id", "chained-run")
    _wait_ready(proc)
    elapsed, out = _stop(proc, signal.SIGTERM)

    assert elapsed < GONE_WITHIN_S, out
    assert f"USER HANDLER {int(signal.SIGTERM)}" in out
    assert proc.returncode == 7, out
    (run_dir,) = find_offline_run_dirs(tmp_path / "wandb", "chained-run")
    run = read_offline_run(run_dir, wait=5)
    assert (len(run.history), run.exit_code, run.preempting) == (50, 143, True)


# --- the handler's mechanics, in this process --------------------------------------------------


class Recorder:
    """A guarded target that records how it was told about a signal and how it was ended."""

    def __init__(self) -> None:
        self.marked = 0
        self.ended: list[tuple[int, float]] = []

    def preempting(self) -> None:
        self.marked += 1

    def preempt(self, exit_code: int, seconds: float) -> None:
        self.ended.append((exit_code, seconds))


class Stop(Exception):
    """What the program's own handler raises to stop, like KeyboardInterrupt or SystemExit."""


@pytest.fixture
def user_handlers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The program's own SIGTERM and SIGINT handlers, installed before any guard.

    They record the signal; SIGTERM then stops the program (raises), SIGINT lets it carry on.
    """
    monkeypatch.setattr(_signals, "_armed", False)
    monkeypatch.setattr(_signals, "_previous", {})
    calls: list[int] = []

    def user_handler(signum: int, frame: Any) -> None:
        calls.append(signum)
        if signum == signal.SIGTERM:
            raise Stop

    saved = {s: signal.signal(s, user_handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield calls
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def test_guards_install_once_chain_the_previous_handler_and_restore_it(user_handlers: list[int]) -> None:
    before = signal.getsignal(signal.SIGTERM)
    outer, inner = Recorder(), Recorder()
    with _signals.guard(outer, seconds=3):
        assert signal.getsignal(signal.SIGTERM) is _signals._handle
        with _signals.guard(inner, seconds=3), pytest.raises(Stop):
            signal.raise_signal(signal.SIGTERM)
            # The inner guard closing keeps the handler: the outer one still holds it.
        assert signal.getsignal(signal.SIGTERM) is _signals._handle
    assert signal.getsignal(signal.SIGTERM) is before
    assert signal.getsignal(signal.SIGINT) is not _signals._handle
    # The program's handler stopped it: both runs were finished before that went on.
    assert (outer.marked, outer.ended, inner.marked, inner.ended) == (1, [(143, 3)], 1, [(143, 3)])
    assert user_handlers == [signal.SIGTERM]


def test_a_previous_handler_that_carries_on_keeps_the_run_open(user_handlers: list[int]) -> None:
    target = Recorder()
    with _signals.guard(target, seconds=3):
        signal.raise_signal(signal.SIGINT)
        # The program chose to continue after the signal: its run must keep working.
        assert (target.marked, target.ended) == (1, [])
    assert user_handlers == [signal.SIGINT]


def test_a_signal_with_no_guarded_run_is_only_passed_on(user_handlers: list[int]) -> None:
    _signals.arm()
    try:
        assert signal.getsignal(signal.SIGINT) is _signals._handle
        signal.raise_signal(signal.SIGINT)
        assert user_handlers == [signal.SIGINT]
    finally:
        _signals._armed = False
        _signals._uninstall()


def test_an_ignored_signal_stays_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_signals, "_armed", False)
    monkeypatch.setattr(_signals, "_previous", {})
    saved = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        target = Recorder()
        with _signals.guard(target):
            assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
            signal.raise_signal(signal.SIGTERM)
        assert target.ended == []
    finally:
        signal.signal(signal.SIGTERM, saved)


def test_a_guard_off_the_main_thread_installs_nothing(user_handlers: list[int]) -> None:
    import threading

    seen: list[Any] = []

    def body() -> None:
        with _signals.guard(Recorder()):
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(5)
    assert seen and seen[0] is not _signals._handle


# --- retries, as docs/reliability.md describes them offline ----------------------------------------

retry_env = flyte.TaskEnvironment(name="preemption_retry")


@wandb_init(project="proj", entity="team", id="retried-run")
@retry_env.task(retries=1)
async def preempted_once(marker: str) -> int:
    run = task_run()
    first = not Path(marker).exists()
    for step in range(3):
        run.log({"loss": step + (0 if first else 10)})
    if first:
        Path(marker).write_text("attempt 1")
        raise RuntimeError("attempt 1 lost its node")
    return 2


def test_an_offline_retry_resumes_the_run_in_its_own_folder_with_steps_from_zero(
    wandb_root: Path, tmp_path: Path
) -> None:
    assert run_local(preempted_once, str(tmp_path / "marker")).outputs == 2
    first, second = read_offline_runs(wandb_root, "retried-run", wait=15)
    assert (first.resumed, first.exit_code, first.column("loss")) == (True, 1, [0, 1, 2])
    assert (second.resumed, second.exit_code, second.column("loss")) == (True, 0, [10, 11, 12])
    assert [row["_step"] for row in second.history] == [0, 1, 2]  # offline: no server to continue from
