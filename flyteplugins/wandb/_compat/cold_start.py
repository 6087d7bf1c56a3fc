"""The cold start: wandb's own ``init``, and two fixed waits taken out of a process's first run start.

Example:
    >>> from flyteplugins.wandb._compat.cold_start import real_wandb_init
    >>> callable(real_wandb_init())  # doctest: +SKIP
    True
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "prepare_wandb",
    "real_wandb_init",
]


def real_wandb_init() -> Callable[..., Any]:
    """wandb's own ``init`` function, even while ``wandb.init`` is patched or wrapped by a test suite.

    Example:
        >>> from unittest import mock
        >>> with mock.patch("wandb.init"):
        ...     isinstance(real_wandb_init(), mock.Mock)
        False
    """
    try:
        from wandb.sdk import wandb_init

        return wandb_init.init  # type: ignore[no-any-return]
    except (ImportError, AttributeError):  # pragma: no cover - a wandb without this module layout
        import wandb

        return wandb.init


_LAUNCH_INPUTS_MODULE = "wandb.sdk.launch.inputs.internal"
_prepared = False
_prepare_lock = threading.Lock()
# How often to look for the service's port file while it starts (wandb itself looks every 200 ms,
# while the service is ready after about 10 ms).
_PORT_FILE_POLL_SECONDS = 0.005


def prepare_wandb() -> None:
    """Take two fixed waits out of the first run start of a process; idempotent and thread-safe.

    - wandb polls for its service's port file every 200 ms, and the service answers in about
      10 ms: the first ``wandb.init`` of every process (every remote task) waits 190 ms for
      nothing. The poll here looks every 5 ms, still bounded by wandb's own timeout.
    - Every ``wandb.init`` applies W&B Launch inputs staged by the user's code, and to look for
      them imports ``wandb.sdk.launch`` and W&B's public API (about 230 ms and several MB the
      first time). Inputs can only have been staged through that module, so while it has not
      been imported there are none, and the look-up is skipped.

    Each change is made only when the internal it touches is there, as this wandb release has it.

    Example:
        >>> prepare_wandb()  # doctest: +SKIP
    """
    global _prepared
    if _prepared:
        return
    with _prepare_lock:
        if _prepared:
            return
        _prepared = True
        _poll_port_file_sooner()
        _skip_absent_launch_inputs()


def _poll_port_file_sooner() -> None:
    try:
        from wandb.sdk.lib.service import service_port_file
    except ImportError:  # pragma: no cover - a wandb without this module
        return
    sleep = getattr(service_port_file, "_SLEEP", None)
    if not callable(sleep) or getattr(sleep, "_flyteplugins_wandb", False):
        return

    def short_sleep(seconds: float) -> None:
        sleep(min(seconds, _PORT_FILE_POLL_SECONDS))

    short_sleep._flyteplugins_wandb = True  # type: ignore[attr-defined]
    service_port_file._SLEEP = short_sleep


def _skip_absent_launch_inputs() -> None:
    try:
        from wandb.sdk.wandb_run import Run
    except ImportError:  # pragma: no cover - a wandb without this module
        return
    original = getattr(Run, "_detect_and_apply_job_inputs", None)
    if not callable(original) or getattr(original, "_flyteplugins_wandb", False):
        return

    def detect_and_apply_job_inputs(self: Any) -> None:
        if _LAUNCH_INPUTS_MODULE in sys.modules:
            original(self)

    detect_and_apply_job_inputs._flyteplugins_wandb = True  # type: ignore[attr-defined]
    Run._detect_and_apply_job_inputs = detect_and_apply_job_inputs
