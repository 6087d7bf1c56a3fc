"""Report tab: the task's W&B charts in its Flyte report, with no account and no network.

A task declared with ``report=True`` and ``@wandb_init`` gets a "Weights & Biases" tab in its
Flyte report when it ends: the run's link, identity, lineage, config and summary, and one chart
per logged metric. Here a pipeline prepares its data (a ``File``, logged as a W&B reference
artifact with ``log_outputs=True``) and trains on it: both children write into the pipeline's run,
and a toy training loop logs a loss curve per step and validation metrics per epoch
(``define_metric`` makes ``epoch`` their x axis). The pipeline's tab shows the charts, which task
logged what, the run's line back to Flyte, the artifact logged and the data used. Afterwards the
script prints where the report is, reads the run back from its folder (``read_wandb_run``), and
writes the same page for the run with ``flyte wandb report``.

    python examples/report_tab.py
"""

from __future__ import annotations

import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import flyte
from flyte.io import File

from flyteplugins.wandb import get_wandb_run, read_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="report_tab")


@wandb_init(log_outputs=True)
@env.task
async def prepare(rows: int = 500) -> File:
    """Write the training data; with ``log_outputs=True`` the ``File`` becomes a reference artifact."""
    path = Path(tempfile.mkdtemp(prefix="report-tab-data-")) / "train.csv"
    noise = random.Random(1)
    path.write_text("x,y\n" + "".join(f"{i},{noise.random():.4f}\n" for i in range(rows)))
    return await File.from_local(str(path))


@wandb_init
@env.task
async def train(
    data: File, epochs: int = 6, steps_per_epoch: int = 250, learning_rate: float = 0.05
) -> float:
    run = get_wandb_run()
    run.config.update({"epochs": epochs, "steps_per_epoch": steps_per_epoch, "learning_rate": learning_rate})
    run.define_metric("epoch")
    run.define_metric("val/*", step_metric="epoch")
    noise = random.Random(0)
    total = epochs * steps_per_epoch
    loss = 2.3
    for step in range(total):
        lr = learning_rate * 0.5 * (1 + math.cos(math.pi * step / total))
        loss = 0.15 + 2.15 * math.exp(-step / 400) + noise.gauss(0, 0.06)
        run.log(
            {
                "train/loss": loss,
                "train/learning_rate": lr,
                "train/grad_norm": abs(noise.gauss(1.5 * math.exp(-step / 900), 0.2)),
                "perf/samples_per_second": 1200 + noise.gauss(0, 40),
            }
        )
        if (step + 1) % steps_per_epoch == 0:
            epoch = step // steps_per_epoch
            run.log({"epoch": epoch, "val/loss": loss + 0.08, "val/accuracy": 0.97 - 0.6 * math.exp(-epoch)})
    run.summary["best_val_accuracy"] = 0.97 - 0.6 * math.exp(-(epochs - 1))
    return loss


@wandb_init(project="report-tab", entity="my-team", tags=["example"])
@env.task(report=True)
async def pipeline(epochs: int = 6) -> float:
    data = await prepare()
    return await train(data, epochs)


def main() -> None:
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    flyte.init()
    run = flyte.with_runcontext(mode="local").run(pipeline)
    print(f"final loss: {run.outputs()[0]:.3f}")
    for report in sorted(Path(run.url).rglob("report.html")):
        print(f"Flyte report (tab 'Weights & Biases'): {report}")

    # What the run recorded, read back from its folder (wandb/latest-run links the newest run's).
    recorded = read_wandb_run(Path(os.environ.get("WANDB_DIR", ".")) / "wandb" / "latest-run")
    best = recorded.summary["best_val_accuracy"]
    print(f"W&B run {recorded.run_id}: {len(recorded.history)} steps, best val/accuracy {best:.3f}")

    # The same page for any local run, outside Flyte: flyte wandb report RUN_ID (a prefix will do).
    flyte_cli = shutil.which("flyte", path=os.path.dirname(sys.executable)) or "flyte"
    done = subprocess.run(
        [flyte_cli, "wandb", "report", recorded.run_id[:12]], capture_output=True, text=True, check=True
    )
    print(f"Page of the run (flyte wandb report): {done.stdout.strip().rsplit(' to ', 1)[-1]}")


if __name__ == "__main__":
    main()
