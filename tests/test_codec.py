"""The round trip of W&B settings through Flyte's ``custom_context``: types survive, keys written by
others are ignored, and credentials never travel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import flyte
import pytest
from conftest import run_local

from flyteplugins.wandb import (
    Wandb,
    WandbConfigError,
    explain,
    get_wandb_context,
    get_wandb_run,
    get_wandb_sweep_context,
    wandb_config,
    wandb_init,
    wandb_sweep_config,
)
from flyteplugins.wandb._codec import (
    RunIdentity,
    SweepIdentity,
    decode_context,
    encode_fields,
    encode_run_identity,
    encode_sweep_identity,
)
from flyteplugins.wandb._layers import resolve
from flyteplugins.wandb._offline import read_offline_run
from flyteplugins.wandb._settings import RUN, SWEEP

pytestmark = pytest.mark.smoke

env = flyte.TaskEnvironment(name="test_codec")

SECRET = "s3cr3t-DO-NOT-LEAK-4242"

# Strings that look like JSON must come back as the same strings.
TRICKY_RUN = {
    "project": "2024",
    "entity": "true",
    "name": "null",
    "id": "12345",
    "group": "[1, 2]",
    "notes": '{"a": 1}',
    "job_type": "1.5e3",
    "tags": ("2024", "null", "a b"),
    "config": {"lr": 0.1, "layers": [64, 32], "nested": {"flag": False, "none": None}, "name": "007"},
    "mode": "offline",
    "run_mode": "new",
    "rank_scope": "worker",
    "download_logs": True,
    "host": "https://wandb.example.com",
    "kwargs": {"save_code": False, "resume": "allow"},
}


def test_every_run_field_round_trips_with_its_type() -> None:
    encoded = encode_fields(RUN, TRICKY_RUN, "wandb_config()")
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in encoded.items())
    assert set(encoded) == {f"wandb_{name}" for name in TRICKY_RUN}
    # Strings travel verbatim, the reference plugin's format, so that mixed workflows interoperate.
    assert encoded["wandb_project"] == "2024"
    assert encoded["wandb_name"] == "null"
    assert json.loads(encoded["wandb_tags"]) == ["2024", "null", "a b"]
    assert encoded["wandb_download_logs"] == "true"
    decoded = decode_context(encoded)
    assert decoded.run == TRICKY_RUN
    for name, value in TRICKY_RUN.items():
        assert type(decoded.run[name]) is type(value), name


def test_wandb_config_block_round_trips_through_resolution() -> None:
    block = wandb_config(
        project="2024",
        name="null",
        id="12345",
        group="true",
        tags=["a", "b"],
        download_logs=False,
        config={"x": 1},
    )
    resolved = resolve(context=dict(block))
    assert resolved.get("project") == "2024"
    assert resolved.get("name") == "null"
    assert resolved.get("id") == "12345"
    assert resolved.get("group") == "true"
    assert resolved.get("tags") == ("a", "b")
    assert resolved.get("download_logs") is False
    assert resolved.get("config") == {"x": 1}


def test_only_passed_fields_are_written() -> None:
    assert dict(wandb_config(project="p")) == {"wandb_project": "p"}
    assert dict(wandb_config(download_logs=False)) == {"wandb_download_logs": "false"}
    assert dict(wandb_config()) == {}
    assert dict(wandb_sweep_config(method="grid")) == {"wandb_sweep_method": "grid"}


def test_sweep_fields_round_trip() -> None:
    values = {
        "method": "bayes",
        "metric": {"name": "val/loss", "goal": "maximize", "target": 0.9},
        "parameters": {"lr": {"min": 0.001, "max": 0.1}, "layers": {"values": [1, 2]}},
        "project": "2024",
        "entity": "null",
        "prior_runs": ("r1", "12"),
        "name": "true",
        "download_logs": True,
        "kwargs": {"description": "d", "early_terminate": {"type": "hyperband", "min_iter": 3}},
    }
    encoded = encode_fields(SWEEP, values, "wandb_sweep_config()")
    assert set(encoded) == {f"wandb_sweep_{name}" for name in values}
    decoded = decode_context(encoded)
    assert decoded.sweep == values
    assert decoded.run == {}


def test_identities_round_trip() -> None:
    run = RunIdentity("12345", "null", "2024", "https://wandb.example.com")
    sweep = SweepIdentity("abc", "team", "proj")
    decoded = decode_context({**encode_run_identity(run), **encode_sweep_identity(sweep)})
    assert decoded.run_identity == run
    assert decoded.sweep_identity == sweep
    assert decode_context(encode_run_identity(RunIdentity("only-id"))).run_identity == RunIdentity("only-id")


FOREIGN = {
    "wandb_foo": "x",
    "wandb_sweep_bar": "{not json",
    "wandb_": "",
    "wandb_sweep_": "",
    "_wandb_something_new": "1",
    "wandbproject": "nope",
    "WANDB_PROJECT": "nope",
    "other_plugin_key": "value",
}


def test_foreign_wandb_keys_are_ignored() -> None:
    decoded = decode_context({**FOREIGN, "wandb_project": "p"})
    assert decoded.run == {"project": "p"}
    assert decoded.sweep == {}
    assert decoded.run_identity is None and decoded.sweep_identity is None
    context = {**FOREIGN, "wandb_project": "p", "wandb_entity": "e"}
    assert resolve(context=context).get("project") == "p"
    link = Wandb().get_link("r", "fp", "dev", context, "a0", "a1", "pod")
    assert link == "https://wandb.ai/e/p/runs/r-a1"
    assert "wandb_foo" not in str(explain(context=context))


def test_context_written_by_the_reference_plugin_decodes() -> None:
    # What the reference plugin's wandb_config(project=..., tags=..., notes=...) puts in custom_context:
    # every field, strings verbatim, lists/dicts/bools as JSON, extra init arguments in wandb_kwargs.
    reference = {
        "wandb_project": "2024",
        "wandb_entity": "team",
        "wandb_tags": '["a", "b"]',
        "wandb_config": '{"lr": 0.1}',
        "wandb_run_mode": "auto",
        "wandb_rank_scope": "global",
        "wandb_download_logs": "false",
        "wandb_kwargs": '{"notes": "hello", "save_code": true}',
        "wandb_sweep_method": "random",
        "wandb_sweep_download_logs": "false",
    }
    decoded = decode_context(reference)
    assert decoded.run == {
        "project": "2024",
        "entity": "team",
        "tags": ("a", "b"),
        "config": {"lr": 0.1},
        "run_mode": "auto",
        "rank_scope": "global",
        "download_logs": False,
        "kwargs": {"notes": "hello", "save_code": True},
    }
    assert decoded.sweep == {"method": "random", "download_logs": False}


@wandb_init
@env.task
async def report_context() -> str:
    run = get_wandb_run()
    assert run is not None
    block = get_wandb_context()
    values = {
        name: [type(value).__name__, list(value) if isinstance(value, tuple) else value]
        for name, value in block.layer.values.items()
    }
    sweep = dict(get_wandb_sweep_context().layer.values)
    return json.dumps(
        {
            "values": values,
            "sweep": sweep,
            "run": {"id": run.id, "name": run.name, "project": run.project, "tags": list(run.tags)},
            "run_dir": str(Path(run.dir).parent),
        }
    )


def test_types_survive_a_real_flyte_run_and_reach_wandb() -> None:
    context = {
        **wandb_config(
            project="2024", name="null", id="12345", group="true", tags=["1", "null"], config={"lr": 0.5}
        ),
        **wandb_sweep_config(name="2025"),
        **FOREIGN,
    }
    report = json.loads(run_local(report_context, custom_context=context).outputs)
    assert report["values"] == {
        "project": ["str", "2024"],
        "name": ["str", "null"],
        "id": ["str", "12345"],
        "group": ["str", "true"],
        "tags": ["tuple", ["1", "null"]],
        "config": ["dict", {"lr": 0.5}],
        "mode": ["str", "offline"],  # the sandbox's WANDB_MODE
    }
    assert report["sweep"] == {"name": "2025"}
    assert report["run"] == {"id": "12345", "name": "null", "project": "2024", "tags": ["1", "null"]}
    recorded = read_offline_run(report["run_dir"], wait=30.0)
    assert (recorded.run_id, recorded.name, recorded.project, recorded.group) == (
        "12345",
        "null",
        "2024",
        "true",
    )
    assert recorded.tags == ("1", "null")
    # Next to the user's config, only the task's Flyte backlink (lineage).
    assert recorded.config["lr"] == 0.5 and set(recorded.config) == {"lr", "flyte"}


# --- credentials -------------------------------------------------------------------------------

CREDENTIALS = [
    ("api_key-kwarg", lambda: wandb_config(api_key=SECRET)),
    ("settings-api_key", lambda: wandb_config(settings={"api_key": SECRET})),
    ("config-token", lambda: wandb_config(config={"token": SECRET})),
    ("config-nested-password", lambda: wandb_config(config={"db": {"password": SECRET}})),
    ("password-kwarg", lambda: wandb_config(password=SECRET)),
    ("access_token-kwarg", lambda: wandb_config(access_token=SECRET)),
    ("API_KEY-upper", lambda: wandb_config(config={"WANDB_API_KEY": SECRET})),
    ("secret-kwarg", lambda: wandb_config(secret=SECRET)),
    ("sweep-kwargs", lambda: wandb_sweep_config(api_key=SECRET)),
    ("decorator", lambda: wandb_init(api_key=SECRET)),
    ("decorator-settings", lambda: wandb_init(settings={"api_key": SECRET})),
    ("decorator-settings-object", lambda: wandb_init(settings=_wandb_settings(api_key=SECRET))),
    ("encode", lambda: encode_fields(RUN, {"kwargs": {"api_key": SECRET}}, "wandb_config()")),
]


def _wandb_settings(**fields: Any) -> Any:
    import wandb

    return wandb.Settings(**fields)


@pytest.mark.parametrize("make", [pytest.param(make, id=name) for name, make in CREDENTIALS])
def test_credentials_are_rejected_without_repeating_them(make: Any) -> None:
    with pytest.raises(WandbConfigError) as info:
        make()
    error = info.value
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert SECRET not in repr(error.args)
    assert SECRET not in repr(error.value)
    assert "WANDB_API_KEY" in str(error)


def test_credentials_in_config_file_are_rejected_without_repeating_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret.toml"
    path.write_text(f'project = "p"\n[kwargs]\napi_key = "{SECRET}"\n')
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(path))
    with pytest.raises(WandbConfigError) as info:
        resolve(context={})
    assert SECRET not in str(info.value)
    assert info.value.origin == f"file {path}"


def test_credentials_arriving_in_context_are_rejected_without_repeating_them() -> None:
    context = {"wandb_project": "p", "wandb_kwargs": json.dumps({"api_key": SECRET})}
    with pytest.raises(WandbConfigError) as info:
        resolve(context=context)
    assert SECRET not in str(info.value)


def test_encoded_blocks_never_hold_credentials() -> None:
    block = wandb_config(project="p", config={"lr": 0.1}, notes="no secrets here")
    assert SECRET not in json.dumps(dict(block))
    assert all("key" not in name and "token" not in name for name in block)


@pytest.mark.parametrize("name", ["tokenizer", "num_tokens", "max_tokens", "sort_key", "secret_sauce"])
def test_hyperparameters_that_only_resemble_credentials_are_accepted(name: str) -> None:
    block = wandb_config(config={name: "value"})
    assert block.config == {name: "value"}
