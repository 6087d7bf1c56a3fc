"""One scenario matrix, run both ways: locally (``mode="local"``) and as a rehearsed cluster.

Each scenario runs the same workflow of ``tests/cluster/workflows.py`` in a real local Flyte run
(one process) and in the cluster rehearsal of ``tests/cluster/harness.py`` (every action its own
``a0`` process, in its own pod directory, with only its pod's environment), wandb offline. The
outcomes are reduced to what must agree (which run each task writes into, relative to the others;
the link Flyte shows against the run written; lineage entries; warnings; exit codes) and compared.
What legitimately differs (where the files are on disk: one folder per writer on a cluster) is
asserted as it is, and listed in ``docs/local-and-remote.md``.

Every scenario's cluster leg is started when the module's first test runs (:func:`rehearsals`:
three at a time, in threads; the pods are processes) and runs once, however many tests read it;
the local legs run in the tests meanwhile. A scenario whose correct outcome needs a fix of the
package not made yet is written as that correct outcome and marked ``xfail(strict=True)``.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import flyte
import pytest
from cluster import distributed as distributed_workflows
from cluster import workflows
from cluster.harness import Attempt, Cluster, read_outputs
from conftest import LocalRun, run_local

from flyteplugins.wandb import wandb_sweep_config
from flyteplugins.wandb._compat import flyte_initialized
from flyteplugins.wandb._offline import OfflineRun, find_offline_run_dirs, read_offline_run

SHARED_WARNING = "W&B shared mode is online only"
READ_WAIT_S = 10.0
GRID = wandb_sweep_config(
    method="grid", metric={"name": "loss", "goal": "minimize"}, parameters={"lr": {"values": [0.1]}}
)
FAKE_KEY = "rehearsalfake" + "0" * 27
TIMEOUT_S = 3.0  # the timeout setting of workflows.against_a_stalled_server
REPORT_RUNS = 3  # how often the report scenario runs on the cluster
Rehearsals = dict[str, "Future[Any]"]


# --- the cluster legs: each scenario once, all started together ---------------------------------


def preempted_pod(root: Path) -> tuple[Attempt, float]:
    """SIGTERM to a0 once its task logged 50 steps: the attempt, and how long the pod took to end."""
    pod = Cluster(root).start(workflows.preemptible, 50)
    pod.wait_for("READY", timeout=120)
    started = time.monotonic()
    pod.process.send_signal(signal.SIGTERM)
    attempt = pod.wait(timeout=60)
    return attempt, time.monotonic() - started


def against_stalled_server(root: Path) -> Any:
    """Online W&B pointed at a real socket on 127.0.0.1 that accepts connections and never answers.

    The pods' image carries its address and a fake key: W&B's service is all that is stood in for.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        env = {"WANDB_MODE": "online", "WANDB_BASE_URL": url, "WANDB_API_KEY": FAKE_KEY}
        return Cluster(root, env=env).run(workflows.against_a_stalled_server, 5)


def reused(root: Path, actions: int, concurrency: int, steps: int) -> tuple[Path, list[Attempt], str]:
    """``actions`` actions of ``workflows.reused`` in one reusable container."""
    cluster = Cluster(root)
    replica = cluster.replica(concurrency=concurrency)
    for i in range(actions):
        replica.add(workflows.reused, i, steps)
    return replica.directory, replica.run(timeout=240), cluster.run_name


def terminated_replica(root: Path) -> tuple[int, Path, str]:
    """SIGTERM to a reusable container while three actions' runs are live."""
    replica = Cluster(root).replica(concurrency=4)
    for _ in range(3):
        replica.add(workflows.long_writer, 60.0)
    replica.start()
    replica.wait_for("WRITER READY", count=3, timeout=120)
    replica.terminate()
    return replica.wait(timeout=60), replica.directory, replica.log()


def leak(root: Path) -> dict[str, str]:
    """What an undecorated action sees next to a decorated one in one reusable container."""
    replica = Cluster(root).replica(concurrency=2)
    replica.add(workflows.long_writer, 4.0)
    replica.add(workflows.undecorated_looker, 1.5)
    (looker,) = [a for a in replica.run() if a.task.endswith("undecorated_looker")]
    return dict(read_outputs(workflows.undecorated_looker, looker.output_prefix))


def distributed(root: Path) -> tuple[Any, dict[str, Any]]:
    """A parent calling an Elastic child (two ranks); what each rank saw, by rank."""
    seen = root / "seen"
    seen.mkdir()
    rehearsed = Cluster(root / "cluster").run(distributed_workflows.distributed_parent, str(seen))
    return rehearsed, {p.stem: json.loads(p.read_text()) for p in seen.iterdir()}


SCENARIOS: dict[str, Callable[[Path], Any]] = {  # the longest first
    "parent": lambda root: Cluster(root).run(workflows.parent, 2),
    "stalled": against_stalled_server,
    "reuse-50": lambda root: reused(root, 50, 1, 2),
    "distributed": distributed,
    "retry": lambda root: Cluster(root).run(workflows.flaky, str(root / "marker")),
    "sweep": lambda root: Cluster(root, env={"REHEARSAL_FAKE_SWEEP_SERVICE": "1"}).run(
        workflows.tune, custom_context=GRID
    ),
    "reuse-20": lambda root: reused(root, 20, 4, 5),
    "leak": leak,
    "sync": lambda root: Cluster(root).run(workflows.sync_parent, 1),
    "sigterm": preempted_pod,
    "replica-sigterm": terminated_replica,
    "thread": lambda root: Cluster(root).run(workflows.thread_without_context),
    "trace": lambda root: Cluster(root).run(workflows.traced_parent, 3),
    # Three times in a row: the child's tab once showed 0 of its steps, now and then.
    "report": lambda root: [Cluster(root / str(i)).run(workflows.report_parent) for i in range(REPORT_RUNS)],
}
if distributed_workflows.elastic is None:
    del SCENARIOS["distributed"]
NEEDS_ELASTIC = pytest.mark.skipif(
    distributed_workflows.elastic is None, reason="flyteplugins-pytorch (the Elastic plugin) is not installed"
)


@pytest.fixture(scope="module")
def rehearsals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsals]:
    """The cluster leg of every scenario, started together (three at a time), each run once."""
    with ThreadPoolExecutor(3, thread_name_prefix="rehearsal") as pool:
        yield {name: pool.submit(run, tmp_path_factory.mktemp(name)) for name, run in SCENARIOS.items()}


_LOCAL: dict[str, Any] = {}


def local_once(key: str, run: Callable[[], Any]) -> Any:
    """A local leg, run once per module (in the sandbox of the first test that needs it)."""
    if key not in _LOCAL:
        _LOCAL[key] = run()
    return _LOCAL[key]


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
def both_legs(rehearsals: Rehearsals, wandb_root: Path) -> tuple[LocalRun, Any, Path, list[str]]:
    def local() -> tuple[LocalRun, Path, list[str]]:
        return run_local(workflows.parent, 2), wandb_root, list(workflows.WARNINGS)

    run, root, warnings = local_once("parent", local)
    return run, rehearsals["parent"].result(), root, warnings


def test_parent_and_children_write_into_the_same_runs_both_ways(both_legs: Any) -> None:
    local, rehearsed, _, _ = both_legs
    assert rehearsed.ok, rehearsed.root.log()
    assert roles(local.outputs) == roles(rehearsed.outputs) == EXPECTED_ROLES
    # Every task really ran in a process of its own on the cluster, and all in one process locally.
    assert len({seen["pid"] for seen in rehearsed.outputs.values()}) == len(TASK_OF)
    assert len({seen["pid"] for seen in local.outputs.values()}) == 1
    # The parent's settings reached every child's pod, as custom context inside inputs.pb.
    projects = {seen["project"] for name, seen in rehearsed.outputs.items() if name != "plain"}
    assert projects == {workflows.PROJECT}


def test_the_link_flyte_shows_is_the_run_written_both_ways(both_legs: Any) -> None:
    local, rehearsed, _, _ = both_legs
    for role, task in TASK_OF.items():
        (attempt,) = rehearsed.by_task(task)
        assert link_matches_run(attempt.links, rehearsed.outputs[role]) is not False, (role, attempt.links)
        assert link_matches_run(local.links[task], local.outputs[role]) is not False, (
            role,
            local.links[task],
        )
    # On the cluster the parent rendered the link with {{.actionName}}; the backend filled it in.
    (new,) = rehearsed.by_task("new_child")
    assert new.link().endswith(f"/runs/{rehearsed.outputs['new']['run']}")
    # ... and that name is the run the child wrote: {run name}-{the child's own action name}.
    assert rehearsed.outputs["new"]["run"] == f"{Cluster.run_name}-{new.action}"


def test_lineage_entries_agree_both_ways(both_legs: Any) -> None:
    local, rehearsed, wandb_root, _ = both_legs
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
    local, rehearsed, wandb_root, _ = both_legs
    parent_run = local.outputs["parent"]["run"]
    # Locally every writer of the parent's run writes through the one run object: one folder.
    local_runs = runs_under(wandb_root)
    assert Counter(run.run_id for run in local_runs) == Counter(
        {parent_run: 1, local.outputs["new"]["run"]: 1}
    )
    (local_parent,) = [run for run in local_runs if run.run_id == parent_run]
    assert len(local_parent.history) == 4  # parent, auto, shared, sync: one row each
    # On a cluster each writer's part stays in its own pod's folder (W&B shared mode is online only).
    rows_by_task = {
        attempt.task.split(".")[-1]: [(run.run_id, len(run.history)) for run in pod_runs(attempt)]
        for attempt in rehearsed.final()
    }
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
    _, rehearsed, _, local_warnings = both_legs
    assert not [w for w in local_warnings if SHARED_WARNING in w], "locally one run object: nothing to say"
    warnings = cluster_warnings(rehearsed.final())
    warned = {task for task, lines in warnings.items() if any(SHARED_WARNING in line for line in lines)}
    # Each task that writes into a run it does not own is told; the owner, which cannot know at
    # its start whether any child will attach, is not.
    assert {"auto_child", "shared_child", "sync_child"} <= warned
    assert "parent" not in warned


def test_the_shared_mode_warning_is_given_only_where_another_task_writes_into_the_run(both_legs: Any) -> None:
    _, rehearsed, _, _ = both_legs
    warnings = cluster_warnings(rehearsed.final())
    assert not [line for line in warnings.get("new_child", []) if SHARED_WARNING in line]


def test_no_other_local_remote_warning_on_either_side(both_legs: Any) -> None:
    # The tasks declare their W&B settings (TaskEnvironment env_vars): nothing comes from the shell.
    _, rehearsed, _, local_warnings = both_legs
    assert local_warnings == []
    others = [
        line
        for lines in cluster_warnings(rehearsed.final()).values()
        for line in lines
        if SHARED_WARNING not in line
    ]
    assert others == []


def test_a_sync_parent_and_its_sync_child_both_ways(rehearsals: Rehearsals) -> None:
    rehearsed = rehearsals["sync"].result()
    local = run_local(workflows.sync_parent, 1)
    assert rehearsed.ok, rehearsed.root.log()
    assert roles(local.outputs) == roles(rehearsed.outputs) == {"sync": "parent"}
    (child,) = rehearsed.by_task("sync_child")
    assert link_matches_run(child.links, rehearsed.outputs["sync"])


# --- 2. flyte.trace, a sweep ----------------------------------------------------------------------


def test_a_traced_function_writes_into_its_task_run_both_ways(rehearsals: Rehearsals) -> None:
    rehearsed = rehearsals["trace"].result()
    local = run_local(workflows.traced_parent, 3)
    assert rehearsed.ok, rehearsed.root.log()
    assert roles(local.outputs) == roles(rehearsed.outputs) == {"traced": "parent"}
    assert [a.task for a in rehearsed.final()] == ["cluster.traced_parent"]  # a trace is no pod


def test_a_sweep_reaches_its_children_both_ways(rehearsals: Rehearsals) -> None:
    # W&B's sweep service is out of reach: wandb.sweep is stood in for, in the pods and here.
    rehearsed = rehearsals["sweep"].result()
    workflows.fake_sweep_service()
    local = run_local(workflows.tune, custom_context=GRID)
    assert rehearsed.ok, rehearsed.root.log()
    # the sweep's own task, a @wandb_sweep child and an undecorated child: all see the one sweep
    assert local.outputs == rehearsed.outputs == ["sweep-rehearsed"] * 3
    (child,) = rehearsed.by_task("sweep_child")
    local_sweep_links = [uri for name, uri in local.links["sweep_child"] if "Sweep" in name]
    assert [uri for name, uri in child.links if "Sweep" in name] == local_sweep_links
    assert local_sweep_links and all(uri.endswith("/sweeps/sweep-rehearsed") for uri in local_sweep_links)


# --- the report tab ------------------------------------------------------------------------------

_TAB_ROW = re.compile(r"<th>([^<]+)</th><td>([^<]*)</td>")


def tab(page: str) -> dict[str, str]:
    """The W&B tab's table of facts: run id, steps logged, Flyte task, ..."""
    return dict(_TAB_ROW.findall(page))


def test_the_report_tab_of_each_task_shows_the_part_of_the_run_it_can_see(rehearsals: Rehearsals) -> None:
    rehearsed_runs = rehearsals["report"].result()
    if not flyte_initialized():
        flyte.init()
    local_run = flyte.with_runcontext(mode="local").run(workflows.report_parent)
    local = {
        tab(p.read_text())["Flyte task"]: tab(p.read_text()) for p in Path(local_run.url).rglob("report.html")
    }
    # Both ways every task has the tab, naming the one run both write into.
    assert set(local) == {"report_parent", "report_child"}
    assert {t["run id"] for t in local.values()} == {local_run.outputs()[0]["run"]}
    # Locally the owner's tab shows every step of the run (its own 3 and the child's 3); the
    # child's tab what had reached the disk when the child ended (the run is still open then: wandb
    # writes in batches).
    assert local["report_parent"]["steps logged"] == "6"
    assert int(local["report_child"]["steps logged"]) <= 4
    assert len(rehearsed_runs) == REPORT_RUNS
    for rehearsed in rehearsed_runs:
        cluster = {}
        for attempt in rehearsed.final():
            page = (Path(attempt.output_prefix) / "report.html").read_text()
            cluster[tab(page)["Flyte task"]] = tab(page)
        assert set(cluster) == {"report_parent", "report_child"}
        assert {t["run id"] for t in cluster.values()} == {rehearsed.outputs["run"]}
        # On a cluster each tab shows the steps of its own writer's folder, all of them: the
        # parent's 3, the child's 3 (its writer is its own, finished before the tab is read).
        assert cluster["report_parent"]["steps logged"] == "3"
        assert cluster["report_child"]["steps logged"] == "3"


# --- 3. a retry after a failure -------------------------------------------------------------------


def test_a_retry_writes_into_the_same_run_both_ways(
    rehearsals: Rehearsals, tmp_path: Path, wandb_root: Path
) -> None:
    rehearsed = rehearsals["retry"].result()
    local = run_local(workflows.flaky, str(tmp_path / "local-marker"))
    assert rehearsed.ok, rehearsed.root.log()
    first, second = rehearsed.attempts_of("a0")
    assert (first.phase, second.phase) == ("FAILED", "SUCCEEDED")
    assert "first attempt fails" in (first.error or "")
    # A new pod: a new directory, the attempt number incremented, the last checkpoint handed on.
    assert first.pod_dir != second.pod_dir and second.prev_checkpoint == first.checkpoint
    assert rehearsed.outputs["attempt"] == "1"
    # Both attempts write into the one run, whose id does not depend on the attempt.
    run_id = rehearsed.outputs["run"]
    (failed_run,) = pod_runs(first)
    (retried_run,) = pod_runs(second)
    assert failed_run.run_id == retried_run.run_id == run_id
    assert (failed_run.config["flyte"]["attempt"], retried_run.config["flyte"]["attempt"]) == (0, 1)
    assert second.link() == f"https://wandb.ai/{workflows.ENTITY}/{workflows.PROJECT}/runs/{run_id}"
    # Locally the retry runs in the same process, with the same run id.
    assert {run.run_id for run in runs_under(wandb_root)} == {local.outputs["run"]}


def test_a_failed_attempt_says_where_its_offline_folder_stays(rehearsals: Rehearsals) -> None:
    first, _ = rehearsals["retry"].result().attempts_of("a0")
    (failed_run,) = pod_runs(first)
    told = [
        line
        for line in first.log().splitlines()
        if str(failed_run.path) in line and SHARED_WARNING not in line
    ]
    assert told, first.log()


# --- 4. SIGTERM -----------------------------------------------------------------------------------


def test_sigterm_to_a0_finishes_the_run_as_preempted_with_every_step(rehearsals: Rehearsals) -> None:
    attempt, gone_after = rehearsals["sigterm"].result()
    # Ended by the signal itself, as the local process is (tests/test_preemption.py); Kubernetes
    # reports such a container's exit code as 128 + 15 = 143.
    assert attempt.exit_code == -signal.SIGTERM, attempt.log()
    assert gone_after < 15, gone_after
    (run,) = pod_runs(attempt)
    assert (len(run.history), run.exit_code, run.preempting) == (50, 143, True)


# --- 5. a stalled W&B server ----------------------------------------------------------------------


def test_a_stalled_server_keeps_the_result_and_every_step(rehearsals: Rehearsals) -> None:
    rehearsed = rehearsals["stalled"].result()
    assert rehearsed.ok, rehearsed.root.log()
    assert rehearsed.outputs == 5
    # The run went offline after the timeout: every step is in the offline folder, to sync later.
    (run,) = [run for run in pod_runs(rehearsed.root) if run.offline]
    assert len(run.history) == 5


def test_a_stalled_server_does_not_keep_the_pod_alive_past_the_timeout(rehearsals: Rehearsals) -> None:
    rehearsed = rehearsals["stalled"].result()
    # timeout bounds the W&B start and finish together; the rest is the pod's own start and end
    # (about 3 s here when the machine is idle, more when every scenario runs at once).
    assert rehearsed.ok and rehearsed.root.elapsed < TIMEOUT_S + 12, rehearsed.root.elapsed


# --- 6. a reusable container ----------------------------------------------------------------------


def only_own_rows(replica_dir: Path, attempts: list[Attempt]) -> None:
    by_id = {run.run_id: run for run in runs_under(replica_dir)}
    for attempt in attempts:
        assert attempt.ok, attempt.error
        i = int(attempt.action.rsplit("-", 1)[1])
        run = by_id[f"{attempt.action}-a0"]
        assert {row["who"] for row in run.history if "who" in row} == {i}, attempt.action


def test_a_reusable_container_runs_20_actions_4_at_a_time_each_into_its_own_run(
    rehearsals: Rehearsals,
) -> None:
    directory, attempts, _ = rehearsals["reuse-20"].result()
    assert len(attempts) == 20
    only_own_rows(directory, attempts)
    assert {attempt.link() for attempt in attempts} == {
        f"https://wandb.ai/{workflows.ENTITY}/{workflows.PROJECT}/runs/{a.action}-a0" for a in attempts
    }


def test_a_reusable_container_runs_50_actions_in_sequence_each_into_its_own_run(
    rehearsals: Rehearsals,
) -> None:
    directory, attempts, run_name = rehearsals["reuse-50"].result()
    assert [a.action for a in attempts] == [f"{run_name}-{i}" for i in range(50)]
    only_own_rows(directory, attempts)


def test_sigterm_to_a_reusable_container_keeps_every_live_run(rehearsals: Rehearsals) -> None:
    code, directory, log = rehearsals["replica-sigterm"].result()
    assert code == -signal.SIGTERM, log
    runs = runs_under(directory)
    assert len(runs) == 3 and all(run.preempting for run in runs)


def test_get_wandb_run_in_an_undecorated_action_is_none_in_a_reusable_container(
    rehearsals: Rehearsals,
) -> None:
    assert rehearsals["leak"].result()["run"] == "none"


def test_a_thread_in_an_undecorated_action_does_not_get_another_actions_run(rehearsals: Rehearsals) -> None:
    assert rehearsals["leak"].result()["thread"] == "none"


def test_wandb_run_in_an_undecorated_action_is_not_another_actions_run(rehearsals: Rehearsals) -> None:
    assert rehearsals["leak"].result()["wandb_run"] == "none"


# --- 7. a thread without the task's context -------------------------------------------------------


def test_a_thread_without_context_gets_the_pods_only_run_on_a_cluster(rehearsals: Rehearsals) -> None:
    rehearsed = rehearsals["thread"].result()
    assert rehearsed.ok, rehearsed.root.log()
    assert rehearsed.outputs["thread"] == rehearsed.outputs["run"]


def test_a_thread_without_context_gets_the_only_run_locally_too() -> None:
    local = run_local(workflows.thread_without_context)
    assert local.outputs["thread"] == local.outputs["run"]


# --- 8. a clustered (distributed) worker ----------------------------------------------------------


@pytest.fixture
def distributed_legs(
    rehearsals: Rehearsals, tmp_path: Path
) -> tuple[Any, dict[str, Any], LocalRun, dict[str, Any]]:
    def local() -> tuple[LocalRun, dict[str, Any]]:
        seen = tmp_path / "seen"
        seen.mkdir()
        run = run_local(distributed_workflows.distributed_parent, str(seen))
        return run, {p.stem: json.loads(p.read_text()) for p in seen.iterdir()}

    run, local_ranks = local_once("distributed", local)
    rehearsed, cluster_ranks = rehearsals["distributed"].result()
    return rehearsed, cluster_ranks, run, local_ranks


@NEEDS_ELASTIC
def test_a_distributed_child_runs_its_ranks_as_processes_of_its_own_pod(distributed_legs: Any) -> None:
    rehearsed, cluster_ranks, local, local_ranks = distributed_legs
    assert rehearsed.ok, rehearsed.root.log()
    (child,) = rehearsed.by_task("distributed_child")
    assert child.exit_code == 0
    # On a cluster the pod's launcher starts both ranks; global rank 0 alone writes (auto/global),
    # into a run of its own (a distributed task does not attach to its parent's run).
    assert sorted(cluster_ranks) == ["0", "1"] and cluster_ranks["1"]["run"] == "none"
    assert (
        cluster_ranks["0"]["run"] == rehearsed.outputs["rank0"]["run"] != rehearsed.outputs["parent"]["run"]
    )
    assert len({rank["pid"] for rank in cluster_ranks.values()} | {rehearsed.outputs["parent"]["pid"]}) == 3
    # A local run of one node runs the task in the launching process without a launcher: one
    # writer, into a run of its own as well.
    (only,) = local_ranks.values()
    assert only["run"] == local.outputs["rank0"]["run"] != local.outputs["parent"]["run"]


@NEEDS_ELASTIC
def test_a_distributed_childs_link_names_the_run_its_rank_0_writes(distributed_legs: Any) -> None:
    rehearsed, cluster_ranks, local, local_ranks = distributed_legs
    (child,) = rehearsed.by_task("distributed_child")
    assert cluster_ranks["0"]["project"] == workflows.PROJECT  # the parent's, as for other children
    assert link_matches_run(child.links, cluster_ranks["0"])
    (only,) = local_ranks.values()
    assert link_matches_run(local.links["distributed_child"], only)
