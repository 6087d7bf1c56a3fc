"""The report helper's answer: drawn ahead while the run is being finished, drawn again only
where the finished log changed it. Real offline runs; the log's end is held back and written
later by the test, as wandb's service writes it when the run finishes."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flyteplugins.wandb._compat import parse_record, record_kind
from flyteplugins.wandb._history import HistoryReader, log_has_exit, read_history
from flyteplugins.wandb._log_format import FILE_HEADER, frames, log_file
from flyteplugins.wandb._offline import find_offline_run_dirs
from flyteplugins.wandb._report import RenderCache, ReportContext, render_report
from flyteplugins.wandb._report_follow import _answer, _follow, context_to_json

pytest.importorskip("pygal")
pytestmark = pytest.mark.smoke

STEPS = 300
CONTEXT = ReportContext(url="https://wandb.ai/team/reports/runs/r", task="train")


def _finished_run(wandb_root: Path, pending_at_finish: bool = False) -> Path:
    import wandb

    run = wandb.init(project="reports")
    for step in range(STEPS):
        run.log({"train/loss": 1.0 / (step + 1), "train/acc": step / STEPS, "lr": 0.1})
    if pending_at_finish:
        run.log({"eval/acc": 0.5}, commit=False)  # a row that only finishing the run writes
    run.finish()
    (run_dir,) = find_offline_run_dirs(wandb_root, run.id)
    # wandb's service writes the log's end just after finish() returns: the test cuts the log
    # only once the service is done with it.
    log = log_file(run_dir)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not log_has_exit(run_dir):
        time.sleep(0.02)
    size = -1
    while time.monotonic() < deadline and size != log.stat().st_size:
        size = log.stat().st_size
        time.sleep(0.2)
    return run_dir


def _hold_back_the_end(run_dir: Path, last_history: bool) -> tuple[Path, bytes]:
    """Cut the log after its last history record (or before it); return the log and what was cut."""
    log = log_file(run_dir)
    data = log.read_bytes()
    header = FILE_HEADER.size
    ends = [(record_kind(parse_record(payload)), end) for payload, end in frames(data, 0, header)[0]]
    history_ends = [end for kind, end in ends if kind == "history"]
    cut = history_ends[-1] if last_history else history_ends[-2]
    assert cut < len(data)
    log.write_bytes(data[:cut])
    return log, data[cut:]


def _answer_while_the_run_finishes(run_dir: Path, steps: int, last_history: bool) -> tuple[str, RenderCache]:
    log, rest = _hold_back_the_end(run_dir, last_history)
    reader = HistoryReader(run_dir)
    cache = RenderCache()
    _follow(reader, cache)  # what the helper read while the task ran
    out: dict[str, Any] = {}
    request = {"wait": 10, "context": context_to_json(CONTEXT), "steps": steps}
    helper = threading.Thread(target=lambda: out.update(page=_answer(reader, str(run_dir), request, cache)))
    helper.start()
    time.sleep(0.5)  # the run is being finished...
    assert helper.is_alive(), "the helper answered before the log had its exit record"
    with open(log, "ab") as handle:  # ...and wandb's service writes the log's end
        handle.write(rest)
    helper.join(timeout=20)
    return out["page"], cache


def test_the_page_drawn_ahead_is_the_page_of_the_finished_log(wandb_root: Path) -> None:
    run_dir = _finished_run(wandb_root)
    page, cache = _answer_while_the_run_finishes(run_dir, steps=STEPS, last_history=True)
    assert page == render_report(read_history(run_dir), CONTEXT)
    # Every chart was drawn while the run was being finished, once: none at the end.
    assert page.count("<figure") == 3 and cache.drawn_total == 3 and cache.drawn == 0


def test_the_helper_waits_for_the_tasks_last_step_before_drawing_ahead(wandb_root: Path) -> None:
    run_dir = _finished_run(wandb_root)
    # The last row is not in the log yet when the task asks: drawing then would be wasted.
    page, cache = _answer_while_the_run_finishes(run_dir, steps=STEPS, last_history=False)
    assert page == render_report(read_history(run_dir), CONTEXT)
    assert cache.drawn_total == 3  # once each, with the whole history


def test_a_row_written_by_finishing_the_run_is_in_the_page(wandb_root: Path) -> None:
    # run.log(..., commit=False) before finish(): the service writes that row when finishing, after
    # the helper drew ahead; the charts it changes are drawn again.
    run_dir = _finished_run(wandb_root, pending_at_finish=True)
    page, cache = _answer_while_the_run_finishes(run_dir, steps=STEPS, last_history=False)
    assert page == render_report(read_history(run_dir), CONTEXT)
    assert '<figure data-metric="eval/acc">' in page
    # Drawn ahead without it; at the end only its chart is new (the others did not change).
    assert cache.drawn_total == 4 and cache.drawn == 1
