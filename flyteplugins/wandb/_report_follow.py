"""A helper process that follows a run's log during a task, so that its report tab is ready at the end.

Reading a long log costs about a sixth of the CPU time logging it cost (a 20,000-step run's log
is ~21 MB of protobuf records, decoded in Python). wandb writes the log while the run goes on, so a
task with ``report=True`` that owns its run starts this helper: it reads the log as it grows
(:class:`~flyteplugins.wandb._history.HistoryReader`), on another core than the task, and when
the task ends it reads the rest, draws the page and hands it back. The task waits only for that
last part. If the helper cannot start, or fails, or does not answer in time, the tab is rendered
in the task's process instead (:mod:`flyteplugins.wandb._report_tab`).

Protocol (one JSON line each way): the helper runs ``python -m flyteplugins.wandb._report_follow
RUN_DIR``; the task writes ``{"wait": seconds, "context": {...ReportContext fields...}, "steps":
N}`` to its standard input when its function has returned; the helper draws the page while the
run is being finished, draws what changed once the log has its exit record, and answers
``{"html": "...", "cpu": seconds}`` (or ``{"error": "..."}``) on its standard output and exits.
End of input without a request (the task's process died) ends the helper.

Example:
    >>> from flyteplugins.wandb._report_follow import context_from_json
    >>> context_from_json({"task": "train", "notes": ["a"]}).notes
    ('a',)
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import subprocess
import sys
import time
from typing import IO, Any

from ._compat import load_records_without_sdk
from ._history import HistoryReader, log_has_exit
from ._report import RenderCache, ReportContext, TaskSteps, render_report

__all__ = ["Follower", "context_from_json", "context_to_json", "main"]

# How often the helper reads what was added to the log while the task runs.
_FOLLOW_SECONDS = 0.1
_POLL_SECONDS = 0.01


def context_to_json(context: ReportContext) -> dict[str, Any]:
    """A :class:`ReportContext` as JSON-able data, for the helper.

    Example:
        >>> context_to_json(ReportContext(task="t"))["task"]
        't'
    """
    return {
        "url": context.url,
        "task": context.task,
        "notes": list(context.notes),
        "task_steps": [[s.task, s.action, s.first, s.end] for s in context.task_steps],
    }


def context_from_json(data: dict[str, Any]) -> ReportContext:
    """The inverse of :func:`context_to_json`.

    Example:
        >>> context_from_json(context_to_json(ReportContext(url="https://x.org/r"))).url
        'https://x.org/r'
    """
    return ReportContext(
        url=data.get("url"),
        task=data.get("task"),
        notes=tuple(str(note) for note in data.get("notes", ())),
        task_steps=tuple(
            TaskSteps(str(task), str(action), int(first), int(end))
            for task, action, first, end in data.get("task_steps", ())
        ),
    )


class Follower:
    """The task's side of the helper process."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.cpu_seconds: float | None = None  # the helper's CPU time, once it has answered

    @classmethod
    def start(cls, run_dir: str) -> Follower | None:
        """Start the helper for ``run_dir``; ``None`` when it cannot be started."""
        environ = dict(os.environ)
        # The helper imports this package the way this process did, installed or not.
        environ["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "flyteplugins.wandb._report_follow", run_dir],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=environ,
            )
        except OSError:
            return None
        return cls(process)

    def request(self, context: ReportContext, wait: float, steps: int | None = None) -> None:
        """Ask for the page: the helper waits up to ``wait`` seconds for the log's exit record.

        ``steps`` is the run's step when the task ended (its next step): the history is complete
        once the helper has read the row before it.
        """
        stdin = self.process.stdin
        if stdin is None:
            raise OSError("the report helper has no input")
        request = {"wait": wait, "context": context_to_json(context), "steps": steps}
        try:
            stdin.write(json.dumps(request) + "\n")
            stdin.close()
        finally:
            # One request only; and communicate() would write to (flush) the closed input again.
            self.process.stdin = None

    def answer(self, timeout: float) -> str | None:
        """The page the helper drew; ``None`` if it gave none within ``timeout`` seconds."""
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.stop()
            return None
        try:
            answer = json.loads(out)
        except ValueError:
            return None
        if isinstance(answer, dict) and isinstance(answer.get("cpu"), (int, float)):
            self.cpu_seconds = float(answer["cpu"])
        page = answer.get("html") if isinstance(answer, dict) else None
        return page if isinstance(page, str) else None

    def finish(self, context: ReportContext, wait: float, timeout: float) -> str | None:
        """:meth:`request` then :meth:`answer`."""
        try:
            self.request(context, wait)
        except (OSError, ValueError):
            self.stop()
            return None
        return self.answer(timeout)

    def stop(self) -> None:
        """End the helper (it is not waited for longer than a second)."""
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1)


def _request(stdin: IO[str], timeout: float) -> dict[str, Any] | bool | None:
    """The task's request if it arrived within ``timeout``; ``False`` if not yet; ``None`` at end of input."""
    ready, _, _ = select.select([stdin], [], [], timeout)
    if not ready:
        return False
    line = stdin.readline()
    if not line:
        return None
    data = json.loads(line)
    return data if isinstance(data, dict) else None


def _warm_up() -> None:
    """Import and run the drawing code once while the task runs, not when it has ended."""
    from ._chart_model import Chart
    from ._chart_svg import line_chart_svg
    from ._report import charts_available

    if charts_available():
        line_chart_svg(Chart("warm-up", "Charts", "_step", [0.0, 1.0], [0.0, 1.0], logged=2, skipped=0))


def _exited(run_dir: str) -> bool:
    try:
        return log_has_exit(run_dir)
    except OSError:
        return False


def _follow(reader: HistoryReader, cache: RenderCache) -> None:
    """Read what was added to the log, and the values added to the charts' series."""
    if reader.update():
        columns, steps, step_metrics = reader.so_far()
        cache.planner.extend(columns, steps, step_metrics)


def _answer(reader: HistoryReader, run_dir: str, request: dict[str, Any], cache: RenderCache) -> str:
    """The page, once the log has its exit record (or the request's wait is over).

    The task asks when its function has returned, before its run is finished: while wandb
    finishes the run, the page is drawn from the history logged so far (all of it, once the
    request's ``steps`` are read), and when the log is complete it is drawn again with a
    :class:`RenderCache`, which draws only the charts that changed. Finishing a run adds no
    history, so at the end only the tables are new (for an online run, finishing means uploading:
    seconds in which the page is drawn ahead).
    """
    deadline = time.monotonic() + float(request.get("wait", 0))
    context = context_from_json(request.get("context") or {})
    steps = request.get("steps")
    exited = _exited(run_dir)
    if not exited and isinstance(steps, int):
        # Draw ahead only once the history is complete, or the charts would be drawn twice.
        while not exited and time.monotonic() < deadline:
            if reader.update() and (reader.last_step() or 0) >= steps - 1:
                render_report(reader.result(), context, cache=cache)
                break
            time.sleep(_POLL_SECONDS)
            exited = _exited(run_dir)
    while not exited and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)
        exited = _exited(run_dir)
    if not reader.update():
        return render_report(run_dir, context)
    return render_report(reader.result(), context, cache=cache)


def main(argv: list[str] | None = None) -> int:
    """The helper process: follow the log, then answer one request with the page."""
    args = sys.argv[1:] if argv is None else argv
    # The helper runs at the task's priority. Measured on two cores saturated by logging, a
    # lower priority made whole tasks no faster (the helper's CPU time is the same; more of it
    # is left for after the task's function) and made the task wait longer for its page.

    # The helper reads logs and draws, and never runs wandb: its protobuf classes are enough.
    load_records_without_sdk()
    # A short-lived process that makes no reference cycles worth collecting: the cyclic
    # collector would only walk the growing history again and again.
    gc.disable()
    reader = HistoryReader(args[0])
    cache = RenderCache()
    with contextlib.suppress(Exception):
        _warm_up()
    while True:
        request = _request(sys.stdin, _FOLLOW_SECONDS)
        if request is None:
            return 0
        if request is not False:
            break
        # A damaged log is read again, and reported, at the end.
        with contextlib.suppress(Exception):
            _follow(reader, cache)
    assert isinstance(request, dict)
    try:
        answer: dict[str, Any] = {"html": _answer(reader, args[0], request, cache)}
    except Exception as exc:
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    times = os.times()
    answer["cpu"] = round(times.user + times.system, 4)  # what following the log cost
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
    # The task waits for this process to end: skip the interpreter's teardown (nothing to clean up).
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
