"""Every script in ``examples/`` runs on its own (``python examples/x.py``) from a fresh directory, in
offline mode, and does what it says: checked against its output and the runs W&B wrote to disk."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import run_local

from flyteplugins.wandb._offline import OfflineRun, find_offline_run_dirs, read_offline_run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# The offline log of a run is complete once the process that wrote it has exited.
WAIT = 20.0


def run_example(name: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python examples/<name>`` with the test's offline W&B environment, WANDB_DIR in ``cwd``."""
    environ = {**os.environ, "WANDB_DIR": str(cwd), **env}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    # Run as documented, an example gets no local-versus-cluster warning.
    assert "which a cluster task does not get" not in result.stderr, result.stderr
    return result


def runs_in(cwd: Path) -> list[OfflineRun]:
    return [read_offline_run(path, wait=WAIT) for path in find_offline_run_dirs(cwd / "wandb")]


def load_example(name: str) -> ModuleType:
    """Import an example as a module (its ``main()`` does not run), to run its tasks in-process."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_logs_one_run_with_the_loss_curve(tmp_path: Path) -> None:
    result = run_example("quickstart.py", tmp_path)
    assert "final loss: 0.125" in result.stdout
    (run,) = runs_in(tmp_path)
    assert (run.entity, run.project, run.tags) == ("my-team", "quickstart", ("quickstart",))
    assert run.column("loss") == [0.5, 0.25, 0.125]
    assert run.config["epochs"] == 3
    assert run.exit_code == 0
    assert f"W&B run {run.run_id} (Flyte action " in result.stderr  # the plugin says where it is


def test_env_config_configures_every_run_from_environment_variables(tmp_path: Path) -> None:
    # A variable set by the caller beats the script's default, as it would in a shell.
    result = run_example("env_config.py", tmp_path, WANDB_PROJECT="from-the-shell")
    assert re.search(r"^project\s+from-the-shell\s+env WANDB_PROJECT", result.stdout, re.M)
    assert re.search(r"^run_mode\s+new\s+env FLYTEPLUGINS_WANDB_RUN_MODE", result.stdout, re.M)
    assert "mean score: 0.805" in result.stdout
    runs = runs_in(tmp_path)
    # FLYTEPLUGINS_WANDB_RUN_MODE=new: the parent and each of its two children have their own run.
    assert len(runs) == 3
    assert len({run.run_id for run in runs}) == 3
    for run in runs:
        assert (run.project, run.entity, run.group) == ("from-the-shell", "my-team", "env-example")
        assert run.tags == ("env", "example")
    assert sorted(len(run.column("score")) for run in runs) == [0, 1, 1]
    assert sum(len(run.column("mean_score")) for run in runs) == 1


def test_nested_subtasks_all_write_into_the_top_tasks_run(tmp_path: Path) -> None:
    result = run_example("nested_subtasks.py", tmp_path)
    (run,) = runs_in(tmp_path)
    assert f"every task logged into W&B run {run.run_id}" in result.stdout
    assert (run.project, run.entity) == ("nested-subtasks", "my-team")
    # The user's config; every task's Flyte backlink sits beside it under its own "flyte*" key.
    assert {k: v for k, v in run.config.items() if not k.startswith("flyte")} == {"shards": 3, "epochs": 3}
    # Grandchildren (gathered concurrently), the child and the sibling all logged here.
    assert [run.column(f"shard_{i}/rows") for i in range(3)] == [[100], [200], [300]]
    assert run.column("preprocess/rows") == [600]
    assert len(run.column("train/loss")) == 3
    assert run.summary["final_loss"] == pytest.approx(0.6**3)
    assert run.exit_code == 0


def test_self_hosted_links_use_the_web_address_derived_from_wandb_base_url(tmp_path: Path) -> None:
    result = run_example("self_hosted.py", tmp_path)
    assert "-> W&B web address https://wandb.mycompany.internal" in result.stdout
    (run,) = runs_in(tmp_path)
    assert f"W&B run: {run.run_id}" in result.stdout
    assert (
        f"Flyte link: https://wandb.mycompany.internal/ml-platform/self-hosted/runs/{run.run_id}"
        in result.stdout
    )
    assert (run.entity, run.project) == ("ml-platform", "self-hosted")


@pytest.mark.parametrize(
    ("variables", "host"),
    [
        ({"WANDB_BASE_URL": "https://api.wandb.mycompany.internal"}, "https://wandb.mycompany.internal"),
        ({"WANDB_BASE_URL": "https://api.mycompany.com"}, "https://app.mycompany.com"),
        (
            {"WANDB_BASE_URL": "https://api.mycompany.com", "WANDB_APP_URL": "https://wandb.mycompany.com/"},
            "https://wandb.mycompany.com",
        ),
    ],
)
def test_self_hosted_link_flyte_renders_matches_what_the_example_prints(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], host: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    example = load_example("self_hosted")
    result = run_local(example.train, custom_context=dict(example.WORKFLOW_CONTEXT))
    # run_local returns the first output: the run id (the action name comes with the links).
    run_id = result.outputs
    ((action, ((_, rendered),)),) = result.links_by_action.items()
    assert rendered == f"{host}/ml-platform/self-hosted/runs/{run_id}"
    run_name = run_id.removesuffix(f"-{action}")
    assert example.link_of(example.train, run_name, action) == rendered


def test_sweep_runs_the_objective_once_per_grid_point_each_in_its_own_run(tmp_path: Path) -> None:
    result = run_example("sweep.py", tmp_path)
    runs = runs_in(tmp_path)
    grid = {(lr, bs) for lr in (0.01, 0.1) for bs in (16, 64)}
    assert {(run.config["learning_rate"], run.config["batch_size"]) for run in runs} == grid
    assert len(runs) == len(grid)
    for run in runs:
        assert (run.project, run.entity, run.group) == ("sweep-example", "my-team", "local-grid-sweep")
        assert run.tags == ("sweep-trial",)
        assert len(run.column("loss")) == 5
        label = f"batch_size={run.config['batch_size']},learning_rate={run.config['learning_rate']}"
        assert re.search(rf"^{re.escape(label)}\s+loss {run.column('loss')[-1]:.4f}$", result.stdout, re.M)
    best = min(runs, key=lambda run: run.column("loss")[-1])
    assert f"best: batch_size={best.config['batch_size']},learning_rate={best.config['learning_rate']}" in (
        result.stdout
    )
