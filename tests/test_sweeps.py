"""@wandb_sweep in real local Flyte runs.

The W&B sweep service cannot be reached from here, so ``wandb.sweep`` (which registers the sweep with
the service and returns its id) and the part of ``wandb.agent`` that polls the service for trials are
replaced; everything else (Flyte, the custom_context hand-off, links, the objective's W&B runs
written offline to disk) is real.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flyte
import pytest
from conftest import run_local

from flyteplugins.wandb import (
    WandbConfigError,
    get_wandb_run,
    get_wandb_sweep_id,
    wandb_config,
    wandb_init,
    wandb_sweep,
    wandb_sweep_config,
)

env = flyte.TaskEnvironment(name="sweep_tests")

GRID = wandb_sweep_config(
    method="grid", metric={"name": "loss", "goal": "minimize"}, parameters={"lr": {"values": [0.1, 0.2]}}
)


@pytest.fixture
def sweeps(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record every wandb.sweep call (the W&B sweep service is out of reach) and return an id."""
    import wandb

    calls: list[dict[str, Any]] = []

    def fake_sweep(
        sweep: dict[str, Any], entity: str | None = None, project: str | None = None, prior_runs: Any = None
    ) -> str:
        calls.append({"sweep": sweep, "entity": entity, "project": project, "prior_runs": prior_runs})
        return f"sweep{len(calls)}"

    monkeypatch.setattr(wandb, "sweep", fake_sweep)
    return calls


# --- tasks ---------------------------------------------------------------------------------------


@env.task
async def plain_child() -> str:
    return get_wandb_sweep_id() or ""


@wandb_sweep
@env.task
async def sweep_child() -> str:
    return get_wandb_sweep_id() or ""


@wandb_sweep(project="deco-proj", entity="deco-team")
@env.task
async def tune() -> list[str]:
    return [get_wandb_sweep_id() or "", await sweep_child(), await plain_child()]


@wandb_sweep
@env.task
async def tune_undecorated() -> str:
    return get_wandb_sweep_id() or ""


@wandb_sweep
@env.task
async def tune_names() -> list[str]:
    ctx = flyte.ctx()
    assert ctx is not None
    return [get_wandb_sweep_id() or "", f"{ctx.action.run_name}-{ctx.action.name}"]


@wandb_sweep
@env.task
def tune_sync() -> str:
    return get_wandb_sweep_id() or ""


def links_of(run: Any, task: str) -> list[str]:
    return [url for name, url in run.links[task] if name == "Weights & Biases Sweep"]


# --- where the sweep lives and who sees it -------------------------------------------------------


def test_child_sweep_link_points_at_the_sweep_its_parent_created(sweeps: list[dict[str, Any]]) -> None:
    run = run_local(tune, custom_context=dict(GRID))

    assert run.outputs == ["sweep1", "sweep1", "sweep1"]
    assert len(sweeps) == 1, "the child must reuse the parent's sweep, not create a second one"
    # The parent's link is rendered before its sweep exists: the project's sweeps page.
    assert links_of(run, "tune") == ["https://wandb.ai/deco-team/deco-proj/sweeps"]
    assert links_of(run, "sweep_child") == ["https://wandb.ai/deco-team/deco-proj/sweeps/sweep1"]


def test_decorator_project_and_entity_reach_the_link_and_wandb_sweep(sweeps: list[dict[str, Any]]) -> None:
    context = {
        **wandb_config(project="run-proj", entity="run-team"),
        **wandb_sweep_config(
            method="random",
            parameters={"lr": {"min": 0.1, "max": 0.2}},
            project="sweep-proj",
            entity="sweep-team",
        ),
    }
    run = run_local(tune, custom_context=context)

    assert (sweeps[0]["entity"], sweeps[0]["project"]) == ("deco-team", "deco-proj")
    assert links_of(run, "tune") == ["https://wandb.ai/deco-team/deco-proj/sweeps"]
    assert links_of(run, "sweep_child") == ["https://wandb.ai/deco-team/deco-proj/sweeps/sweep1"]


def test_sweep_settings_beat_run_settings_for_project_and_entity(sweeps: list[dict[str, Any]]) -> None:
    context = {
        **wandb_config(project="run-proj", entity="run-team"),
        **wandb_sweep_config(method="grid", parameters={"lr": {"values": [1]}}, project="sweep-proj"),
    }
    run = run_local(tune_undecorated, custom_context=context)

    assert (sweeps[0]["entity"], sweeps[0]["project"]) == ("run-team", "sweep-proj")
    assert links_of(run, "tune_undecorated") == ["https://wandb.ai/run-team/sweep-proj/sweeps"]


def test_environment_is_the_last_fallback_for_project_and_entity(
    sweeps: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_PROJECT", "env-proj")
    monkeypatch.setenv("WANDB_ENTITY", "env-team")
    run_local(tune_undecorated, custom_context=dict(GRID))

    assert (sweeps[0]["entity"], sweeps[0]["project"]) == ("env-team", "env-proj")


declaring_sweeps = flyte.TaskEnvironment(
    name="sweep_tests_declaring",
    env_vars={"WANDB_PROJECT": "declared-proj", "WANDB_ENTITY": "declared-team"},
)


@wandb_sweep
@declaring_sweeps.task
async def tune_declaring() -> str:
    return get_wandb_sweep_id() or ""


def test_the_tasks_declared_variables_place_its_sweep_and_its_link(
    sweeps: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The task's container gets the variables its TaskEnvironment declares, over the shell's (which
    # a cluster does not have): the sweep is created where its link points, locally as there.
    from flyteplugins.wandb import reload_settings

    monkeypatch.setenv("WANDB_PROJECT", "shell-proj")
    monkeypatch.setenv("WANDB_ENTITY", "shell-team")
    reload_settings()
    try:
        run = run_local(tune_declaring, custom_context=dict(GRID))
    finally:
        monkeypatch.undo()
        reload_settings()
    assert (sweeps[0]["entity"], sweeps[0]["project"]) == ("declared-team", "declared-proj")
    assert links_of(run, "tune_declaring") == ["https://wandb.ai/declared-team/declared-proj/sweeps"]


def test_an_override_of_the_declared_variables_moves_the_sweep_and_its_link(
    sweeps: list[dict[str, Any]],
) -> None:
    overridden = tune_declaring.override(env_vars={"WANDB_PROJECT": "override-proj", "WANDB_ENTITY": "t"})
    run = run_local(overridden, custom_context=dict(GRID))
    assert (sweeps[0]["entity"], sweeps[0]["project"]) == ("t", "override-proj")
    assert links_of(run, "tune_declaring") == ["https://wandb.ai/t/override-proj/sweeps"]


def test_sweep_already_in_context_is_reused(sweeps: list[dict[str, Any]]) -> None:
    context = {
        **GRID,
        "_wandb_sweep_id": "existing",
        "_wandb_sweep_entity": "team",
        "_wandb_sweep_project": "proj",
    }
    run = run_local(tune_undecorated, custom_context=context)

    assert run.outputs == "existing"
    assert sweeps == []
    assert links_of(run, "tune_undecorated") == ["https://wandb.ai/team/proj/sweeps/existing"]


def test_sweep_id_is_visible_in_the_task_and_every_child_but_not_after(sweeps: list[dict[str, Any]]) -> None:
    run = run_local(tune, custom_context=dict(GRID))

    assert run.outputs == ["sweep1", "sweep1", "sweep1"]
    assert get_wandb_sweep_id() is None


@env.task
async def context_of_child() -> dict[str, str]:
    ctx = flyte.ctx()
    assert ctx is not None
    return {k: v for k, v in (ctx.custom_context or {}).items() if k.startswith("_wandb_sweep")}


@wandb_sweep(project="deco-proj", entity="deco-team")
@env.task
async def tune_and_show_context() -> dict[str, str]:
    return await context_of_child()


def test_sweep_identity_reaches_children_through_custom_context(sweeps: list[dict[str, Any]]) -> None:
    # What a child on another pod receives: Flyte hands custom_context over, not Python state.
    run = run_local(tune_and_show_context, custom_context=dict(GRID))

    assert run.outputs == {
        "_wandb_sweep_id": "sweep1",
        "_wandb_sweep_entity": "deco-team",
        "_wandb_sweep_project": "deco-proj",
    }


def test_sweep_config_and_name_reach_wandb_sweep(sweeps: list[dict[str, Any]]) -> None:
    context = {
        **GRID,
        **wandb_sweep_config(prior_runs=["old-1"], early_terminate={"type": "hyperband", "min_iter": 2}),
    }
    run = run_local(tune_names, custom_context=context)

    sweep_id, default_name = run.outputs
    assert sweep_id == "sweep1"
    assert sweeps[0]["sweep"] == {
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"lr": {"values": [0.1, 0.2]}},
        "early_terminate": {"type": "hyperband", "min_iter": 2},
        "name": default_name,
    }
    assert sweeps[0]["prior_runs"] == ["old-1"]


def test_a_given_sweep_name_wins(sweeps: list[dict[str, Any]]) -> None:
    run_local(tune_undecorated, custom_context={**GRID, **wandb_sweep_config(name="my sweep")})

    assert sweeps[0]["sweep"]["name"] == "my sweep"


def test_decorator_sweep_fields_beat_the_context(sweeps: list[dict[str, Any]]) -> None:
    decorated = wandb_sweep(
        method="bayes", parameters={"x": {"min": 0, "max": 1}}, description="from decorator"
    )(env.task(_plain_sweep_body))
    run_local(decorated, custom_context=dict(GRID))

    sent = sweeps[0]["sweep"]
    assert (sent["method"], sent["parameters"], sent["description"]) == (
        "bayes",
        {"x": {"min": 0, "max": 1}},
        "from decorator",
    )
    assert sent["metric"] == {"name": "loss", "goal": "minimize"}, (
        "fields the decorator leaves unset come from below"
    )


async def _plain_sweep_body() -> str:
    return get_wandb_sweep_id() or ""


def test_sync_task_gets_its_sweep(sweeps: list[dict[str, Any]]) -> None:
    run = run_local(tune_sync, custom_context=dict(GRID))

    assert run.outputs == "sweep1"


def test_override_keeps_the_sweep_wrapper(sweeps: list[dict[str, Any]]) -> None:
    overridden = tune_undecorated.override(retries=1)
    run = run_local(overridden, custom_context=dict(GRID))

    assert run.outputs == "sweep1"
    assert len(sweeps) == 1


def test_disabled_wandb_creates_no_sweep_and_links_to_none(sweeps: list[dict[str, Any]]) -> None:
    context = {**GRID, **wandb_config(mode="disabled", project="p", entity="e")}
    run = run_local(tune, custom_context=context)

    assert sweeps == []
    assert run.outputs == ["", "", ""]
    for task in ("tune", "sweep_child"):
        for url in links_of(run, task):
            assert "/sweeps/" not in url, f"{task} links to a sweep that does not exist: {url}"


# --- errors --------------------------------------------------------------------------------------


def test_no_sweep_configuration_is_a_clear_error(sweeps: list[dict[str, Any]]) -> None:
    with pytest.raises(Exception, match=r"no sweep configuration: method and parameters are not set") as info:
        run_local(tune_undecorated)

    assert "wandb_sweep_config" in str(info.value)
    assert sweeps == []


def test_a_failing_wandb_sweep_names_the_sweep_and_hides_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    secret = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("WANDB_API_KEY", secret)

    def refuse(**_: Any) -> str:
        raise wandb.errors.CommError(f"permission denied for key {secret}")

    monkeypatch.setattr(wandb, "sweep", refuse)
    with pytest.raises(Exception, match=r"could not create W&B sweep 'fixed' in e/p: CommError") as info:
        run_local(
            tune_undecorated,
            custom_context={**GRID, **wandb_sweep_config(name="fixed", project="p", entity="e")},
        )

    assert secret not in str(info.value)


@pytest.mark.parametrize(
    ("arguments", "field", "shown"),
    [
        ({"method": "sometimes"}, "method", "'sometimes'"),
        ({"metric": {"name": "loss", "goal": "upwards"}}, "metric", "'upwards'"),
        ({"metric": {"goal": "minimize"}}, "metric", "'goal': 'minimize'"),
        ({"parameters": {"lr": {"between": [0, 1]}}}, "parameters", "'between'"),
        ({"parameters": {"lr": 0.1}}, "parameters", "0.1"),
    ],
)
def test_invalid_sweep_settings_name_the_field_and_value(
    arguments: dict[str, Any], field: str, shown: str
) -> None:
    with pytest.raises(WandbConfigError) as info:
        wandb_sweep_config(**arguments)

    assert info.value.field == field
    assert f"invalid W&B setting {field}=" in str(info.value)
    assert shown in str(info.value)
    assert "wandb_sweep_config()" in str(info.value)


def test_invalid_decorator_arguments_fail_at_decoration() -> None:
    with pytest.raises(WandbConfigError, match=r"method='sometimes' \(from @wandb_sweep\(\.\.\.\)\)"):
        wandb_sweep(method="sometimes")


def test_invalid_sweep_settings_in_the_context_name_the_key(sweeps: list[dict[str, Any]]) -> None:
    with pytest.raises(Exception, match=r"method='sometimes' \(from custom_context key wandb_sweep_method\)"):
        run_local(tune_undecorated, custom_context={**GRID, "wandb_sweep_method": "sometimes"})


def test_wandb_sweep_refuses_plain_functions() -> None:
    def not_a_task() -> None:
        return None

    with pytest.raises(TypeError, match=r"@wandb_sweep decorates Flyte function tasks .*use @wandb_init"):
        wandb_sweep(not_a_task)


# --- the trial loop: wandb.agent running a @wandb_init objective ---------------------------------


def _run_trial(function: Callable[[], None], failures: list[BaseException]) -> None:
    try:
        function()
    except Exception as exc:  # wandb.agent reports a failed trial and goes on with the next one
        failures.append(exc)


def agent_like_wandb(
    trials: list[tuple[str, dict[str, Any]]], failures: list[BaseException] | None = None
) -> Callable[..., None]:
    """A stand-in for wandb.agent: the trials come from a list instead of the W&B sweep service.

    Everything else is what wandb.agent (wandb/wandb_agent.py, wandb/agents/pyagent.py) does: export
    the sweep's entity/project; for each trial export WANDB_RUN_ID / WANDB_SWEEP_ID /
    WANDB_SWEEP_PARAM_PATH (a YAML file of the trial's parameters), tear wandb's singleton down, run
    the function in a fresh thread, call wandb.finish() (exit code 1 if it raised) and remove the
    trial's variables; at the end tear down again and clear the singleton's sweep id. A failed trial
    is recorded in ``failures``, not raised, as the agent goes on with the next trial.
    """

    def agent(
        sweep_id: str,
        function: Callable[[], None] | None = None,
        entity: str | None = None,
        project: str | None = None,
        count: int | None = None,
    ) -> None:
        import wandb
        from wandb.sdk import wandb_setup
        from wandb.sdk.lib import config_util

        assert function is not None
        if entity:
            wandb.env.set_entity(entity)
        if project:
            wandb.env.set_project(project)
        try:
            for run_id, params in trials[:count]:
                param_path = os.path.join(
                    os.environ.get("WANDB_DIR", ""), "wandb", f"sweep-{sweep_id}", f"config-{run_id}.yaml"
                )
                os.environ["WANDB_RUN_ID"] = run_id
                os.environ["WANDB_SWEEP_PARAM_PATH"] = param_path
                config_util.save_config_file_from_dict(
                    param_path, {k: {"value": v} for k, v in params.items()}
                )
                os.environ["WANDB_SWEEP_ID"] = sweep_id
                wandb.teardown()
                errors: list[BaseException] = []
                thread = threading.Thread(target=_run_trial, args=(function, errors))
                thread.start()
                thread.join()
                wandb.finish(exit_code=1 if errors else None)
                (failures if failures is not None else []).extend(errors)
                for name in ("WANDB_RUN_ID", "WANDB_SWEEP_ID", "WANDB_SWEEP_PARAM_PATH"):
                    os.environ.pop(name, None)
        finally:
            if trials[:count]:
                wandb.teardown()
            wandb_setup.singleton().settings.sweep_id = None

    return agent


@wandb_init
def objective() -> None:
    import wandb

    run = get_wandb_run()
    assert run is not None and run is wandb.run
    run.log({"loss": float(wandb.config.lr) * 10, "depth": wandb.config.depth})


@wandb_sweep
@env.task
async def sweep_agent(count: int) -> str:
    import wandb

    sweep_id = get_wandb_sweep_id()
    assert sweep_id is not None
    wandb.agent(sweep_id, function=objective, count=count, entity="team", project="proj")
    return sweep_id


@wandb_sweep(project="proj", entity="team")
@env.task
async def run_sweep(count: int) -> str:
    return await sweep_agent(count)


def read_trial(wandb_root: Path, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], str, int | None]:
    """The config, history, sweep id and exit code W&B wrote to disk for a trial's offline run."""
    from flyteplugins.wandb._offline import find_offline_run_dirs, iter_records, read_offline_run

    dirs = find_offline_run_dirs(wandb_root, run_id)
    assert len(dirs) == 1, f"expected one offline folder for run {run_id}, found {dirs}"
    recorded = read_offline_run(dirs[0])
    sweep_ids = {r.run.sweep_id for r in iter_records(dirs[0]) if r.WhichOneof("record_type") == "run"}
    assert len(sweep_ids) == 1
    return recorded.config, recorded.history, sweep_ids.pop(), recorded.exit_code


def test_agent_trials_receive_their_parameters_in_their_own_runs(
    sweeps: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, wandb_root: Path
) -> None:
    import wandb

    trials = [("trial-a", {"lr": 0.1, "depth": 2}), ("trial-b", {"lr": 0.3, "depth": 4})]
    monkeypatch.setattr(wandb, "agent", agent_like_wandb(trials))

    run = run_local(run_sweep, 2, custom_context=dict(GRID))

    assert run.outputs == "sweep1"
    for run_id, params in trials:
        config, history, sweep_id, exit_code = read_trial(wandb_root, run_id)
        assert {k: config[k] for k in params} == params
        assert [row["loss"] for row in history] == [pytest.approx(params["lr"] * 10)]
        assert (sweep_id, exit_code) == ("sweep1", 0)


def test_a_failing_trial_is_finished_as_failed_and_the_agent_goes_on(
    sweeps: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, wandb_root: Path
) -> None:
    import wandb

    failures: list[BaseException] = []
    trials = [("trial-x", {"lr": "high", "depth": 1}), ("trial-y", {"lr": 0.2, "depth": 1})]
    monkeypatch.setattr(wandb, "agent", agent_like_wandb(trials, failures))

    run = run_local(run_sweep, 2, custom_context=dict(GRID))

    assert run.outputs == "sweep1"
    assert [str(f) for f in failures] == ["could not convert string to float: 'high'"]
    config, history, sweep_id, exit_code = read_trial(wandb_root, "trial-x")
    assert (config["lr"], history, sweep_id, exit_code) == ("high", [], "sweep1", 1)
    assert read_trial(wandb_root, "trial-y")[3] == 0


@wandb_sweep(project="proj", entity="team", download_logs=True)
@env.task
async def run_sweep_and_download(count: int) -> str:
    return await sweep_agent(count)


def test_sweep_download_logs_collects_every_trial_after_the_task(
    sweeps: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import tempfile

    import wandb

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    trials = [("trial-a", {"lr": 0.1, "depth": 2}), ("trial-b", {"lr": 0.3, "depth": 4})]
    monkeypatch.setattr(wandb, "agent", agent_like_wandb(trials))

    run = run_local(run_sweep_and_download, 2, custom_context=dict(GRID))

    root = tmp_path / "wandb_runs" / f"sweep-{run.outputs}"
    assert sorted(p.name for p in root.iterdir()) == ["trial-a", "trial-b"]
    for run_id, params in trials:
        summary = json.loads((root / run_id / "summary.json").read_text())
        assert summary["loss"] == pytest.approx(params["lr"] * 10)
        assert f"depth:\n  value: {params['depth']}" in (root / run_id / "config.yaml").read_text()


def test_sweep_download_failure_keeps_the_result(
    sweeps: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import tempfile

    import wandb

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (tmp_path / "wandb_runs").write_text("a file where the download folder should go")
    monkeypatch.setattr(wandb, "agent", agent_like_wandb([("trial-a", {"lr": 0.1, "depth": 2})]))
    caplog.set_level(logging.WARNING, logger="flyteplugins.wandb")

    run = run_local(run_sweep_and_download, 1, custom_context=dict(GRID))

    assert run.outputs == "sweep1"
    warnings = [r.getMessage() for r in caplog.records if "download_logs" in r.getMessage()]
    assert len(warnings) == 1
    assert "could not download W&B sweep team/proj/sweep1 (the task's result is kept)" in warnings[0]
    assert "cannot write W&B downloads to" in warnings[0]


def test_each_trial_run_records_the_sweep_task_it_ran_in(
    sweeps: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, wandb_root: Path
) -> None:
    # Lineage: wandb.agent runs each trial in a thread of its own, without the task's Flyte
    # context; the trial's run still points back to the sweep task, under its own "flyte" key,
    # next to (never over) the sweep's parameters.
    import wandb

    trials = [("trial-c", {"lr": 0.2, "depth": 3}), ("trial-d", {"lr": 0.4, "depth": 5})]
    monkeypatch.setattr(wandb, "agent", agent_like_wandb(trials))
    run_local(run_sweep, 2, custom_context=dict(GRID))
    actions = set()
    for run_id, params in trials:
        config, _, _, _ = read_trial(wandb_root, run_id)
        assert {k: config[k] for k in params} == params
        entry = config["flyte"]
        assert (entry["task"], entry["function"]) == ("sweep_tests.sweep_agent", f"{__name__}.objective")
        actions.add(entry["action"])
    assert len(actions) == 1
