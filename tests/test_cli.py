"""``flyte wandb ...``: discovered by the Flyte CLI, prints the explain table and links, and turns bad
input into one line on stderr with exit code 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import flyte
import pytest
from click.testing import CliRunner, Result
from conftest import run_local

from flyteplugins.wandb import get_wandb_run, wandb_init
from flyteplugins.wandb._cli import parse_context, wandb_group

FLYTE = Path(sys.executable).with_name("flyte")

env = flyte.TaskEnvironment(name="test_cli")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(wandb_group, list(args), catch_exceptions=False)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0]


# --- discovery by the Flyte CLI ----------------------------------------------------------------


def test_flyte_cli_lists_the_wandb_commands_through_the_entry_point() -> None:
    result = subprocess.run([str(FLYTE), "wandb", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for command in ("explain", "link", "demo"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), result.stdout


def test_flyte_cli_bad_input_exits_2_without_traceback() -> None:
    result = subprocess.run(
        [str(FLYTE), "wandb", "explain", "-c", "wandb_run_mode=sometimes"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "Error: invalid W&B setting run_mode='sometimes' (from custom_context key wandb_run_mode): "
        "expected one of 'auto', 'new', 'shared'"
    )


# --- explain -------------------------------------------------------------------------------------


def test_explain_shows_each_value_with_the_layer_it_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_ENTITY", "env-team")
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_RUN_MODE", "new")
    result = invoke("explain", "-c", "wandb_project=demo", "--context", "wandb_run_mode=shared")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert re.search(r"^project\s+demo\s+custom_context key wandb_project\s*$", out, re.M)
    assert re.search(r"^entity\s+env-team\s+env WANDB_ENTITY\s*$", out, re.M)
    assert re.search(
        r"^run_mode\s+shared\s+custom_context key wandb_run_mode\s+"
        r"new \(env FLYTEPLUGINS_WANDB_RUN_MODE\); auto \(default\)$",
        out,
        re.M,
    )
    assert re.search(r"^mode\s+offline\s+env WANDB_MODE", out, re.M)


def test_explain_accepts_a_bare_field_name_as_a_run_key() -> None:
    result = invoke("explain", "-c", "project=2024")
    assert result.exit_code == 0, result.stderr
    # A string field stays a string, and the key is the run key wandb_project.
    assert re.search(r"^project\s+2024\s+custom_context key wandb_project", result.stdout, re.M)


def test_explain_shows_the_parent_run_from_the_context() -> None:
    result = invoke("explain", "-c", "_wandb_run_id=r1-a0")
    assert result.exit_code == 0, result.stderr
    assert re.search(r"^parent run\s+r1-a0\s+custom_context key _wandb_run_id", result.stdout, re.M)


def test_explain_sweep_shows_the_sweep_fields() -> None:
    result = invoke(
        "explain", "--sweep", "-c", "wandb_sweep_method=grid", "-c", 'wandb_sweep_prior_runs=["a"]'
    )
    assert result.exit_code == 0, result.stderr
    assert re.search(r"^method\s+grid\s+custom_context key wandb_sweep_method", result.stdout, re.M)
    assert re.search(
        r"^prior_runs\s+\['a'\]\s+custom_context key wandb_sweep_prior_runs", result.stdout, re.M
    )
    assert not re.search(r"^run_mode", result.stdout, re.M)


def test_explain_reads_the_config_file_named_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "wandb.toml"
    config.write_text('project = "from-file"\n[sweep]\nmethod = "bayes"\n')
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(config))
    run = invoke("explain")
    sweep = invoke("explain", "--sweep")
    assert re.search(rf"^project\s+from-file\s+file {re.escape(str(config))}\s*$", run.stdout, re.M)
    assert re.search(r"^method\s+bayes\s+file .*\[sweep\]", sweep.stdout, re.M)


@pytest.mark.parametrize(
    ("item", "fragments"),
    [
        ("wandb_run_mode=sometimes", ("run_mode='sometimes'", "custom_context key wandb_run_mode")),
        ("wandb_tags=not-json", ("tags='not-json'", "JSON")),
        ("wandb_projct=demo", ("--context='wandb_projct=demo'", "custom_context key")),
        ("wandb_project", ("--context='wandb_project'", "KEY=VALUE")),
        ("=demo", ("KEY=VALUE",)),
    ],
)
def test_explain_bad_context_is_a_one_line_error_with_exit_code_2(
    item: str, fragments: tuple[str, ...]
) -> None:
    assert_one_line_error(invoke("explain", "-c", item), *fragments)


def test_explain_bad_environment_is_a_one_line_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", "api.example.com")
    assert_one_line_error(invoke("explain"), "WANDB_BASE_URL='api.example.com'", "env WANDB_BASE_URL")


def test_parse_context_keeps_values_verbatim() -> None:
    assert parse_context(["project=a=b", "wandb_name=null", "_wandb_run_id=r1"]) == {
        "wandb_project": "a=b",
        "wandb_name": "null",
        "_wandb_run_id": "r1",
    }


# --- link ----------------------------------------------------------------------------------------


def link(*args: str) -> Result:
    return invoke("link", "--run-name", "r1", "--action-name", "a1", *args)


def test_link_of_a_task_with_its_own_run() -> None:
    result = link("--project", "demo", "--entity", "team")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "https://wandb.ai/team/demo/runs/r1-a1\n"


def test_link_of_an_auto_child_points_at_the_parents_run() -> None:
    result = link("-c", "wandb_project=demo", "-c", "wandb_entity=team", "-c", "_wandb_run_id=r1-a0")
    assert result.stdout == "https://wandb.ai/team/demo/runs/r1-a0\n"
    result = link(
        "--run-mode",
        "new",
        "-c",
        "wandb_project=demo",
        "-c",
        "wandb_entity=team",
        "-c",
        "_wandb_run_id=r1-a0",
    )
    assert result.stdout == "https://wandb.ai/team/demo/runs/r1-a1\n"


def test_link_follows_wandb_base_url_and_quotes_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.wandb.mycompany.internal")
    result = link("--project", "my project", "--entity", "team", "--id", "run [1]")
    assert result.stdout == "https://wandb.mycompany.internal/team/my%20project/runs/run%20%5B1%5D\n"


def test_link_context_host_beats_the_tasks_own_host() -> None:
    result = link(
        "--host",
        "https://task.example.com/",
        "-c",
        "wandb_host=https://ctx.example.com",
        "--project",
        "p",
        "--entity",
        "e",
    )
    assert result.stdout == "https://ctx.example.com/e/p/runs/r1-a1\n"


def test_sweep_link() -> None:
    assert (
        link("--sweep", "-c", "wandb_project=p", "-c", "wandb_entity=e").stdout
        == "https://wandb.ai/e/p/sweeps\n"
    )
    assert (
        link("--sweep", "--project", "p", "--entity", "e", "--id", "s1").stdout
        == "https://wandb.ai/e/p/sweeps/s1\n"
    )


def test_link_when_wandb_is_disabled_prints_nothing_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    result = link("--project", "p", "--entity", "e")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "disabled" in result.stderr


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--host", "wandb.example.com"), ("host='wandb.example.com'", "option --host", "http(s) URL")),
        (("--run-mode", "sometimes"), ("run_mode='sometimes'", "option --run-mode")),
        (("--rank-scope", "node"), ("rank_scope='node'", "option --rank-scope")),
        (("--project", "a/b"), ("project='a/b'", "option --project")),
        (("--sweep", "--run-mode", "new"), ("--run-mode and --rank-scope apply to run links",)),
        (("-c", "wandb_download_logs=maybe"), ("download_logs", "custom_context key wandb_download_logs")),
    ],
)
def test_link_bad_input_is_a_one_line_error_with_exit_code_2(
    args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    assert_one_line_error(link(*args), *fragments)


@wandb_init(project="cli-project", entity="cli-team")
@env.task
async def linked_task() -> str:
    return str(get_wandb_run().id)


def test_link_command_prints_the_link_flyte_renders_for_the_same_task() -> None:
    result = run_local(linked_task, custom_context={"wandb_tags": '["x"]'})
    ((action, links),) = result.links_by_action.items()
    ((_, rendered),) = links
    run_name = result.outputs.removesuffix(f"-{action}")
    printed = link_for(
        run_name, action, "--project", "cli-project", "--entity", "cli-team", "-c", 'wandb_tags=["x"]'
    )
    assert printed == rendered
    assert rendered.endswith(f"/runs/{result.outputs}")


def link_for(run_name: str, action: str, *args: str) -> str:
    result = invoke("link", "--run-name", run_name, "--action-name", action, *args)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


# --- demo ----------------------------------------------------------------------------------------


def test_demo_command_runs_the_demo_into_the_given_directory(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(FLYTE), "wandb", "demo", "--dir", "demo-runs"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "WANDB_DIR"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Tasks and their W&B runs" in result.stdout
    assert len(list((tmp_path / "demo-runs" / "wandb").glob("offline-run-*"))) == 3
