"""The W&B API key never travels: not in links, custom_context, logs, printed output or explain().

A recognisable fake key is set as ``WANDB_API_KEY`` and a workflow with a parent and children in
every run mode runs for real (local Flyte, offline wandb); everything it produced is searched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import flyte
import pytest
from conftest import LocalRun, run_local, task_run

from flyteplugins.wandb import (
    WandbConfigError,
    explain,
    get_wandb_context,
    get_wandb_run,
    wandb_config,
    wandb_init,
)
from flyteplugins.wandb._offline import find_offline_run_dirs, read_offline_run

env = flyte.TaskEnvironment(name="secrets")


SECRET = "sekritkey" + "5ec2e7" * 5 + "x"


@pytest.fixture(autouse=True)
def api_key_in_environment(wandb_sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import wandb

    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    # wandb reads its environment once per process: start it again with this one.
    wandb.teardown()
    yield
    wandb.teardown()


def what_this_task_sees(tag: str) -> dict[str, str]:
    ctx = flyte.ctx()
    assert ctx is not None
    run = get_wandb_run()
    return {
        "tag": tag,
        "custom_context": json.dumps(dict(ctx.custom_context or {})),
        "explain": str(explain()),
        "explain_dict": repr(explain().as_dict()),
        "run_id": run.id if run is not None else "",
    }


@wandb_init
@env.task
async def child(tag: str) -> dict[str, str]:
    task_run().log({f"child_{tag}": 1})
    return what_this_task_sees(tag)


@wandb_init(run_mode="shared")
@env.task
async def shared_child(tag: str) -> dict[str, str]:
    task_run().log({f"child_{tag}": 1})
    return what_this_task_sees(tag)


@wandb_init(project="proj-sec", entity="ent-sec", tags=["secrets"], config={"lr": 0.1})
@env.task
async def parent() -> list[dict[str, str]]:
    # What a user debugging a workflow would print.
    print(explain())
    print(dict(get_wandb_context() or {}))
    seen = [what_this_task_sees("parent"), await child("auto"), await shared_child("shared")]
    with wandb_config(run_mode="new", notes="a new run", config={"batch": 32}):
        seen.append(await child("new"))
        seen.append(what_this_task_sees("parent_in_block"))
    return seen


def test_the_api_key_appears_in_no_link_context_log_output_or_explanation(
    wandb_root: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    result: LocalRun = run_local(parent, custom_context=wandb_config(project="proj-ctx", group="g"))
    outside = str(explain()) + repr(explain().as_dict())
    # capfd: what Python prints and what anything else writes to the process's stdout/stderr.
    captured = capfd.readouterr()

    seen = result.outputs
    assert [s["tag"] for s in seen] == ["parent", "auto", "shared", "new", "parent_in_block"]
    # The search covers real content: the contexts carry the workflow's and the blocks' settings,
    # the explanations the project, every task has a run and a link.
    assert all("proj-ctx" in s["custom_context"] for s in seen)
    assert '"wandb_notes": "a new run"' in seen[3]["custom_context"]
    assert all("proj-sec" in s["explain"] or "proj-ctx" in s["explain"] for s in seen)
    assert all(s["run_id"] for s in seen)
    links = [url for per_action in result.links_by_action.values() for _, url in per_action]
    assert len(links) == 4 and all("/runs/" in url for url in links)
    assert caplog.records and "run_mode" in captured.out

    for s in seen:
        for key, value in s.items():
            assert SECRET not in value, f"{s['tag']} {key}"
    for url in links:
        assert SECRET not in url
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in caplog.handler.format(record)
    assert SECRET not in captured.out
    assert SECRET not in captured.err
    assert SECRET not in outside
    for run_dir in find_offline_run_dirs(wandb_root):
        run = read_offline_run(run_dir, wait=15)
        assert SECRET not in json.dumps([run.config, run.summary, run.tags, run.notes], default=str)


@pytest.mark.parametrize(
    "make",
    [
        lambda: wandb_config(api_key=SECRET),
        lambda: wandb_config(kwargs={"settings": {"api_key": SECRET}}),
        lambda: wandb_config(config={"wandb_api_key": SECRET}),
        lambda: wandb_init(api_key=SECRET),
    ],
    ids=["block field", "block kwargs", "block config", "decorator"],
)
def test_an_api_key_given_as_configuration_is_refused_without_echoing_it(make: object) -> None:
    with pytest.raises(WandbConfigError) as caught:
        make()  # type: ignore[operator]

    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value.value)
    assert "WANDB_API_KEY" in str(caught.value)
