"""Downloading a run's files, summary and history from the W&B server (``wandb.Api``).

Every failure becomes a :class:`~flyteplugins.wandb.WandbRunError` saying what was looked up and
why it failed (:class:`Unreachable` when the server cannot be reached at all); the W&B API key
never appears in a message.

Example:
    >>> api_path("team", "proj", "r1")
    'team/proj/r1'
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._codec import RunIdentity
from ._download_files import HISTORY_FILE, SUMMARY_FILE, plain_json, write_json
from ._errors import WandbRunError

__all__ = ["Unreachable", "api_call", "api_path", "download_from_api", "open_api", "scrub_secrets"]

_API_TIMEOUT_SECONDS = 30


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


def api_path(entity: str | None, project: str | None, object_id: str) -> str:
    return "/".join(part for part in (entity, project, object_id) if part)


class Unreachable(Exception):
    """The W&B server could not be reached (as opposed to refusing or not knowing the run)."""


def _is_not_found(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "could not find" in text or "not found" in text or "404" in text


def api_call(what: str, path: str, call: Callable[[], Any]) -> Any:
    """Call the W&B API, turning its errors into clear ones (checked most specific first)."""
    import wandb

    from ._errors import is_unreachable

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
        if is_unreachable(exc):
            raise Unreachable(f"{type(exc).__name__}: {scrub_secrets(str(exc))}") from None
        reason = f"{type(exc).__name__}: {scrub_secrets(str(exc))}"
        raise WandbRunError(f"cannot look up {what} {path!r} on the W&B server: {reason}") from None


def open_api() -> Any:
    import wandb

    return wandb.Api(timeout=_API_TIMEOUT_SECONDS)


def _history_rows(api_run: Any) -> list[dict[str, Any]]:
    # scan_history pages through every row; history() only returns a sample of them.
    scan = getattr(api_run, "scan_history", None)
    rows = scan() if callable(scan) else api_run.history(pandas=False)
    return [dict(row) for row in rows]


def download_from_api(identity: RunIdentity, target: Path, include_history: bool) -> None:
    path = api_path(identity.entity, identity.project, identity.id)
    api = api_call("W&B run", path, open_api)
    api_run = api_call("W&B run", path, lambda: api.run(path))
    files = api_call("the files of W&B run", path, lambda: list(api_run.files()))
    for item in files:
        _download_file(item, path, target)
    summary = api_call("the summary of W&B run", path, lambda: plain_json(dict(api_run.summary)))
    write_json(target, SUMMARY_FILE, summary)
    if include_history:
        history = api_call("the metrics history of W&B run", path, lambda: _history_rows(api_run))
        write_json(target, HISTORY_FILE, history)


def _download_file(item: Any, path: str, target: Path) -> None:
    name = getattr(item, "name", "?")
    api_call(f"file {name!r} of W&B run", path, lambda: item.download(root=str(target), replace=True))
