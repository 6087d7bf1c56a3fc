"""A W&B server that cannot be reached never costs a task its run: the run continues offline.

:func:`start_run` is ``wandb.init`` for a run the plugin starts, with its fallback:

1. The server ``wandb.init`` would talk to is probed with a short TCP connection (none for an
   offline or disabled run, nor behind a proxy, where a connection says nothing about it). A
   server that refuses is found out at once: the run starts offline.
2. Otherwise the run starts online, within the task's time budget (``init_timeout``, and the
   account look-ups before it). A start that fails because the server does not answer leaves the
   run's id held by wandb's service, so the same id cannot start offline in it:

   - when no other run is alive in the process (a pod's one action, a reusable container between
     runs), the service is stopped and wandb starts a new one: the run continues offline under
     its own id;
   - otherwise (a local run's parent, a reusable container's other actions) stopping the service
     would end the other runs: the run continues offline under the id with ``-offline`` added,
     and the warning gives the ``wandb sync --id`` command that uploads it under its own id.
     Before wandb 0.28.2 the failed start wedges the whole service, so no other start can
     succeed in it: there the error is raised. Either way the service is ended when the process
     exits, after its runs were finished (it would wait on the server, before 0.28.2 for ever).

3. The verdict on a server is kept for the process: a refusal or an answer for a short while
   (tasks of one workflow start within seconds of each other), a server found silent for longer,
   so that the other runs of a fan-out do not each wait for it.

Every fallback says so once, in one warning naming the folder and the command that uploads it.

Example:
    >>> from flyteplugins.wandb._signals import Budget
    >>> run = start_run({"mode": "offline", "project": "p"}, Budget(30.0))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from . import _active, _compat
from ._errors import is_unreachable
from ._signals import Budget, nothing_at_exit

__all__ = ["bound_timeouts", "start_run"]

logger = logging.getLogger("flyteplugins.wandb")

# How long a connection attempt may take before the server counts as unreachable, how long a
# verdict is reused (many tasks of one workflow start runs within seconds of each other), and how
# long a server that accepted and never answered stays known as silent.
_PROBE_TIMEOUT = 3.0
_PROBE_TTL = 30.0
_SILENT_TTL = 300.0
_probe_lock = threading.Lock()
# (host, port) -> (until when the verdict holds, why the server is unreachable or None)
_probe_cache: dict[tuple[str, int], tuple[float, str | None]] = {}
# What is added to the id of a run that continues offline while its own id is held.
OFFLINE_SUFFIX = "-offline"


def start_run(kwargs: dict[str, Any], budget: Budget) -> Any:
    """``wandb.init(**kwargs)``, or its offline fallback when the server cannot be reached.

    ``kwargs`` are complete ``wandb.init`` arguments (settings merged); the online start is
    bounded by ``budget``. Errors other than an unreachable server are raised as they are.
    """
    import wandb

    target = _server_to_probe(kwargs)
    if target is None:
        return wandb.init(**kwargs)
    shown, host, port = target
    bound_timeouts(kwargs, budget)
    reason = _probe(host, port, budget.remaining()) if port is not None else None
    if reason is not None:
        nothing_at_exit()
        return _init_offline(kwargs, shown, reason)
    try:
        return wandb.init(**kwargs)
    except Exception as exc:
        if not is_unreachable(exc):
            raise
        nothing_at_exit()  # wandb's exit-time telemetry would only wait on that server
        why = type(exc).__name__
        if port is not None:
            _remember_silent(host, port, f"{why} from an earlier start: the server did not answer")
        if _free_failed_run_ids(budget.remaining()):
            return _init_offline(kwargs, shown, why)
        # The failed start stays in the service, waiting on the server: it must not hold up the
        # process's exit.
        _compat.end_service_at_exit()
        if _compat.failed_start_wedges_service():
            raise  # before wandb 0.28.2 no other start can succeed in the service
        return _init_offline(kwargs, shown, why, held=True)


def bound_timeouts(kwargs: dict[str, Any], budget: Budget) -> None:
    """Cap wandb's own ``init_timeout`` / ``finish_timeout`` by the budget (see ``Budget``)."""
    import wandb

    settings = kwargs.get("settings") or wandb.Settings()
    explicit = _compat.settings_fields_set(settings) or frozenset()
    timeouts = budget.wandb_timeouts(
        getattr(settings, "init_timeout", None) if "init_timeout" in explicit else None,
        getattr(settings, "finish_timeout", None) if "finish_timeout" in explicit else None,
    )
    for name, value in timeouts.items():
        if _compat.wandb_supports_setting(name):  # finish_timeout is not in every wandb
            setattr(settings, name, value)
    # wandb's account look-ups come before init_timeout starts: bounded apart (see Budget).
    _compat.bound_account_lookups(budget.lookup_timeout())
    kwargs["settings"] = settings


def _server_to_probe(kwargs: Mapping[str, Any]) -> tuple[str, str, int | None] | None:
    """``(shown url, host, port)`` of the server ``wandb.init(**kwargs)`` would contact.

    ``None`` when it contacts none (offline, disabled); port ``None`` when a proxy stands in
    between (a direct connection then says nothing about the server).
    """
    import wandb

    settings: Any = kwargs.get("settings")
    explicit = _compat.settings_fields_set(settings) or frozenset()
    process = wandb.setup().settings
    mode = kwargs.get("mode") or (settings.mode if "mode" in explicit else None) or process.mode
    if mode in ("offline", "dryrun", "disabled"):
        return None
    base_url = str(settings.base_url if "base_url" in explicit else process.base_url)
    url = urllib.parse.urlsplit(base_url)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    # Only scheme, host and port are ever shown: a base URL may carry credentials.
    shown = f"{url.scheme}://{host}:{port}"
    proxied = bool(getattr(process, "https_proxy", None) or getattr(process, "http_proxy", None)) or (
        url.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(host)
    )
    if url.scheme not in ("http", "https") or not host or proxied:
        return shown, host, None
    return shown, host, port


def _probe(host: str, port: int, timeout: float = _PROBE_TIMEOUT) -> str | None:
    """Why ``host:port`` cannot be reached (a refused or timed-out connection, or a silence found
    earlier), or ``None`` when a connection succeeds."""
    now = time.monotonic()
    with _probe_lock:
        cached = _probe_cache.get((host, port))
    if cached is not None and now < cached[0]:
        return cached[1]
    try:
        socket.create_connection((host, port), timeout=max(0.1, min(timeout, _PROBE_TIMEOUT))).close()
        reason = None
    except OSError as exc:
        reason = f"{type(exc).__name__}: {exc}"
    with _probe_lock:
        _probe_cache[(host, port)] = (now + _PROBE_TTL, reason)
    return reason


def _remember_silent(host: str, port: int, reason: str) -> None:
    with _probe_lock:
        _probe_cache[(host, port)] = (time.monotonic() + _SILENT_TTL, reason)


def _offline_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    import wandb

    offline = dict(kwargs, mode="offline")
    settings_obj = offline.get("settings")
    if settings_obj is not None and getattr(settings_obj, "mode", None) == "shared":
        offline["settings"] = wandb.Settings(**{**_compat.explicit_settings(settings_obj), "mode": "offline"})
    return offline


def _init_offline(kwargs: Mapping[str, Any], server: str, reason: str, held: bool = False) -> Any:
    """The run, started offline; ``held``: its id is held by a failed start in this process."""
    import wandb

    offline = _offline_kwargs(kwargs)
    own_id = offline.get("id")
    if held and own_id:
        offline["id"] = f"{own_id}{OFFLINE_SUFFIX}"
    run = wandb.init(**offline)
    run_dir = os.path.dirname(run.dir)
    if held and own_id:
        logger.warning(
            "W&B server %s unreachable (%s): run %s continues offline as %s in %s (its id is held by "
            "the failed start while other runs of this process are alive); upload it under its own "
            "id later with: wandb sync --id %s %s",
            server,
            reason,
            own_id,
            run.id,
            run_dir,
            own_id,
            run_dir,
        )
    else:
        logger.warning(
            "W&B server %s unreachable (%s): run %s continues offline in %s; upload it later with: "
            "wandb sync %s",
            server,
            reason,
            run.id,
            run_dir,
            run_dir,
        )
    return run


def _free_failed_run_ids(seconds: float) -> bool:
    """Whether the run id of a failed online start could be freed for an offline start.

    wandb's service keeps the id of an online start that failed, and only a new service frees
    it. The service is restarted only when no run is alive in this process (whatever actions it
    runs: a pod's one, a reusable container's several): restarting it would end the other runs.
    """
    try:
        if _active.any_live() or _compat.most_recent_active_run() is not None:
            return False
        return _compat.restart_service_after_failed_init(seconds)
    except Exception:  # pragma: no cover - a wandb without these helpers
        logger.debug("could not restart the wandb service", exc_info=True)
        return False
