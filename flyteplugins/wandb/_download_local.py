"""Finding a run's folders on this machine and copying what wandb wrote there.

A run written offline here (or whose server cannot be reached) is downloaded from its local
folder: its files, and its summary and history read back from its transaction log.

Example:
    >>> find_local_run_dirs("no-such-run")
    []
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ._download_files import HISTORY_FILE, SUMMARY_FILE, plain_json, write_json
from ._errors import WandbRunError

__all__ = [
    "copy_local",
    "find_local_run_dirs",
    "is_offline_dir",
    "local_sweep_runs",
    "local_wandb_roots",
    "locate_run_dirs",
    "plan_prefix_match",
    "read_settled",
    "searched_roots",
]

logger = logging.getLogger("flyteplugins.wandb")


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


def find_local_run_dirs(run_id: str, prefix: bool = False) -> list[Path]:
    """The local folders of a run, oldest first: one per start of it (a resumed run, several writers).

    With ``prefix=True`` (a run id a person typed, as ``flyte wandb report`` takes it), a run id
    that no local run has exactly may be the start of one: ``fda2024e`` for a 63-character id.
    A prefix shared by several runs is refused, naming them.

    Raises:
        WandbRunError: with ``prefix=True``, the prefix starts the ids of several local runs.

    Example:
        >>> find_local_run_dirs("no-such-run")
        []
        >>> find_local_run_dirs("no-such", prefix=True)
        []
    """
    from ._offline import find_offline_run_dirs

    roots = local_wandb_roots()
    found: dict[Path, Path] = {}
    for root in roots:
        for run_dir in find_offline_run_dirs(root, run_id):
            found.setdefault(run_dir.resolve(), run_dir)
    if not found and prefix and run_id:
        found = _dirs_of_prefix(run_id, roots)
    # Folder names start with the start time ([offline-]run-YYYYmmdd_HHMMSS-id): it orders the starts.
    return sorted(found.values(), key=lambda p: p.name.removeprefix("offline-"))


def plan_prefix_match(prefix: str, run_ids: Iterable[str]) -> str | None:
    """The one run id among ``run_ids`` that starts with ``prefix``; ``None`` when none does. Pure.

    Raises:
        WandbRunError: several do; the message lists them.

    Example:
        >>> plan_prefix_match("fda2", ["fda2024e-a0", "b7"])
        'fda2024e-a0'
        >>> plan_prefix_match("x", ["fda2024e-a0"]) is None
        True
    """
    candidates = sorted({run_id for run_id in run_ids if run_id.startswith(prefix)})
    if len(candidates) > 1:
        shown = ", ".join(candidates[:_SHOWN_CANDIDATES])
        hidden = len(candidates) - _SHOWN_CANDIDATES
        more = f" and {hidden} more" if hidden > 0 else ""
        raise WandbRunError(
            f"run id prefix {prefix!r} is ambiguous: it starts the ids of {len(candidates)} local runs "
            f"({shown}{more}); give more of the id"
        )
    return candidates[0] if candidates else None


_SHOWN_CANDIDATES = 10


def _dirs_of_prefix(prefix: str, roots: Iterable[Path]) -> dict[Path, Path]:
    from ._offline import find_offline_run_dirs

    by_id: dict[str, dict[Path, Path]] = {}
    for root in roots:
        for run_dir in find_offline_run_dirs(root):
            run_id = _run_id_of(run_dir)
            if run_id:
                by_id.setdefault(run_id, {}).setdefault(run_dir.resolve(), run_dir)
    match = plan_prefix_match(prefix, by_id)
    return by_id[match] if match is not None else {}


def locate_run_dirs(target: str) -> list[Path]:
    """The run directories a person means by ``target``, oldest first (``flyte wandb report TARGET``).

    ``target`` is a run directory (or a link to one, as ``wandb/latest-run``), its ``run-<id>.wandb``
    file, or a run id looked up in the local wandb folders (the configured ``dir``, ``WANDB_DIR``,
    the working directory). A run id may be shortened to a prefix only one local run's id starts
    with. A run id can have several directories: a resumed run, or several writers of one run.

    Raises:
        WandbRunError: the prefix starts the ids of several local runs (the message names them).

    Example:
        >>> locate_run_dirs("no-such-run-id")
        []
    """
    path = Path(target).expanduser()
    if path.is_file() and path.suffix == ".wandb":
        return [path.parent]
    if path.is_dir():
        from ._offline import find_offline_run_dirs

        if path.is_symlink():
            path = path.resolve()
        found = find_offline_run_dirs(path)
        if any(p.resolve() == path.resolve() for p in found) or list(path.glob("run-*.wandb")):
            return [path]
        # A folder holding runs (``wandb/``): only when it holds exactly one is the choice clear.
        return found if len(found) == 1 else []
    return find_local_run_dirs(target, prefix=True)


def is_offline_dir(run_dir: Path) -> bool:
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
    return read_settled(run_dir, _SETTLE_SECONDS if wait else 0.0)


def read_settled(run_dir: Path, seconds: float = _SETTLE_SECONDS) -> Any:
    """Read a run folder's log; for up to ``seconds``, re-read a log still being written until it ends.

    A log without its exit record that has not changed for a while belongs to a run whose process
    died (or that is idle): it is returned as it is, without waiting.

    Example:
        >>> read_settled(Path("no-such-folder"))  # doctest: +SKIP
        Traceback (most recent call last):
        FileNotFoundError: no wandb run directory at no-such-folder
    """
    import time

    from ._history import log_has_exit
    from ._offline import read_offline_run

    def ended() -> bool:
        try:
            return log_has_exit(run_dir)
        except OSError:
            return False

    def being_written() -> bool:
        # A log that has not changed for a while belongs to a run that ended without an exit
        # record (its process died): waiting would not complete it.
        logs = list(run_dir.glob("run-*.wandb"))
        return any(time.time() - log.stat().st_mtime < _QUIET_SECONDS for log in logs)

    deadline = time.monotonic() + seconds
    # Wait on the log's last blocks only, then read it once: re-reading a whole log at every poll
    # costs as much as reading it.
    while seconds > 0 and not ended() and time.monotonic() < deadline and being_written():
        time.sleep(_SETTLE_POLL_SECONDS)
    recorded = read_offline_run(run_dir)
    if not recorded.finished:
        logger.info("W&B run folder %s has no exit record: the run may still be running", run_dir)
    return recorded


def copy_local(dirs: list[Path], target: Path, include_history: bool) -> None:
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
    write_json(target, SUMMARY_FILE, plain_json(summary))
    if include_history:
        write_json(target, HISTORY_FILE, plain_json(history))


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


def local_sweep_runs(sweep_id: str) -> list[str]:
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


def searched_roots() -> str:
    return ", ".join(str(root / "wandb") for root in local_wandb_roots())
