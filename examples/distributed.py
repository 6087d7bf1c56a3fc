"""Distributed training on one machine: which rank logs to which W&B run.

Starts a small torch-elastic job of several processes. Every process runs the same Flyte task, an
``Elastic`` task decorated with ``@wandb_init``, the way each worker of an elastic job does; the
ranks average their loss with a real ``all_reduce`` (gloo, CPU) and log to W&B. Runs offline by
default (no account, no network): every run is written under ./wandb. At the end the script
prints, rank by rank, the run each process logged to.

    python examples/distributed.py                                # torchrun: 1 node x 2 processes
    python examples/distributed.py --run-mode new                 # one run per rank, in one group
    python examples/distributed.py --launcher env --nnodes 2 --rank-scope worker   # 2 simulated nodes

``--launcher torchrun`` (the default) starts the processes with ``torchrun``; ``--launcher env``
starts them itself with the variables torchrun would set (RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE, GROUP_RANK), which can also pretend to be several nodes on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import flyte

from flyteplugins.wandb import get_distributed_info, get_wandb_run, wandb_init

STEPS = 3


def build_task(run_mode: str, rank_scope: str, nnodes: int, nproc: int, report: Path) -> Any:
    """The training task: an Elastic task (flyteplugins-pytorch) with a W&B run per the run mode."""
    from flyteplugins.pytorch import Elastic

    env = flyte.TaskEnvironment(
        name="distributed_example", plugin_config=Elastic(nnodes=nnodes, nproc_per_node=nproc)
    )

    @wandb_init(project="distributed-example", entity="my-team", run_mode=run_mode, rank_scope=rank_scope)
    @env.task
    def train(steps: int = STEPS) -> float:
        import torch
        import torch.distributed as dist

        info = get_distributed_info()
        assert info is not None, "start this task with torchrun (or --launcher env)"
        dist.init_process_group("gloo")
        run = get_wandb_run()  # None in the ranks that do not log (run_mode="auto")
        mean_loss = 0.0
        for step in range(steps):
            local_loss = 1.0 / (step + 1 + info.rank)
            total = torch.tensor([local_loss])
            dist.all_reduce(total)
            mean_loss = float(total.item()) / info.world_size
            if run is not None:
                run.log({"step": step, "local_loss": local_loss, "mean_loss": mean_loss})
        dist.destroy_process_group()
        line: dict[str, Any] = {"rank": info.rank, "worker": info.worker_index, "local_rank": info.local_rank}
        if run is not None:
            line.update(
                run_id=run.id,
                group=run.group or None,
                label=run.settings.x_label,
                primary=run.settings.x_primary,
                folder=os.path.dirname(run.dir),
            )
        report.write_text(json.dumps(line), encoding="utf-8")
        return mean_loss

    return train


# The launcher passes the job's settings to its ranks in this variable rather than as arguments,
# which torchrun would try to read as its own options.
JOB_VAR = "DISTRIBUTED_EXAMPLE_JOB"


def worker(job: dict[str, Any]) -> None:
    """One rank: a local Flyte run of the task, named the same in every rank of the job."""
    report = Path(job["reports"]) / f"rank-{os.environ['RANK']}.json"
    task = build_task(job["run_mode"], job["rank_scope"], job["nnodes"], job["nproc"], report)
    flyte.init()
    flyte.with_runcontext(mode="local", name=job["name"]).run(task)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def launch(args: argparse.Namespace, reports: Path) -> None:
    job = {
        "name": f"dist-{uuid.uuid4().hex[:6]}",  # the Flyte run name: the same in every rank
        "reports": str(reports),
        "run_mode": args.run_mode,
        "rank_scope": args.rank_scope,
        "nnodes": args.nnodes,
        "nproc": args.nproc,
    }
    script = str(Path(__file__).resolve())
    # Each rank must have a wandb service of its own: one inherited through WANDB_SERVICE (set by a
    # parent process that used wandb) refuses a second writer of the same run id.
    base_env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    base_env[JOB_VAR] = json.dumps(job)
    if args.launcher == "torchrun":
        if args.nnodes != 1:
            raise SystemExit("--launcher torchrun runs one node here; use --launcher env to simulate several")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1"]
        subprocess.run([*cmd, f"--nproc_per_node={args.nproc}", script], env=base_env, check=True)
        return
    world = args.nnodes * args.nproc
    common = {"WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(args.nproc), "MASTER_ADDR": "127.0.0.1"}
    common["MASTER_PORT"] = str(_free_port())
    procs = []
    for rank in range(world):
        node, local = divmod(rank, args.nproc)
        env = {**base_env, **common, "RANK": str(rank), "LOCAL_RANK": str(local), "GROUP_RANK": str(node)}
        procs.append(subprocess.Popen([sys.executable, script], env=env))
    if any(proc.wait() != 0 for proc in procs):
        raise SystemExit("a rank failed: see its output above")


def describe(line: dict[str, Any]) -> str:
    where = f"rank {line['rank']} (worker {line['worker']}, local rank {line['local_rank']})"
    if "run_id" not in line:
        return f"{where}: logs nothing (only the lead rank of its scope logs in run_mode='auto')"
    text = f"{where}: logged to run {line['run_id']}"
    if line["group"]:
        text += f" in group {line['group']}"
    if line["label"]:
        text += f" as writer {line['label']}" + (" (primary)" if line["primary"] else "")
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Which rank logs to which W&B run, on one machine.")
    parser.add_argument("--run-mode", choices=["auto", "shared", "new"], default="shared")
    parser.add_argument("--rank-scope", choices=["global", "worker"], default="global")
    parser.add_argument("--launcher", choices=["torchrun", "env"], default="torchrun")
    parser.add_argument("--nnodes", type=int, default=1, help="nodes (workers); several need --launcher env")
    parser.add_argument("--nproc", type=int, default=2, help="processes per node")
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if JOB_VAR in os.environ:
        worker(json.loads(os.environ[JOB_VAR]))
        return
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        reports = Path(tmp)
        launch(args, reports)
        lines = [json.loads(p.read_text()) for p in sorted(reports.glob("rank-*.json"))]
    lines.sort(key=lambda line: line["rank"])
    print(f"run_mode={args.run_mode!r} rank_scope={args.rank_scope!r}, {args.nnodes} node(s) x {args.nproc}:")
    for line in lines:
        print("  " + describe(line))
    folders = sorted({line["folder"] for line in lines if "folder" in line})
    runs = sorted({line["run_id"] for line in lines if "run_id" in line})
    print(
        f"{len(runs)} W&B run(s), {len(folders)} local folder(s); upload them with: wandb beta sync ./wandb"
    )
    for folder in folders:
        print(f"  {folder}")


if __name__ == "__main__":
    main()
