"""One scenario matrix, run both ways: locally (``mode="local"``) and as a rehearsed cluster.

Each scenario runs the same workflow of ``tests/cluster/workflows.py`` in a real local Flyte run
(one process) and in the cluster rehearsal of ``tests/cluster/harness.py`` (every action its own
``a0`` process, in its own pod directory, with only its pod's environment), wandb offline. The
outcomes are reduced to what must agree (which run each task writes into, relative to the others;
the link Flyte shows against the run written; lineage entries; warnings; exit codes) and compared.
What legitimately differs (where the files are on disk, one folder per writer on a cluster) is
asserted as it is, and listed in ``docs/local-and-remote.md``.

Scenarios whose correct outcome needs a fix of the package are written as that correct outcome
and marked ``xfail(strict=True)``.
"""

from __future__ import annotations

import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cluster import workflows
from cluster.harness import Attempt, Cluster, read_outputs
from conftest import LocalRun, run_local

from flyteplugins.wandb import wandb_sweep_config
from flyteplugins.wandb._offline import OfflineRun, find_offline_run_dirs, read_offline_run

NEEDS_FIX = pytest.mark.xfail(strict=True, reason="needs the fix on branch cluster-fixes")
SHARED_WARNING = "W&B shared mode is online only"
READ_WAIT_S = 10.0


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    """A rehearsal cluster; its pods see only their tasks' declared environment."""
    return Cluster(tmp_path / "cluster")


@pytest.fixture(autouse=True)
def fresh_warnings() -> Iterator[None]:
    workflows.WARNINGS.clear()
    yield
    workflows.WARNINGS.clear()


def runs_under(root: Path) -> list[OfflineRun]:
    """Every offline run folder under ``root``, read back from its transaction log."""
    return [read_offline_run(path, wait=READ_WAIT_S) for path in find_offline_run_dirs(root)]


def pod_runs(attempt: Attempt) -> list[OfflineRun]:
    return runs_under(Path(attempt.pod_dir))


def cluster_warnings(attempts: list[Attempt]) -> dict[str, list[str]]:
    """The local/remote warnings each task's pod printed, by task short name."""
    found: dict[str, list[str]] = {}
    for attempt in attempts:
        lines = [
            line.split("LOCAL_REMOTE: ", 1)[1]
            for line in attempt.log().splitlines()
            if "LOCAL_REMOTE: " in line
        ]
        found.setdefault(attempt.task.split(".")[-1], []).extend(lines)
    return found


def roles(outputs: dict[str, dict[str, str]]) -> dict[str, str]:
    """Which run each task wrote into, relative to the parent's: ``parent``, ``own`` or ``none``."""
    parent = outputs["parent"]["run"]
    named = {}
    for name, seen in outputs.items():
        if name == "parent":
            continue
        named[name] = "none" if seen["run"] == "none" else "parent" if seen["run"] == parent else "own"
    return named


def link_matches_run(links: list[tuple[str, str]], seen: dict[str, str]) -> bool | None:
    """Whether the one W&B link Flyte shows names the run the task wrote (None: no link, no run)."""
    if seen["run"] == "none":
        return None if not links else False
    (uri,) = [uri for name, uri in links if name == "Weights & Biases"]
    return uri == f"https://wandb.ai/{workflows.ENTITY}/{workflows.PROJECT}/runs/{seen['run']}"


def lineage(runs: list[OfflineRun]) -> dict[str, list[tuple[str, str]]]:
    """The lineage entries of each run id (config key kind, writing task), merged over its folders."""
    entries: dict[str, list[tuple[str, str]]] = {}
    for run in runs:
        for key, value in run.config.items():
            if key == "flyte" or key.startswith("flyte/"):
                kind = "owner" if key == "flyte" else "writer"
                entries.setdefault(run.run_id, []).append((kind, value["task"]))
    return {run_id: sorted(found) for run_id, found in entries.items()}


def by_role(entries: dict[str, list[tuple[str, str]]], outputs: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Lineage keyed by the role of the run (``parent`` or the task that owns its run)."""
    parent = outputs["parent"]["run"]
    owner_of = {seen["run"]: name for name, seen in outputs.items()}
    return {("parent" if run_id == parent else owner_of[run_id]): found for run_id, found in entries.items()}


# --- 1. a parent with auto, new, shared, undecorated and sync children (a gather fan-out) ---------

EXPECTED_ROLES = {"auto": "parent", "new": "own", "shared": "parent", "plain": "none", "sync": "parent"}
TASK_OF = {
    "parent": "parent",
    "auto": "auto_child",
    "new": "new_child",
    "shared": "shared_child",
    "plain": "plain_child",
    "sync": "sync_child",
}


@pytest.fixture
def both_legs(cluster: Cluster, wandb_root: Path) -> tuple[LocalRun, Any, Path]:
    with ThreadPoolExecutor(1) as pool:  # the cluster leg's pods run while the local leg runs
        rehearsed = pool.submit(cluster.run, workflows.parent, 2)
        local = run_local(workflows.parent, 2)
        return local, rehearsed.result(), wandb_root


def test_parent_and_children_write_into_the_same_runs_both_ways(both_legs: Any) -> None:
    local, rehearsed, _ = both_legs
    assert rehearsed.ok, rehearsed.root.log()
    assert roles(local.outputs) == roles(rehearsed.outputs) == EXPECTED_ROLES
    # Every task really ran in a process of its own on the cluster, and in one process locally.
    assert len({seen["pid"] for seen in rehearsed.outputs.values()}) == len(TASK_OF)
    assert len({seen["pid"] for seen in local.outputs.values()}) == 1
    # The custom context (the parent's project) arrived in every child's pod through inputs.pb.
    assert {seen["project"] for name, seen in rehearsed.outputs.items() if name != "plain"} == {
        workflows.PROJECT
    }


def test_the_link_flyte_shows_is_the_run_written_both_ways(both_legs: Any) -> None:
    local, rehearsed, _ = both_legs
    for role, task in TASK_OF.items():
        (attempt,) = rehearsed.by_task(task)
        assert link_matches_run(attempt.links, rehearsed.outputs[role]) is not False, (role, attempt.links)
        assert link_matches_run(local.links[task], local.outputs[role]) is not False, (
            role,
            local.links[task],
        )
    # On the cluster the link was rendered by the parent with {{.actionName}} and filled by the backend.
    (new,) = rehearsed.by_task("new_child")
    assert new.link().endswith(f"/runs/{rehearsed.outputs['new']['run']}")


def test_lineage_entries_agree_both_ways(both_legs: Any) -> None:
    local, rehearsed, wandb_root = both_legs
    local_lineage = by_role(lineage(runs_under(wandb_root)), local.outputs)
    cluster_runs = [run for attempt in rehearsed.final() for run in pod_runs(attempt)]
    cluster_lineage = by_role(lineage(cluster_runs), rehearsed.outputs)
    assert (
        local_lineage
        == cluster_lineage
        == {
            "parent": [
                ("owner", "cluster.parent"),
                ("writer", "cluster.auto_child"),
                ("writer", "cluster.shared_child"),
                ("writer", "cluster.sync_child"),
            ],
            "new": [("owner", "cluster.new_child")],
        }
    )


def test_what_stays_on_disk_one_folder_per_writer_on_a_cluster(both_legs: Any) -> None:
    local, rehearsed, wandb_root = both_legs
    parent_run = local.outputs["parent"]["run"]
    # Locally every writer of the parent's run writes through the one run object: one folder.
    local_folders = Counter(run.run_id for run in runs_under(wandb_root))
    assert local_folders == Counter({parent_run: 1, local.outputs["new"]["run"]: 1})
    (local_parent,) = [run for run in runs_under(wandb_root) if run.run_id == parent_run]
    assert len(local_parent.history) == 4  # parent, auto, shared, sync: one row each
    # On a cluster each writer's part stays in its own pod's folder (W&B shared mode is online only).
    rows_by_task = {}
    for attempt in rehearsed.final():
        runs = pod_runs(attempt)
        rows_by_task[attempt.task.split(".")[-1]] = [(run.run_id, len(run.history)) for run in runs]
    cluster_parent = rehearsed.outputs["parent"]["run"]
    assert rows_by_task == {
        "parent": [(cluster_parent, 1)],
        "auto_child": [(cluster_parent, 1)],
        "shared_child": [(cluster_parent, 1)],
        "sync_child": [(cluster_parent, 1)],
        "new_child": [(rehearsed.outputs["new"]["run"], 1)],
        "plain_child": [],
    }
    assert {attempt.exit_code for attempt in rehearsed.final()} == {0}


def test_offline_shared_runs_are_announced_in_every_pod_that_shares_them(both_legs: Any) -> None:
    _local, rehearsed, _ = both_legs
    assert not workflows.WARNINGS, "a local run has one run object per run: nothing to warn about"
    warned = {
        task
        for task, lines in cluster_warnings(rehearsed.final()).items()
        if any(SHARED_WARNING in line for line in lines)
    }
    # Each task that writes into a run it does not own is told; the owner, which cannot know at
    # its start whether any child will attach, is not.
    assert {"auto_child", "shared_child", "sync_child"} <= warned
    assert "parent" not in warned


def test_the_shared_mode_warning_is_given_only_where_another_task_writes_into_the_run(both_legs: Any) -> None:
    _, rehearsed, _ = both_legs
    warnings = cluster_warnings(rehearsed.final())
    assert not [line for line in warnings.get("new_child", []) if SHARED_WARNING in line]


def test_a_sync_parent_and_its_sync_child_both_ways(cluster: Cluster) -> None:
    rehearsed = cluster.run(workflows.sync_parent, 1)
    local = run_local(workflows.sync_parent, 1)
    assert rehearsed.ok, rehearsed.root.log()
    assert roles(local.outputs) == roles(rehearsed.outputs) == {"sync": "parent"}
    (child,) = rehearsed.by_task("sync_child")
    assert link_matches_run(child.links, rehearsed.outputs["sync"])


# --- 2. flyte.trace, a sweep ----------------------------------------------------------------------


def test_a_traced_function_writes_into_its_task_run_both_ways(cluster: Cluster) -> None:
    rehearsed = cluster.run(workflows.traced_parent, 3)
    local = run_local(workflows.traced_parent, 3)
    assert rehearsed.ok, rehearsed.root.log()
    assert roles(local.outputs) == roles(rehearsed.outputs) == {"traced": "parent"}
    assert [a.task for a in rehearsed.final()] == ["cluster.traced_parent"]  # a trace is no pod


GRID = wandb_sweep_config(
    method="grid", metric={"name": "loss", "goal": "minimize"}, parameters={"lr": {"values": [0.1]}}
)


def test_a_sweep_reaches_its_children_both_ways(tmp_path: Path) -> None:
    # W&B's sweep service is out of reach: wandb.sweep is stood in for, in the pods and here.
    cluster = Cluster(tmp_path / "cluster", env={"REHEARSAL_FAKE_SWEEP_SERVICE": "1"})
    rehearsed = cluster.run(workflows.tune, custom_context=GRID)
    workflows.fake_sweep_service()
    local = run_local(workflows.tune, custom_context=GRID)
    assert rehearsed.ok, rehearsed.root.log()
    # the sweep's own task, a @wandb_sweep child and an undecorated child: all see the one sweep
    assert local.outputs == rehearsed.outputs == ["sweep-rehearsed"] * 3
    (child,) = rehearsed.by_task("sweep_child")
    local_sweep_links = [uri for name, uri in local.links["sweep_child"] if "Sweep" in name]
    assert [uri for name, uri in child.links if "Sweep" in name] == local_sweep_links
    assert all(uri.endswith("/sweeps/sweep-rehearsed") for uri in local_sweep_links)


# --- 3. a retry after a failure -------------------------------------------------------------------


def test_a_retry_writes_into_the_same_run_both_ways(
    cluster: Cluster, tmp_path: Path, wandb_root: Path
) -> None:
    rehearsed = cluster.run(workflows.flaky, str(tmp_path / "cluster-marker"))
    local = run_local(workflows.flaky, str(tmp_path / "local-marker"))
    assert rehearsed.ok, rehearsed.root.log()
    first, second = rehearsed.attempts_of("a0")
    assert (first.phase, second.phase) == ("FAILED", "SUCCEEDED")
    assert "first attempt fails" in (first.error or "")
    # A new pod: new directory, attempt number incremented, the last attempt's checkpoint handed on.
    assert first.pod_dir != second.pod_dir and second.prev_checkpoint == first.checkpoint
    assert rehearsed.outputs["attempt"] == "1" and local.outputs["attempt"] == "0"
    # Both attempts write into the one run, whose id does not depend on the attempt.
    run_id = rehearsed.outputs["run"]
    (failed_run,) = pod_runs(first)
    (retried_run,) = pod_runs(second)
    assert failed_run.run_id == retried_run.run_id == run_id
    assert (failed_run.config["flyte"]["attempt"], retried_run.config["flyte"]["attempt"]) == (0, 1)
    assert second.link() == f"https://wandb.ai/{workflows.ENTITY}/{workflows.PROJECT}/runs/{run_id}"
    # Locally the retry runs in the same process: the same run id, one folder per attempt.
    local_runs = runs_under(wandb_root)
    assert {run.run_id for run in local_runs} == {local.outputs["run"]}


def test_a_failed_attempt_says_where_its_offline_folder_stays(cluster: Cluster, tmp_path: Path) -> None:
    rehearsed = cluster.run(workflows.flaky, str(tmp_path / "marker"))
    first, _ = rehearsed.attempts_of("a0")
    (failed_run,) = pod_runs(first)
    told = [
        line
        for line in first.log().splitlines()
        if str(failed_run.path) in line and SHARED_WARNING not in line
    ]
    assert told, first.log()


# --- 4. SIGTERM -----------------------------------------------------------------------------------


def test_sigterm_to_a0_finishes_the_run_as_preempted_with_every_step(cluster: Cluster) -> None:
    pod = cluster.start(workflows.preemptible, 50)
    pod.wait_for("READY")
    started = time.monotonic()
    pod.process.send_signal(signal.SIGTERM)
    attempt = pod.wait(timeout=30)
    gone_after = time.monotonic() - started
    # Ended by the signal itself, as the local process is (tests/test_preemption.py); Kubernetes
    # reports such a container's exit code as 128 + 15 = 143.
    assert attempt.exit_code == -signal.SIGTERM, attempt.log()
    assert gone_after < 15, gone_after
    (run,) = pod_runs(attempt)
    assert (len(run.history), run.exit_code, run.preempting) == (50, 143, True)


# --- 5. a stalled W&B server ----------------------------------------------------------------------


@pytest.fixture
def stalled_server() -> Iterator[str]:
    """A real socket on 127.0.0.1 that accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def stalled_cluster(root: Path, url: str) -> Cluster:
    # The image carries the server and a fake key (W&B's service is the only thing stood in for).
    fake_key = "rehearsalfake" + "0" * 27
    return Cluster(root, env={"WANDB_MODE": "online", "WANDB_BASE_URL": url, "WANDB_API_KEY": fake_key})


def test_a_stalled_server_keeps_the_result_and_every_step(tmp_path: Path, stalled_server: str) -> None:
    rehearsed = stalled_cluster(tmp_path / "stalled", stalled_server).run(
        workflows.against_a_stalled_server, 5
    )
    assert rehearsed.ok, rehearsed.root.log()
    assert rehearsed.outputs == 5
    # The run went offline after the timeout: every step is in the offline folder, to sync later.
    (run,) = [run for run in pod_runs(rehearsed.root) if run.offline]
    assert len(run.history) == 5


def test_a_stalled_server_does_not_keep_the_pod_alive_past_the_timeout(
    tmp_path: Path, stalled_server: str
) -> None:
    rehearsed = stalled_cluster(tmp_path / "stalled", stalled_server).run(
        workflows.against_a_stalled_server, 5
    )
    # timeout=3 s for start and finish together; the rest is the pod's own start and end.
    assert rehearsed.ok and rehearsed.root.elapsed < 3 + 8, rehearsed.root.elapsed


# --- 6. a reusable container ----------------------------------------------------------------------


def only_own_rows(replica_dir: Path, attempts: list[Attempt]) -> None:
    by_id = {run.run_id: run for run in runs_under(replica_dir)}
    for attempt in attempts:
        assert attempt.ok, attempt.error
        (i,) = {int(seen) for seen in [attempt.action.rsplit("-", 1)[1]]}
        run = by_id[f"{attempt.action}-a0"]
        assert {row["who"] for row in run.history if "who" in row} == {i}, attempt.action


def test_a_reusable_container_runs_20_actions_4_at_a_time_each_into_its_own_run(cluster: Cluster) -> None:
    replica = cluster.replica(concurrency=4)
    for i in range(20):
        replica.add(workflows.reused, i, 5)
    attempts = replica.run()
    assert len(attempts) == 20
    only_own_rows(replica.directory, attempts)
    assert {attempt.link() for attempt in attempts} == {
        f"https://wandb.ai/{workflows.ENTITY}/{workflows.PROJECT}/runs/{a.action}-a0" for a in attempts
    }


def test_a_reusable_container_runs_50_actions_in_sequence_each_into_its_own_run(cluster: Cluster) -> None:
    replica = cluster.replica(concurrency=1)
    for i in range(50):
        replica.add(workflows.reused, i, 2)
    attempts = replica.run(timeout=180)
    assert [a.action for a in attempts] == [f"{cluster.run_name}-{i}" for i in range(50)]
    only_own_rows(replica.directory, attempts)


def test_sigterm_to_a_reusable_container_keeps_every_live_run(cluster: Cluster) -> None:
    replica = cluster.replica(concurrency=4)
    for _ in range(3):
        replica.add(workflows.long_writer, 60.0)
    replica.start()
    replica.wait_for("WRITER READY", count=3)
    replica.terminate()
    assert replica.wait(timeout=30) == -signal.SIGTERM, replica.log()
    runs = runs_under(replica.directory)
    assert len(runs) == 3 and all(run.preempting for run in runs)


def leak_outcome(cluster: Cluster) -> dict[str, str]:
    replica = cluster.replica(concurrency=2)
    replica.add(workflows.long_writer, 4.0)
    replica.add(workflows.undecorated_looker, 1.5)
    attempts = replica.run()
    (looker,) = [a for a in attempts if a.task.endswith("undecorated_looker")]
    return read_outputs(workflows.undecorated_looker, looker.output_prefix)


def test_a_thread_in_an_undecorated_action_does_not_get_another_actions_run(cluster: Cluster) -> None:
    assert leak_outcome(cluster)["thread"] == "none"


def test_wandb_run_in_an_undecorated_action_is_not_another_actions_run(cluster: Cluster) -> None:
    assert leak_outcome(cluster)["wandb_run"] == "none"


def test_get_wandb_run_in_an_undecorated_action_is_none_in_a_reusable_container(cluster: Cluster) -> None:
    assert leak_outcome(cluster)["run"] == "none"


# --- 7. a thread without the task's context -------------------------------------------------------


def test_a_thread_without_context_gets_the_pods_only_run_on_a_cluster(cluster: Cluster) -> None:
    rehearsed = cluster.run(workflows.thread_without_context)
    assert rehearsed.ok, rehearsed.root.log()
    assert rehearsed.outputs["thread"] == rehearsed.outputs["run"]


def test_a_thread_without_context_gets_the_only_run_locally_too() -> None:
    local = run_local(workflows.thread_without_context)
    assert local.outputs["thread"] == local.outputs["run"]
