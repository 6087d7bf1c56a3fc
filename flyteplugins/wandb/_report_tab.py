"""The "Weights & Biases" tab of a Flyte task's report (tasks declared with ``report=True``).

One entry point for the decorator: :func:`begin_tab` when the task's run has started, and the
returned :class:`ReportTab`'s ``write`` / ``write_async`` when the task has ended (its run
finished), successful or not. Writing reads the run's transaction log, renders the page
(:func:`~flyteplugins.wandb._report.render_report`), replaces the tab's content and flushes the
report: Flyte flushes a report only for tasks that succeed, and the tab matters most when a task
fails.

A report never fails a task: anything that goes wrong is logged as a warning, and the task's
result (or its own exception) is untouched.

For a run shared by several tasks of this process (``run_mode="auto"`` children writing into
their parent's run), every task records the steps it logged, and the tab of the task that owns
the run (written when the run is finished) says which task logged which steps. A task that
writes into another task's run of this process cannot show that run's charts: wandb writes the
run's log to disk in batches, and the run is still open; its tab says where the charts are. A task
writing into another task's run through a writer of its own (W&B shared mode from another process,
as on a cluster) shows the steps it logged, read from its writer's folder once that writer's log
is complete.

Example:
    >>> from flyteplugins.wandb._report_tab import shared_steps
    >>> shared_steps("no-such-run")
    ()
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._compat import next_local_step
from ._report import TAB_NAME, ReportContext, TaskSteps

if TYPE_CHECKING:
    from ._fanout_channel import ParentComparison

__all__ = ["ReportTab", "begin_tab", "has_tab", "shared_steps", "tab_wanted"]

logger = logging.getLogger("flyteplugins.wandb")

# How long to wait, after run.finish(), for wandb's service to write the log's exit record.
_FINISH_WAIT_SECONDS = 5.0
# How long the helper process that followed the log may take to answer, beyond that wait.
_FOLLOWER_SECONDS = 30.0

_steps_lock = threading.Lock()
# run id -> the steps each task of this process logged into that run, in start order.
_steps: dict[str, list[TaskSteps]] = {}
# The runs whose owner writes a tab: only tasks writing into one of them note their steps (asking
# wandb for a run's step is a round trip to its service, which every other task is spared).
_tabbed: set[str] = set()
# The runs whose owner writes a tab, until it is written (the end of the task says where it is).
_owner_tabs: set[str] = set()


def shared_steps(run_id: str) -> tuple[TaskSteps, ...]:
    """The steps each task of this process logged into ``run_id`` (empty unless shared).

    Example:
        >>> shared_steps("")
        ()
    """
    with _steps_lock:
        return tuple(_steps.get(run_id, ()))


def has_tab(run_id: str) -> bool:
    """Whether the task that owns ``run_id`` writes its report tab here (declared with ``report=True``).

    Example:
        >>> has_tab("no-such-run")
        False
    """
    with _steps_lock:
        return run_id in _owner_tabs


def _step(run: Any) -> int | None:
    """The run's next step; ``None`` where wandb cannot tell (shared mode, a finished run, a mock)."""
    try:
        step = run.step
    except Exception:
        return None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def _run_dir(run: Any) -> str | None:
    files = getattr(run, "dir", None)
    return os.path.dirname(files) if isinstance(files, str) and files else None


@dataclass
class ReportTab:
    """One task's tab, from its run's start to the end of the task."""

    task: str
    action: str
    enabled: bool
    run: Any
    run_id: str
    url: str | None
    owner: bool
    first_step: int | None
    run_dir: str | None
    follower: Any = None
    # A task writing into another task's run through a writer of its own (W&B shared mode, in a
    # process of its own, as on a cluster): that writer's folder holds this task's steps, and
    # the task's end finishes it.
    own_writer: bool = False
    # Where the children of a fan-out left their runs' digests (a parent with report=True).
    comparison: ParentComparison | None = None
    _steps_taken: tuple[TaskSteps, ...] | None = None
    _requested: bool = False

    def ended(self, failed: bool) -> None:
        """The task's function has returned or raised; its run is not finished yet.

        Notes the steps this task logged and, when a helper follows the run's log, asks it for
        the page now: it waits for the log's end while the run is being finished. Never raises.
        """
        try:
            self._steps_taken = self._record_steps()
            if self.enabled and self.owner and self.follower is not None:
                context = self._context(failed, self._steps_taken)
                # The SDK's own count: no round trip to wandb's service at the task's end.
                self.follower.request(context, _FINISH_WAIT_SECONDS, steps=next_local_step(self.run))
                self._requested = True
        except Exception as exc:
            logger.debug("the report helper could not be asked for the page: %s", exc)

    def _taken(self) -> tuple[TaskSteps, ...]:
        if self._steps_taken is None:
            self._steps_taken = self._record_steps()
        return self._steps_taken

    def _context(self, failed: bool, task_steps: tuple[TaskSteps, ...]) -> ReportContext:
        notes = ("The task failed; the page shows what its run recorded until then.",) if failed else ()
        return ReportContext(url=self.url, task=self.task, notes=notes, task_steps=task_steps)

    def _written(self) -> None:
        if self.enabled and self.owner:
            with _steps_lock:
                _owner_tabs.discard(self.run_id)

    def write(self, failed: bool) -> None:
        """Render the tab and flush the report (from synchronous tasks)."""
        task_steps = self._taken()
        self._written()
        if not self.enabled:
            return
        html_text = self._render_safely(failed, task_steps)
        if html_text is None:
            return
        try:
            import flyte.report

            flyte.report.get_tab(TAB_NAME).replace(html_text)
            flyte.report.flush()
        except Exception as exc:
            logger.warning("The W&B report tab could not be written: %s", exc)

    async def write_async(self, failed: bool) -> None:
        """Render the tab (in a worker thread) and flush the report (from async tasks)."""
        task_steps = self._taken()
        self._written()
        if not self.enabled:
            return
        html_text = await asyncio.to_thread(self._render_safely, failed, task_steps)
        if html_text is None:
            return
        try:
            import flyte.report

            flyte.report.get_tab(TAB_NAME).replace(html_text)
            await flyte.report.flush.aio()
        except Exception as exc:
            logger.warning("The W&B report tab could not be written: %s", exc)

    def _record_steps(self) -> tuple[TaskSteps, ...]:
        """Note the steps this task logged; for the run's owner, everyone's (empty unless shared)."""
        try:
            if self.owner:
                with _steps_lock:
                    _tabbed.discard(self.run_id)
                    others = _steps.pop(self.run_id, [])
                return tuple(sorted(others, key=lambda steps: (steps.first, steps.end)))
            end = _step(self.run)
            if self.first_step is not None and end is not None:
                with _steps_lock:
                    _steps.setdefault(self.run_id, []).append(
                        TaskSteps(self.task, self.action, self.first_step, end)
                    )
            return ()
        except Exception as exc:  # bookkeeping must never cost the task anything
            logger.debug("could not record the steps of a shared run: %s", exc)
            return ()

    def _render_safely(self, failed: bool, task_steps: tuple[TaskSteps, ...]) -> str | None:
        try:
            return self._with_comparison(self._render(failed, task_steps))
        except Exception as exc:
            logger.warning("The W&B report tab could not be rendered: %s", exc)
            return None
        finally:
            if self.follower is not None:
                self.follower.stop()

    def _with_comparison(self, page: str) -> str:
        """The page with the comparison of the children's runs appended, when there are some."""
        if self.comparison is None:
            return page
        try:
            section = self.comparison.section()
        except Exception as exc:
            logger.warning("The comparison of the children's W&B runs is left out: %s", exc)
            return page
        return page if section is None else page + "\n" + section

    def _render(self, failed: bool, task_steps: tuple[TaskSteps, ...]) -> str:
        from ._report import read_when_finished, render_report

        notes: list[str] = []
        if failed:
            notes.append("The task failed; the page shows what its run recorded until then.")
        context = ReportContext(url=self.url, task=self.task, notes=tuple(notes), task_steps=task_steps)
        if self.run_dir is None:
            context = ReportContext(
                url=self.url,
                task=self.task,
                notes=(*notes, "This run has no local files to read (W&B disabled, or wandb replaced)."),
            )
            return render_report(os.devnull, context)
        if not self.owner and self.own_writer:
            # The writer was finished when the task ended, but wandb's service writes the end of
            # its log just after: read the folder once the log has its exit record, or it may show
            # none of the steps this task logged.
            notes.append(
                f"This task wrote into run {self.run_id}, which another task started, through a "
                "writer of its own: the charts below show the steps this task logged, and the report "
                "of the task that started the run shows that task's."
            )
            context = ReportContext(url=self.url, task=self.task, notes=tuple(notes))
            return render_report(read_when_finished(self.run_dir, _FINISH_WAIT_SECONDS), context)
        if not self.owner:
            notes.append(
                f"This task wrote into run {self.run_id}, which another task started and is still "
                "open: the charts below show what had been written to disk when this task ended, "
                "and the report of the task that started the run shows all of it."
            )
            context = ReportContext(url=self.url, task=self.task, notes=tuple(notes))
            return render_report(self.run_dir, context)
        if self.follower is not None:
            page: str | None = None
            try:
                if not self._requested:
                    self.follower.request(context, _FINISH_WAIT_SECONDS)
                page = self.follower.answer(_FINISH_WAIT_SECONDS + _FOLLOWER_SECONDS)
            except (OSError, ValueError) as exc:  # the helper is gone: its input is closed
                logger.debug("the report helper could not be asked for the page: %s", exc)
            if page is not None:
                return page
            logger.debug("the report helper gave no page; rendering in the task's process")
        history = read_when_finished(self.run_dir, _FINISH_WAIT_SECONDS)
        return render_report(history, context)


def begin_tab(scope: Any, task: str, enabled: bool) -> ReportTab | None:
    """Start following a task's run; ``None`` when it has no run, or no tab shows its steps.

    Called once the run has started, in the task's own context, for every ``@wandb_init`` task
    (so that a shared run knows which task logged which steps); the tab is written when
    ``enabled`` (the task was declared with ``report=True``) and the task's ``report_tab``
    setting is on (:func:`tab_wanted`). Never raises.

    Example:
        >>> begin_tab(object(), "train", enabled=True) is None
        True
    """
    try:
        active = getattr(scope, "active", None)
        if active is None:
            return None
        identity = active.identity
        enabled = enabled and tab_wanted(scope)
        if not enabled and (active.owner or identity.id not in _tabbed):
            return None  # no tab of its own, and no tab that shows its steps
        import flyte

        ctx = flyte.ctx()
        action = str(getattr(getattr(ctx, "action", None), "name", "") or "")
        run_dir = _run_dir(active.run)
        follower = None
        if enabled and active.owner:
            with _steps_lock:
                _tabbed.add(identity.id)
                _owner_tabs.add(identity.id)
        if enabled and active.owner and run_dir is not None:
            from ._report_follow import Follower

            follower = Follower.start(run_dir)
        comparison = None
        if enabled and active.owner:
            from ._fanout_channel import ParentComparison

            comparison = ParentComparison.here(identity)
        return ReportTab(
            task=task,
            action=action,
            enabled=enabled,
            run=active.run,
            run_id=identity.id,
            url=_run_url(identity),
            owner=bool(active.owner),
            # Only the tasks writing into another task's run note their steps (a round trip to
            # wandb's service); the owner's are the rest.
            first_step=None if active.owner else _step(active.run),
            run_dir=run_dir,
            follower=follower,
            own_writer=_own_writer(scope),
            comparison=comparison,
        )
    except Exception as exc:
        logger.warning("The W&B report tab is left out: %s", exc)
        return None


def tab_wanted(scope: Any) -> bool:
    """Whether the task's settings keep the W&B tab: ``report_tab`` (default ``True``), resolved
    through every layer like any other setting (``@wandb_init(report_tab=False)``,
    ``wandb_config(report_tab=False)``, ``FLYTEPLUGINS_WANDB_REPORT_TAB``, the file, the parent).

    Example:
        >>> from types import SimpleNamespace
        >>> tab_wanted(SimpleNamespace(resolved={"report_tab": False})), tab_wanted(object())
        (False, True)
    """
    resolved = getattr(scope, "resolved", None)
    if resolved is None:
        return True
    return resolved.get("report_tab", True) is not False


def _own_writer(scope: Any) -> bool:
    """Whether the task started a writer of its own, which its end finishes (not a reused run)."""
    plan = getattr(scope, "plan", None)
    return getattr(plan, "action", None) == "init" and bool(getattr(plan, "finishes", False))


def _run_url(identity: Any) -> str | None:
    from ._urls import run_url

    if not (identity.host and identity.entity and identity.project and identity.id):
        return None
    return run_url(str(identity.host), identity.entity, identity.project, identity.id)
