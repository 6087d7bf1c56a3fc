"""Distributed training with real processes: every rank of a job is its own Python process.

Each process runs ``tests/dist_worker.py`` with the torch-elastic environment of its rank
(RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK) and runs ``@wandb_init`` tasks whose
``plugin_config`` is a real ``flyteplugins.pytorch.Elastic``, the way each worker of an elastic
job does, with wandb offline. Every simulated node has its own ``WANDB_DIR`` (its own disk). The
tests compare what each rank saw with the table of the design, then read back what wandb wrote.

All ranks of one job run at the same time and pass each combination together (a file barrier).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dist_worker import clean_env

from flyteplugins.wandb._offline import OfflineRun, find_offline_run_dirs, read_offline_run

WORKER = Path(__file__).with_name("dist_worker.py")


JOB_TIMEOUT_S = 300
# Every writer's log is closed by the time its process exited; the wait only covers a slow disk.
READ_WAIT_S = 5.0
COMBOS = [(m, s) for m in ("auto", "shared", "new") for s in ("global", "worker")]


@dataclass
class Job:
    """One launched job: its processes' reports (by global rank) and where each node wrote."""

    name: str
    nnodes: int
    nproc: int
    root: Path
    reports: list[dict[str, Any]]

    def node_dir(self, node: int) -> Path:
        return self.root / f"node-{node}"

    def rank_tmp(self, rank: int) -> Path:
        return self.root / f"node-{rank // self.nproc}" / f"rank-{rank}-tmp"

    def combo(self, run_mode: str, rank_scope: str) -> list[dict[str, Any]]:
        return [r["combos"][f"{run_mode}:{rank_scope}"] for r in self.reports]

    def runs_on_node(self, node: int) -> list[OfflineRun]:
        """What wandb wrote on one node's disk, every run folder read back."""
        return [read_offline_run(d, wait=READ_WAIT_S) for d in find_offline_run_dirs(self.node_dir(node))]


def _env_for(job_root: Path, rank: int, nnodes: int, nproc: int) -> dict[str, str]:
    node, local = divmod(rank, nproc)
    tmp = job_root / f"node-{node}" / f"rank-{rank}-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return clean_env(
        job_root / f"node-{node}",
        RANK=str(rank),
        WORLD_SIZE=str(nnodes * nproc),
        LOCAL_RANK=str(local),
        LOCAL_WORLD_SIZE=str(nproc),
        GROUP_RANK=str(node),
        # Console capture on: in shared mode wandb names each rank's console log after its label.
        WANDB_CONSOLE="wrap",
        TMPDIR=str(tmp),
    )


def launch(root: Path, nnodes: int, nproc: int, *args: str, name: str | None = None) -> tuple[Job, list[Any]]:
    """Start every rank of a job as its own process; :func:`finish` waits for them."""
    name = name or f"dj{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True, exist_ok=True)
    procs = []
    for rank in range(nnodes * nproc):
        env = _env_for(root, rank, nnodes, nproc)
        cmd = [
            sys.executable,
            str(WORKER),
            "--out",
            str(root / f"rank-{rank}.json"),
            "--name",
            name,
            "--barrier",
            str(root / "barrier"),
            *args,
        ]
        log = open(root / f"rank-{rank}.log", "wb")  # noqa: SIM115 - closed in finish()
        procs.append(
            (subprocess.Popen(cmd, cwd=env["TMPDIR"], env=env, stdout=log, stderr=subprocess.STDOUT), log)
        )
    return Job(name, nnodes, nproc, root, []), procs


def finish(job: Job, procs: list[Any]) -> Job:
    for proc, log in procs:
        try:
            proc.wait(timeout=JOB_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        finally:
            log.close()
    for rank in range(len(procs)):
        out = job.root / f"rank-{rank}.json"
        log_text = (job.root / f"rank-{rank}.log").read_text(errors="replace")[-3000:]
        assert out.exists(), f"rank {rank} wrote no report; its output:\n{log_text}"
        job.reports.append(json.loads(out.read_text()))
    return job


def run_job(root: Path, nnodes: int, nproc: int, *args: str) -> Job:
    return finish(*launch(root, nnodes, nproc, *args))


@pytest.fixture(scope="module")
def table_jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Job]:
    """Both topologies, all six combinations, launched together: 1 node x 2 and 2 nodes x 2.

    The multi-node job also asks for ``download_logs=True``, which only the owning ranks act on.
    """
    root = tmp_path_factory.mktemp("dist-table")
    single = launch(root / "1x2", 1, 2)
    multi = launch(root / "2x2", 2, 2, "--download-logs")
    return {"1x2": finish(*single), "2x2": finish(*multi)}


# ---------------------------------------------------------------------------------------------
# The table, rank by rank, written out literally ({b} is the base id every rank agreed on).
# Each row: (run id, group, shared-mode label, primary), or None for a rank that starts no run.
# ---------------------------------------------------------------------------------------------
Row = tuple[str, str | None, str | None, bool | None] | None

EXPECTED: dict[str, dict[tuple[str, str], list[Row]]] = {
    "1x2": {
        ("auto", "global"): [("{b}", None, None, None), None],
        ("auto", "worker"): [("{b}", None, None, None), None],
        ("shared", "global"): [("{b}", None, "rank-0", True), ("{b}", None, "rank-1", False)],
        ("shared", "worker"): [("{b}", None, "rank-0", True), ("{b}", None, "rank-1", False)],
        ("new", "global"): [("{b}-rank-0", "{b}", None, None), ("{b}-rank-1", "{b}", None, None)],
        ("new", "worker"): [("{b}-rank-0", "{b}", None, None), ("{b}-rank-1", "{b}", None, None)],
    },
    "2x2": {
        ("auto", "global"): [("{b}", None, None, None), None, None, None],
        ("auto", "worker"): [
            ("{b}-worker-0", None, None, None),
            None,
            ("{b}-worker-1", None, None, None),
            None,
        ],
        ("shared", "global"): [
            ("{b}", None, "worker-0-rank-0", True),
            ("{b}", None, "worker-0-rank-1", False),
            ("{b}", None, "worker-1-rank-0", False),
            ("{b}", None, "worker-1-rank-1", False),
        ],
        ("shared", "worker"): [
            ("{b}-worker-0", None, "worker-0-rank-0", True),
            ("{b}-worker-0", None, "worker-0-rank-1", False),
            ("{b}-worker-1", None, "worker-1-rank-0", True),
            ("{b}-worker-1", None, "worker-1-rank-1", False),
        ],
        ("new", "global"): [
            ("{b}-rank-0", "{b}", None, None),
            ("{b}-rank-1", "{b}", None, None),
            ("{b}-rank-2", "{b}", None, None),
            ("{b}-rank-3", "{b}", None, None),
        ],
        ("new", "worker"): [
            ("{b}-worker-0-rank-0", "{b}-worker-0", None, None),
            ("{b}-worker-0-rank-1", "{b}-worker-0", None, None),
            ("{b}-worker-1-rank-0", "{b}-worker-1", None, None),
            ("{b}-worker-1-rank-1", "{b}-worker-1", None, None),
        ],
    },
}


def expected_rows(topology: str, run_mode: str, rank_scope: str, base: str) -> list[Row]:
    return [
        None if row is None else (row[0].format(b=base), row[1] and row[1].format(b=base), row[2], row[3])
        for row in EXPECTED[topology][(run_mode, rank_scope)]
    ]


def agreed_base(job: Job, results: Sequence[dict[str, Any]], run_mode: str, rank_scope: str) -> str:
    """The base id, after checking that every rank ran the same action of the same run."""
    for rank, result in enumerate(results):
        assert result["ok"], f"rank {rank} failed:\n{result['error']}"
    actions = {(r["seen"]["run_name"], r["seen"]["action_name"]) for r in results}
    assert len(actions) == 1, f"the ranks disagree on the action: {actions}"
    ((run_name, action_name),) = actions
    assert run_name == f"{job.name}-{run_mode}-{rank_scope}"
    return f"{run_name}-{action_name}"


def seen_row(result: dict[str, Any]) -> Row:
    seen = result["seen"]
    if not seen["has_run"]:
        return None
    shared = seen["x_label"] is not None
    return (seen["run_id"], seen["group"], seen["x_label"], seen["x_primary"] if shared else None)


@pytest.mark.parametrize("topology", ["1x2", "2x2"])
@pytest.mark.parametrize(("run_mode", "rank_scope"), COMBOS)
def test_each_rank_starts_the_run_the_table_names(
    table_jobs: dict[str, Job], topology: str, run_mode: str, rank_scope: str
) -> None:
    job = table_jobs[topology]
    results = job.combo(run_mode, rank_scope)
    base = agreed_base(job, results, run_mode, rank_scope)
    assert [seen_row(r) for r in results] == expected_rows(topology, run_mode, rank_scope, base)
    for rank, result in enumerate(results):
        seen = result["seen"]
        assert seen["info"]["rank"] == rank
        if not seen["has_run"]:
            continue
        assert seen["project"] == "dist-proj"
        # Offline, W&B shared mode is off (the mode argument wins over settings.mode): each
        # writer of a shared run keeps its own local copy, under its label.
        assert seen["settings_mode"] == "offline"
        if seen["x_label"] is not None:
            assert seen["x_update_finish_state"] is seen["x_primary"]
        # wandb.run / wandb.log point at the run only in the process that owns it.
        assert seen["is_global_run"] is (seen["x_label"] is None or seen["x_primary"])
        # Every writer finished its run before the task returned (a shared-mode writer flushes
        # that way; only the primary's finish state counts).
        assert result["exit_code_on_disk"] == 0, (rank, seen["run_dir"])
        # No run is left visible to the process after the task.
    assert [r["run_visible_after"] for r in results] == [False] * len(results)


@pytest.mark.parametrize("topology", ["1x2", "2x2"])
@pytest.mark.parametrize(("run_mode", "rank_scope"), COMBOS)
def test_wandb_wrote_exactly_the_runs_of_the_table(
    table_jobs: dict[str, Job], topology: str, run_mode: str, rank_scope: str
) -> None:
    job = table_jobs[topology]
    results = job.combo(run_mode, rank_scope)
    base = agreed_base(job, results, run_mode, rank_scope)
    rows = expected_rows(topology, run_mode, rank_scope, base)
    # What each node's disk should hold for this combination: one folder per writing rank.
    expected: set[tuple[int, str, str | None, str | None, int]] = set()
    for rank, row in enumerate(rows):
        if row is not None:
            run_id, group, label, _ = row
            expected.add((rank // job.nproc, run_id, group, label, rank))
    found: set[tuple[int, str, str | None, str | None, int]] = set()
    for node in range(job.nnodes):
        for disk in job.runs_on_node(node):
            if not (disk.run_id == base or disk.run_id.startswith(f"{base}-")):
                continue  # another combination's run
            assert (disk.project, disk.entity) == ("dist-proj", "dist-team")
            assert disk.exit_code == 0, f"{disk.path.name} was not finished"
            assert not disk.truncated
            (rank,) = disk.column("rank")
            assert disk.column("value") == [10 * rank + 1]
            found.add((node, disk.run_id, disk.group, disk.label, rank))
    assert found == expected


@pytest.mark.parametrize(("run_mode", "rank_scope"), COMBOS)
def test_download_logs_runs_in_owning_ranks_only(
    table_jobs: dict[str, Job], run_mode: str, rank_scope: str
) -> None:
    job = table_jobs["2x2"]
    results = job.combo(run_mode, rank_scope)
    base = agreed_base(job, results, run_mode, rank_scope)
    for rank, row in enumerate(expected_rows("2x2", run_mode, rank_scope, base)):
        downloads = job.rank_tmp(rank) / "wandb_runs"
        mine = sorted(p.name for p in downloads.glob(f"{base}*")) if downloads.is_dir() else []
        # The owner of a run: its only writer, or the shared-mode primary.
        owner = row is not None and row[3] in (None, True)
        if not owner:
            assert mine == [], f"rank {rank} downloaded a run it does not own"
            continue
        assert row is not None
        assert mine == [row[0]]
        folder = downloads / row[0]
        assert (folder / "summary.json").is_file() and (folder / "metrics_history.json").is_file()
        if row[2] is None:  # a run of its own: the summary is this rank's
            assert json.loads((folder / "summary.json").read_text())["rank"] == rank


@pytest.mark.parametrize("topology", ["1x2", "2x2"])
def test_offline_shared_writers_keep_labelled_folders(table_jobs: dict[str, Job], topology: str) -> None:
    job = table_jobs[topology]
    for rank_scope in ("global", "worker"):
        for result in job.combo("shared", rank_scope):
            seen = result["seen"]
            assert Path(seen["run_dir"]).name.endswith(f"-{seen['run_id']}-{seen['x_label']}")


def test_remote_worker_path_with_user_id_and_group(tmp_path: Path) -> None:
    # What the Elastic plugin runs in each worker of a remote job: the task's function, cloudpickled,
    # called by launcher_entrypoint inside a remote-mode task context (action a0 of the run). The
    # user's id is the base of every rank's run and the user's group replaces the computed one.
    # download_logs=True is on: whatever the download does there, no rank may fail because of it.
    job = run_job(
        tmp_path,
        2,
        2,
        "--via",
        "launcher",
        "--combos",
        "auto:worker,shared:worker,new:worker",
        "--id",
        "job-base",
        "--group",
        "team",
        "--download-logs",
    )
    for run_mode in ("auto", "shared", "new"):
        results = job.combo(run_mode, "worker")
        agreed_base(job, results, run_mode, "worker")
        assert {(r["seen"]["flyte_mode"], r["seen"]["action_name"]) for r in results} == {("remote", "a0")}
        assert all(r["exit_code_on_disk"] == 0 for r in results if r["seen"]["has_run"])
    assert [seen_row(r) for r in job.combo("auto", "worker")] == [
        ("job-base-worker-0", "team", None, None),
        None,
        ("job-base-worker-1", "team", None, None),
        None,
    ]
    assert [seen_row(r) for r in job.combo("shared", "worker")] == [
        ("job-base-worker-0", "team", "worker-0-rank-0", True),
        ("job-base-worker-0", "team", "worker-0-rank-1", False),
        ("job-base-worker-1", "team", "worker-1-rank-0", True),
        ("job-base-worker-1", "team", "worker-1-rank-1", False),
    ]
    new = [seen_row(r) for r in job.combo("new", "worker")]
    assert new == [
        ("job-base-worker-0-rank-0", "team", None, None),
        ("job-base-worker-0-rank-1", "team", None, None),
        ("job-base-worker-1-rank-0", "team", None, None),
        ("job-base-worker-1-rank-1", "team", None, None),
    ]
    on_disk = Counter(
        (run.run_id, run.group, run.label) for node in range(2) for run in job.runs_on_node(node)
    )
    assert on_disk == Counter(
        [("job-base-worker-0", "team", None), ("job-base-worker-1", "team", None)]
        + [("job-base-worker-0", "team", f"worker-0-rank-{i}") for i in range(2)]
        + [("job-base-worker-1", "team", f"worker-1-rank-{i}") for i in range(2)]
        + [(row[0], row[1], None) for row in new if row is not None]
    )


def test_elastic_range_on_one_node_matches_its_worker_links(tmp_path: Path) -> None:
    job = run_job(tmp_path, 1, 2, "--nnodes", "1:2", "--combos", "auto:worker,shared:worker")
    base = agreed_base(job, job.combo("auto", "worker"), "auto", "worker")
    assert [seen_row(r) for r in job.combo("auto", "worker")] == [
        (f"{base}-worker-0", None, None, None),
        None,
    ]
    base = agreed_base(job, job.combo("shared", "worker"), "shared", "worker")
    assert [seen_row(r) for r in job.combo("shared", "worker")] == [
        (f"{base}-worker-0", None, "worker-0-rank-0", True),
        (f"{base}-worker-0", None, "worker-0-rank-1", False),
    ]


@pytest.mark.parametrize("topology", ["1x2", "2x2"])
def test_each_writer_of_a_distributed_run_adds_its_own_backlink(
    table_jobs: dict[str, Job], topology: str
) -> None:
    # Lineage: in a shared run the primary writes the owner's "flyte" key, every other rank
    # "flyte/<its label>" (W&B merges writers' config updates top-level key by key, so no writer
    # can overwrite another's); ranks with runs of their own ("new") each own a "flyte" key.
    job = table_jobs[topology]
    for run_mode, rank_scope in (("shared", "global"), ("shared", "worker"), ("new", "global")):
        for rank, result in enumerate(job.combo(run_mode, rank_scope)):
            seen = result["seen"]
            config = read_offline_run(seen["run_dir"], wait=READ_WAIT_S).config
            keys = sorted(k for k in config if k == "flyte" or k.startswith("flyte/"))
            owner = run_mode == "new" or seen["x_primary"]
            assert keys == (["flyte"] if owner else [f"flyte/{seen['x_label']}"]), (run_mode, rank, keys)
            entry = config[keys[0]]
            assert (entry["action"], entry["mode"], entry["rank"]) == (
                seen["action_name"],
                "local",
                str(rank),
            )
