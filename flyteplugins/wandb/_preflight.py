"""Preflight: will W&B work for a task, before its containers start? (``flyte wandb check``)

:func:`check` resolves the configuration the way a task does (optionally as one given task
would: its ``@wandb_init`` arguments, its environment's secrets) and returns one
:class:`CheckResult` row per check, each with the fix when it fails:

1. ``configuration``: every layer's names and values are valid (with ``"FILE:TASK"``, importing
   the file applies the task's decorators: a bad setting in one fails here, with its line);
   with a task, ``decorators``: its W&B decorator is above ``@env.task``, not below;
2. ``mode``: the W&B mode the run would start in (offline and disabled need nothing else);
3. ``credentials``: an API key for online mode, from ``WANDB_API_KEY``, a netrc entry for the
   server, or a Flyte secret mapped to ``WANDB_API_KEY`` on the task's environment;
4. ``server``: the server answers an HTTP request within the ``timeout`` setting;
5. ``access`` (``online=True``): the key is accepted and the entity and project can be reached.

The decisions are pure functions over what was found; the two network calls (one HTTP GET, one
GraphQL POST) sit at the edge. No row, detail or error ever holds the API key.

Example:
    >>> rows = check(context={"wandb_mode": "offline"})
    >>> [(r.name, r.ok) for r in rows][:2]
    [('configuration', True), ('mode', True)]
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import WandbConfigError

__all__ = ["CheckResult", "check", "format_results", "load_task"]

DEFAULT_API_URL = "https://api.wandb.ai"
_KEY_VAR = "WANDB_API_KEY"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One row of :func:`check`: what was checked, whether it passed, what was found, the fix.

    Example:
        >>> CheckResult("mode", True, "offline (from default)").fix
        ''
    """

    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class _Found:
    """What the environment holds for a check; never the key itself."""

    mode: str
    mode_origin: str
    api_url: str
    entity: str | None
    project: str | None
    timeout: float
    env_key: bool
    netrc_key: bool
    secret: str | None  # how the task's environment maps a secret to WANDB_API_KEY


# --- pure decisions ----------------------------------------------------------------------------


def mode_row(found: _Found) -> CheckResult:
    """The mode the run would start in.

    Example:
        >>> mode_row(_example(mode="disabled")).detail
        'disabled (from default): tasks run without W&B'
    """
    what = {
        "offline": "runs are written to disk, upload them later with `wandb sync`",
        "disabled": "tasks run without W&B",
    }.get(found.mode, f"runs are sent to {found.api_url}")
    return CheckResult("mode", True, f"{found.mode} (from {found.mode_origin}): {what}")


def credentials_row(found: _Found) -> CheckResult:
    """Whether an API key is available to an online run (never showing it).

    Example:
        >>> credentials_row(_example(mode="online", env_key=True)).detail
        'WANDB_API_KEY is set'
        >>> credentials_row(_example(mode="online")).ok
        False
    """
    if found.env_key:
        return CheckResult("credentials", True, f"{_KEY_VAR} is set")
    if found.secret:
        return CheckResult("credentials", True, f"{found.secret} on the task's environment")
    if found.netrc_key:
        return CheckResult("credentials", True, f"a netrc entry for {_host_of(found.api_url)}")
    return CheckResult(
        "credentials",
        False,
        f"no W&B API key: {_KEY_VAR} is not set and there is no netrc entry for {_host_of(found.api_url)}",
        f"add secrets=flyte.Secret(key=<your secret>, as_env_var='{_KEY_VAR}') to the task's "
        f"TaskEnvironment, or set {_KEY_VAR}, or run `wandb login --host {found.api_url}`; "
        "or use mode='offline'",
    )


def server_row(found: _Found, error: str | None) -> CheckResult:
    """Whether the server answered (``error`` is why it did not, from :func:`_ask_server`).

    Example:
        >>> server_row(_example(), None).ok
        True
        >>> server_row(_example(), "no answer within 30 s").fix.startswith("check WANDB_BASE_URL")
        True
    """
    if error is None:
        return CheckResult("server", True, f"{found.api_url} answered within {found.timeout:g} s")
    return CheckResult(
        "server",
        False,
        f"{found.api_url}: {error}",
        "check WANDB_BASE_URL, the network and proxies between this machine and the server "
        "(meanwhile tasks continue offline, after waiting at most the timeout setting)",
    )


def access_row(
    found: _Found, status: int | None, data: Mapping[str, Any] | None, error: str | None
) -> CheckResult:
    """Whether the key is accepted and the entity and project can be reached.

    ``status``/``data``/``error`` are the GraphQL answer of :func:`_ask_access`.

    Example:
        >>> access_row(_example(entity="e", project="p"), 200, {"viewer": {"entity": "e"},
        ...     "entity": {"id": "1"}, "project": {"id": "2"}}, None).detail
        'entity e and project p are accessible'
        >>> access_row(_example(), 401, None, None).ok
        False
    """
    if status in (401, 403):
        return CheckResult(
            "access",
            False,
            f"the server refused the API key (HTTP {status})",
            f"create a new key at the server's /authorize page and update {_KEY_VAR} or the Flyte secret",
        )
    if error is not None or data is None:
        return CheckResult("access", False, error or "no answer", "check the server row above")
    viewer = data.get("viewer") or {}
    entity = found.entity or viewer.get("entity")
    if not viewer:
        return CheckResult("access", False, "the server did not accept the API key", "check the key")
    if found.entity and not data.get("entity"):
        return CheckResult(
            "access",
            False,
            f"entity {found.entity} does not exist or this key cannot see it",
            "fix the entity (wandb_config(entity=...), WANDB_ENTITY) or use a key of a member",
        )
    if not found.project:
        return CheckResult("access", True, f"key accepted; runs go to entity {entity}, project uncategorized")
    if not data.get("project"):
        return CheckResult(
            "access",
            True,
            f"entity {entity} is accessible; project {found.project} will be created by the first run",
        )
    return CheckResult("access", True, f"entity {entity} and project {found.project} are accessible")


def _host_of(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or url


def _example(**values: Any) -> _Found:
    base: dict[str, Any] = {
        "mode": "online",
        "mode_origin": "default",
        "api_url": DEFAULT_API_URL,
        "entity": None,
        "project": None,
        "timeout": 30.0,
        "env_key": False,
        "netrc_key": False,
        "secret": None,
    }
    base.update(values)
    return _Found(**base)


# --- gathering what is there ------------------------------------------------------------------


def load_task(spec: str) -> Any:
    """The task named ``FILE:TASK`` (the file is imported as a module, as Flyte would).

    A decorator given a bad setting fails the import: that error is raised as it is.

    Example:
        ```python
        task = load_task("workflows/train.py:train")
        ```
    """
    import importlib.util
    import sys
    from pathlib import Path

    path_text, sep, name = spec.rpartition(":")
    path = Path(path_text)
    if not sep or not name or not path.is_file():
        raise WandbConfigError("--task", spec, "command line", "FILE:TASK, e.g. workflows/train.py:train")
    module_name = f"_flyteplugins_wandb_check_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise WandbConfigError("--task", spec, "command line", "a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.path.insert(0, str(path.resolve().parent))
    try:
        sys.modules[module_name] = module
        module_spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    task = getattr(module, name, None)
    if task is None:
        raise WandbConfigError("--task", spec, "command line", f"the name of a task defined in {path}")
    return task


def _key_secret(task: Any) -> str | None:
    """How the task's environment provides WANDB_API_KEY from a Flyte secret, if it does."""
    secrets = getattr(task, "secrets", None)
    if secrets is None:
        return None
    items: Sequence[Any] = secrets if isinstance(secrets, (list, tuple)) else [secrets]
    for secret in items:
        if isinstance(secret, str):
            continue  # a bare name is mounted under its own name, not as WANDB_API_KEY
        if getattr(secret, "as_env_var", None) == _KEY_VAR:
            return f"flyte.Secret(key={secret.key!r}, as_env_var={_KEY_VAR!r})"
    return None


def _netrc_has(host: str) -> bool:
    import netrc
    from pathlib import Path

    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def _api_url(resolved: Any) -> str:
    kwargs = resolved.get("kwargs") or {}
    settings = kwargs.get("settings") if isinstance(kwargs, Mapping) else None
    if isinstance(settings, Mapping) and settings.get("base_url"):
        return str(settings["base_url"]).rstrip("/")
    return (os.environ.get("WANDB_BASE_URL") or DEFAULT_API_URL).rstrip("/")


def _without_userinfo(url: str) -> str:
    """``url`` as it may be shown: a base URL may carry credentials (``https://user:pw@host``)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _gather(task: Any, context: Mapping[str, str] | None) -> tuple[_Found, Any]:
    from ._decorated import task_layers
    from ._layers import resolve

    layer = task_layers(task).get("run") if task is not None else None
    resolved = resolve("run", task=layer, context=dict(context or {}), use_current_context=False)
    mode = str(resolved.get("mode") or "online")
    found = _Found(
        mode=mode,
        mode_origin=resolved.origin("mode") or "default",
        api_url=_without_userinfo(_api_url(resolved)),
        entity=resolved.get("entity"),
        project=resolved.get("project"),
        timeout=float(resolved.get("timeout", 30.0)),
        env_key=bool(os.environ.get(_KEY_VAR)),
        netrc_key=False,
        secret=_key_secret(task) if task is not None else None,
    )
    if mode in ("online", "shared") and not found.env_key:
        from dataclasses import replace

        found = replace(found, netrc_key=_netrc_has(_host_of(found.api_url)))
    return found, resolved


def _local_key(found: _Found) -> str | None:
    if found.env_key:
        return os.environ.get(_KEY_VAR)
    if found.netrc_key:
        import netrc
        from pathlib import Path

        path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
        entry = netrc.netrc(path).authenticators(_host_of(found.api_url))
        return entry[2] if entry else None
    return None


# --- the network edge ---------------------------------------------------------------------------


def _ask_server(url: str, timeout: float) -> str | None:
    """Why ``url`` does not answer within ``timeout`` (any HTTP status below 500 is an answer)."""
    import socket
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return f"no answer within {timeout:g} s"
        return f"cannot connect ({reason})"
    except OSError as exc:
        return f"cannot connect ({type(exc).__name__})"
    if status >= 500:
        return f"answers HTTP {status} (the server is failing)"
    return None


_ACCESS_QUERY = """query FlyteWandbCheck($entity: String!, $project: String!, $withEntity: Boolean!) {
  viewer { entity }
  entity(name: $entity) @include(if: $withEntity) { id }
  project(name: $project, entityName: $entity) @include(if: $withEntity) { id }
}"""


def _ask_access(found: _Found, key: str) -> tuple[int | None, Mapping[str, Any] | None, str | None]:
    """POST one GraphQL query with the key; ``(status, data, error)``. The key is never returned."""
    import base64
    import urllib.error
    import urllib.request

    body = json.dumps(
        {
            "query": _ACCESS_QUERY,
            "variables": {
                "entity": found.entity or "",
                "project": found.project or "",
                "withEntity": bool(found.entity),
            },
        }
    ).encode()
    auth = base64.b64encode(f"api:{key}".encode()).decode()
    request = urllib.request.Request(
        f"{found.api_url}/graphql",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=found.timeout) as response:
            payload = json.loads(response.read() or b"{}")
            return int(response.status), payload.get("data") or {}, None
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return exc.code, None, None
        return exc.code, None, f"the server answered HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return None, None, f"no usable answer ({type(exc).__name__})"


# --- the entry point ------------------------------------------------------------------------------


def check(
    task: Any = None, *, online: bool = False, context: Mapping[str, str] | None = None
) -> list[CheckResult]:
    """Check that W&B will work for a task, before it runs; one row per check.

    Args:
        task: a ``@wandb_init`` task (or ``"FILE:TASK"``) to resolve the settings as that task
            would: its decorator arguments, its environment's secrets. ``None``: the settings of
            this environment alone.
        online: also ask the server whether the key, entity and project are accessible.
        context: ``custom_context`` entries, as ``flyte.with_runcontext`` would pass them.

    Offline and disabled modes pass without touching the network.

    Example:
        ```python
        from flyteplugins.wandb import check

        for row in check("workflows/train.py:train", online=True):
            print("ok  " if row.ok else "FAIL", row.name, row.detail, row.fix)
        ```

        >>> all(row.ok for row in check(context={"wandb_mode": "disabled"}))
        True
    """
    try:
        if isinstance(task, str):
            # Importing the task's module applies its decorators, which check their settings.
            task = load_task(task)
        found, _ = _gather(task, context)
    except WandbConfigError as exc:
        if exc.origin == "command line":
            raise  # a bad FILE:TASK, not a setting
        return [CheckResult("configuration", False, str(exc), _fix_of(exc, task))]
    rows = [CheckResult("configuration", True, "every setting is valid")]
    if task is not None:
        from ._decorated import decorator_order_problem

        problem = decorator_order_problem(task)
        if problem is not None:
            rows.append(CheckResult("decorators", False, *problem))
    rows.append(mode_row(found))
    if found.mode in ("offline", "disabled"):
        return rows
    credentials = credentials_row(found)
    rows.append(credentials)
    server = server_row(found, _ask_server(found.api_url, found.timeout))
    rows.append(server)
    if online and server.ok and credentials.ok:
        key = _local_key(found)
        if key is None:
            rows.append(
                CheckResult(
                    "access",
                    True,
                    "not checked here: the key is a Flyte secret, available only where the task runs",
                )
            )
        else:
            rows.append(access_row(found, *_ask_access(found, key)))
    return rows


def _fix_of(exc: WandbConfigError, task: Any) -> str:
    """The fix of a bad setting; for a decorator's, with its line in the task's file."""
    import re
    import traceback
    from pathlib import Path

    where = exc.origin
    if isinstance(task, str) and exc.origin.startswith("@"):
        path = Path(task.rpartition(":")[0])
        lines = [
            f.lineno
            for f in traceback.extract_tb(exc.__traceback__)
            if Path(f.filename).resolve() == path.resolve()
        ]
        if lines:
            where = f"{exc.origin} at {path}:{lines[-1]}"
    close = re.search(r"did you mean '([^']+)'\?", exc.allowed)
    if close:
        return f"rename {exc.field} to {close.group(1)} in {where}"
    return f"fix {exc.field} in {where}: {exc.allowed}"


def format_results(rows: Sequence[CheckResult]) -> str:
    """The rows as text, one line each plus a ``fix:`` line under each failure.

    Example:
        >>> print(format_results([CheckResult("mode", True, "offline")]))
        ok    mode          offline
    """
    lines = []
    for row in rows:
        lines.append(f"{'ok' if row.ok else 'FAIL':<5} {row.name:<13} {row.detail}")
        if not row.ok and row.fix:
            lines.append(f"{'':<5} {'':<13} fix: {row.fix}")
    return "\n".join(lines)
