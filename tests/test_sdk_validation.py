"""Validation follows the installed W&B SDK: run ids, ``wandb.Settings`` in blocks, typed defaults."""

from __future__ import annotations

import sys
from pathlib import Path

import flyte
import pytest
import wandb
from conftest import run_local, task_run

from flyteplugins.wandb import Wandb, WandbConfigError, get_wandb_context, wandb_config, wandb_init
from flyteplugins.wandb._offline import find_offline_run_dirs, read_offline_run

env = flyte.TaskEnvironment(name="sdk_validation")

ACCEPTED = ["run 50%", "back\\slash", "a b c", "ünïcode-ok", "x" * 200, "semi-colon-free"]
REFUSED = ["a:b", "a;b", "a,b", "a#b", "a?b", "a/b", "it's", " lead", "trail ", "", "   "]


def _wandb_accepts(run_id: str) -> bool:
    try:
        wandb.Settings(run_id=run_id)
    except Exception:
        return False
    return True


@pytest.mark.parametrize("run_id", ACCEPTED + REFUSED)
def test_run_ids_are_accepted_exactly_as_the_installed_wandb_accepts_them(
    run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _wandb_accepts(run_id)
    assert expected == (run_id in ACCEPTED)
    for wandb_loaded in (True, False):
        if not wandb_loaded:
            # Before wandb is imported the plugin applies the same rule without importing it.
            monkeypatch.delitem(sys.modules, "wandb")
        try:
            wandb_config(id=run_id)
            accepted = True
        except WandbConfigError as exc:
            accepted = False
            assert (exc.field, exc.origin) == ("id", "wandb_config()")
            assert "wandb accepts" in exc.allowed
        assert accepted == expected, (run_id, wandb_loaded)
        monkeypatch.undo()


def test_an_id_with_percent_and_space_is_quoted_in_the_link() -> None:
    link = Wandb(project="p", entity="e", id="run 50%")
    assert link.get_link("r", "", "", {}, "", "a0", "") == "https://wandb.ai/e/p/runs/run%2050%25"


@wandb_init(project="proj", entity="team", id="run 50%")
@env.task
async def train_with_odd_id() -> str:
    task_run().log({"x": 1})
    return str(task_run().id)


def test_a_task_runs_with_an_id_wandb_accepts(wandb_root: Path) -> None:
    result = run_local(train_with_odd_id)
    assert result.outputs == "run 50%"
    assert result.links["train_with_odd_id"] == [
        ("Weights & Biases", "https://wandb.ai/team/proj/runs/run%2050%25")
    ]
    (run_dir,) = find_offline_run_dirs(wandb_root, "run 50%")
    assert read_offline_run(run_dir, wait=15).column("x") == [1]


@wandb_init
@env.task
async def report_console() -> str:
    return str(task_run().settings.console)


def test_wandb_settings_in_a_block_travel_through_custom_context_to_the_run() -> None:
    cfg = wandb_config(project="proj", settings=wandb.Settings(console="off"))
    assert dict(cfg) == {"wandb_project": "proj", "wandb_kwargs": '{"settings": {"console": "off"}}'}
    assert run_local(report_console, custom_context=dict(cfg)).outputs == "off"


def test_credentials_in_wandb_settings_are_refused_without_echoing_them() -> None:
    secret = "settingsfakekey" + "1" * 25
    with pytest.raises(WandbConfigError) as error:
        wandb_config(settings=wandb.Settings(api_key=secret))
    assert error.value.field == "kwargs.settings.api_key"
    assert secret not in str(error.value)


def test_typed_attributes_give_effective_values_while_the_mapping_keeps_what_was_set() -> None:
    context = get_wandb_context()
    assert dict(context) == {"wandb_mode": "offline"}  # the test sandbox sets WANDB_MODE
    assert (context.run_mode, context.rank_scope, context.download_logs, context.timeout) == (
        "auto",
        "global",
        False,
        30.0,
    )
    with wandb_config(run_mode="new"):
        inner = get_wandb_context()
        assert (inner.run_mode, inner["wandb_run_mode"]) == ("new", "new")
    assert wandb_config(project="p").run_mode is None  # a block alone sets only what it was given
