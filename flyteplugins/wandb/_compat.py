"""Version-specific internals of wandb and flyte, behind one function each.

Every use of a private helper or a field that changed between releases goes through this module,
with feature detection, so that a new release breaks one function here rather than the package.

Example:
    >>> from flyteplugins.wandb import _compat
    >>> callable(_compat.real_wandb_init())
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["real_wandb_init"]


def real_wandb_init() -> Callable[..., Any]:
    """wandb's own ``init`` function, even while ``wandb.init`` is patched or wrapped by a test suite."""
    try:
        from wandb.sdk import wandb_init

        return wandb_init.init  # type: ignore[no-any-return]
    except (ImportError, AttributeError):  # pragma: no cover - a wandb without this module layout
        import wandb

        return wandb.init
