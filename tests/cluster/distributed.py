"""The matrix's distributed workflow: a parent calling an Elastic task of two ranks.

A module of its own, so that only the pods of this scenario import torch.
"""

from __future__ import annotations

import os
from typing import Any

import flyte

from cluster.workflows import ENTITY, OFFLINE, PROJECT, env, observe
from flyteplugins.wandb import wandb_init


def _elastic_env() -> Any:
    try:
        from flyteplugins.pytorch import Elastic
    except ImportError:  # the Elastic plugin is a test dependency; without it there is no such task
        return None
    return flyte.TaskEnvironment(
        name="cluster_elastic",
        env_vars={**OFFLINE, "OMP_NUM_THREADS": "1"},
        plugin_config=Elastic(nnodes=1, nproc_per_node=2),
    )


elastic = _elastic_env()

if elastic is not None:

    @wandb_init(rank_scope="global")
    @elastic.task
    def distributed_child(seen_dir: str) -> str:
        """Each rank writes what it saw to ``seen_dir/<rank>.json`` (a worker is a process of its own)."""
        import json

        rank = os.environ.get("RANK", "?")
        seen = observe(rank=rank)
        with open(os.path.join(seen_dir, f"{rank}.json"), "w") as out:
            json.dump(seen, out)
        return seen["run"]

    @wandb_init(entity=ENTITY, project=PROJECT)
    @env.task
    async def distributed_parent(seen_dir: str) -> dict[str, dict[str, str]]:
        return {"parent": observe(), "rank0": {"run": await distributed_child.aio(seen_dir)}}
