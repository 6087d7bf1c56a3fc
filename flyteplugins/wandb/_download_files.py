"""The shape of a download on disk: where it goes, its target folder, the JSON files it holds.

Example:
    >>> default_download_root().name
    'wandb_runs'
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._errors import WandbRunError

__all__ = [
    "HISTORY_FILE",
    "SUMMARY_FILE",
    "default_download_root",
    "plain_json",
    "prepare_target",
    "write_json",
]

SUMMARY_FILE = "summary.json"
HISTORY_FILE = "metrics_history.json"


def default_download_root() -> Path:
    """Where downloads go by default: ``<temp dir>/wandb_runs``.

    Example:
        >>> default_download_root().name
        'wandb_runs'
    """
    return Path(tempfile.gettempdir()) / "wandb_runs"


def prepare_target(path: str | os.PathLike[str]) -> Path:
    target = Path(path).expanduser()
    try:
        target.mkdir(parents=True, exist_ok=True)
        if not os.access(target, os.W_OK | os.X_OK):
            raise PermissionError(13, "permission denied")
    except OSError as exc:
        raise WandbRunError(
            f"cannot write W&B downloads to {str(target)!r}: {exc.strerror or exc}; pass a writable path"
        ) from None
    return target


def write_json(target: Path, name: str, data: Any) -> None:
    try:
        with open(target / name, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=str)
    except OSError as exc:
        raise WandbRunError(f"cannot write {str(target / name)!r}: {exc.strerror or exc}") from None


def plain_json(value: Any) -> Any:
    """A JSON-ready copy of W&B summary values (nested summary objects become dicts).

    Example:
        >>> plain_json({"a": (1, 2)})
        {'a': [1, 2]}
    """
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    return value
