"""Placeholder replaced by the requirements cache."""
from typing import Any


def settings_overrides() -> dict[str, Any]:
    return {}


def after_init(run: Any) -> None:
    return None
