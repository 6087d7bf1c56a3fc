"""Reading back what a run recorded on this machine: :func:`read_wandb_run`.

No W&B server is involved: the run's own transaction log (``run-<id>.wandb`` in its folder) is
read, so this works for offline runs before ``wandb sync``, and for the local folder of an online
run.

Example:
    >>> from flyteplugins.wandb import read_wandb_run
    >>> read_wandb_run("no-such-run")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    flyteplugins.wandb._errors.WandbRunError: no local W&B run folder, run id or run id prefix ...
"""

from __future__ import annotations

import os
from pathlib import Path

from ._errors import WandbRunError
from ._offline import OfflineRun

__all__ = ["read_wandb_run"]

# How long a run that has just been finished may take to have its log fully written.
_DEFAULT_WAIT = 5.0


def read_wandb_run(run: str | os.PathLike[str], *, wait: float = _DEFAULT_WAIT) -> OfflineRun:
    """Read what a W&B run recorded on this machine: config, history, summary, notes, artifacts.

    ``run`` is the run's folder (``wandb/offline-run-...``, ``wandb/run-...``, or
    ``wandb/latest-run``), its ``run-<id>.wandb`` file, or a run id looked up in the local wandb
    folders (the ``dir`` configured for runs, ``WANDB_DIR``, the working directory). A run id may be
    shortened to a prefix that only one local run's id starts with.

    A run started several times (resumed offline, or written by several processes) has one folder
    per start; given its id, the first is read: the run's start, with its identity, notes, the
    Flyte backlink and the artifacts its owner logged. Pass a folder to read another.

    A run that has just finished may still be written by wandb's service for a moment: its log is
    read again for up to ``wait`` seconds until it holds the run's end (``exit_code``); a log that
    stopped changing (its process died) is returned as it is.

    Raises:
        WandbRunError: no such run here (the message says where it looked), or a prefix several
            local runs' ids start with (the message names them).
        OfflineRunFormatError: the folder's log is not a wandb transaction log.

    Example:
        ```python
        import flyte
        from flyteplugins.wandb import read_wandb_run

        flyte.init()
        run_id = flyte.with_runcontext(mode="local").run(train).outputs()[0]  # the task returns run.id
        run = read_wandb_run(run_id)
        print(run.notes, run.config["flyte"]["action"], run.column("loss"), run.exit_code)
        for artifact in run.artifacts:
            print(artifact.name, artifact.uris)
        ```
    """
    from ._download_local import locate_run_dirs, read_settled, searched_roots

    target = os.fspath(run)
    run_dirs = locate_run_dirs(target)
    if not run_dirs:
        raise WandbRunError(
            f"no local W&B run folder, run id or run id prefix {target!r} (looked in {searched_roots()}): "
            "give a run folder such as wandb/offline-run-20250101_120000-abc123, or the id of a run "
            "written on this machine"
        )
    recorded: OfflineRun = read_settled(Path(run_dirs[0]), max(0.0, float(wait)))
    return recorded
