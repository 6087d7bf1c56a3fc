"""Errors raised by flyteplugins.wandb.

Every configuration error names the field, the bad value, the layer it came from and what is
allowed, so that a user can fix it without reading a traceback from deep inside a library.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["CREDENTIAL_NAME", "WandbConfigError", "WandbRunError", "is_unreachable"]

# Whole names (or their last underscore-separated part) only: "num_tokens" or "tokenizer" are
# hyperparameters, "api_key" or "auth_token" are credentials.
CREDENTIAL_NAME = re.compile(
    r"(?i)(^|_)(api_?key|access_key|secret_key|private_key|token|access_token|auth_token|password|passwd|secret|client_secret|credentials?)$"
)

# Values of fields whose name looks like a credential are never echoed back.
_SECRET_MARKERS = ("key", "token", "password", "secret")


def _looks_secret(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


def _shorten(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class WandbConfigError(ValueError):
    """A W&B setting has a value that cannot be used.

    Attributes:
        field: the setting's name, e.g. ``run_mode``.
        value: the offending value (``None`` for fields that look like credentials).
        origin: the layer it came from, e.g. ``env WANDB_MODE`` or ``wandb_config()``.
        allowed: what would have been accepted.

    Example:
        >>> from flyteplugins.wandb import wandb_config, WandbConfigError
        >>> try:
        ...     wandb_config(run_mode="sometimes")
        ... except WandbConfigError as e:
        ...     print(e.field, e.origin)
        run_mode wandb_config()
    """

    def __init__(self, field: str, value: Any, origin: str, allowed: str) -> None:
        self.field = field
        self.value = None if _looks_secret(field) else value
        self.origin = origin
        self.allowed = allowed
        shown = "<hidden>" if _looks_secret(field) else _shorten(value)
        super().__init__(f"invalid W&B setting {field}={shown} (from {origin}): expected {allowed}")


class WandbRunError(RuntimeError):
    """A W&B run cannot be started, attached to or found as asked.

    Example:
        >>> from flyteplugins.wandb import WandbRunError
        >>> issubclass(WandbRunError, RuntimeError)
        True
    """


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the W&B server could not be reached (not that it refused the request).

    Example:
        >>> is_unreachable(TimeoutError("timed out")), is_unreachable(ValueError("bad project"))
        (True, False)
    """
    import wandb

    if isinstance(exc, (wandb.errors.CommError, TimeoutError, ConnectionError)):
        return not isinstance(exc, wandb.errors.AuthenticationError)
    text = str(exc).lower()
    return any(m in text for m in ("timed out", "connection refused", "name resolution", "failed to connect"))
