"""Setting names are checked where they are given: decorators when applied, blocks at the call, the
configuration file and ``FLYTEPLUGINS_WANDB_*`` variables when read, a parent's ``wandb_kwargs`` in
the child. An unknown name is refused naming the name, its layer, what is allowed and the closest
valid name; a real ``wandb.init`` argument passes through as today."""

from __future__ import annotations

import dataclasses
import inspect
import json
from importlib import metadata
from pathlib import Path
from typing import Any

import flyte
import pytest
from click.testing import CliRunner
from conftest import run_local

from flyteplugins.wandb import (
    WandbConfigError,
    _compat,
    get_wandb_run,
    reload_settings,
    wandb_config,
    wandb_init,
    wandb_sweep,
    wandb_sweep_config,
)
from flyteplugins.wandb._cli import wandb_group
from flyteplugins.wandb._compat import init_arguments
from flyteplugins.wandb._layers import resolve
from flyteplugins.wandb._settings import RUN, RunSettings

env = flyte.TaskEnvironment(name="setting_names")


def refused(give: Any) -> WandbConfigError:
    with pytest.raises(WandbConfigError) as caught:
        give()
    return caught.value


# --- decorators, when applied ---------------------------------------------------------------------


def test_a_typo_in_wandb_init_is_refused_when_the_decorator_is_applied() -> None:
    exc = refused(lambda: wandb_init(projcet="newcomer"))
    assert exc.field == "projcet" and exc.value == "newcomer"
    assert exc.origin == "@wandb_init(...)"
    assert "did you mean 'project'?" in str(exc)
    assert "run_mode" in exc.allowed and "save_code" in exc.allowed  # what is allowed


def test_a_typo_in_wandb_sweep_is_refused_when_the_decorator_is_applied() -> None:
    exc = refused(lambda: wandb_sweep(method="grid", metrc={"name": "loss"}))
    assert (exc.field, exc.origin) == ("metrc", "@wandb_sweep(...)")
    assert "did you mean 'metric'?" in str(exc)


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("give", "field", "meant"),
    [
        (lambda: wandb_config(projet="p"), "projet", "project"),
        (lambda: wandb_config(run_mod="new"), "run_mod", "run_mode"),
        (lambda: wandb_config(kwargs={"save_cod": True}), "save_cod", "save_code"),
        (lambda: wandb_sweep_config(methd="grid"), "methd", "method"),
        (
            lambda: wandb_sweep_config(early_terminat={"type": "hyperband"}),
            "early_terminat",
            "early_terminate",
        ),
    ],
)
def test_a_typo_in_a_block_is_refused_at_the_call(give: Any, field: str, meant: str) -> None:
    exc = refused(give)
    assert exc.field == field
    assert exc.origin in ("wandb_config()", "wandb_sweep_config()")
    assert f"did you mean {meant!r}?" in str(exc)


@pytest.mark.smoke
def test_real_wandb_init_arguments_and_sweep_keys_pass_through_as_extra_keys() -> None:
    cfg = wandb_config(save_code=True, resume="allow", dir="/tmp/w")
    assert cfg.kwargs == {"save_code": True, "resume": "allow", "dir": "/tmp/w"}
    sweep = wandb_sweep_config(method="grid", run_cap=4, early_terminate={"type": "hyperband", "min_iter": 2})
    assert sweep.to_sweep_config()["run_cap"] == 4
    assert wandb_init(project="p", sync_tensorboard=True) is not None


def test_a_name_far_from_every_valid_one_is_refused_without_a_guess() -> None:
    exc = refused(lambda: wandb_config(zzzzzz=1))
    assert "did you mean" not in str(exc)
    assert "project" in exc.allowed


def test_a_field_added_to_the_schema_is_a_valid_name_at_once() -> None:
    # The valid names come from the schema, not from a second list: a new field needs no edit here.
    extended = type(
        "Extended", (RunSettings,), {"__annotations__": {"report_tab": "bool | None"}, "report_tab": None}
    )
    schema = dataclasses.replace(RUN, model=extended)
    assert schema.validate({"report_tab": True}, "wandb_config()") == {"report_tab": True}
    with pytest.raises(WandbConfigError, match="did you mean 'report_tab'"):
        schema.validate({"report_tabb": True}, "wandb_config()")


# --- configuration file and environment, when read -------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "field", "meant"),
    [
        ('projet = "p"\n', "projet", "project"),
        ('project = "p"\n[kwargs]\nsave_cod = true\n', "save_cod", "save_code"),
        ('[sweep]\nmethd = "grid"\n', "methd", "method"),
    ],
)
def test_a_typo_in_the_config_file_is_refused_when_it_is_read(
    toml: str, field: str, meant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "wandb.toml"
    path.write_text(toml)
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(path))
    reload_settings()
    exc = refused(resolve)
    assert exc.field == field
    assert exc.origin.startswith(f"file {path}")
    assert f"did you mean {meant!r}?" in str(exc)


def test_a_wandb_init_argument_at_the_top_of_the_file_is_pointed_to_the_kwargs_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "wandb.toml"
    path.write_text("save_code = true\n")
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(path))
    reload_settings()
    exc = refused(resolve)
    assert exc.field == "save_code" and "give it in kwargs ([kwargs] in a file)" in exc.allowed
    path.write_text("[kwargs]\nsave_code = true\n")
    reload_settings()
    assert resolve().get("kwargs") == {"save_code": True}


def test_an_unknown_plugin_variable_is_a_one_line_cli_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_PROJECT", "p")
    reload_settings()
    result = CliRunner().invoke(wandb_group, ["explain"], catch_exceptions=False)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("Error: invalid W&B setting FLYTEPLUGINS_WANDB_PROJECT='p'")
    assert "(from env FLYTEPLUGINS_WANDB_PROJECT)" in result.stderr


def test_an_unknown_plugin_variable_is_refused_when_the_environment_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_RUN_MOD", "new")
    reload_settings()
    exc = refused(resolve)
    assert exc.field == "FLYTEPLUGINS_WANDB_RUN_MOD"
    assert exc.origin == "env FLYTEPLUGINS_WANDB_RUN_MOD"
    assert "did you mean 'FLYTEPLUGINS_WANDB_RUN_MODE'?" in str(exc)
    monkeypatch.delenv("FLYTEPLUGINS_WANDB_RUN_MOD")
    assert resolve().get("run_mode") == "auto"  # noticed gone at the next resolution


# --- a parent's typo, in the child ------------------------------------------------------------------


@wandb_init
@env.task
async def child_of_a_bad_parent() -> str:
    return str(get_wandb_run().id)


def test_a_parents_typo_in_wandb_kwargs_is_reported_in_the_child_with_its_layer() -> None:
    # What reached custom_context without this plugin's checks (written by hand, another tool or an
    # older release): the child names the key it came in.
    context = {"wandb_project": "p", "wandb_kwargs": json.dumps({"projcet": "p"})}
    exc = refused(lambda: resolve(context=context))
    assert (exc.field, exc.origin) == ("projcet", "custom_context key wandb_kwargs")
    with pytest.raises(Exception, match=r"projcet.*custom_context key wandb_kwargs.*did you mean 'project'"):
        run_local(child_of_a_bad_parent, custom_context=context)


# --- wandb.init's arguments per release, known without wandb -----------------------------------------


@pytest.mark.smoke
def test_the_init_argument_table_matches_the_installed_wandbs_real_signature() -> None:
    installed = _compat.wandb_version()
    assert not init_arguments.newer_than_table(installed), (
        f"wandb {installed} is newer than the table of wandb.init arguments "
        f"({init_arguments.INIT_ARGUMENTS_VERIFIED_UP_TO}): check its signature and extend the table"
    )
    row = _compat.init_arguments_for(installed)
    assert row is not None, f"no row of the table covers wandb {installed}"
    parameters = inspect.signature(inspect.unwrap(_compat.real_wandb_init())).parameters.values()
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    real = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    assert row == real


def test_a_name_the_table_does_not_know_is_left_to_a_newer_installed_wandb(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The installed wandb's version is pretended (package metadata only): a release newer than the
    # table may accept a name the table does not know, so only the run start may refuse it.
    real_version = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "99.0.0" if name == "wandb" else real_version(name))
    assert wandb_config(argument_of_wandb_99=1).kwargs == {"argument_of_wandb_99": 1}
    # A name no Python function can take as a keyword argument is still refused.
    with pytest.raises(WandbConfigError, match="did you mean 'save_code'"):
        wandb_config(**{"save-code": 1})


def test_an_argument_a_newer_wandb_added_names_that_release_at_run_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = init_arguments.WANDB_INIT_ARGUMENTS
    newer = init_arguments.InitArguments("99.0.0", None, rows[-1].names | {"argument_of_wandb_99"})
    monkeypatch.setattr(init_arguments, "WANDB_INIT_ARGUMENTS", (*rows, newer))
    assert _compat.init_argument_since("argument_of_wandb_99") == "99.0.0"
    assert _compat.init_argument_since("save_code") is None
    # Known to a supported release: accepted when given (the run start refuses it on this wandb,
    # see test_user_mocks.py).
    assert wandb_config(argument_of_wandb_99=1).kwargs == {"argument_of_wandb_99": 1}
