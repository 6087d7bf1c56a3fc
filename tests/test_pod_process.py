"""What a cluster does to W&B runs, rehearsed with real processes: a pod per action, a reused process.

A pod runs one action through Flyte's entrypoint ``a0`` and its cost ends when the process exits
(:class:`cluster.harness.Cluster` starts the real one, with an ``inputs.pb``, each attempt timed
from process start to exit); a reusable container (``flyte.ReusePolicy``) is one process running
many actions, several at once (:class:`cluster.harness.Replica`, through ``load_and_run_task`` as
Flyte runs them). The tasks are in ``tests/cluster/pod_workflows.py``. wandb runs for real,
offline, or online against a local socket on 127.0.0.1 that accepts and never answers; what
reached W&B is read back from the runs' transaction logs.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster import pod_workflows
from cluster.harness import Attempt, Cluster, Replica

from flyteplugins.wandb._offline import find_offline_run_dirs, read_offline_run

TIMEOUT_S = 6.0
# What the timeout does not cover: importing wandb and ending its service at exit (about 1 s).
SLACK_S = 2.0
FAKE_KEY = "podfake" + "0" * 33
RUN_NAME = "r1"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def pod_image(workdir: Path, **extra: str) -> dict[str, str]:
    """What every pod's image carries: where the tasks report (and meet), ``extra`` on top."""
    return {
        "POD_REPORT": str(workdir / "report.jsonl"),
        "POD_RELEASE": str(workdir / "release"),
        "POD_HELD": str(workdir / "held"),
        **extra,
    }


def run_pod(task: Any, workdir: Path, image: dict[str, str]) -> Attempt:
    """Run ``task`` (4 steps) as a run's first action, in its own pod; the attempt, timed start to exit."""
    cluster = Cluster(workdir / task.short_name, env=image, run_name=RUN_NAME, timeout=180)
    return cluster.start(task, 4).wait(180)


def reports(workdir: Path) -> list[dict[str, Any]]:
    """What the tasks reported, in order."""
    path = workdir / "report.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def stalled_url() -> Iterator[str]:
    """A W&B server address whose socket accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.smoke  # before wandb 0.28.2 the stuck service is ended: proven on the oldest wandb too
def test_a_stalled_server_adds_at_most_the_timeout_to_the_pods_life(workdir: Path, stalled_url: str) -> None:
    # Not silent, as in a pod: wandb's "logged in" message asks the server who the user is.
    image = pod_image(
        workdir,
        WANDB_MODE="online",
        WANDB_BASE_URL=stalled_url,
        WANDB_API_KEY=FAKE_KEY,
        FLYTEPLUGINS_WANDB_TIMEOUT=str(TIMEOUT_S),
    )
    without = run_pod(pod_workflows.plain, workdir, image)
    with_wandb = run_pod(pod_workflows.logged, workdir, image)
    assert (without.exit_code, with_wandb.exit_code) == (0, 0), with_wandb.log()[-3000:]
    added = with_wandb.elapsed - without.elapsed
    assert added <= TIMEOUT_S + SLACK_S, (
        f"W&B added {added:.1f} s to the pod, timeout={TIMEOUT_S}: {with_wandb.log()[-3000:]}"
    )
    (seen,) = reports(workdir)
    assert seen["offline"] is True
    offline = [
        d
        for d in find_offline_run_dirs(Path(with_wandb.pod_dir) / "wandb", seen["run"])
        if d.name.startswith("offline-")
    ]
    assert len(offline) == 1
    assert read_offline_run(offline[0], wait=15).column("loss") == [1.0 / (step + 1) for step in range(4)]
    assert FAKE_KEY not in with_wandb.log()


def test_a_pods_own_run_is_not_called_shared_and_its_plain_threads_get_it(workdir: Path) -> None:
    pod = run_pod(pod_workflows.logged, workdir, pod_image(workdir, WANDB_MODE="offline"))
    assert pod.exit_code == 0, pod.log()[-3000:]
    (seen,) = reports(workdir)
    # One action runs in the process: a thread it started without its context can only be its.
    assert seen["plain_thread"] == seen["run"] == f"{RUN_NAME}-{pod.action}"
    # No other task writes into this run: nothing about shared mode, nor about plain threads.
    assert "shared mode" not in pod.log()
    assert "does not carry its task's context" not in pod.log()


def test_a_failed_attempts_offline_folder_is_said_to_be_lost_with_its_pod(workdir: Path) -> None:
    pod = run_pod(pod_workflows.fails, workdir, pod_image(workdir, WANDB_MODE="offline"))
    (folder,) = [
        d
        for d in find_offline_run_dirs(Path(pod.pod_dir) / "wandb", f"{RUN_NAME}-{pod.action}")
        if d.name.startswith("offline-")
    ]
    assert read_offline_run(folder, wait=15).exit_code == 1
    said = [line for line in pod.log().splitlines() if "this attempt failed" in line]
    assert len(said) == 1, pod.log()[-3000:]
    assert str(folder) in said[0] and "lost when the container goes away" in said[0]
    assert "download_logs" not in said[0]


# --- a reusable container ----------------------------------------------------------------------


def run_reused(workdir: Path, *waves: str, measure_memory: bool = False, timeout: float = 600) -> Replica:
    """Run ``waves`` of ``pod_workflows`` actions in one process (``holder+looker``: the actions of a
    wave run at once, the waves one after the other); the finished replica."""
    image = pod_image(workdir, WANDB_MODE="offline", WANDB_SILENT="true")
    replica = Cluster(workdir / "cluster", env=image, run_name="reused").replica(
        concurrency=2, measure_memory=measure_memory
    )
    for index, wave in enumerate(waves):
        if index:
            replica.barrier()
        for task in wave.split("+"):
            replica.add(getattr(pod_workflows, task), 4)
    attempts = replica.run(timeout)
    assert [a.ok for a in attempts] == [True] * len(attempts), replica.log()[-3000:]
    return replica


# What an action without @wandb_init gets from every API: no run, and wandb.log fails.
NOTHING = {"task": "looker", "run": None, "wandb_run": None, "plain_thread": None, "wandb_log": "error"}


def test_an_action_in_a_reused_process_never_gets_another_actions_run(workdir: Path) -> None:
    replica = run_reused(workdir, "holder+looker", "looker")
    output = replica.log()
    holder, beside, after = reports(workdir)
    holder_run = f"{replica.actions[0]['run_name']}-a0"  # the holder is the first action of its run
    assert holder == {"task": "holder", "run": holder_run, "wandb_run": holder_run}
    # Beside a live run of another action: no run through any API, wandb.log fails as in its own pod.
    assert beside == {
        "task": "looker",
        "run": None,
        "wandb_run": None,
        "plain_thread": None,
        "wandb_log": "error",
    }
    # Two actions ran: a thread without context could not tell whose it was, and said so.
    assert output.count("does not carry its task's context") == 1
    # Alone in the process afterwards: nothing to leak, nothing logged into the finished run.
    assert after == {
        "task": "looker",
        "run": None,
        "wandb_run": None,
        "plain_thread": None,
        "wandb_log": "error",
    }
    (folder,) = find_offline_run_dirs(replica.directory / "wandb", holder_run)
    run = read_offline_run(folder, wait=15)
    assert run.column("loss") == [1.0] and run.column("leak") == []


def test_memory_stays_flat_over_many_actions_in_a_reused_process(workdir: Path) -> None:
    # One run per action, one after another: nothing of a finished action may stay behind, in the
    # process or in wandb-core. 60 actions here; `benchmarks/run.py --pods` runs 200.
    replica = run_reused(workdir, *["short"] * 60, "holder+looker", "looker", measure_memory=True)
    seen = replica.memory()
    assert len(seen) == 62, replica.log()[-3000:]
    early, late = seen[19], seen[-1]
    growth_mb = (late["self_kb"] + late["children_kb"] - early["self_kb"] - early["children_kb"]) / 1024
    assert growth_mb <= 10.0, f"grew {growth_mb:.1f} MB from action 20 to 62: {seen[19:]}"
    # After 60 runs came and went, an action beside another's live run still gets none of it.
    assert reports(workdir)[1:] == [NOTHING, NOTHING]
    last_short = f"{replica.actions[59]['run_name']}-a0"
    assert len(find_offline_run_dirs(replica.directory / "wandb", last_short)) == 1
