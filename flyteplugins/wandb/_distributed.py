"""Decisions for W&B logging in distributed PyTorch training.

Everything here is pure: it reads the torch-elastic environment, decides which process starts which
W&B run, and names the runs, groups and task links. Nothing here imports ``wandb`` or ``torch``, so
that deciding never pays for (or depends on) either library, and the rules can be checked for every
rank of a topology in one process.

The run ids and group names come from one set of helpers used both by :func:`plan_distributed_run`
(what each rank does) and by :func:`distributed_link_target` (what the task's link shows), so a link
cannot name a run or group that the ranks do not create.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from ._errors import WandbConfigError
from ._types import RankScope, RunMode

__all__ = [
    "DistributedInfo",
    "ElasticTopology",
    "LinkTarget",
    "RunPlan",
    "SharedMode",
    "distributed_link_target",
    "distributed_links_spec",
    "elastic_topology",
    "get_distributed_info",
    "plan_distributed_run",
    "read_distributed_info",
    "task_distributed_info",
]

_FIELDS: tuple[str, ...] = (
    "rank",
    "local_rank",
    "world_size",
    "local_world_size",
    "worker_index",
    "num_workers",
)

# torchrun's names for the fields that are read from the environment; num_workers is derived.
_ENV_VARS: dict[str, str] = {
    "rank": "RANK",
    "local_rank": "LOCAL_RANK",
    "world_size": "WORLD_SIZE",
    "local_world_size": "LOCAL_WORLD_SIZE",
    "worker_index": "GROUP_RANK",
    "num_workers": "WORLD_SIZE // LOCAL_WORLD_SIZE",
}

_ELASTIC_ORIGIN = "task plugin_config (Elastic)"

# ASCII only: int() would also accept other scripts' digits and "1_0", which no launcher writes.
_INT_RE = re.compile(r"\s*([+-]?[0-9]+)\s*", re.ASCII)

_LINK_NAME = "Weights & Biases"


def _check_topology(values: Mapping[str, int], labels: Mapping[str, str], origins: Mapping[str, str]) -> None:
    """Raise for the first inconsistency in a rank's view of the topology.

    ``labels`` are the names shown in ``allowed`` (env var names or field names) and ``origins``
    the layer each field came from, so one rule set serves the environment and direct construction.
    """

    def fail(name: str, allowed: str) -> WandbConfigError:
        return WandbConfigError(name, values[name], origins[name], allowed)

    for name in _FIELDS:
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(name, "an integer")
        if value < 0:
            raise fail(name, "a non-negative integer")
    world_size = values["world_size"]
    local_world_size = values["local_world_size"]
    if world_size < 1:
        raise fail("world_size", "a positive integer")
    if local_world_size < 1:
        raise fail("local_world_size", "a positive integer")
    if values["rank"] >= world_size:
        raise fail("rank", f"an integer below {labels['world_size']}={world_size}")
    if values["local_rank"] >= local_world_size:
        raise fail("local_rank", f"an integer below {labels['local_world_size']}={local_world_size}")
    if world_size % local_world_size:
        raise fail(
            "local_world_size",
            f"a divisor of {labels['world_size']}={world_size} (every worker runs as many processes)",
        )
    num_workers = world_size // local_world_size
    if values["num_workers"] != num_workers:
        raise fail(
            "num_workers",
            f"{labels['world_size']} // {labels['local_world_size']} = {num_workers}",
        )
    if values["worker_index"] >= num_workers:
        raise fail(
            "worker_index",
            f"an integer below the number of workers, {labels['num_workers']} = {num_workers}",
        )


@dataclass(frozen=True, slots=True)
class DistributedInfo(Mapping[str, int]):
    """Where this process sits in a torch-elastic job.

    It is also a read-only mapping over its six fields, because code written against earlier
    versions of this plugin treats the result of :func:`get_distributed_info` as a ``dict``.

    Attributes:
        rank: global rank, ``0 <= rank < world_size``.
        local_rank: rank within this worker (node), ``0 <= local_rank < local_world_size``.
        world_size: number of processes in the job.
        local_world_size: number of processes per worker.
        worker_index: index of this worker (torchrun's ``GROUP_RANK``).
        num_workers: number of workers, ``world_size // local_world_size``.

    Example:
        >>> info = DistributedInfo(rank=3, local_rank=1, world_size=4, local_world_size=2,
        ...                        worker_index=1, num_workers=2)
        >>> info.is_multi_node, info["local_rank"], dict(info)["worker_index"]
        (True, 1, 1)
    """

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    worker_index: int
    num_workers: int

    def __post_init__(self) -> None:
        _check_topology(
            {name: getattr(self, name) for name in _FIELDS},
            {name: name for name in _FIELDS},
            dict.fromkeys(_FIELDS, "DistributedInfo()"),
        )

    @property
    def is_multi_node(self) -> bool:
        """Whether the job spans more than one worker.

        Example:
            >>> DistributedInfo(0, 0, 4, 4, 0, 1).is_multi_node
            False
        """
        return self.num_workers > 1

    def __getitem__(self, key: str) -> int:
        if key in _FIELDS:
            value: int = getattr(self, key)
            return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELDS)

    def __len__(self) -> int:
        return len(_FIELDS)

    def __eq__(self, other: object) -> bool:
        # Compare as a mapping so that `info == {"rank": 0, ...}` keeps working for dict-era code.
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented


def _parse_env_int(environ: Mapping[str, str], name: str) -> int:
    raw = environ[_ENV_VARS[name]]
    match = _INT_RE.fullmatch(raw)
    if match is None:
        raise WandbConfigError(name, raw, f"env {_ENV_VARS[name]}", "a non-negative integer")
    value = int(match.group(1))
    if value < 0:
        raise WandbConfigError(name, raw, f"env {_ENV_VARS[name]}", "a non-negative integer")
    return value


def read_distributed_info(environ: Mapping[str, str] | None = None) -> DistributedInfo | None:
    """Read this process's place in a torch-elastic job from the launcher's environment variables.

    ``RANK`` and ``WORLD_SIZE`` are required; ``LOCAL_RANK`` defaults to 0, ``LOCAL_WORLD_SIZE`` to
    ``WORLD_SIZE`` and ``GROUP_RANK`` to 0. All present values are validated even when the job turns
    out to have a single process, so that a broken launcher setup is reported rather than ignored.

    Args:
        environ: the variables to read; ``os.environ`` when omitted.

    Returns:
        ``None`` when ``RANK`` or ``WORLD_SIZE`` is missing or ``WORLD_SIZE`` is 1, else the info.

    Raises:
        WandbConfigError: a variable is not a non-negative integer or disagrees with the others;
            its ``origin`` names the variable, e.g. ``env RANK``.

    Example:
        >>> env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
        ...        "GROUP_RANK": "1"}
        >>> info = read_distributed_info(env)
        >>> info.worker_index, info.num_workers
        (1, 2)
        >>> read_distributed_info({"RANK": "0", "WORLD_SIZE": "1"}) is None
        True
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    if _ENV_VARS["rank"] not in env or _ENV_VARS["world_size"] not in env:
        return None
    values: dict[str, int] = {}
    values["rank"] = _parse_env_int(env, "rank")
    values["world_size"] = _parse_env_int(env, "world_size")
    values["local_rank"] = _parse_env_int(env, "local_rank") if _ENV_VARS["local_rank"] in env else 0
    values["local_world_size"] = (
        _parse_env_int(env, "local_world_size")
        if _ENV_VARS["local_world_size"] in env
        else values["world_size"]
    )
    values["worker_index"] = _parse_env_int(env, "worker_index") if _ENV_VARS["worker_index"] in env else 0
    # Guarded so that a zero LOCAL_WORLD_SIZE is reported by the check below, not as ZeroDivisionError.
    values["num_workers"] = (
        values["world_size"] // values["local_world_size"] if values["local_world_size"] > 0 else 0
    )
    _check_topology(values, _ENV_VARS, {name: f"env {var}" for name, var in _ENV_VARS.items()})
    if values["world_size"] == 1:
        return None
    return DistributedInfo(**values)


def get_distributed_info() -> DistributedInfo | None:
    """Describe this process's place in the torch-elastic job it runs in, if any.

    Returns:
        ``None`` outside distributed training (or with a single process), else the
        :class:`DistributedInfo`, which can also be used as a read-only ``dict``.

    Raises:
        WandbConfigError: the launcher's environment variables are inconsistent.

    Example:
        >>> from flyteplugins.wandb._distributed import get_distributed_info
        >>> info = get_distributed_info()  # inside a task launched with torchrun
        >>> if info is not None and info["rank"] == 0:
        ...     print(f"{info.world_size} processes on {info.num_workers} nodes")
    """
    return read_distributed_info()


@dataclass(frozen=True, slots=True)
class SharedMode:
    """W&B shared-mode settings for one rank writing to a run that several ranks share.

    They map onto ``wandb.Settings(mode="shared", x_primary=primary, x_label=label,
    x_update_finish_state=primary)``: every rank finishes its own writer (which flushes what it
    logged), but only the primary's finish sets the run's final state.

    Example:
        >>> SharedMode(primary=False, label="worker-1-rank-0").primary
        False
    """

    primary: bool
    label: str


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What one process does with W&B.

    Attributes:
        initializes: this process calls ``wandb.init``.
        run_id: the run id to pass to ``wandb.init``; ``None`` when ``initializes`` is False.
        group: the W&B group to pass, if any.
        shared: shared-mode settings when several ranks write to the same run.
        finishes: this process calls ``run.finish()`` when it is done. True for every process that
            initializes: a shared-mode writer that is not the primary must still finish to flush
            its data; ``shared.primary`` decides whose finish marks the run finished.

    Example:
        >>> plan = RunPlan(initializes=True, run_id="r-a0", group=None, shared=None, finishes=True)
        >>> plan.run_id
        'r-a0'
    """

    initializes: bool
    run_id: str | None
    group: str | None
    shared: SharedMode | None
    finishes: bool


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """The W&B page a task link points at, relative to ``{host}/{entity}/{project}/``.

    Attributes:
        kind: ``"runs"`` for a single run, ``"groups"`` for a group of runs.
        name: the run id or group name, not URL-quoted.

    Example:
        >>> target = LinkTarget(kind="groups", name="r-a0")
        >>> f"{target.kind}/{target.name}"
        'groups/r-a0'
    """

    kind: Literal["runs", "groups"]
    name: str


_NOT_INITIALIZING = RunPlan(initializes=False, run_id=None, group=None, shared=None, finishes=False)


def _check_modes(run_mode: str, rank_scope: str, origin: str) -> None:
    # Callers may come from untyped config; a typo must not silently pick a branch.
    if run_mode not in get_args(RunMode):
        raise WandbConfigError("run_mode", run_mode, origin, " or ".join(map(repr, get_args(RunMode))))
    if rank_scope not in get_args(RankScope):
        raise WandbConfigError("rank_scope", rank_scope, origin, " or ".join(map(repr, get_args(RankScope))))


def _check_request(run_mode: str, rank_scope: str, base_id: str, group: str | None, origin: str) -> None:
    _check_modes(run_mode, rank_scope, origin)
    if not base_id:
        raise WandbConfigError("id", base_id, origin, "a non-empty run id")
    if group is not None and not group:
        raise WandbConfigError("group", group, origin, "a non-empty group name or None")


def _scope_worker(rank_scope: RankScope, worker_index: int | None) -> int | None:
    """The worker a run belongs to, or ``None`` when runs span the whole job."""
    return worker_index if rank_scope == "worker" else None


def _scope_name(base_id: str, worker: int | None) -> str:
    """Id of an auto/shared run, and the computed group of new-mode runs, for one scope."""
    return base_id if worker is None else f"{base_id}-worker-{worker}"


def _new_group(base_id: str, worker: int | None, group: str | None) -> str:
    return group if group is not None else _scope_name(base_id, worker)


def _new_run_id(base_id: str, worker: int | None, rank_in_scope: int) -> str:
    return f"{_scope_name(base_id, worker)}-rank-{rank_in_scope}"


def plan_distributed_run(
    run_mode: RunMode,
    rank_scope: RankScope,
    info: DistributedInfo,
    base_id: str,
    group: str | None = None,
    *,
    topology: ElasticTopology | None = None,
) -> RunPlan:
    """Decide what this rank does with W&B in distributed training.

    With N workers of M processes each:

    - ``auto``: global rank 0 (``global``) or local rank 0 of each worker (``worker``) starts the
      run, ``{base_id}`` or ``{base_id}-worker-{i}``, and finishes it; other ranks do nothing.
    - ``shared``: every rank joins the same run in W&B shared mode, one run for the job
      (``global``) or per worker (``worker``); every rank finishes its own writer, and the
      primary (global rank 0, or local rank 0 of each worker) owns the run's final state.
    - ``new``: every rank starts and finishes its own run, ``{base_id}-rank-{rank}`` in group
      ``{base_id}`` (``global``) or ``{base_id}-worker-{i}-rank-{local_rank}`` in group
      ``{base_id}-worker-{i}`` (``worker``).

    On a single worker, ``worker`` scope behaves exactly like ``global``. A task declared for
    several workers (``topology``, e.g. an elastic range ``nnodes="1:2"``) keeps per-worker names
    even when only one worker joined, because its links were made for several workers before the
    job started. A ``group`` given by the user replaces the computed group and is passed through
    in every mode.

    Args:
        run_mode: ``"auto"``, ``"shared"`` or ``"new"``.
        rank_scope: ``"global"`` or ``"worker"``.
        info: this process's place in the job.
        base_id: ``{run_name}-{action_name}``, or the run id the user asked for.
        group: the W&B group the user asked for, if any.
        topology: the task's declared topology (:func:`elastic_topology`), if known.

    Raises:
        WandbConfigError: unknown mode or scope, or an empty id or group.

    Example:
        >>> info = DistributedInfo(rank=3, local_rank=1, world_size=4, local_world_size=2,
        ...                        worker_index=1, num_workers=2)
        >>> plan = plan_distributed_run("new", "worker", info, "r-a0")
        >>> plan.run_id, plan.group
        ('r-a0-worker-1-rank-1', 'r-a0-worker-1')
        >>> plan_distributed_run("auto", "global", info, "r-a0").initializes
        False
    """
    _check_request(run_mode, rank_scope, base_id, group, "plan_distributed_run()")
    multi_node = info.is_multi_node or (topology is not None and topology.is_multi_node)
    worker = _scope_worker(rank_scope, info.worker_index if multi_node else None)
    # The lead rank of this process's scope: the whole job, or its own worker.
    is_lead = info.rank == 0 if worker is None else info.local_rank == 0

    if run_mode == "new":
        rank_in_scope = info.rank if worker is None else info.local_rank
        return RunPlan(
            initializes=True,
            run_id=_new_run_id(base_id, worker, rank_in_scope),
            group=_new_group(base_id, worker, group),
            shared=None,
            finishes=True,
        )
    if run_mode == "auto":
        if not is_lead:
            return _NOT_INITIALIZING
        return RunPlan(
            initializes=True,
            run_id=_scope_name(base_id, worker),
            group=group,
            shared=None,
            finishes=True,
        )
    label = f"worker-{info.worker_index}-rank-{info.local_rank}" if multi_node else f"rank-{info.rank}"
    return RunPlan(
        initializes=True,
        run_id=_scope_name(base_id, worker),
        group=group,
        shared=SharedMode(primary=is_lead, label=label),
        finishes=True,
    )


def distributed_link_target(
    run_mode: RunMode,
    rank_scope: RankScope,
    base_id: str,
    worker_index: int | None,
    group: str | None = None,
) -> LinkTarget:
    """The W&B page a distributed task's link should open.

    ``auto`` and ``shared`` link to the run, ``new`` to the group holding the ranks' runs. The
    names come from the same helpers as :func:`plan_distributed_run`, so they always match.

    Args:
        run_mode: ``"auto"``, ``"shared"`` or ``"new"``.
        rank_scope: ``"global"`` or ``"worker"``.
        base_id: ``{run_name}-{action_name}``, or the run id the user asked for.
        worker_index: the worker this link is for; ``None`` for a single worker or ``global``
            scope (it is ignored for ``global`` scope, where runs do not depend on the worker).
        group: the W&B group the user asked for, if any.

    Raises:
        WandbConfigError: unknown mode or scope, an empty id or group, or a negative worker.

    Example:
        >>> distributed_link_target("shared", "worker", "r-a0", 1)
        LinkTarget(kind='runs', name='r-a0-worker-1')
        >>> distributed_link_target("new", "global", "r-a0", None)
        LinkTarget(kind='groups', name='r-a0')
    """
    origin = "distributed_link_target()"
    _check_request(run_mode, rank_scope, base_id, group, origin)
    if worker_index is not None and (
        isinstance(worker_index, bool) or not isinstance(worker_index, int) or worker_index < 0
    ):
        raise WandbConfigError("worker_index", worker_index, origin, "a non-negative integer or None")
    worker = _scope_worker(rank_scope, worker_index)
    if run_mode == "new":
        return LinkTarget(kind="groups", name=_new_group(base_id, worker, group))
    return LinkTarget(kind="runs", name=_scope_name(base_id, worker))


@dataclass(frozen=True, slots=True)
class ElasticTopology:
    """The shape of a torch-elastic task, as declared by its ``Elastic`` plugin config.

    Attributes:
        nnodes: number of workers (nodes); the upper bound of an elastic range.
        nproc_per_node: processes per worker.

    Example:
        >>> topo = ElasticTopology(nnodes=2, nproc_per_node=1)
        >>> topo.is_distributed, topo.is_multi_node
        (True, True)
    """

    nnodes: int
    nproc_per_node: int

    def __post_init__(self) -> None:
        for name in ("nnodes", "nproc_per_node"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise WandbConfigError(name, value, "ElasticTopology()", "a positive integer")

    @property
    def is_distributed(self) -> bool:
        """Whether the task runs more than one process.

        Example:
            >>> ElasticTopology(nnodes=1, nproc_per_node=1).is_distributed
            False
        """
        return self.nnodes > 1 or self.nproc_per_node > 1

    @property
    def is_multi_node(self) -> bool:
        """Whether the task may run on more than one worker.

        Example:
            >>> ElasticTopology(nnodes=1, nproc_per_node=8).is_multi_node
            False
        """
        return self.nnodes > 1


def _parse_elastic_count(name: str, value: object) -> int:
    allowed = 'a positive integer, a string like "2", or an elastic range like "1:2"'
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise WandbConfigError(name, value, _ELASTIC_ORIGIN, allowed)
        return value
    if not isinstance(value, str):
        raise WandbConfigError(name, value, _ELASTIC_ORIGIN, allowed)
    parts = value.split(":")
    if len(parts) > 2:
        raise WandbConfigError(name, value, _ELASTIC_ORIGIN, allowed)
    bounds: list[int] = []
    for part in parts:
        match = _INT_RE.fullmatch(part)
        if match is None or int(match.group(1)) < 1:
            raise WandbConfigError(name, value, _ELASTIC_ORIGIN, allowed)
        bounds.append(int(match.group(1)))
    if bounds[0] > bounds[-1]:
        raise WandbConfigError(name, value, _ELASTIC_ORIGIN, "an elastic range whose minimum <= maximum")
    # Links are made before the job starts, so plan for the most workers the range allows.
    return bounds[-1]


def elastic_topology(plugin_config: object) -> ElasticTopology | None:
    """Read the topology of a task whose ``plugin_config`` is a ``flyteplugins.pytorch`` ``Elastic``.

    The class is recognised by name so that neither ``flyteplugins.pytorch`` nor ``torch`` has to
    be imported to decide how many links a task gets.

    Args:
        plugin_config: the task's plugin config, of any type.

    Returns:
        ``None`` unless ``plugin_config`` is an ``Elastic``; otherwise its topology, taking the
        upper bound of an elastic ``nnodes`` range such as ``"1:2"``.

    Raises:
        WandbConfigError: ``nnodes`` or ``nproc_per_node`` cannot be read as a positive count.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Elastic:
        ...     nnodes: "int | str"
        ...     nproc_per_node: int
        >>> elastic_topology(Elastic(nnodes="1:2", nproc_per_node=4))
        ElasticTopology(nnodes=2, nproc_per_node=4)
        >>> elastic_topology(None) is None
        True
    """
    if plugin_config is None or type(plugin_config).__name__ != "Elastic":
        return None
    return ElasticTopology(
        nnodes=_parse_elastic_count("nnodes", getattr(plugin_config, "nnodes", None)),
        nproc_per_node=_parse_elastic_count("nproc_per_node", getattr(plugin_config, "nproc_per_node", None)),
    )


def task_distributed_info(
    topology: ElasticTopology | None, environ: Mapping[str, str] | None = None
) -> DistributedInfo | None:
    """This process's place in the job of a task declared with ``topology``.

    The launcher's environment decides (:func:`read_distributed_info`). A task declared as
    distributed that runs as a single process without it (a local run of an ``Elastic`` task,
    which Flyte executes in-process) is planned as the only rank of a one-process job, so that its
    run is named like the task's link says.

    Args:
        topology: from :func:`elastic_topology`; ``None`` for a task that is not distributed.
        environ: the variables to read; ``os.environ`` when omitted.

    Raises:
        WandbConfigError: the launcher's environment variables are inconsistent.

    Example:
        >>> task_distributed_info(ElasticTopology(nnodes=1, nproc_per_node=2), environ={})
        DistributedInfo(rank=0, local_rank=0, world_size=1, local_world_size=1, worker_index=0, num_workers=1)
        >>> task_distributed_info(None, environ={}) is None
        True
    """
    info = read_distributed_info(environ)
    if info is not None or topology is None or not topology.is_distributed:
        return info
    return DistributedInfo(
        rank=0, local_rank=0, world_size=1, local_world_size=1, worker_index=0, num_workers=1
    )


def distributed_links_spec(
    run_mode: RunMode,
    rank_scope: RankScope,
    topology: ElasticTopology | None,
) -> list[tuple[str, int | None]]:
    """The links a task gets in the Flyte UI, as ``(link name, worker_index)`` pairs.

    A task gets one link, except with ``rank_scope="worker"`` on several nodes, where each worker
    has its own run (``auto``/``shared``) or group (``new``) and so its own link. Pass each
    ``worker_index`` to :func:`distributed_link_target`.

    Args:
        run_mode: ``"auto"``, ``"shared"`` or ``"new"``.
        rank_scope: ``"global"`` or ``"worker"``.
        topology: from :func:`elastic_topology`; ``None`` for a task that is not distributed.

    Raises:
        WandbConfigError: unknown mode or scope.

    Example:
        >>> distributed_links_spec("auto", "worker", ElasticTopology(nnodes=2, nproc_per_node=4))
        [('Weights & Biases Worker 0', 0), ('Weights & Biases Worker 1', 1)]
        >>> distributed_links_spec("new", "global", ElasticTopology(nnodes=2, nproc_per_node=4))
        [('Weights & Biases', None)]
    """
    _check_modes(run_mode, rank_scope, "distributed_links_spec()")
    if rank_scope == "worker" and topology is not None and topology.is_multi_node:
        return [(f"{_LINK_NAME} Worker {i}", i) for i in range(topology.nnodes)]
    return [(_LINK_NAME, None)]
