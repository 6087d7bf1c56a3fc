"""End to end under torchrun: two CPU processes that really talk (gloo) and log to W&B offline.

``torchrun --nproc_per_node=2`` starts ``tests/dist_worker.py`` twice with the environment it gives
every worker. Each process runs ``@wandb_init`` Elastic tasks (real local Flyte runs, one per run
mode); the task body joins the process group, all-reduces a tensor and logs the result.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from dist_worker import clean_env

from flyteplugins.wandb._offline import find_offline_run_dirs, read_offline_run

WORKER = Path(__file__).with_name("dist_worker.py")


def test_torchrun_two_processes_all_reduce_and_log_to_the_planned_runs(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="torch is not installed: torchrun is part of it")
    pytest.importorskip(
        "flyteplugins.pytorch", reason="flyteplugins-pytorch (the Elastic plugin) is not installed"
    )
    name = f"tr{uuid.uuid4().hex[:8]}"
    env = clean_env(tmp_path, WANDB_CONSOLE="off")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=2",
        "--max-restarts=0",
        str(WORKER),
        "--out",
        str(tmp_path / "rank-{rank}.json"),
        "--name",
        name,
        "--combos",
        "auto:global,shared:global,new:global",
        "--allreduce",
        "--barrier",
        str(tmp_path / "barrier"),
    ]
    done = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    reports = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in range(2)]
    # torchrun, not the test, set up each rank's environment.
    assert [r["env"] for r in reports] == [
        {"RANK": str(r), "WORLD_SIZE": "2", "LOCAL_RANK": str(r), "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "0"}
        for r in range(2)
    ]
    expected_runs: dict[str, list[tuple[str | None, str | None, str | None]]] = {
        "auto": [("{b}", None, None), (None, None, None)],
        "shared": [("{b}", None, "rank-0"), ("{b}", None, "rank-1")],
        "new": [("{b}-rank-0", "{b}", None), ("{b}-rank-1", "{b}", None)],
    }
    for run_mode, rows in expected_runs.items():
        results = [r["combos"][f"{run_mode}:global"] for r in reports]
        assert all(r["ok"] for r in results), [r["error"] for r in results]
        seen = [r["seen"] for r in results]
        ((run_name, action),) = {(s["run_name"], s["action_name"]) for s in seen}
        base = f"{run_name}-{action}"
        # The gloo all_reduce of rank + 1 over both processes: they really formed one job.
        assert [s["all_reduce"] for s in seen] == [3.0, 3.0]
        got = [(s.get("run_id"), s.get("group"), s.get("x_label")) for s in seen]
        assert got == [tuple(v and v.format(b=base) for v in row) for row in rows]
        # What wandb wrote: each planned run, finished, holding what its rank logged.
        for rank, s in enumerate(seen):
            if not s["has_run"]:
                continue
            (recorded,) = [
                read_offline_run(d, wait=5)
                for d in find_offline_run_dirs(tmp_path, s["run_id"])
                if str(d) == s["run_dir"]
            ]
            assert recorded.exit_code == 0
            assert recorded.group == s["group"]
            assert recorded.column("rank") == [rank]
            assert recorded.column("all_reduce") == [3.0]
        run_ids = {s["run_id"] for s in seen if s["has_run"]}
        writers = sum(len(find_offline_run_dirs(tmp_path, run_id)) for run_id in run_ids)
        assert writers == sum(s["has_run"] for s in seen)


def test_distributed_example_reports_which_rank_logged_where(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="torch is not installed: torchrun is part of it")
    example = Path(__file__).resolve().parents[1] / "examples" / "distributed.py"
    env = clean_env(tmp_path)
    done = subprocess.run(
        [sys.executable, str(example), "--run-mode", "new"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "run_mode='new' rank_scope='global', 1 node(s) x 2:"
    ranks = [line for line in lines if line.startswith("  rank ")]
    assert len(ranks) == 2
    runs = []
    for rank, line in enumerate(ranks):
        prefix = f"  rank {rank} (worker 0, local rank {rank}): logged to run "
        assert line.startswith(prefix)
        run_id, _, group = line.removeprefix(prefix).partition(" in group ")
        assert run_id == f"{group}-rank-{rank}"
        runs.append((run_id, group))
    assert "2 W&B run(s), 2 local folder(s)" in done.stdout
    # The runs the example names are the ones on disk, with what each rank logged.
    for rank, (run_id, group) in enumerate(runs):
        (folder,) = find_offline_run_dirs(tmp_path, run_id)
        recorded = read_offline_run(folder, wait=5)
        assert (recorded.group, recorded.exit_code, recorded.project) == (group, 0, "distributed-example")
        assert recorded.column("local_loss") == [1.0 / (step + 1 + rank) for step in range(3)]
        # The all_reduce mean over both ranks, at each step.
        assert recorded.column("mean_loss") == pytest.approx(
            [(1.0 / (step + 1) + 1.0 / (step + 2)) / 2 for step in range(3)]
        )
