"""The channel that brings a fan-out's run digests from the children to the parent's report tab.

On a cluster every task runs in a container of its own: the parent cannot read its children's
run folders, and offline (the default) there is no W&B server to ask. What every action of a
Flyte run can reach is the run's storage (``flyte.ctx().run_base_dir``: an object-store prefix on
a cluster, a local folder in a local run). So:

1. A parent task declared with ``report=True`` whose ``@wandb_init`` run it owns announces, in
   ``custom_context`` (key :data:`CONTEXT_KEY`), that it collects its children's digests.
2. A child that starts a run of its own under that parent's run writes a start marker
   ``{run_base_dir}/wandb-digests/{parent run id}/{child action}.started`` when its run has
   started, and its :class:`~flyteplugins.wandb._digest.RunDigest` as ``{child action}.json``
   next to it when its run has ended (success or failure), once the run's log is complete.
3. The parent, when its tab is written, reads that folder: a digest per child, and a marker
   without a digest is a child that stopped before its run ended (a "missing" row).

Every write and read is bounded in time (:data:`WRITE_SECONDS`, :data:`COLLECT_SECONDS`) and
never fails a task: what goes wrong is a warning. Nothing secret travels: config, summary and
input entries whose names look like credentials are dropped from a digest before it is written.

Example:
    >>> digests_folder("/tmp/flyte/run-1", "run-1-a0")
    '/tmp/flyte/run-1/wandb-digests/run-1-a0'
    >>> entry_name("a3"), entry_name("../x y")
    ('a3', '.._x_y')
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import Any

from ._digest import DigestFormatError, RunDigest
from ._errors import CREDENTIAL_NAME

__all__ = [
    "COLLECT_SECONDS",
    "CONTEXT_KEY",
    "DIGESTS_DIR",
    "WRITE_SECONDS",
    "ChildChannel",
    "Collected",
    "ParentComparison",
    "StartMarker",
    "announce_digests",
    "begin_child",
    "collect_digests",
    "digests_folder",
    "entry_name",
    "entry_stem",
    "note_sweep_metric",
    "scrub_digest",
    "sweep_objective",
]

logger = logging.getLogger("flyteplugins.wandb")

#: The ``custom_context`` key by which a parent announces that it collects its children's digests:
#: its value is the parent's W&B run id.
CONTEXT_KEY = "_wandb_run_digests"
#: The folder under the Flyte run's storage that holds the digests, one subfolder per parent run.
DIGESTS_DIR = "wandb-digests"
#: Seconds a child may spend writing its marker or digest, and the parent reading them.
WRITE_SECONDS = 10.0
COLLECT_SECONDS = 10.0
#: Seconds a child waits, after its run finished, for wandb to write the log's exit record.
LOG_WAIT_SECONDS = 5.0

_STARTED = ".started"
_DIGEST = ".json"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def entry_name(text: str) -> str:
    """A file-name-safe form of a run id or action name (other characters become ``_``).

    Example:
        >>> entry_name("r1-a0")
        'r1-a0'
    """
    return _UNSAFE.sub("_", text)[:200] or "_"


def entry_stem(action: str, run_id: str) -> str:
    """The file name (without suffix) of a child's marker and digest: its action name, plus a
    short hash of its run id when the run is not the action's own ``{run_name}-{action}`` (the
    ranks of a distributed child each start a run of their own in one action).

    Example:
        >>> entry_stem("a3", "r1-a3"), entry_stem("a3", "r1-a3-rank-1")
        ('a3', 'a3.c9a90b9bfd')
    """
    if not run_id or run_id.endswith(f"-{action}"):
        return entry_name(action)
    import hashlib

    return f"{entry_name(action)[:180]}.{hashlib.sha256(run_id.encode()).hexdigest()[:10]}"


def digests_folder(run_base_dir: str, parent_run_id: str) -> str:
    """Where the digests of the children of ``parent_run_id`` live in the Flyte run's storage.

    Example:
        >>> digests_folder("s3://bucket/meta/r1/", "r1-a0")
        's3://bucket/meta/r1/wandb-digests/r1-a0'
    """
    return f"{run_base_dir.rstrip('/')}/{DIGESTS_DIR}/{entry_name(parent_run_id)}"


def _scrub(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _scrub(v) for k, v in value.items() if not CREDENTIAL_NAME.search(str(k))}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def scrub_digest(digest: RunDigest) -> RunDigest:
    """``digest`` without config, summary or input entries whose names look like credentials.

    Example:
        >>> d = scrub_digest(RunDigest("r1", config={"lr": 0.1, "api_key": "k", "db": {"password": "p"}}))
        >>> d.config
        {'lr': 0.1, 'db': {}}
    """
    return replace(
        digest,
        config=_scrub(dict(digest.config)),
        summary=_scrub(dict(digest.summary)),
        inputs=_scrub(dict(digest.inputs)),
        series=tuple(s for s in digest.series if not CREDENTIAL_NAME.search(s.key)),
    )


@dataclass(frozen=True)
class StartMarker:
    """What a child writes when its run has started: who it is, and when (seconds since the epoch;
    the parent lists its children in the order they started).

    Example:
        >>> StartMarker.from_json(StartMarker("env.train", "a1", "r-a1").to_json())
        StartMarker(task='env.train', action='a1', run_id='r-a1', attempt=0, started=0.0)
    """

    task: str | None
    action: str
    run_id: str
    attempt: int = 0
    started: float = 0.0

    def to_json(self) -> str:
        """The marker as JSON text."""
        return json.dumps(
            {
                "task": self.task,
                "action": self.action,
                "run_id": self.run_id,
                "attempt": self.attempt,
                "started": self.started,
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> StartMarker:
        """Read a marker; raises ``ValueError`` when it is not one."""
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("action"), str):
            raise ValueError("not a start marker")
        task = data.get("task")
        try:
            return cls(
                None if task is None else str(task),
                data["action"],
                str(data.get("run_id") or ""),
                int(data.get("attempt") or 0),
                float(data.get("started") or 0.0),
            )
        except (TypeError, OverflowError) as exc:
            raise ValueError(f"not a start marker: {exc}") from None


def _filesystem(path: str) -> Any:
    import flyte.storage

    return flyte.storage.get_underlying_filesystem(path=path)


def _write(path: str, text: str) -> None:
    fs = _filesystem(path)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(path, text.encode())


def _bounded(fn: Any, seconds: float, what: str) -> bool:
    from ._deadline import call_within

    done, error = call_within(fn, seconds, "fanout-digest")
    if error is not None:
        logger.warning("W&B fan-out: %s failed (the task is not affected): %s", what, error)
        return False
    if not done:
        logger.warning("W&B fan-out: %s took more than %.0f s; left out", what, seconds)
        return False
    return True


@dataclass
class ChildChannel:
    """A fan-out child's side of the channel: its start marker and, at its end, its digest.

    Example:
        >>> marker = StartMarker("env.t", "a1", "r-a1")
        >>> channel = ChildChannel("/tmp/base/wandb-digests/p", marker, None, None)
        >>> channel.digest_path
        '/tmp/base/wandb-digests/p/a1.json'
    """

    folder: str
    marker: StartMarker
    run_dir: str | None
    url: str | None

    stem: str = ""

    def __post_init__(self) -> None:
        if not self.stem:
            self.stem = entry_stem(self.marker.action, self.marker.run_id)

    @property
    def marker_path(self) -> str:
        """Where the start marker goes."""
        return f"{self.folder}/{self.stem}{_STARTED}"

    @property
    def digest_path(self) -> str:
        """Where the digest goes."""
        return f"{self.folder}/{self.stem}{_DIGEST}"

    def started(self) -> None:
        """Write the start marker (bounded; never raises)."""
        text = self.marker.to_json()
        _bounded(lambda: _write(self.marker_path, text), WRITE_SECONDS, "writing the run's start marker")

    def finished(self) -> None:
        """The run has finished: digest its log and write the digest (bounded; never raises)."""
        if self.run_dir is None:
            return
        run_dir = self.run_dir

        def write() -> None:
            from ._digest import digest_history
            from ._report import read_when_finished

            digest = digest_history(read_when_finished(run_dir, LOG_WAIT_SECONDS), url=self.url)
            if digest.task is None or digest.action is None:
                digest = replace(
                    digest, task=digest.task or self.marker.task, action=digest.action or self.marker.action
                )
            _write(self.digest_path, scrub_digest(digest).to_json())

        _bounded(write, WRITE_SECONDS + LOG_WAIT_SECONDS, "writing the run's digest for the parent's report")


def _run_base_dir() -> str | None:
    import flyte

    ctx = flyte.ctx()
    base = getattr(ctx, "run_base_dir", None) if ctx else None
    return str(base) if base else None


def begin_child(scope: Any, task_name: str | None) -> ChildChannel | None:
    """The channel of a task whose own run is a fan-out child of a collecting parent, with its start
    marker written; ``None`` otherwise (no parent run, the parent collects nothing, the task writes
    into its parent's run). Never raises.

    Example:
        >>> begin_child(object(), "env.train") is None
        True
    """
    try:
        plan = getattr(scope, "plan", None)
        active = getattr(scope, "active", None)
        parent_run = getattr(plan, "parent_run", None)
        if active is None or not parent_run or not active.owner or getattr(active.run, "disabled", False):
            return None
        import flyte

        ctx = flyte.ctx()
        if not ctx or ctx.custom_context.get(CONTEXT_KEY) != parent_run:
            return None  # the parent draws no comparison: nothing to write
        base = _run_base_dir()
        if base is None:
            return None
        from ._urls import run_url

        identity = active.identity
        url = None
        if identity.host and identity.entity and identity.project:
            url = run_url(str(identity.host), identity.entity, identity.project, identity.id)
        files = getattr(active.run, "dir", None)
        run_dir = files.rsplit("/", 1)[0] if isinstance(files, str) and files else None
        marker = StartMarker(
            task_name, ctx.action.name, identity.id, int(ctx.attempt_number or 0), time.time()
        )
        channel = ChildChannel(digests_folder(base, parent_run), marker, run_dir, url)
        channel.started()
        return channel
    except Exception as exc:
        logger.warning("W&B fan-out: this run is left out of the parent's comparison: %s", exc)
        return None


@contextmanager
def announce_digests(scope: Any, report: bool) -> Iterator[None]:
    """While a parent's body runs, tell its children that it collects their digests.

    Only a task declared with ``report=True`` that owns its run announces (its tab draws the
    comparison); its children then write their digests under its run id.

    Example:
        >>> with announce_digests(object(), report=True):
        ...     pass
    """
    active = getattr(scope, "active", None)
    if not report or active is None or not active.owner:
        yield
        return
    import flyte

    if not flyte.ctx():
        yield
        return
    with ExitStack() as stack:
        try:
            stack.enter_context(flyte.custom_context(**{CONTEXT_KEY: str(active.identity.id)}))
        except Exception as exc:  # the comparison is a nicety: never a reason to fail the task
            logger.warning("W&B fan-out: the children's runs will not be compared: %s", exc)
        yield


@dataclass(frozen=True)
class Collected:
    """What a parent found of its children: their digests, and the children without one.

    ``missing`` holds ``(marker, reason)`` for a child that started a run but left no readable
    digest; ``notes`` what could not be read at all.

    Example:
        >>> Collected((), (), ()).digests
        ()
    """

    digests: tuple[RunDigest, ...]
    missing: tuple[tuple[StartMarker, str], ...]
    notes: tuple[str, ...]


_NO_DIGEST = "no digest: the task failed or was stopped before its run ended"


def _collect(folder: str) -> Collected:
    fs = _filesystem(folder)
    try:
        names = sorted(str(p) for p in fs.ls(folder, detail=False))
    except FileNotFoundError:
        return Collected((), (), ())
    markers = [p for p in names if p.endswith(_STARTED)]
    digest_paths = [p for p in names if p.endswith(_DIGEST)]
    contents: Mapping[str, Any] = fs.cat(markers + digest_paths, on_error="return") if names else {}
    digests: dict[str, RunDigest] = {}
    broken: dict[str, str] = {}
    for path in digest_paths:
        stem = path.rsplit("/", 1)[-1][: -len(_DIGEST)]
        data = contents.get(path)
        try:
            if not isinstance(data, (bytes, str)):
                raise DigestFormatError(f"not readable: {data!r}")
            digests[stem] = RunDigest.from_json(data)
        except DigestFormatError as exc:
            broken[stem] = f"its digest could not be read ({exc})"
    started: dict[str, StartMarker] = {}
    for path in markers:
        stem = path.rsplit("/", 1)[-1][: -len(_STARTED)]
        data = contents.get(path)
        try:
            if not isinstance(data, (bytes, str)):
                raise ValueError(repr(data))
            started[stem] = StartMarker.from_json(data)
        except ValueError:
            started[stem] = StartMarker(None, stem, "")

    def order(stem: str) -> tuple[float, str]:
        marker = started.get(stem)
        return (marker.started if marker is not None else float("inf"), stem)

    missing: list[tuple[StartMarker, str]] = []
    for stem in sorted((set(started) | set(broken)) - set(digests), key=order):
        marker = started.get(stem) or StartMarker(None, stem, "")
        missing.append((marker, broken.get(stem, _NO_DIGEST)))
    ordered = sorted(digests, key=order)
    return Collected(tuple(digests[stem] for stem in ordered), tuple(missing), ())


def collect_digests(run_base_dir: str, parent_run_id: str, seconds: float = COLLECT_SECONDS) -> Collected:
    """The digests and markers the children of ``parent_run_id`` wrote; bounded, never raises.

    Example:
        >>> collect_digests("/nonexistent", "r-a0").digests
        ()
    """
    result: list[Collected] = []
    folder = digests_folder(run_base_dir, parent_run_id)
    if not _bounded(lambda: result.append(_collect(folder)), seconds, "reading the children's run digests"):
        return Collected((), (), (f"The children's run digests could not be read from {folder}.",))
    return result[0]


# --- the parent's side: the comparison in its report tab ---------------------------------------

_sweep_lock = threading.Lock()
# (Flyte run name, action name) -> the sweep metric of a @wandb_sweep task running here.
_sweep_metrics: dict[tuple[str, str], Any] = {}
_MAX_SWEEP_METRICS = 256


def _action_key() -> tuple[str, str] | None:
    import flyte

    ctx = flyte.ctx()
    if not ctx:
        return None
    return (str(ctx.action.run_name or ""), str(ctx.action.name))


def note_sweep_metric(metric: Any) -> None:
    """A ``@wandb_sweep`` task notes its sweep's ``metric``: the objective of its comparison.

    Example:
        >>> note_sweep_metric({"name": "val/loss", "goal": "minimize"})  # outside a task: ignored
    """
    key = _action_key()
    if key is None or metric is None:
        return
    with _sweep_lock:
        _sweep_metrics.pop(key, None)
        _sweep_metrics[key] = metric
        # Read only by a tab of the same task; a task without one leaves its entry behind: keep
        # the newest few (a reusable container runs many tasks in one process).
        while len(_sweep_metrics) > _MAX_SWEEP_METRICS:
            del _sweep_metrics[next(iter(_sweep_metrics))]


def sweep_objective(key: tuple[str, str] | None) -> Any:
    """The objective a ``@wandb_sweep`` task noted for action ``key`` (forgotten once read), or
    ``None``.

    Example:
        >>> sweep_objective(("r", "a0")) is None
        True
    """
    if key is None:
        return None
    with _sweep_lock:
        metric = _sweep_metrics.pop(key, None)
    if metric is None:
        return None
    from ._compare import Objective

    return Objective.from_sweep_metric(metric)


@dataclass(frozen=True)
class ParentComparison:
    """Where a parent task's tab finds its children's digests, and its objective's key.

    Example:
        >>> ParentComparison("/tmp/base", "r-a0", ("r", "a0")).run_id
        'r-a0'
    """

    run_base_dir: str
    run_id: str
    action_key: tuple[str, str] | None = None
    group_page: str | None = None

    @classmethod
    def here(cls, identity: Any) -> ParentComparison | None:
        """For the task running here, whose run is ``identity`` (``None`` outside a task, or
        without run storage). Never raises."""
        try:
            return cls._here(identity)
        except Exception as exc:
            logger.warning("W&B fan-out: the children's runs will not be compared: %s", exc)
            return None

    @classmethod
    def _here(cls, identity: Any) -> ParentComparison | None:
        base = _run_base_dir()
        if not base:
            return None
        page = None
        if identity.host and identity.entity and identity.project:
            from ._urls import group_url

            page = group_url(str(identity.host), identity.entity, identity.project, str(identity.id))
        return cls(base, str(identity.id), _action_key(), page)

    def _group_note(self, digests: tuple[RunDigest, ...]) -> str:
        from html import escape

        from ._report import safe_url

        url = safe_url(self.group_page)
        if url is None or not any(d.group == self.run_id for d in digests):
            return ""
        return (
            f'<p class="fw-muted">In W&amp;B these runs are the group <a href="{escape(url)}" '
            f'rel="noopener noreferrer">{escape(self.run_id)}</a> (once synced, for offline runs).</p>'
        )

    def section(self) -> str | None:
        """The comparison section of the children's runs; ``None`` when no child wrote to the channel.

        Bounded (:data:`COLLECT_SECONDS` to read); raises nothing the tab should not catch.
        """
        collected = collect_digests(self.run_base_dir, self.run_id)
        objective = sweep_objective(self.action_key)
        if not collected.digests and not collected.missing and not collected.notes:
            return None
        from ._compare import MissingRun, plan_comparison
        from ._report_compare import render_comparison

        missing = [MissingRun(m.task, m.action, reason) for m, reason in collected.missing]
        comparison = plan_comparison(collected.digests, missing, objective)
        from ._report import notes_list

        section = render_comparison(comparison, title="Runs of this task's children")
        extra = self._group_note(collected.digests) + notes_list(collected.notes)
        head, closing, tail = section.rpartition("</section>")
        return head + extra + closing + tail if closing else section + extra
