"""wandb's process-wide state: its setup singleton, ``wandb.run`` and the global run, its service.

wandb keeps one setup object, one global run and one service per process; the plugin reads and
adjusts them (private wandb API) only through these functions.

Example:
    >>> from flyteplugins.wandb._compat.wandb_state import run_is_finished
    >>> run_is_finished(object())
    False
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from .._deadline import call_within
from . import versions

__all__ = [
    "bound_account_lookups",
    "end_service_at_exit",
    "failed_start_wedges_service",
    "follow_global_run",
    "most_recent_active_run",
    "next_local_step",
    "process_settings",
    "restart_service_after_failed_init",
    "run_is_finished",
    "service_process",
    "set_global_run",
    "setup_root_dir",
    "stored_global_run",
    "teardown_wandb",
    "unset_global_run",
    "wandb_is_set_up",
]


def _setup_module() -> Any | None:
    return sys.modules.get("wandb.sdk.wandb_setup")


def wandb_is_set_up() -> bool:
    """Whether wandb has set itself up in this process (without setting it up).

    Example:
        >>> isinstance(wandb_is_set_up(), bool)
        True
    """
    # private wandb API: wandb_setup._singleton (and its _pid, invalid in a forked child)
    singleton = getattr(_setup_module(), "_singleton", None)
    return singleton is not None and getattr(singleton, "_pid", os.getpid()) == os.getpid()


def setup_root_dir() -> str | None:
    """The folder wandb writes this process's runs under, once it is set up (``None`` before).

    Example:
        >>> root = setup_root_dir()
        >>> root is None or isinstance(root, str)
        True
    """
    if not wandb_is_set_up():
        return None
    try:
        root = _setup_module()._singleton.settings.root_dir  # type: ignore[union-attr]
    except Exception:  # a wandb whose setup object looks different: callers fall back
        return None
    return root if isinstance(root, str) else None


def run_is_finished(run: Any) -> bool:
    """Whether ``run.finish()`` has been called on a wandb run.

    Example:
        >>> run_is_finished(object())
        False
    """
    # private wandb API: Run._is_finished
    return bool(getattr(run, "_is_finished", False))


def next_local_step(run: Any) -> int | None:
    """The step the SDK will give the run's next ``log()``, known without asking wandb's service.

    In newer wandb, ``run.step`` asks the service (a round trip that waits up to 30 s when the
    service does not answer); the SDK counts the same steps itself, as ``Run._local_step``
    (``Run._step`` in older releases, where ``run.step`` returned it). ``None`` where neither is
    there, or for a replaced ``wandb.init`` (a mock).

    Example:
        >>> next_local_step(object()) is None
        True
    """
    # private wandb API: Run._local_step (newer), Run._step (older)
    for name in ("_local_step", "_step"):
        step = getattr(run, name, None)
        if isinstance(step, int) and not isinstance(step, bool):
            return step
    return None


def process_settings() -> Any:
    """The process-wide ``wandb.Settings`` (environment, settings files), without starting a service.

    Example:
        >>> process_settings().mode in ("online", "offline", "dryrun", "disabled", "shared")
        True
    """
    # private wandb API: wandb_setup.singleton() (creates the singleton from 0.20 on, returns None
    # before it exists in older releases) and _setup(start_service=False).
    from wandb.sdk import wandb_setup

    singleton = wandb_setup.singleton()
    if singleton is None:
        singleton = wandb_setup._setup(start_service=False)
    return singleton.settings


def most_recent_active_run() -> Any | None:
    """The run wandb itself considers active in this process, if any.

    Example:
        >>> most_recent_active_run() is None
        True
    """
    if not wandb_is_set_up():
        return None
    # private wandb API: the setup singleton's most_recent_active_run
    singleton = _setup_module()._singleton  # type: ignore[union-attr]
    return getattr(singleton, "most_recent_active_run", None)


def teardown_wandb() -> None:
    """Stop wandb's service and forget its process-wide state (``wandb.teardown``).

    Example:
        >>> teardown_wandb()  # doctest: +SKIP
    """
    import wandb

    wandb.teardown()


def failed_start_wedges_service() -> bool:
    """Whether a failed online ``wandb.init`` leaves this wandb's service unable to serve any
    other start, and unable to stop when asked (releases before 0.28.2).

    Example:
        >>> failed_start_wedges_service() in (True, False)
        True
    """
    return not versions.wandb_at_least(versions.TEARDOWN_AFTER_FAILED_INIT)


def service_process() -> subprocess.Popen[bytes] | None:
    """The wandb service process (wandb-core) this process started and wandb still holds, if any.

    Example:
        >>> service_process() is None  # wandb not set up here
        True
    """
    if not wandb_is_set_up():
        return None
    # private wandb API: the setup singleton's _connection (ServiceConnection), its _proc
    # (ServiceProcess) and that one's _process (the Popen of wandb-core)
    singleton = _setup_module()._singleton  # type: ignore[union-attr]
    connection = getattr(singleton, "_connection", None)
    process = getattr(getattr(connection, "_proc", None), "_process", None)
    return process if isinstance(process, subprocess.Popen) else None


# How long a service of a wandb before 0.28.2 gets to stop by itself after a failed start before
# it is ended: it never does, but a teardown request is sent first, so that it stops cleanly if
# it can.
_STUCK_SERVICE_GRACE_S = 1.0


_at_exit_lock = threading.Lock()
_at_exit = False


def end_service_at_exit() -> None:
    """At the process's exit, ask wandb's service to stop and end it after a moment.

    For a process in which an online start failed and its service could not be restarted (other
    runs were alive): the failed start is still in the service, which waits on the server that
    did not answer. Before wandb 0.28.2 it never stops, and wandb's own exit hook waits for it for
    ever; later releases stop it only once the server gives up. Registered after wandb's hook,
    this one runs first: every run has been finished by then, and only the failed start is lost.

    Example:
        >>> end_service_at_exit()  # doctest: +SKIP
    """
    global _at_exit
    with _at_exit_lock:
        if _at_exit:
            return
        _at_exit = True
    atexit.register(_end_service)


def _end_service() -> None:
    service = service_process()
    if service is not None and service.poll() is None:
        _ask_then_end(service, _STUCK_SERVICE_GRACE_S)


def _ask_then_end(service: subprocess.Popen[bytes], grace: float) -> bool:
    """Ask wandb's service to stop (``wandb.teardown``); end its process if it has not within
    ``grace`` seconds (the teardown then returns). Whether the service is gone."""
    done, _ = call_within(teardown_wandb, grace, "teardown")
    if done:
        return True
    service.kill()
    try:
        service.wait(timeout=5.0)
    except subprocess.TimeoutExpired:  # pragma: no cover - a kill is not refused
        return False
    return True


def restart_service_after_failed_init(seconds: float | None = None) -> bool:
    """Stop wandb's service after an online ``wandb.init`` failed, to free the run id it keeps.

    Call it only while no run is alive in the process: the service is every run's. wandb forgets
    the stopped service at once and starts a new one at the next ``wandb.init``. ``seconds``
    bounds the wait (``None``: wait until it stopped). Returns whether the id was freed.

    From wandb 0.28.2 on the service stops when asked (it may take seconds while it still waits
    on a stalled server: a new one serves the offline start meanwhile). Before, it never stops
    after such a failure, and ``wandb.teardown`` waits for it for ever, at the process's exit
    too: it is asked to stop and, after a moment, ended (its process killed). Where that process
    cannot be found, nothing is stopped, a warning names the feature and the versions, and the
    error is raised.

    Example:
        >>> restart_service_after_failed_init()  # after wandb.init(mode="online") failed  # doctest: +SKIP
        True
    """
    if not failed_start_wedges_service():
        if seconds is None:
            teardown_wandb()
        else:
            call_within(teardown_wandb, seconds, "teardown")
        return True
    service = service_process()
    if service is None:
        versions.warn_once(
            "teardown",
            "W&B: continuing offline after an online wandb.init failed (a server that accepts but "
            "never answers) needs wandb>=%s, or wandb's service process to end; wandb %s is "
            "installed and its service process was not found, so the error is raised. Upgrade "
            "wandb to get it.",
            versions.TEARDOWN_AFTER_FAILED_INIT,
            versions.wandb_version(),
        )
        return False
    # The teardown sends its request and waits for the process, which will not end by itself.
    grace = _STUCK_SERVICE_GRACE_S if seconds is None else min(_STUCK_SERVICE_GRACE_S, seconds)
    return _ask_then_end(service, grace)


def set_global_run(run: Any) -> None:
    """Point ``wandb.run``, ``wandb.log``, ... at ``run`` (``reinit="create_new"`` leaves them alone).

    Example:
        >>> import wandb  # doctest: +SKIP
        >>> set_global_run(wandb.init(mode="offline", reinit="create_new"))  # doctest: +SKIP
    """
    # private wandb API: wandb.sdk.wandb_init._set_global_run (0.19.10 and later)
    try:
        from wandb.sdk.wandb_init import _set_global_run
    except ImportError:  # pragma: no cover - fall back to the older module-level helper
        from wandb.sdk.lib import module

        module.set_global(run=run, config=run.config, log=run.log, summary=run.summary, save=run.save)
        return
    _set_global_run(run)


def unset_global_run() -> None:
    """Reset ``wandb.run``, ``wandb.log``, ... to their no-run placeholders.

    Example:
        >>> unset_global_run()
    """
    # private wandb API: wandb.sdk.lib.module.unset_globals
    from wandb.sdk.lib import module

    module.unset_globals()


def follow_global_run(resolve: Callable[[Any], Any]) -> bool:
    """Make ``wandb.run`` answer ``resolve(value wandb set)``; ``False`` when it cannot be done.

    ``wandb.run`` is a plain module attribute: one value for the whole process, while a process
    may run several Flyte actions at once (a local run, a reusable container). The module's class
    becomes a subclass of it whose ``run`` property keeps what wandb (or a user, or a test's
    patch) assigns and returns what ``resolve`` makes of it. Idempotent.

    Example:
        >>> follow_global_run(lambda stored: stored)  # doctest: +SKIP
        True
    """
    import types

    module = sys.modules.get("wandb")
    if module is None:
        return False
    if getattr(type(module), "_flyteplugins_wandb", False):
        type(module)._resolve = staticmethod(resolve)  # type: ignore[attr-defined]
        return True
    if type(module) is not types.ModuleType:  # pragma: no cover - someone else's module class
        return False

    class _WandbModule(types.ModuleType):
        _flyteplugins_wandb = True
        _resolve = staticmethod(resolve)

        @property
        def run(self) -> Any:
            return type(self)._resolve(self.__dict__.get("run"))

        @run.setter
        def run(self, value: Any) -> None:
            self.__dict__["run"] = value

        @run.deleter
        def run(self) -> None:
            self.__dict__.pop("run", None)

    module.__class__ = _WandbModule
    return True


def stored_global_run() -> Any:
    """The value wandb last assigned to ``wandb.run``, whatever :func:`follow_global_run` answers.

    Example:
        >>> stored_global_run() is None  # doctest: +SKIP
        True
    """
    module = sys.modules.get("wandb")
    if module is None:
        return None
    return module.__dict__.get("run")


def bound_account_lookups(seconds: float) -> bool:
    """Let each of wandb's account look-ups (the "logged in as" message, user settings) wait ``seconds``.

    wandb gives each 5 s, before a start's ``init_timeout`` begins: newer releases through their
    session identity, older ones through the viewer query of ``wandb.sdk.lib.server.Server``.
    ``False`` when this wandb has neither.

    Example:
        >>> bound_account_lookups(5.0) in (True, False)  # doctest: +SKIP
        True
    """
    return _bound_identity_lookups(seconds) | _bound_viewer_queries(seconds)


def _bound_identity_lookups(seconds: float) -> bool:
    # private wandb API: wandb.sdk.lib.identity._RESOLVE_TIMEOUT_SECONDS (read per session), and
    # the session's look-up already made (wandb_setup singleton's _session_identity._service_api)
    try:
        from wandb.sdk.lib import identity
    except ImportError:
        return False
    if not isinstance(getattr(identity, "_RESOLVE_TIMEOUT_SECONDS", None), (int, float)):
        return False
    identity._RESOLVE_TIMEOUT_SECONDS = seconds
    setup = _setup_module()
    singleton = getattr(setup, "_singleton", None) if setup is not None else None
    session = getattr(singleton, "_session_identity", None)
    service_api = getattr(session, "_service_api", None)
    if service_api is not None and hasattr(service_api, "_timeout"):
        service_api._timeout = seconds
    return True


def _bound_viewer_queries(seconds: float) -> bool:
    # private wandb API: wandb.sdk.lib.server.Server.query_with_timeout(self, timeout=5), which
    # older releases call (without a timeout) for the "logged in" message and the user's settings
    try:
        from wandb.sdk.lib import server
    except ImportError:
        return False
    query = getattr(getattr(server, "Server", None), "query_with_timeout", None)
    defaults = getattr(query, "__defaults__", None)
    if not (isinstance(defaults, tuple) and len(defaults) == 1 and isinstance(defaults[0], (int, float))):
        return False
    query.__defaults__ = (seconds,)  # type: ignore[union-attr]
    return True
