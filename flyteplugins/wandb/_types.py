"""Small shared type aliases."""

from __future__ import annotations

from typing import Literal

__all__ = ["RankScope", "RunMode", "WandbMode"]

RunMode = Literal["auto", "new", "shared"]
"""How a task's W&B run relates to its parent's: ``auto`` attaches to the parent's run when there is
one and starts a new run otherwise, ``new`` always starts a new run, ``shared`` always attaches."""

RankScope = Literal["global", "worker"]
"""Which ranks of a distributed task log: ``global`` (one run for the job) or ``worker`` (one per node)."""

WandbMode = Literal["online", "offline", "disabled", "shared"]
"""The W&B SDK's own ``mode`` setting."""
