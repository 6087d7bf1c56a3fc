"""Weights & Biases for Flyte 2.

Typed, layered W&B configuration for Flyte tasks: links that always point at the run a task
writes to, runs shared between parent and child tasks, distributed training, sweeps, and what a
run recorded on this machine read back (``read_wandb_run``).
See the documentation site for guides; every public name below has its own docstring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import WandbConfigError, WandbRunError
from ._types import RankScope, RunMode

if TYPE_CHECKING:
    from ._active import get_wandb_run, get_wandb_run_dir, get_wandb_sweep_id
    from ._config import (
        WandbConfig,
        WandbSweepConfig,
        get_wandb_context,
        get_wandb_sweep_context,
        wandb_config,
        wandb_sweep_config,
    )
    from ._decorators import wandb_init
    from ._distributed import DistributedInfo, get_distributed_info
    from ._download import download_wandb_run_dir, download_wandb_sweep_dirs
    from ._download_trace import download_wandb_run_logs, download_wandb_sweep_logs
    from ._layers import Explanation, explain, reload_settings
    from ._link import Wandb, WandbSweep
    from ._offline import OfflineArtifact, OfflineRun, OfflineRunFormatError
    from ._preflight import CheckResult, check
    from ._read import read_wandb_run
    from ._sweep import wandb_sweep

__all__ = [
    "CheckResult",
    "DistributedInfo",
    "Explanation",
    "OfflineArtifact",
    "OfflineRun",
    "OfflineRunFormatError",
    "RankScope",
    "RunMode",
    "Wandb",
    "WandbConfig",
    "WandbConfigError",
    "WandbRunError",
    "WandbSweep",
    "WandbSweepConfig",
    "check",
    "download_wandb_run_dir",
    "download_wandb_run_logs",
    "download_wandb_sweep_dirs",
    "download_wandb_sweep_logs",
    "explain",
    "get_distributed_info",
    "get_wandb_context",
    "get_wandb_run",
    "get_wandb_run_dir",
    "get_wandb_sweep_context",
    "get_wandb_sweep_id",
    "read_wandb_run",
    "reload_settings",
    "wandb_config",
    "wandb_init",
    "wandb_sweep",
    "wandb_sweep_config",
]

# Every name is served from a module imported on first use, so that `import flyteplugins.wandb`
# costs next to nothing; pydantic is loaded with the first configuration, wandb with the first run.
_LAZY = {
    "WandbConfig": "._config",
    "WandbSweepConfig": "._config",
    "get_wandb_context": "._config",
    "get_wandb_sweep_context": "._config",
    "wandb_config": "._config",
    "wandb_sweep_config": "._config",
    "Explanation": "._layers",
    "explain": "._layers",
    "reload_settings": "._layers",
    "CheckResult": "._preflight",
    "check": "._preflight",
    "Wandb": "._link",
    "WandbSweep": "._link",
    "wandb_init": "._decorators",
    "wandb_sweep": "._sweep",
    "DistributedInfo": "._distributed",
    "get_distributed_info": "._distributed",
    "download_wandb_run_dir": "._download",
    "download_wandb_run_logs": "._download_trace",
    "download_wandb_sweep_dirs": "._download",
    "download_wandb_sweep_logs": "._download_trace",
    "get_wandb_run": "._active",
    "get_wandb_run_dir": "._active",
    "get_wandb_sweep_id": "._active",
    "OfflineArtifact": "._offline",
    "OfflineRun": "._offline",
    "OfflineRunFormatError": "._offline",
    "read_wandb_run": "._read",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
