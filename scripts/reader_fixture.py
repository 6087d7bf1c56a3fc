"""Write the transaction-log fixtures of one wandb release, for tests/test_reader_fixtures.py.

Run it with the Python of an environment that has the wandb release to record (see
scripts/make_reader_fixtures.sh, which builds those environments):

    python scripts/reader_fixture.py tests/data/wandb-logs

It starts three small offline runs with the installed wandb, as a user's task would, and keeps
only their ``run-<id>.wandb`` logs, under ``<out>/wandb-<version>/<run directory>/``:

- ``fixture-run``: identity, tags, notes, nested config, three logged steps (nested keys, a
  ``None``), a config change and a summary update after the start, finished with exit code 0;
- ``fixture-run`` again, resumed (``resume="allow"``), one step, finished with exit code 1;
- ``fixture-shared``: a non-primary writer of a shared run, offline (``x_label="rank-1"``,
  ``x_primary=False``), as a distributed rank writes it.

The expected values live in tests/test_reader_fixtures.py; keep the two in step.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import wandb

RUN_ID = "fixture-run"
SHARED_ID = "fixture-shared"
CONFIG = {"lr": 0.001, "layers": [64, 32], "optimizer": {"name": "adam", "betas": [0.9, 0.999]}}
STEPS = [
    {"loss": 2.5, "acc": 0.1, "phase": "warmup"},
    {"loss": 1.25, "acc": 0.5, "grad": {"norm": 3.5, "clipped": True}},
    {"loss": 0.625, "acc": 0.75, "maybe": None},
]


def _settings(**extra: object) -> wandb.Settings:
    # No requirements, no console capture, no system metrics: a log of a few KB.
    return wandb.Settings(
        silent=True, console="off", x_save_requirements=False, x_disable_stats=True, **extra
    )


def main(out: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="reader-fixture-"))
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_DIR"] = str(work)
    common = {
        "mode": "offline",
        "dir": str(work),
        "project": "fixtures",
        "entity": "team",
        "reinit": "create_new",
    }
    run = wandb.init(
        id=RUN_ID,
        name="first try",
        group="experiment-1",
        job_type="train",
        tags=["baseline", "cpu"],
        notes="reads back",
        config=CONFIG,
        settings=_settings(),
        **common,
    )
    for step in STEPS:
        run.log(step)
    run.config.update({"epochs": 3})
    run.summary["best"] = 0.75
    run.finish()

    resumed = wandb.init(id=RUN_ID, resume="allow", config={"stage": 2}, settings=_settings(), **common)
    resumed.log({"loss": 0.5})
    resumed.finish(exit_code=1)

    shared = wandb.init(
        id=SHARED_ID,
        settings=_settings(x_label="rank-1", x_primary=False),
        **common,
    )
    shared.log({"rank_loss": 1.5})
    shared.finish()
    wandb.teardown()

    target = out / f"wandb-{wandb.__version__}"
    shutil.rmtree(target, ignore_errors=True)
    for run_dir in sorted((work / "wandb").glob("offline-run-*")):
        for log in run_dir.glob("run-*.wandb"):
            (target / run_dir.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(log, target / run_dir.name / log.name)
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tests/data/wandb-logs"))
