"""Downloading a W&B run's (or a whole sweep's) files, summary and metrics history to local disk.

Where the data comes from, decided per run:

- a run written offline on this machine (an ``offline-run-*`` folder under a local ``wandb/``
  folder) is copied from that folder: the W&B server has none of it until ``wandb sync``;
- with W&B offline here (``mode="offline"``) nothing else can be downloaded;
- otherwise the W&B API (``wandb.Api``), looked up as ``entity/project/id`` from the run's own
  identity, and the run's local folder only when the W&B server cannot be reached.

Every failure is a :class:`~flyteplugins.wandb.WandbRunError` that says what was looked up and why it
failed; the W&B API key never appears in a message. After a task, :func:`download_after_task` turns
any failure into one warning: a download never costs a task its result.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ._codec import RunIdentity, SweepIdentity
from ._errors import WandbRunError

if TYPE_CHECKING:
    from flyte.io import Dir

__all__ = [
    "download_after_task",
    "download_after_task_sync",
    "download_sweep_after_task",
    "download_sweep_after_task_sync",
    "download_wandb_run_dir",
    "download_wandb_run_logs",
    "download_wandb_sweep_dirs",
    "download_wandb_sweep_logs",
    "scrub_secrets",
]

logger = logging.getLogger("flyteplugins.wandb")

_API_TIMEOUT_SECONDS = 30
SUMMARY_FILE = "summary.json"
HISTORY_FILE = "metrics_history.json"


def scrub_secrets(text: str) -> str:
    """Hide the W&B API key (and anything shaped like ``api_key=...``) in a message.

    Example:
        >>> scrub_secrets("request failed: api_key=abc123")
        'request failed: api_key=<hidden>'
    """
    key = os.environ.get("WANDB_API_KEY")
    if key and len(key) >= 6:
        text = text.replace(key, "<hidden>")
    return re.sub(r"(?i)(api[_-]?key['\"]?\s*[:=]\s*['\"]?)[^\s'\",;]+", r"\1<hidden>", text)


def default_download_root() -> Path:
    """Where downloads go by default: ``<temp dir>/wandb_runs``.

    Example:
        >>> default_download_root().name
        'wandb_runs'
    """
    return Path(tempfile.gettempdir()) / "wandb_runs"


# --- which run, which sweep ----------------------------------------------------------------------


def _run_identity(run_id: str | None, entity: str | None, project: str | None) -> RunIdentity:
    from ._layers import resolve
    from ._run import current_run_identity

    current = current_run_identity()
    resolved = resolve("run")
    if run_id is None:
        if current is not None:
            run_id = current.id
        elif resolved.get("id"):
            run_id = str(resolved.get("id"))
        else:
            raise WandbRunError(
                "no W&B run to download: no run_id was given and there is no active run here; "
                "pass run_id=... (and entity=/project=), "
                "or call it inside a @wandb_init task or one of its children"
            )
    # The run's own identity (where it was really started) beats configuration, which may differ.
    same = current if current is not None and current.id == run_id else None
    return RunIdentity(
        id=run_id,
        entity=entity or (same.entity if same else None) or resolved.get("entity"),
        project=project or (same.project if same else None) or resolved.get("project"),
    )


def _sweep_identity(sweep_id: str | None, entity: str | None, project: str | None) -> SweepIdentity:
    from ._layers import resolve
    from ._run import get_wandb_sweep_id

    sweep = resolve("sweep")
    parent = sweep.parent_sweep
    if sweep_id is None:
        sweep_id = get_wandb_sweep_id()
        if sweep_id is None:
            raise WandbRunError(
                "no W&B sweep to download: no sweep_id was given and there is no sweep here; "
                "pass sweep_id=... (and entity=/project=), "
                "or call it inside a @wandb_sweep task or one of its children"
            )
    same = parent if parent is not None and parent.id == sweep_id else None
    run = resolve("run")
    return SweepIdentity(
        id=sweep_id,
        entity=entity or (same.entity if same else None) or sweep.get("entity") or run.get("entity"),
        project=project or (same.project if same else None) or sweep.get("project") or run.get("project"),
    )


def _api_path(entity: str | None, project: str | None, object_id: str) -> str:
    return "/".join(part for part in (entity, project, object_id) if part)


def _runs_offline_here() -> tuple[bool, str | None]:
    from ._layers import resolve

    resolved = resolve("run")
    return resolved.get("mode") == "offline", resolved.origin("mode")


# --- target directories --------------------------------------------------------------------------


def _prepare_target(path: str | os.PathLike[str]) -> Path:
    target = Path(path).expanduser()
    try:
        target.mkdir(parents=True, exist_ok=True)
        if not os.access(target, os.W_OK | os.X_OK):
            raise PermissionError(13, "permission denied")
    except OSError as exc:
        raise WandbRunError(
            f"cannot write W&B downloads to {str(target)!r}: {exc.strerror or exc}; pass a writable path"
        ) from None
    return target


def _write_json(target: Path, name: str, data: Any) -> None:
    try:
        with open(target / name, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=str)
    except OSError as exc:
        raise WandbRunError(f"cannot write {str(target / name)!r}: {exc.strerror or exc}") from None


# --- the W&B API ---------------------------------------------------------------------------------


class _Unreachable(Exception):
    """The W&B server could not be reached (as opposed to refusing or not knowing the run)."""


def _is_not_found(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "could not find" in text or "not found" in text or "404" in text


def _api_call(what: str, path: str, call: Callable[[], Any]) -> Any:
    """Call the W&B API, turning its errors into clear ones (checked most specific first)."""
    import wandb

    from ._run import _is_unreachable

    try:
        return call()
    except wandb.errors.AuthenticationError as exc:
        raise WandbRunError(
            f"W&B authentication failed while looking up {what} {path!r}: check that WANDB_API_KEY holds a "
            f"valid key for this W&B server ({scrub_secrets(str(exc))})"
        ) from None
    except wandb.errors.UsageError as exc:
        if "api key" in str(exc).lower():
            raise WandbRunError(
                f"W&B authentication failed while looking up {what} {path!r}: no API key is configured; set "
                "WANDB_API_KEY (e.g. from a flyte.Secret) or run `wandb login`"
            ) from None
        raise WandbRunError(f"cannot look up {what} {path!r}: {scrub_secrets(str(exc))}") from None
    except Exception as exc:
        if _is_not_found(exc):
            raise WandbRunError(
                f"{what} {path!r} was not found on the W&B server (or this API key may not read it): "
                f"{scrub_secrets(str(exc))}"
            ) from None
        if _is_unreachable(exc):
            raise _Unreachable(f"{type(exc).__name__}: {scrub_secrets(str(exc))}") from None
        reason = f"{type(exc).__name__}: {scrub_secrets(str(exc))}"
        raise WandbRunError(f"cannot look up {what} {path!r} on the W&B server: {reason}") from None


def _api() -> Any:
    import wandb

    return wandb.Api(timeout=_API_TIMEOUT_SECONDS)


def _history_rows(api_run: Any) -> list[dict[str, Any]]:
    # scan_history pages through every row; history() only returns a sample of them.
    scan = getattr(api_run, "scan_history", None)
    rows = scan() if callable(scan) else api_run.history(pandas=False)
    return [dict(row) for row in rows]


def _download_from_api(identity: RunIdentity, target: Path, include_history: bool) -> None:
    path = _api_path(identity.entity, identity.project, identity.id)
    api = _api_call("W&B run", path, _api)
    api_run = _api_call("W&B run", path, lambda: api.run(path))
    files = _api_call("the files of W&B run", path, lambda: list(api_run.files()))
    for item in files:
        _download_file(item, path, target)
    summary = _api_call("the summary of W&B run", path, lambda: _plain(dict(api_run.summary)))
    _write_json(target, SUMMARY_FILE, summary)
    if include_history:
        history = _api_call("the metrics history of W&B run", path, lambda: _history_rows(api_run))
        _write_json(target, HISTORY_FILE, history)


def _download_file(item: Any, path: str, target: Path) -> None:
    name = getattr(item, "name", "?")
    _api_call(f"file {name!r} of W&B run", path, lambda: item.download(root=str(target), replace=True))


def _plain(value: Any) -> Any:
    """A JSON-ready copy of W&B summary values (nested summary objects become dicts)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --- the local copy ------------------------------------------------------------------------------


def local_wandb_roots() -> list[Path]:
    """The folders under which wandb writes run folders on this machine, most likely first.

    The ``dir`` given to ``wandb.init`` (through ``@wandb_init(dir=...)`` or ``wandb_config``), the
    folder wandb was set up with in this process, ``WANDB_DIR``, then the working directory; wandb
    puts its ``wandb/`` folder inside each.

    Example:
        >>> import os
        >>> os.getcwd() in [str(p) for p in local_wandb_roots()]
        True
    """
    from ._layers import resolve

    configured = (resolve("run").get("kwargs") or {}).get("dir")
    roots: list[Path] = []
    for root in (configured, _process_root_dir(), os.environ.get("WANDB_DIR"), os.getcwd()):
        if isinstance(root, str) and root:
            path = Path(root).expanduser().absolute()
            if path not in roots:
                roots.append(path)
    return roots


def _process_root_dir() -> str | None:
    """The folder wandb writes runs under in this process, once it is set up (``None`` before).

    wandb reads ``WANDB_DIR`` once, when it is first set up; a later change of the variable does
    not move where this process's runs go.
    """
    from ._compat import setup_root_dir

    return setup_root_dir()


def find_local_run_dirs(run_id: str) -> list[Path]:
    """The local folders of a run, oldest first: one per start of it (a resumed run, several writers).

    Example:
        >>> find_local_run_dirs("no-such-run")
        []
    """
    from ._offline import find_offline_run_dirs

    found: dict[Path, Path] = {}
    for root in local_wandb_roots():
        for run_dir in find_offline_run_dirs(root, run_id):
            found.setdefault(run_dir.resolve(), run_dir)
    # Folder names start with the start time ([offline-]run-YYYYmmdd_HHMMSS-id): it orders the starts.
    return sorted(found.values(), key=lambda p: p.name.removeprefix("offline-"))


def _is_offline_dir(run_dir: Path) -> bool:
    return run_dir.name.startswith("offline-run-")


# wandb's service finishes writing a run's log shortly after run.finish() returns (about 10 ms);
# a log without its exit record that is still being written is read again until it settles.
_SETTLE_SECONDS = 5.0
_SETTLE_POLL_SECONDS = 0.02
_QUIET_SECONDS = 2.0


def _is_live_here(run_id: str) -> bool:
    from ._run import get_wandb_run

    run = get_wandb_run()
    return run is not None and str(getattr(run, "id", "")) == run_id


def _read_settled(run_dir: Path, wait: bool) -> Any:
    """Read a run folder's log, waiting briefly for a run that has just finished to be fully written."""
    import time

    from ._offline import read_offline_run

    def being_written() -> bool:
        # A log that has not changed for a while belongs to a run that ended without an exit
        # record (its process died): waiting would not complete it.
        logs = list(run_dir.glob("run-*.wandb"))
        return any(time.time() - log.stat().st_mtime < _QUIET_SECONDS for log in logs)

    recorded = read_offline_run(run_dir)
    deadline = time.monotonic() + _SETTLE_SECONDS
    while (
        wait
        and (not recorded.finished or recorded.truncated)
        and time.monotonic() < deadline
        and being_written()
    ):
        time.sleep(_SETTLE_POLL_SECONDS)
        recorded = read_offline_run(run_dir)
    if not recorded.finished:
        logger.info("W&B run folder %s has no exit record: the run may still be running", run_dir)
    return recorded


def _copy_local(dirs: list[Path], target: Path, include_history: bool) -> None:
    """Write a run's local folders to ``target`` the way a download from W&B lays them out."""
    from ._compat import save_config_file

    # The run active here is still being written: take what is on disk now rather than wait for it.
    wait = not (dirs and _is_live_here(_run_id_of(dirs[-1])))
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    try:
        for run_dir in dirs:
            files = run_dir / "files"
            if files.is_dir():
                shutil.copytree(files, target, dirs_exist_ok=True)
            recorded = _read_settled(run_dir, wait)
            config.update(recorded.config)
            summary.update(recorded.summary)
            history.extend(recorded.history)
    except OSError as exc:
        raise WandbRunError(f"cannot copy the local W&B run folder to {str(target)!r}: {exc}") from None
    if config and not (target / "config.yaml").exists():
        # Offline runs keep their config only in the transaction log; a download from W&B has it as
        # config.yaml, so the local copy gets one in W&B's own format.
        save_config_file(str(target / "config.yaml"), config)
    _write_json(target, SUMMARY_FILE, _plain(summary))
    if include_history:
        _write_json(target, HISTORY_FILE, _plain(history))


def _run_id_of(run_dir: Path) -> str:
    log = next(iter(sorted(run_dir.glob("run-*.wandb"))), None)
    return log.name.removeprefix("run-").removesuffix(".wandb") if log is not None else ""


def _recorded_run(run_dir: Path) -> tuple[str, str | None] | None:
    """The run id and sweep id a run folder's log records (its first run record), if any."""
    from ._compat import record_field, record_kind
    from ._offline import iter_records

    for record in iter_records(run_dir):
        if record_kind(record) == "run":
            return str(record.run.run_id), str(record_field(record.run, "sweep_id", "")) or None
    return None


def _local_sweep_runs(sweep_id: str) -> list[str]:
    """The ids of the runs of a sweep that were written on this machine, oldest first."""
    from ._offline import find_offline_run_dirs

    found: list[str] = []
    seen: set[Path] = set()
    for root in local_wandb_roots():
        for run_dir in find_offline_run_dirs(root):
            if run_dir.resolve() in seen:
                continue
            seen.add(run_dir.resolve())
            try:
                recorded = _recorded_run(run_dir)
            except Exception:  # a folder without a readable log is no run of this sweep
                continue
            if recorded is not None and recorded[1] == sweep_id and recorded[0] not in found:
                found.append(recorded[0])
    return found


# --- public helpers ------------------------------------------------------------------------------


def _searched() -> str:
    return ", ".join(str(root / "wandb") for root in local_wandb_roots())


def download_wandb_run_dir(
    run_id: str | None = None,
    path: str | None = None,
    include_history: bool = True,
    *,
    entity: str | None = None,
    project: str | None = None,
) -> str:
    """Download a W&B run's files, ``summary.json`` and ``metrics_history.json`` to a local folder.

    The run is looked up as ``entity/project/run_id``: the arguments win, then the identity of the
    run active here (or the parent task's run), then the configured project and entity. Without a
    ``run_id`` it downloads the current run. The files land in ``path``, by default
    ``<temp dir>/wandb_runs/<run_id>``.

    Where the data comes from:

    - a run written offline on this machine (an ``offline-run-*`` folder under ``wandb/``) is copied
      from that folder: the W&B server has none of it until ``wandb sync``;
    - with W&B offline here (``mode="offline"``) only such local runs can be downloaded;
    - otherwise the W&B API is used, and the local folder of the run (if any) when the W&B server
      cannot be reached.

    Raises:
        WandbRunError: no run to download, authentication failed, run not found (on the server, or
            locally when offline), or the target folder is not writable (the message names it).

    Example:
        ```python
        from flyteplugins.wandb import download_wandb_run_dir

        path = download_wandb_run_dir("my-run-id", entity="team", project="demo")
        print(open(f"{path}/summary.json").read())
        ```
    """
    identity = _run_identity(run_id, entity, project)
    requested = Path(path if path is not None else default_download_root() / identity.id).expanduser()
    local = find_local_run_dirs(identity.id)
    offline, origin = _runs_offline_here()
    if offline and not local:
        raise WandbRunError(
            f"W&B run {identity.id!r} was not found in the local W&B folders ({_searched()}); "
            f"W&B runs offline here (mode 'offline' from {origin}), "
            "so only runs written on this machine can be downloaded"
        )
    existed = requested.exists()
    target = _prepare_target(requested)
    try:
        _fill(identity, local, target, include_history)
    except BaseException:
        if not existed:
            # Leave no half-written folder behind a download that failed.
            shutil.rmtree(target, ignore_errors=True)
        raise
    return str(target)


def _fill(identity: RunIdentity, local: list[Path], target: Path, include_history: bool) -> None:
    if any(_is_offline_dir(d) for d in local) or _runs_offline_here()[0]:
        _copy_local(local, target, include_history)
        return
    try:
        _download_from_api(identity, target, include_history)
    except _Unreachable as exc:
        api_path = _api_path(identity.entity, identity.project, identity.id)
        if not local:
            raise WandbRunError(f"cannot reach the W&B server to download run {api_path!r}: {exc}") from None
        logger.warning(
            "W&B server unreachable (%s): W&B run %s copied from its local folder %s instead",
            exc,
            api_path,
            local[-1],
        )
        _copy_local(local, target, include_history)


@dataclass(frozen=True, slots=True)
class _SweepRuns:
    run_ids: list[str]
    entity: str | None
    project: str | None


def _sweep_runs(identity: SweepIdentity) -> _SweepRuns:
    offline, _ = _runs_offline_here()
    if offline:
        return _SweepRuns(_local_sweep_runs(identity.id), identity.entity, identity.project)
    path = _api_path(identity.entity, identity.project, identity.id)
    try:
        api = _api_call("W&B sweep", path, _api)
        sweep = _api_call("W&B sweep", path, lambda: api.sweep(path))
        run_ids = _api_call("the runs of W&B sweep", path, lambda: [str(r.id) for r in sweep.runs])
    except _Unreachable as exc:
        local = _local_sweep_runs(identity.id)
        if not local:
            raise WandbRunError(
                f"cannot reach the W&B server to list the runs of sweep {path!r}: {exc}"
            ) from None
        logger.warning(
            "W&B server unreachable (%s): using the runs of sweep %s found on this machine", exc, path
        )
        return _SweepRuns(local, identity.entity, identity.project)
    entity = identity.entity or getattr(sweep, "entity", None) or None
    project = identity.project or getattr(sweep, "project", None) or None
    return _SweepRuns(run_ids, entity, project)


def download_wandb_sweep_dirs(
    sweep_id: str | None = None,
    base_path: str | None = None,
    include_history: bool = True,
    *,
    entity: str | None = None,
    project: str | None = None,
) -> list[str]:
    """Download every run of a W&B sweep, one folder per run, and return the folders.

    The sweep is looked up as ``entity/project/sweep_id`` (arguments, then the identity of the sweep
    the enclosing ``@wandb_sweep`` task created, then configuration). Each run lands in
    ``base_path/<run_id>`` (default ``<temp dir>/wandb_runs/<run_id>``) exactly as
    :func:`download_wandb_run_dir` writes it. With W&B offline here (or the server unreachable), the
    sweep's runs written on this machine are used. When some runs fail, one warning lists each
    failed run and why; only when every run fails is it an error.

    Example:
        ```python
        from flyteplugins.wandb import download_wandb_sweep_dirs

        for path in download_wandb_sweep_dirs("abc123", entity="team", project="demo"):
            print(path)
        ```
    """
    identity = _sweep_identity(sweep_id, entity, project)
    runs = _sweep_runs(identity)
    base = _prepare_target(base_path if base_path is not None else default_download_root())
    label = _api_path(runs.entity, runs.project, identity.id)
    if not runs.run_ids:
        logger.warning("W&B sweep %s has no runs: nothing to download", label)
        return []
    done: list[str] = []
    failed: list[tuple[str, str]] = []
    for rid in runs.run_ids:
        try:
            done.append(
                download_wandb_run_dir(
                    rid, str(base / rid), include_history, entity=runs.entity, project=runs.project
                )
            )
        except Exception as exc:
            failed.append((rid, scrub_secrets(str(exc))))
    if failed:
        listing = "; ".join(f"{rid}: {reason}" for rid, reason in failed)
        if not done:
            raise WandbRunError(
                f"none of the {len(failed)} runs of W&B sweep {label} could be downloaded: {listing}"
            )
        logger.warning(
            "%d of %d runs of W&B sweep %s could not be downloaded: %s",
            len(failed),
            len(runs.run_ids),
            label,
            listing,
        )
    return done


# --- traced variants (the Flyte UI shows the downloaded folder) -----------------------------------

_traced: dict[str, Callable[..., Any]] = {}


def _build_traced() -> dict[str, Callable[..., Any]]:
    # flyte and flyte.io are imported here, on first use, so that importing this package stays cheap.
    if _traced:
        return _traced
    import asyncio

    import flyte
    from flyte.io import Dir

    async def download_wandb_run_logs(
        run_id: str, entity: str | None = None, project: str | None = None
    ) -> Dir:
        path = await asyncio.to_thread(
            download_wandb_run_dir, run_id, None, True, entity=entity, project=project
        )
        return await Dir.from_local(path)

    def download_wandb_run_logs_sync(
        run_id: str, entity: str | None = None, project: str | None = None
    ) -> Dir:
        return Dir.from_local_sync(download_wandb_run_dir(run_id, None, True, entity=entity, project=project))

    async def download_wandb_sweep_logs(
        sweep_id: str, entity: str | None = None, project: str | None = None
    ) -> Dir:
        return await Dir.from_local(await asyncio.to_thread(_download_sweep_root, sweep_id, entity, project))

    def download_wandb_sweep_logs_sync(
        sweep_id: str, entity: str | None = None, project: str | None = None
    ) -> Dir:
        return Dir.from_local_sync(_download_sweep_root(sweep_id, entity, project))

    functions: dict[str, Callable[..., Any]] = {
        "run": download_wandb_run_logs,
        "run_sync": download_wandb_run_logs_sync,
        "sweep": download_wandb_sweep_logs,
        "sweep_sync": download_wandb_sweep_logs_sync,
    }
    for key, fn in functions.items():
        # Flyte reads a trace's inputs and output from its annotations; this module's annotations
        # are strings naming Dir, which is not importable from the module's globals.
        first = "run_id" if key.startswith("run") else "sweep_id"
        fn.__annotations__ = {first: str, "entity": Optional[str], "project": Optional[str], "return": Dir}  # noqa: UP045
        _traced[key] = flyte.trace(fn)
    return _traced


def _download_sweep_root(sweep_id: str, entity: str | None, project: str | None) -> str:
    # One folder per sweep, holding one folder per run: the Dir returned shows exactly this sweep.
    root = default_download_root() / f"sweep-{sweep_id}"
    download_wandb_sweep_dirs(sweep_id, str(root), True, entity=entity, project=project)
    return str(root)


async def download_wandb_run_logs(run_id: str, entity: str | None = None, project: str | None = None) -> Dir:
    """Download a W&B run's files, recorded as a Flyte trace; returns them as a ``flyte.io.Dir``.

    ``@wandb_init(download_logs=True)`` calls it after the task. In a task, the trace (and the folder)
    shows up in the Flyte UI; outside a task it is a plain download.

    Example:
        ```python
        @env.task
        async def fetch(run_id: str) -> flyte.io.Dir:
            return await download_wandb_run_logs(run_id, entity="team", project="demo")
        ```
    """
    result: Dir = await _build_traced()["run"](run_id, entity, project)
    return result


async def download_wandb_sweep_logs(
    sweep_id: str, entity: str | None = None, project: str | None = None
) -> Dir:
    """Download every run of a W&B sweep, recorded as a Flyte trace; returns a ``flyte.io.Dir``.

    The folder holds one sub-folder per run. ``@wandb_sweep(download_logs=True)`` calls it after the task.

    Example:
        ```python
        @env.task
        async def fetch(sweep_id: str) -> flyte.io.Dir:
            return await download_wandb_sweep_logs(sweep_id, entity="team", project="demo")
        ```
    """
    result: Dir = await _build_traced()["sweep"](sweep_id, entity, project)
    return result


# --- after a task: never raise -------------------------------------------------------------------


def _warn_failed(kind: str, label: str, exc: BaseException) -> None:
    logger.warning(
        "download_logs: could not download W&B %s %s (the task's result is kept): %s",
        kind,
        label,
        scrub_secrets(str(exc) or type(exc).__name__),
    )


async def download_after_task(identity: RunIdentity) -> None:
    """Download the task's run after the task succeeded; a failure is one warning, never an error.

    Example:
        ```python
        await download_after_task(RunIdentity("r1", "team", "demo"))
        ```
    """
    try:
        await download_wandb_run_logs(identity.id, identity.entity, identity.project)
    except Exception as exc:
        _warn_failed("run", _api_path(identity.entity, identity.project, identity.id), exc)


def download_after_task_sync(identity: RunIdentity) -> None:
    """:func:`download_after_task` for synchronous tasks.

    Example:
        ```python
        download_after_task_sync(RunIdentity("r1", "team", "demo"))
        ```
    """
    try:
        if _can_record_traces():
            _build_traced()["run_sync"](identity.id, identity.entity, identity.project)
        else:
            # A process without a Flyte controller (a worker process of an Elastic task) cannot
            # record a trace: download all the same, and say where the files are.
            path = download_wandb_run_dir(identity.id, entity=identity.entity, project=identity.project)
            logger.warning(
                "W&B run %s downloaded to %s (no Flyte trace can be recorded here)", identity.id, path
            )
    except Exception as exc:
        _warn_failed("run", _api_path(identity.entity, identity.project, identity.id), exc)


def _can_record_traces() -> bool:
    from ._compat import can_record_traces

    return can_record_traces()


async def download_sweep_after_task(identity: SweepIdentity) -> None:
    """Download every run of the task's sweep after the task succeeded; never raises.

    Example:
        ```python
        await download_sweep_after_task(SweepIdentity("s1", "team", "demo"))
        ```
    """
    try:
        await download_wandb_sweep_logs(identity.id, identity.entity, identity.project)
    except Exception as exc:
        _warn_failed("sweep", _api_path(identity.entity, identity.project, identity.id), exc)


def download_sweep_after_task_sync(identity: SweepIdentity) -> None:
    """:func:`download_sweep_after_task` for synchronous tasks.

    Example:
        ```python
        download_sweep_after_task_sync(SweepIdentity("s1", "team", "demo"))
        ```
    """
    try:
        _build_traced()["sweep_sync"](identity.id, identity.entity, identity.project)
    except Exception as exc:
        _warn_failed("sweep", _api_path(identity.entity, identity.project, identity.id), exc)
