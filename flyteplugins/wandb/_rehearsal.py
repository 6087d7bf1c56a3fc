"""Where a local run would behave differently on a cluster, said at the point of use.

A local run executes every task in the launching process, with that process's environment; on a
cluster each task runs in its own container, which sees only the variables its
``TaskEnvironment`` declares (``env_vars``, ``secrets``). A W&B setting that a local run takes
from the shell would silently be missing remotely: the run would land in another project, and its
link would disagree with it. :func:`plan_environment_warnings` finds those settings (pure);
:func:`warn_environment` says each once per process.

Example:
    >>> from flyteplugins.wandb._layers import resolve
    >>> resolved = resolve("run", context={}, use_current_context=False)
    >>> plan_environment_warnings(resolved, frozenset())
    ()
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._layers import Resolved
from ._settings import DeclaredEnv, declared_wandb_env

if TYPE_CHECKING:
    from ._run import TaskRunPlan

__all__ = [
    "DeclaredEnvironment",
    "declared_env_vars",
    "failed_attempt_message",
    "offline_shared_message",
    "plan_environment_warnings",
    "warn_environment",
    "warn_failed_attempt",
    "warn_offline_shared",
    "with_declared_server",
]

# What differs between a local run and a cluster: a logger of its own, so it can be tuned apart.
local_remote_logger = logging.getLogger("flyteplugins.wandb.local_remote")

_ENV_ORIGIN = "env "
# Settings a local run may take from the shell without misleading about a cluster: see
# plan_environment_warnings.
_LOCAL_CHOICES = frozenset({"mode"})
_warned_lock = threading.Lock()
_warned: set[str] = set()


@dataclass(frozen=True, slots=True)
class DeclaredEnvironment:
    """What a task's container gets from the task's declaration, as the plugin reads it.

    ``names``: every variable it declares (``env_vars`` and secrets); in a local run, settings
    taken from other variables of the process are pointed out (a cluster lacks them). ``wandb``:
    the W&B settings variables among its ``env_vars``, with their values; its link and its run
    read them over the process's own, as its container sees them.

    Example:
        >>> class Task:
        ...     env_vars = {"WANDB_PROJECT": "p", "OMP_NUM_THREADS": "1"}
        ...     secrets = None
        >>> declared = DeclaredEnvironment.of(Task())
        >>> sorted(declared.names), declared.wandb
        (['OMP_NUM_THREADS', 'WANDB_PROJECT'], (('WANDB_PROJECT', 'p'),))
    """

    names: frozenset[str] = field(default_factory=frozenset)
    wandb: DeclaredEnv = ()

    @classmethod
    def of(cls, task: Any) -> DeclaredEnvironment:
        """What ``task`` (a Flyte task template) declares."""
        return cls(declared_env_vars(task), declared_wandb_env(getattr(task, "env_vars", None)))


def declared_env_vars(task: Any) -> frozenset[str]:
    """The environment variables a task's container gets from its declaration: ``env_vars`` and secrets.

    Example:
        >>> class Task:
        ...     env_vars = {"WANDB_PROJECT": "p"}
        ...     secrets = None
        >>> sorted(declared_env_vars(Task()))
        ['WANDB_PROJECT']
    """
    names = set((getattr(task, "env_vars", None) or {}).keys())
    secrets = getattr(task, "secrets", None)
    if secrets:
        items: Iterable[Any] = secrets if isinstance(secrets, (list, tuple)) else [secrets]
        for secret in items:
            if isinstance(secret, str):
                names.add(secret.replace("-", "_").upper())
            elif getattr(secret, "as_env_var", None):
                names.add(str(secret.as_env_var))
    return frozenset(names)


def with_declared_server(
    plan: TaskRunPlan, declared: DeclaredEnv, environ: Mapping[str, str] | None = None
) -> TaskRunPlan:
    """A local run's plan, talking to the W&B server the task declares, as its container would. Pure.

    The plugin passes the run's project, entity, mode, ... to ``wandb.init`` itself, but wandb
    reads its server address (``WANDB_BASE_URL``) from the process: where the task declares
    another one than this process has, the run is told (``settings.base_url``), so that it goes
    where its link points. A ``base_url`` given in the task's own ``settings`` is kept, and so is
    the process's server where the task declares ``WANDB_BASE_URL`` empty.

    Example:
        >>> from flyteplugins.wandb._run import TaskRunPlan
        >>> plan = TaskRunPlan("init", None, {"id": "r"})
        >>> with_declared_server(plan, (("WANDB_BASE_URL", "https://w.example.com"),), {}).shared
        {'base_url': 'https://w.example.com'}
        >>> with_declared_server(plan, (), {}) is plan
        True
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    values = dict(declared)
    if plan.action != "init" or "WANDB_BASE_URL" not in values:
        return plan
    url = values["WANDB_BASE_URL"]
    # A declared empty value leaves wandb's own default server, which only wandb knows (it differs
    # between releases): the process's WANDB_BASE_URL, if any, is then not overridden.
    if not url or url == env.get("WANDB_BASE_URL"):
        return plan
    settings = plan.init_kwargs.get("settings")
    if settings is not None:
        from ._compat import settings_fields_set

        given = settings_fields_set(settings)
        if "base_url" in (given if given is not None else settings if isinstance(settings, Mapping) else ()):
            return plan
    return dataclasses.replace(plan, shared={**(plan.shared or {}), "base_url": url})


def plan_environment_warnings(resolved: Resolved, declared: frozenset[str]) -> tuple[str, ...]:
    """The settings a local run takes from this process's environment that the task does not declare.

    Each message is one line naming the setting, the variable and the fix. Pure.

    ``mode`` is left out: ``WANDB_MODE=offline`` (or ``disabled``) in the shell is how a local run
    is rehearsed without an account, as the quickstart suggests, and on a cluster the mode is
    meant to differ (online, with the API key as a secret). It decides whether the run is sent,
    not where it lands, so the run and its link agree either way.

    Example:
        >>> import os
        >>> from flyteplugins.wandb._layers import resolve
        >>> os.environ["WANDB_PROJECT"] = "from-shell"
        >>> resolved = resolve("run", context={}, use_current_context=False)
        >>> del os.environ["WANDB_PROJECT"]
        >>> print(plan_environment_warnings(resolved, frozenset())[0])  # doctest: +ELLIPSIS
        W&B project='from-shell' comes from WANDB_PROJECT in this shell, which a cluster task does not get...
        >>> plan_environment_warnings(resolved, frozenset({"WANDB_PROJECT"}))
        ()
    """
    messages = []
    for name in resolved.values:
        if resolved.kind_of(name) != "env":
            continue
        origin = resolved.origin(name) or ""
        # "env WANDB_BASE_URL (web address derived from it)": the variable is the first word.
        variable = origin[len(_ENV_ORIGIN) :].split(" ", 1)[0] if origin.startswith(_ENV_ORIGIN) else ""
        if not variable or variable in declared or name in _LOCAL_CHOICES:
            continue
        messages.append(
            f"W&B {name}={resolved.get(name)!r} comes from {variable} in this shell, which a cluster "
            f"task does not get: add {variable} to TaskEnvironment(env_vars=...), or set {name} "
            "with wandb_config(...) or @wandb_init(...)"
        )
    return tuple(messages)


def warn_environment(resolved: Resolved, declared: frozenset[str]) -> None:
    """Log each of :func:`plan_environment_warnings` once per process."""
    key = ("environment-warnings", declared)
    messages = resolved.memo.get(key)
    if messages is None:
        messages = resolved.memo[key] = plan_environment_warnings(resolved, declared)
    for message in messages:
        with _warned_lock:
            if message in _warned:
                continue
            _warned.add(message)
        local_remote_logger.warning(message)


def _folder(run_dir: str) -> str:
    return os.path.dirname(run_dir.rstrip("/")) if run_dir else "its wandb folder"


def offline_shared_message(run_id: str, run_dir: str) -> str:
    """What a cluster task writing offline into a run another task owns must be told. Pure.

    Only a task that writes into a run it does not own is told (a child attaching to its
    parent's run, a distributed rank other than the primary): there, another task writes into
    the same run, and in offline mode their parts do not meet.

    Example:
        >>> print(offline_shared_message("r1", "/tmp/wandb/offline-run-1/files"))  # doctest: +ELLIPSIS
        W&B shared mode is online only: ... (wandb sync /tmp/wandb/offline-run-1)...
    """
    folder = _folder(run_dir)
    return (
        f"W&B shared mode is online only: in offline mode this task writes its part of run {run_id}, "
        f"which another task owns, to a folder of its own in this container ({folder}), not into one "
        "run shared with the other tasks as in a local run. Upload it before the container goes away "
        f"(wandb sync {folder}), or run online; if this attempt fails, the folder is lost with its "
        "container (download_logs=True keeps the run's files only after a task that succeeds)"
    )


def warn_offline_shared(run_id: str, run_dir: str) -> None:
    """Log :func:`offline_shared_message` once per run."""
    _warn_once(f"shared:{run_id}", offline_shared_message(run_id, run_dir))


def failed_attempt_message(run_id: str, run_dir: str) -> str:
    """What a cluster task whose attempt failed with an offline run must be told. Pure.

    Example:
        >>> print(failed_attempt_message("r1", "/tmp/wandb/offline-run-1/files"))  # doctest: +ELLIPSIS
        W&B run r1 was offline and this attempt failed: ... /tmp/wandb/offline-run-1 ...
    """
    folder = _folder(run_dir)
    return (
        f"W&B run {run_id} was offline and this attempt failed: its data is only in {folder} in this "
        "container, and is lost when the container goes away (a retry runs in a new one and resumes "
        "the run without it). To keep it, write the run's folder where it outlives the container "
        "(WANDB_DIR on a mounted volume), or run online"
    )


def warn_failed_attempt(run_id: str, run_dir: str) -> None:
    """Log :func:`failed_attempt_message` once per run."""
    _warn_once(f"failed:{run_id}", failed_attempt_message(run_id, run_dir))


def _warn_once(key: str, message: str) -> None:
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    local_remote_logger.warning(message)
