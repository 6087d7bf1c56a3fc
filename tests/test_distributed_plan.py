"""Tests for the pure distributed-training decisions in flyteplugins.wandb._distributed."""

from __future__ import annotations

import ast
import itertools
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flyteplugins.wandb import _distributed as distributed
from flyteplugins.wandb._distributed import (
    DistributedInfo,
    ElasticTopology,
    LinkTarget,
    RunPlan,
    SharedMode,
    distributed_link_target,
    distributed_links_spec,
    elastic_topology,
    get_distributed_info,
    plan_distributed_run,
    read_distributed_info,
)
from flyteplugins.wandb._errors import WandbConfigError
from flyteplugins.wandb._types import RankScope, RunMode

BASE = "r1-a0"
RUN_MODES: tuple[RunMode, ...] = ("auto", "new", "shared")
RANK_SCOPES: tuple[RankScope, ...] = ("global", "worker")
# (workers, processes per worker)
SINGLE_NODE = (1, 4)
MULTI_NODE = (2, 2)
TOPOLOGIES = [SINGLE_NODE, MULTI_NODE, (3, 1), (3, 2)]


def infos(num_workers: int, per_worker: int) -> list[DistributedInfo]:
    """Every rank of a job, with torchrun's rank layout (workers hold consecutive ranks)."""
    return [
        DistributedInfo(
            rank=w * per_worker + local,
            local_rank=local,
            world_size=num_workers * per_worker,
            local_world_size=per_worker,
            worker_index=w,
            num_workers=num_workers,
        )
        for w in range(num_workers)
        for local in range(per_worker)
    ]


def env_for(info: DistributedInfo) -> dict[str, str]:
    return {
        "RANK": str(info.rank),
        "LOCAL_RANK": str(info.local_rank),
        "WORLD_SIZE": str(info.world_size),
        "LOCAL_WORLD_SIZE": str(info.local_world_size),
        "GROUP_RANK": str(info.worker_index),
    }


# ---------------------------------------------------------------------------------------------
# The table, rank by rank. Expected values are written out literally so that a change to the
# naming rules shows up here rather than being recomputed by the same code under test.
# Each row: (initializes, run_id, group, shared label or None, primary or None, finishes).
# ---------------------------------------------------------------------------------------------
Row = tuple[bool, str | None, str | None, str | None, bool | None, bool]
SKIP: Row = (False, None, None, None, None, False)

# Single node, 4 processes: ranks 0..3, local rank == rank, worker 0.
SINGLE_EXPECTED: dict[tuple[RunMode, RankScope], list[Row]] = {
    ("auto", "global"): [(True, BASE, None, None, None, True), SKIP, SKIP, SKIP],
    # worker scope on one node is global scope: no -worker- suffix.
    ("auto", "worker"): [(True, BASE, None, None, None, True), SKIP, SKIP, SKIP],
    ("shared", "global"): [
        (True, BASE, None, "rank-0", True, True),
        (True, BASE, None, "rank-1", False, True),
        (True, BASE, None, "rank-2", False, True),
        (True, BASE, None, "rank-3", False, True),
    ],
    ("shared", "worker"): [
        (True, BASE, None, "rank-0", True, True),
        (True, BASE, None, "rank-1", False, True),
        (True, BASE, None, "rank-2", False, True),
        (True, BASE, None, "rank-3", False, True),
    ],
    ("new", "global"): [(True, f"{BASE}-rank-{r}", BASE, None, None, True) for r in range(4)],
    ("new", "worker"): [(True, f"{BASE}-rank-{r}", BASE, None, None, True) for r in range(4)],
}

# Two workers of two processes: ranks 0,1 on worker 0 and 2,3 on worker 1.
MULTI_EXPECTED: dict[tuple[RunMode, RankScope], list[Row]] = {
    ("auto", "global"): [(True, BASE, None, None, None, True), SKIP, SKIP, SKIP],
    ("auto", "worker"): [
        (True, f"{BASE}-worker-0", None, None, None, True),
        SKIP,
        (True, f"{BASE}-worker-1", None, None, None, True),
        SKIP,
    ],
    ("shared", "global"): [
        (True, BASE, None, "worker-0-rank-0", True, True),
        (True, BASE, None, "worker-0-rank-1", False, True),
        # local rank 0 of worker 1 is not the primary of a job-wide run.
        (True, BASE, None, "worker-1-rank-0", False, True),
        (True, BASE, None, "worker-1-rank-1", False, True),
    ],
    ("shared", "worker"): [
        (True, f"{BASE}-worker-0", None, "worker-0-rank-0", True, True),
        (True, f"{BASE}-worker-0", None, "worker-0-rank-1", False, True),
        (True, f"{BASE}-worker-1", None, "worker-1-rank-0", True, True),
        (True, f"{BASE}-worker-1", None, "worker-1-rank-1", False, True),
    ],
    ("new", "global"): [
        (True, f"{BASE}-rank-0", BASE, None, None, True),
        (True, f"{BASE}-rank-1", BASE, None, None, True),
        (True, f"{BASE}-rank-2", BASE, None, None, True),
        (True, f"{BASE}-rank-3", BASE, None, None, True),
    ],
    ("new", "worker"): [
        (True, f"{BASE}-worker-0-rank-0", f"{BASE}-worker-0", None, None, True),
        (True, f"{BASE}-worker-0-rank-1", f"{BASE}-worker-0", None, None, True),
        (True, f"{BASE}-worker-1-rank-0", f"{BASE}-worker-1", None, None, True),
        (True, f"{BASE}-worker-1-rank-1", f"{BASE}-worker-1", None, None, True),
    ],
}

# Distinct runs across the job: 1, N (workers) or N*M.
SINGLE_RUN_COUNT = {
    ("auto", "global"): 1,
    ("auto", "worker"): 1,
    ("shared", "global"): 1,
    ("shared", "worker"): 1,
    ("new", "global"): 4,
    ("new", "worker"): 4,
}
MULTI_RUN_COUNT = {
    ("auto", "global"): 1,
    ("auto", "worker"): 2,
    ("shared", "global"): 1,
    ("shared", "worker"): 2,
    ("new", "global"): 4,
    ("new", "worker"): 4,
}


def as_row(plan: RunPlan) -> Row:
    return (
        plan.initializes,
        plan.run_id,
        plan.group,
        plan.shared.label if plan.shared else None,
        plan.shared.primary if plan.shared else None,
        plan.finishes,
    )


@pytest.mark.parametrize(
    ("topology", "expected"),
    [(SINGLE_NODE, SINGLE_EXPECTED), (MULTI_NODE, MULTI_EXPECTED)],
    ids=["1x4", "2x2"],
)
@pytest.mark.parametrize(("run_mode", "rank_scope"), list(itertools.product(RUN_MODES, RANK_SCOPES)))
def test_plan_table(
    topology: tuple[int, int],
    expected: dict[tuple[RunMode, RankScope], list[Row]],
    run_mode: RunMode,
    rank_scope: RankScope,
) -> None:
    got = [as_row(plan_distributed_run(run_mode, rank_scope, info, BASE)) for info in infos(*topology)]
    assert got == expected[(run_mode, rank_scope)]


@pytest.mark.parametrize(
    ("topology", "counts"),
    [(SINGLE_NODE, SINGLE_RUN_COUNT), (MULTI_NODE, MULTI_RUN_COUNT)],
    ids=["1x4", "2x2"],
)
@pytest.mark.parametrize(("run_mode", "rank_scope"), list(itertools.product(RUN_MODES, RANK_SCOPES)))
def test_distinct_run_count(
    topology: tuple[int, int],
    counts: dict[tuple[RunMode, RankScope], int],
    run_mode: RunMode,
    rank_scope: RankScope,
) -> None:
    plans = [plan_distributed_run(run_mode, rank_scope, info, BASE) for info in infos(*topology)]
    run_ids = {p.run_id for p in plans if p.initializes}
    assert None not in run_ids
    assert len(run_ids) == counts[(run_mode, rank_scope)]


@pytest.mark.parametrize("topology", TOPOLOGIES, ids=lambda t: f"{t[0]}x{t[1]}")
@pytest.mark.parametrize(("run_mode", "rank_scope"), list(itertools.product(RUN_MODES, RANK_SCOPES)))
def test_plan_invariants(topology: tuple[int, int], run_mode: RunMode, rank_scope: RankScope) -> None:
    n, m = topology
    plans = [plan_distributed_run(run_mode, rank_scope, info, BASE) for info in infos(*topology)]
    runs_per_scope = n if rank_scope == "worker" and n > 1 else 1
    expected_runs = n * m if run_mode == "new" else runs_per_scope
    assert len({p.run_id for p in plans if p.initializes}) == expected_runs
    for plan in plans:
        # A process that does not start a run has nothing to finish or configure.
        if not plan.initializes:
            assert plan == RunPlan(False, None, None, None, False)
    by_run: dict[str | None, list[RunPlan]] = {}
    for plan in plans:
        if plan.initializes:
            by_run.setdefault(plan.run_id, []).append(plan)
    for run_plans in by_run.values():
        # Every writer finishes (a shared-mode writer flushes its data that way); exactly one
        # process decides the run's final state: its only writer, or the shared-mode primary.
        assert all(p.finishes for p in run_plans)
        if run_mode == "shared":
            assert [p.shared.primary for p in run_plans if p.shared].count(True) == 1
            assert len({p.shared.label for p in run_plans if p.shared}) == len(run_plans)
        else:
            # auto: one writer per run; new: one run per rank.
            assert len(run_plans) == 1
            assert all(p.shared is None for p in run_plans)


# ---------------------------------------------------------------------------------------------
# A declared multi-node topology (an elastic range such as nnodes="1:2") that ends up on one node.
# ---------------------------------------------------------------------------------------------
ELASTIC_RANGE = ElasticTopology(nnodes=2, nproc_per_node=2)  # what elastic_topology reads from "1:2"


@pytest.mark.parametrize(("run_mode", "rank_scope"), list(itertools.product(RUN_MODES, RANK_SCOPES)))
def test_declared_multi_node_keeps_worker_names_on_one_node(run_mode: RunMode, rank_scope: RankScope) -> None:
    one_node = infos(1, 2)
    plans = [plan_distributed_run(run_mode, rank_scope, i, BASE, topology=ELASTIC_RANGE) for i in one_node]
    # The links were made for two workers: worker 0's link must name what the ranks on the single
    # node that joined really create.
    spec = distributed_links_spec(run_mode, rank_scope, ELASTIC_RANGE)
    link_for_worker_0 = distributed_link_target(run_mode, rank_scope, BASE, spec[0][1])
    started = [p for p in plans if p.initializes]
    if run_mode == "new":
        assert {p.group for p in started} == {link_for_worker_0.name}
    else:
        assert {p.run_id for p in started} == {link_for_worker_0.name}
    if rank_scope == "worker":
        assert link_for_worker_0.name == f"{BASE}-worker-0"
    if run_mode == "shared":
        # Labels follow the same multi-node naming as the run ids.
        assert [p.shared.label for p in plans if p.shared] == ["worker-0-rank-0", "worker-0-rank-1"]


def test_declared_topology_never_overrides_a_multi_node_environment() -> None:
    single = ElasticTopology(nnodes=1, nproc_per_node=2)
    info = infos(*MULTI_NODE)[2]
    assert plan_distributed_run("auto", "worker", info, BASE, topology=single).run_id == f"{BASE}-worker-1"
    assert (
        plan_distributed_run("new", "worker", infos(1, 2)[1], BASE, topology=single).run_id
        == f"{BASE}-rank-1"
    )


def test_task_distributed_info() -> None:
    env = env_for(infos(*MULTI_NODE)[3])
    assert distributed.task_distributed_info(ELASTIC_RANGE, env) == infos(*MULTI_NODE)[3]
    assert distributed.task_distributed_info(None, env) == infos(*MULTI_NODE)[3]
    # An Elastic task run in-process (Flyte local mode) is the lone rank of a one-process job ...
    lone = distributed.task_distributed_info(ElasticTopology(1, 2), {})
    assert lone == DistributedInfo(0, 0, 1, 1, 0, 1)
    assert plan_distributed_run("new", "global", lone, BASE) == RunPlan(
        True, f"{BASE}-rank-0", BASE, None, True
    )
    assert distributed_link_target("new", "global", BASE, None) == LinkTarget("groups", BASE)
    # ... but a task that is not distributed (or declared 1x1) stays out of distributed planning.
    assert distributed.task_distributed_info(None, {}) is None
    assert distributed.task_distributed_info(ElasticTopology(1, 1), {}) is None
    with pytest.raises(WandbConfigError):
        distributed.task_distributed_info(ELASTIC_RANGE, {"RANK": "2", "WORLD_SIZE": "2"})


def test_user_id_is_the_base() -> None:
    info = infos(*MULTI_NODE)[3]
    assert plan_distributed_run("new", "worker", info, "my-id").run_id == "my-id-worker-1-rank-1"
    assert plan_distributed_run("shared", "worker", info, "my-id").run_id == "my-id-worker-1"
    assert distributed_link_target("shared", "worker", "my-id", 1) == LinkTarget("runs", "my-id-worker-1")


def test_user_group_replaces_computed_group() -> None:
    multi = infos(*MULTI_NODE)
    for info in multi:
        plan = plan_distributed_run("new", "worker", info, BASE, group="sweep-7")
        assert plan.group == "sweep-7"
        # Run ids stay unique per rank when the group is shared by all workers.
        assert plan.run_id == f"{BASE}-worker-{info.worker_index}-rank-{info.local_rank}"
    assert distributed_link_target("new", "worker", BASE, 1, group="sweep-7") == LinkTarget(
        "groups", "sweep-7"
    )
    # In auto/shared mode the user's group is passed through; the link still names the run.
    auto = plan_distributed_run("auto", "global", multi[0], BASE, group="sweep-7")
    assert (auto.run_id, auto.group) == (BASE, "sweep-7")
    shared = plan_distributed_run("shared", "worker", multi[2], BASE, group="sweep-7")
    assert (shared.run_id, shared.group) == (f"{BASE}-worker-1", "sweep-7")
    assert distributed_link_target("auto", "global", BASE, None, group="sweep-7") == LinkTarget("runs", BASE)


# ---------------------------------------------------------------------------------------------
# Links agree with runs.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("topology", TOPOLOGIES, ids=lambda t: f"{t[0]}x{t[1]}")
@pytest.mark.parametrize(("run_mode", "rank_scope"), list(itertools.product(RUN_MODES, RANK_SCOPES)))
@pytest.mark.parametrize("group", [None, "team-group"])
def test_links_agree_with_plans(
    topology: tuple[int, int], run_mode: RunMode, rank_scope: RankScope, group: str | None
) -> None:
    n, m = topology
    all_infos = infos(n, m)
    spec = distributed_links_spec(run_mode, rank_scope, ElasticTopology(nnodes=n, nproc_per_node=m))
    if rank_scope == "worker" and n > 1:
        assert [idx for _, idx in spec] == list(range(n))
    else:
        assert spec == [("Weights & Biases", None)]
    linked_runs: set[str] = set()
    for _, worker_index in spec:
        target = distributed_link_target(run_mode, rank_scope, BASE, worker_index, group)
        ranks = [i for i in all_infos if worker_index is None or i.worker_index == worker_index]
        plans = [plan_distributed_run(run_mode, rank_scope, i, BASE, group) for i in ranks]
        started = [p for p in plans if p.initializes]
        assert started, "every link must cover ranks that start a run"
        if run_mode == "new":
            assert target.kind == "groups"
            assert {p.group for p in started} == {target.name}
        else:
            assert target.kind == "runs"
            assert {p.run_id for p in started} == {target.name}
            linked_runs.add(target.name)
    if run_mode != "new":
        # Every run that any rank starts is reachable from some link.
        all_runs = {
            p.run_id
            for p in (plan_distributed_run(run_mode, rank_scope, i, BASE, group) for i in all_infos)
            if p.initializes
        }
        assert all_runs == linked_runs


def test_link_targets_literal() -> None:
    assert distributed_link_target("auto", "global", BASE, None) == LinkTarget("runs", BASE)
    assert distributed_link_target("auto", "worker", BASE, 0) == LinkTarget("runs", f"{BASE}-worker-0")
    assert distributed_link_target("shared", "worker", BASE, None) == LinkTarget("runs", BASE)
    assert distributed_link_target("new", "global", BASE, None) == LinkTarget("groups", BASE)
    assert distributed_link_target("new", "worker", BASE, 1) == LinkTarget("groups", f"{BASE}-worker-1")
    # Global-scope runs do not depend on the worker, so neither does their link.
    assert distributed_link_target("new", "global", BASE, 1) == LinkTarget("groups", BASE)


def test_links_spec_names() -> None:
    topo = ElasticTopology(nnodes=3, nproc_per_node=2)
    assert distributed_links_spec("shared", "worker", topo) == [
        ("Weights & Biases Worker 0", 0),
        ("Weights & Biases Worker 1", 1),
        ("Weights & Biases Worker 2", 2),
    ]
    assert distributed_links_spec("auto", "global", topo) == [("Weights & Biases", None)]
    assert distributed_links_spec("new", "worker", ElasticTopology(1, 8)) == [("Weights & Biases", None)]
    assert distributed_links_spec("auto", "worker", None) == [("Weights & Biases", None)]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: plan_distributed_run("sometimes", "global", infos(1, 2)[0], BASE), "run_mode"),  # type: ignore[arg-type]
        (lambda: plan_distributed_run("auto", "node", infos(1, 2)[0], BASE), "rank_scope"),  # type: ignore[arg-type]
        (lambda: plan_distributed_run("auto", "global", infos(1, 2)[0], ""), "id"),
        (lambda: plan_distributed_run("new", "global", infos(1, 2)[0], BASE, group=""), "group"),
        (lambda: distributed_link_target("new", "worker", BASE, -1), "worker_index"),
        (lambda: distributed_links_spec("auto", "nodes", None), "rank_scope"),  # type: ignore[arg-type]
    ],
)
def test_bad_requests(call: Any, field: str) -> None:
    with pytest.raises(WandbConfigError) as err:
        call()
    assert err.value.field == field


# ---------------------------------------------------------------------------------------------
# DistributedInfo
# ---------------------------------------------------------------------------------------------
def test_distributed_info_is_a_read_only_mapping() -> None:
    info = DistributedInfo(
        rank=3, local_rank=1, world_size=4, local_world_size=2, worker_index=1, num_workers=2
    )
    expected = {
        "rank": 3,
        "local_rank": 1,
        "world_size": 4,
        "local_world_size": 2,
        "worker_index": 1,
        "num_workers": 2,
    }
    assert isinstance(info, Mapping)
    assert dict(info) == expected
    assert info == expected
    assert info["rank"] == 3 and info["num_workers"] == 2
    assert "rank" in info and "is_multi_node" not in info
    assert 0 not in info  # type: ignore[comparison-overlap]
    assert len(info) == 6 and list(info) == list(expected)
    assert info.get("missing") is None
    with pytest.raises(KeyError):
        info["missing"]
    with pytest.raises(TypeError):
        info["rank"] = 0  # type: ignore[index]
    with pytest.raises(AttributeError):
        info.rank = 0  # type: ignore[misc]
    assert info.is_multi_node
    assert not DistributedInfo(1, 1, 4, 4, 0, 1).is_multi_node
    # Frozen and hashable, usable as a key like any value object.
    assert {info: "x"}[DistributedInfo(3, 1, 4, 2, 1, 2)] == "x"
    assert info != DistributedInfo(2, 0, 4, 2, 1, 2)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rank": 4}, "rank"),
        ({"rank": -1}, "rank"),
        ({"local_rank": 2}, "local_rank"),
        ({"world_size": 0, "rank": 0, "local_rank": 0}, "world_size"),
        ({"local_world_size": 3}, "local_world_size"),
        ({"num_workers": 1}, "num_workers"),
        ({"worker_index": 2}, "worker_index"),
        ({"rank": "1"}, "rank"),
    ],
)
def test_distributed_info_validates(kwargs: dict[str, Any], field: str) -> None:
    values: dict[str, Any] = {
        "rank": 1,
        "local_rank": 1,
        "world_size": 4,
        "local_world_size": 2,
        "worker_index": 0,
        "num_workers": 2,
    }
    values.update(kwargs)
    with pytest.raises(WandbConfigError) as err:
        DistributedInfo(**values)
    assert err.value.field == field
    assert err.value.origin == "DistributedInfo()"


# ---------------------------------------------------------------------------------------------
# read_distributed_info
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("topology", TOPOLOGIES, ids=lambda t: f"{t[0]}x{t[1]}")
def test_read_round_trips_every_rank(topology: tuple[int, int]) -> None:
    for info in infos(*topology):
        assert read_distributed_info(env_for(info)) == info


def test_read_defaults() -> None:
    info = read_distributed_info({"RANK": "2", "WORLD_SIZE": "4"})
    assert info == DistributedInfo(
        rank=2, local_rank=0, world_size=4, local_world_size=4, worker_index=0, num_workers=1
    )
    info = read_distributed_info({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert info is not None
    assert (info.num_workers, info.worker_index, info.is_multi_node) == (2, 0, True)
    assert read_distributed_info({"RANK": " 1 ", "WORLD_SIZE": "2"}) == DistributedInfo(1, 0, 2, 2, 0, 1)


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"WORLD_SIZE": "4"},
        {"RANK": "0"},
        # Only RANK/WORLD_SIZE decide whether this is a distributed job at all.
        {"LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "0"},
        {"RANK": "0", "WORLD_SIZE": "1"},
        {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "GROUP_RANK": "0"},
    ],
)
def test_read_not_distributed(env: dict[str, str]) -> None:
    assert read_distributed_info(env) is None


@pytest.mark.parametrize(
    ("env", "variable", "value"),
    [
        ({"RANK": "zero", "WORLD_SIZE": "4"}, "RANK", "zero"),
        ({"RANK": "1.0", "WORLD_SIZE": "4"}, "RANK", "1.0"),
        ({"RANK": "", "WORLD_SIZE": "4"}, "RANK", ""),
        ({"RANK": "0", "WORLD_SIZE": "4x"}, "WORLD_SIZE", "4x"),
        ({"RANK": "0", "WORLD_SIZE": "1_0"}, "WORLD_SIZE", "1_0"),
        ({"RANK": "-1", "WORLD_SIZE": "4"}, "RANK", "-1"),
        ({"RANK": "0", "WORLD_SIZE": "4", "LOCAL_RANK": "-2"}, "LOCAL_RANK", "-2"),
        ({"RANK": "0", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "two"}, "LOCAL_WORLD_SIZE", "two"),
        ({"RANK": "0", "WORLD_SIZE": "4", "GROUP_RANK": "g"}, "GROUP_RANK", "g"),
        ({"RANK": "0", "WORLD_SIZE": "0"}, "WORLD_SIZE", 0),
        ({"RANK": "4", "WORLD_SIZE": "4"}, "RANK", 4),
        # Validated even though a world of one is not distributed.
        ({"RANK": "1", "WORLD_SIZE": "1"}, "RANK", 1),
        ({"RANK": "0", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "0"}, "LOCAL_WORLD_SIZE", 0),
        ({"RANK": "0", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "LOCAL_RANK": "2"}, "LOCAL_RANK", 2),
        ({"RANK": "0", "WORLD_SIZE": "4", "LOCAL_RANK": "4"}, "LOCAL_RANK", 4),
        ({"RANK": "0", "WORLD_SIZE": "6", "LOCAL_WORLD_SIZE": "4"}, "LOCAL_WORLD_SIZE", 4),
        ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "4"}, "LOCAL_WORLD_SIZE", 4),
        ({"RANK": "0", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "2"}, "GROUP_RANK", 2),
        ({"RANK": "0", "WORLD_SIZE": "4", "GROUP_RANK": "1"}, "GROUP_RANK", 1),
    ],
)
def test_read_rejects_inconsistent_env(env: dict[str, str], variable: str, value: object) -> None:
    with pytest.raises(WandbConfigError) as err:
        read_distributed_info(env)
    assert err.value.origin == f"env {variable}"
    assert err.value.value == value
    message = str(err.value)
    assert f"env {variable}" in message
    assert repr(value) in message


def test_get_distributed_info_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert get_distributed_info() is None
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("GROUP_RANK", "1")
    info = get_distributed_info()
    assert info == DistributedInfo(3, 1, 4, 2, 1, 2)
    assert read_distributed_info() == info
    monkeypatch.setenv("RANK", "9")
    with pytest.raises(WandbConfigError, match="env RANK"):
        get_distributed_info()


def test_env_plan_end_to_end() -> None:
    # What rank 3 of a 2x2 job does, starting from the variables torchrun sets.
    info = read_distributed_info(
        {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1"}
    )
    assert info is not None
    plan = plan_distributed_run("shared", "worker", info, BASE)
    assert plan == RunPlan(
        initializes=True,
        run_id=f"{BASE}-worker-1",
        group=None,
        shared=SharedMode(primary=False, label="worker-1-rank-1"),
        finishes=True,
    )


# ---------------------------------------------------------------------------------------------
# Elastic plugin config
# ---------------------------------------------------------------------------------------------
def _elastic() -> type[Any]:
    pytorch = pytest.importorskip("flyteplugins.pytorch")
    elastic: type[Any] = pytorch.Elastic
    return elastic


@pytest.mark.parametrize(
    ("nnodes", "nproc", "expected"),
    [
        (1, 1, ElasticTopology(1, 1)),
        (1, 4, ElasticTopology(1, 4)),
        (2, 2, ElasticTopology(2, 2)),
        ("2", 3, ElasticTopology(2, 3)),
        ("1:2", 2, ElasticTopology(2, 2)),
        ("2:4", 1, ElasticTopology(4, 1)),
        ("1:1", 8, ElasticTopology(1, 8)),
    ],
)
def test_elastic_topology_from_real_elastic(nnodes: int | str, nproc: int, expected: ElasticTopology) -> None:
    config = _elastic()(nnodes=nnodes, nproc_per_node=nproc)
    topo = elastic_topology(config)
    assert topo == expected
    assert topo is not None
    assert topo.is_multi_node == (expected.nnodes > 1)
    assert topo.is_distributed == (expected.nnodes > 1 or expected.nproc_per_node > 1)


def test_elastic_topology_string_nproc() -> None:
    assert elastic_topology(_elastic()(nnodes=1, nproc_per_node="2")) == ElasticTopology(1, 2)


@pytest.mark.parametrize(
    ("nnodes", "nproc", "field"),
    [
        ("many", 2, "nnodes"),
        ("1:2:3", 2, "nnodes"),
        ("4:2", 2, "nnodes"),
        ("0", 2, "nnodes"),
        (":2", 2, "nnodes"),
        (0, 2, "nnodes"),
        (True, 2, "nnodes"),
        (2.0, 2, "nnodes"),
        (2, "auto", "nproc_per_node"),
        (2, None, "nproc_per_node"),
        (2, -1, "nproc_per_node"),
    ],
)
def test_elastic_topology_rejects_garbage(nnodes: object, nproc: object, field: str) -> None:
    with pytest.raises(WandbConfigError) as err:
        elastic_topology(_elastic()(nnodes=nnodes, nproc_per_node=nproc))
    assert err.value.field == field
    assert err.value.origin == "task plugin_config (Elastic)"
    assert repr(nnodes if field == "nnodes" else nproc) in str(err.value)


def test_elastic_topology_ignores_other_configs() -> None:
    @dataclass
    class Ray:
        nnodes: int = 2
        nproc_per_node: int = 2

    assert elastic_topology(None) is None
    assert elastic_topology(Ray()) is None
    assert elastic_topology({"nnodes": 2, "nproc_per_node": 2}) is None


def test_elastic_topology_recognises_by_name_only() -> None:
    # A stand-in with the same class name is read the same way, which is what lets the
    # plugin avoid importing flyteplugins.pytorch (and torch) at all.
    @dataclass
    class Elastic:
        nnodes: int | str
        nproc_per_node: int

    assert elastic_topology(Elastic(nnodes="1:3", nproc_per_node=2)) == ElasticTopology(3, 2)


def test_elastic_topology_validates_directly() -> None:
    with pytest.raises(WandbConfigError) as err:
        ElasticTopology(nnodes=0, nproc_per_node=1)
    assert err.value.field == "nnodes"


def test_import_does_not_load_torch() -> None:
    root = Path(__file__).resolve().parents[1]
    code = "import sys, flyteplugins.wandb._distributed; assert 'torch' not in sys.modules; print('ok')"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_module_imports_neither_wandb_nor_torch() -> None:
    # The package's __init__ may load wandb for other features, so check this module's own imports.
    source = Path(distributed.__file__).read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or "").split(".")[0])
    assert imported <= {
        "__future__",
        "os",
        "re",
        "collections",
        "dataclasses",
        "typing",
        "._errors",
        "._types",
    }
    assert "wandb" not in imported and "torch" not in imported
