"""Downloading a W&B run's (or a whole sweep's) files, summary and metrics history to local disk.

Where the data comes from, decided per run:

- a run written offline on this machine (an ``offline-run-*`` folder under a local ``wandb/``
  folder) is copied from that folder: the W&B server has none of it until ``wandb sync``;
- with W&B offline here (``mode="offline"``) nothing else can be downloaded;
- otherwise the W&B API (``wandb.Api``), looked up as ``entity/project/id`` from the run's own
  identity, and the run's local folder only when the W&B server cannot be reached.

Every failure is a :class:`~flyteplugins.wandb.WandbRunError` that says what was looked up and why it
failed; the W&B API key never appears in a message. The W&B API side is :mod:`._download_api`, the
local copy :mod:`._download_local`, the target folder :mod:`._download_files`, the Flyte traces and
after-task hooks :mod:`._download_trace`.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from ._codec import RunIdentity, SweepIdentity
from ._download_api import Unreachable, api_call, api_path, download_from_api, open_api, scrub_secrets
from ._download_files import default_download_root, prepare_target
from ._download_local import (
    copy_local,
    find_local_run_dirs,
    is_offline_dir,
    local_sweep_runs,
    searched_roots,
)
from ._errors import WandbRunError

__all__ = ["download_wandb_run_dir", "download_wandb_sweep_dirs"]

logger = logging.getLogger("flyteplugins.wandb")


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


def _runs_offline_here() -> tuple[bool, str | None]:
    from ._layers import resolve

    resolved = resolve("run")
    return resolved.get("mode") == "offline", resolved.origin("mode")


# --- public helpers ------------------------------------------------------------------------------


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
            f"W&B run {identity.id!r} was not found in the local W&B folders ({searched_roots()}); "
            f"W&B runs offline here (mode 'offline' from {origin}), "
            "so only runs written on this machine can be downloaded"
        )
    existed = requested.exists()
    target = prepare_target(requested)
    try:
        _fill(identity, local, target, include_history)
    except BaseException:
        if not existed:
            # Leave no half-written folder behind a download that failed.
            shutil.rmtree(target, ignore_errors=True)
        raise
    return str(target)


def _fill(identity: RunIdentity, local: list[Path], target: Path, include_history: bool) -> None:
    if any(is_offline_dir(d) for d in local) or _runs_offline_here()[0]:
        copy_local(local, target, include_history)
        return
    try:
        download_from_api(identity, target, include_history)
    except Unreachable as exc:
        run_path = api_path(identity.entity, identity.project, identity.id)
        if not local:
            raise WandbRunError(f"cannot reach the W&B server to download run {run_path!r}: {exc}") from None
        logger.warning(
            "W&B server unreachable (%s): W&B run %s copied from its local folder %s instead",
            exc,
            run_path,
            local[-1],
        )
        copy_local(local, target, include_history)


@dataclass(frozen=True, slots=True)
class _SweepRuns:
    run_ids: list[str]
    entity: str | None
    project: str | None


def _sweep_runs(identity: SweepIdentity) -> _SweepRuns:
    offline, _ = _runs_offline_here()
    if offline:
        return _SweepRuns(local_sweep_runs(identity.id), identity.entity, identity.project)
    path = api_path(identity.entity, identity.project, identity.id)
    try:
        api = api_call("W&B sweep", path, open_api)
        sweep = api_call("W&B sweep", path, lambda: api.sweep(path))
        run_ids = api_call("the runs of W&B sweep", path, lambda: [str(r.id) for r in sweep.runs])
    except Unreachable as exc:
        local = local_sweep_runs(identity.id)
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
    base = prepare_target(base_path if base_path is not None else default_download_root())
    label = api_path(runs.entity, runs.project, identity.id)
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
