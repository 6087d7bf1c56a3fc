"""The cold path: what a process pays for W&B before and while it runs its one task.

Nothing may start in a process that never runs a task (``flyte deploy``, serialisation, an import
for type checking); a process that does run one takes the fixed waits out of its first run start.
Each process here is a real, fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flyteplugins.wandb._offline import find_offline_run_dirs, iter_records, read_offline_run

_NO_TASK = r"""
import json, os, sys, threading
import flyte
flyte_threads = sorted(t.name for t in threading.enumerate())
from flyteplugins.wandb import Wandb, WandbSweep, explain, wandb_config, wandb_init, wandb_sweep

env = flyte.TaskEnvironment(name="no_task")

@wandb_init(project="p", entity="e", run_mode="new", save_code=True, resume="allow")
@env.task
async def train(x: int) -> int:
    return x

@wandb_init(project="p", config_exclude_keys=["lr"])
def objective() -> None:
    pass

# Setting names are checked when given, against wandb.init's arguments known without wandb.
refused = []
for give in (lambda: wandb_init(projcet="p"), lambda: wandb_config(run_mod="new")):
    try:
        give()
    except ValueError as exc:
        refused.append("did you mean" in str(exc))

@wandb_sweep(method="random", metric={"name": "loss"}, parameters={"lr": {"values": [1, 2]}})
@env.task
async def tune() -> str:
    return ""

links = [link.get_link("r", "p", "d", {}, "a0", "a1", "pod") for link in train.links]
links.append(WandbSweep(project="p", entity="e").get_link("r", "p", "d", {}, "a0", "a1", "pod"))
overridden = train.override(retries=2)
str(explain())
dict(wandb_config(project="x"))
from flyteplugins.wandb import _compat
children = open(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read().split()
print(json.dumps({
    "links": links,
    "refused": refused,
    "wandb": "wandb" in sys.modules,
    "pydantic_settings": "pydantic_settings" in sys.modules,
    "prepared": _compat.cold_start._prepared,
    "new_threads": sorted(set(t.name for t in threading.enumerate()) - set(flyte_threads)),
    "children": children,
}))
"""

_ONE_TASK = r"""
import json, sys, time
import flyte
from flyteplugins.wandb import _compat, get_wandb_run, wandb_init
if sys.argv[1:] == ["unprepared"]:
    _compat.prepare_wandb = lambda: None  # wandb exactly as it comes, for comparison

env = flyte.TaskEnvironment(name="one_task")

@wandb_init(project="p", entity="e")
@env.task
async def train() -> str:
    run = get_wandb_run()
    for i in range(20):
        run.log({"loss": 1.0 / (i + 1)})
    # Long enough for W&B's system monitor to report the machine and a first sample: a run that
    # ends sooner may end without them, with or without the plugin.
    time.sleep(1.0)
    return run.id

flyte.init()
run_id = flyte.with_runcontext(mode="local").run(train).outputs()
run_id = run_id[0] if isinstance(run_id, tuple) else run_id
from flyteplugins.wandb import _compat
print(json.dumps({
    "run_id": run_id,
    "prepared": _compat.cold_start._prepared,
    "launch": "wandb.sdk.launch" in sys.modules,
    "pydantic_settings": "pydantic_settings" in sys.modules,
}))
"""


def _python(code: str, cwd: Path, *args: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_process_that_runs_no_task_starts_nothing(tmp_path: Path) -> None:
    seen = _python(_NO_TASK, tmp_path)
    assert len(seen["links"]) == 2 and all(
        str(link).startswith("https://wandb.ai/e/p/") for link in seen["links"]
    )
    assert seen["refused"] == [True, True]
    assert seen["wandb"] is False
    assert seen["pydantic_settings"] is False
    assert seen["prepared"] is False
    assert seen["new_threads"] == []
    assert seen["children"] == []


def _record_kinds(run_dir: Path) -> list[str]:
    return sorted({str(r.WhichOneof("record_type")) for r in iter_records(run_dir)})


def test_a_one_task_process_records_everything_without_the_launch_api(
    tmp_path: Path, wandb_root: Path
) -> None:
    seen = _python(_ONE_TASK, tmp_path)
    assert seen["prepared"] is True
    # W&B Launch inputs cannot have been staged without importing wandb.sdk.launch: not looked up.
    assert seen["launch"] is False
    # No configuration file: the environment is read without pydantic-settings.
    assert seen["pydantic_settings"] is False
    (run_dir,) = find_offline_run_dirs(wandb_root, str(seen["run_id"]))
    run = read_offline_run(run_dir, wait=15)
    assert run.column("loss") == [1.0 / (i + 1) for i in range(20)]
    assert run.exit_code == 0
    assert (run.entity, run.project) == ("e", "p")
    assert run.files == ["requirements.txt"] and run.file_records == ["requirements.txt"]

    # The same task with wandb exactly as it comes records the same kinds of records and files.
    plain = _python(_ONE_TASK, tmp_path, "unprepared")
    assert plain["prepared"] is False and plain["launch"] is True
    (plain_dir,) = find_offline_run_dirs(wandb_root, str(plain["run_id"]))
    plain_run = read_offline_run(plain_dir, wait=15)
    assert _record_kinds(run_dir) == _record_kinds(plain_dir)
    assert (plain_run.files, plain_run.file_records) == (run.files, run.file_records)
    assert (run_dir / "files" / "requirements.txt").read_bytes() == (
        plain_dir / "files" / "requirements.txt"
    ).read_bytes()


def test_the_service_port_file_is_polled_often_but_within_wandbs_own_bound() -> None:
    from wandb.sdk.lib.service import service_port_file

    from flyteplugins.wandb import _compat

    _compat.prepare_wandb()
    _compat.prepare_wandb()  # idempotent: one wrapper, not two
    start = time.perf_counter()
    service_port_file._SLEEP(0.2)
    assert time.perf_counter() - start < 0.1
    assert getattr(service_port_file._SLEEP, "_flyteplugins_wandb", False)


def test_staged_launch_inputs_are_still_applied_once_the_launch_api_is_imported(
    monkeypatch: pytest.MonkeyPatch, wandb_root: Path
) -> None:
    import wandb
    from wandb.sdk.launch.inputs import internal

    from flyteplugins.wandb import _compat

    _compat.prepare_wandb()
    applied: list[str] = []
    # wandb's own launch-input store, observed at its narrowest boundary.
    monkeypatch.setattr(internal.StagedLaunchInputs, "apply", lambda self, run: applied.append(run.id))
    run = wandb.init(project="p", id="launch-inputs", reinit="create_new")
    run.finish()
    assert applied == ["launch-inputs"]
