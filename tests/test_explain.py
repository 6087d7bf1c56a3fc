"""``explain()``: every setting with its value, the layer it came from and what it overrode, from
the same resolution the links use."""

from __future__ import annotations

from pathlib import Path

import pytest

from flyteplugins.wandb import Explanation, Wandb, explain, wandb_config, wandb_sweep_config
from flyteplugins.wandb._decorators import task_layer_from_arguments
from flyteplugins.wandb._settings import RUN, SWEEP


@pytest.fixture
def layered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project set by every layer, and a few other fields set by one layer each."""
    path = tmp_path / "wandb.toml"
    path.write_text('project = "from-file"\nrank_scope = "worker"\n[sweep]\nmethod = "grid"\n')
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(path))
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    monkeypatch.setenv("WANDB_ENTITY", "team")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return path


CONTEXT = {"wandb_project": "from-parent", "wandb_tags": '["p"]'}


def test_explain_names_the_origin_of_each_winning_value(layered: Path) -> None:
    with wandb_config(project="from-block", run_mode="new"):
        rows = {row.name: row for row in explain(context=CONTEXT)}
    assert (rows["project"].value, rows["project"].origin) == ("from-block", "wandb_config()")
    assert (rows["entity"].value, rows["entity"].origin) == ("team", "env WANDB_ENTITY")
    assert (rows["rank_scope"].value, rows["rank_scope"].origin) == ("worker", f"file {layered}")
    assert (rows["tags"].value, rows["tags"].origin) == (("p",), "custom_context key wandb_tags")
    assert (rows["run_mode"].value, rows["run_mode"].origin) == ("new", "wandb_config()")
    assert (rows["download_logs"].value, rows["download_logs"].origin) == (False, "default")
    assert (rows["host"].value, rows["host"].origin) == ("https://wandb.ai", "default")
    assert (rows["id"].value, rows["id"].origin, rows["id"].overridden) == (None, None, ())


def test_explain_lists_what_each_value_overrode_highest_first(layered: Path) -> None:
    task = task_layer_from_arguments("@wandb_init(...)", project="from-task")
    with wandb_config(project="from-block"):
        project = next(row for row in explain(task=task, context=CONTEXT) if row.name == "project")
    assert project.value == "from-task"
    assert project.origin == "@wandb_init(...)"
    assert project.overridden == (
        ("from-block", "wandb_config()"),
        ("from-parent", "custom_context key wandb_project"),
        ("from-env", "env WANDB_PROJECT"),
        ("from-file", f"file {layered}"),
    )


def test_explain_table_has_a_header_and_a_row_per_field(layered: Path) -> None:
    with wandb_config(project="from-block"):
        text = str(explain(context={**CONTEXT, "_wandb_run_id": "parent-run"}))
    lines = text.splitlines()
    assert lines[0].split() == ["field", "value", "from", "overrides"]
    assert set(lines[1]) <= {"-", " "}
    body = {line.split()[0]: line for line in lines[2:]}
    assert set(RUN.fields) <= set(body)
    project = body["project"]
    assert "from-block" in project and "wandb_config()" in project
    for overridden in ("from-parent", "from-env", "from-file", "custom_context key wandb_project"):
        assert overridden in project
    assert "unset" in body["id"]
    assert any(line.startswith("parent run") and "parent-run" in line for line in lines)


def test_explain_uses_the_resolution_the_link_uses(layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.company.com")
    context = {"wandb_project": "from-parent"}
    with wandb_config(entity="block-team"):
        values = explain(context=context).as_dict()
        link = Wandb().get_link("r", "fp", "dev", context, "a0", "a1", "pod")
    assert link == f"{values['host']}/{values['entity']}/{values['project']}/runs/r-a1"
    assert values["host"] == "https://app.company.com"


def test_explain_sweep_settings(layered: Path) -> None:
    with wandb_sweep_config(project="sweeps"):
        explanation = explain("sweep", context={})
    assert isinstance(explanation, Explanation)
    rows = {row.name: row for row in explanation}
    assert [row.name for row in explanation] == list(SWEEP.fields)
    assert (rows["method"].value, rows["method"].origin) == ("grid", f"file {layered} [sweep]")
    assert (rows["project"].value, rows["project"].origin) == ("sweeps", "wandb_sweep_config()")
    assert "method" in str(explanation)


def test_explain_with_nothing_configured_shows_defaults_only() -> None:
    values = explain(context={}).as_dict()
    assert values == {
        "host": "https://wandb.ai",
        "mode": "offline",  # the test sandbox's WANDB_MODE
        "run_mode": "auto",
        "rank_scope": "global",
        "download_logs": False,
        "log_inputs": True,
        "log_outputs": False,
        "report_tab": True,
        "timeout": 30.0,
    }


def test_explain_shortens_long_values() -> None:
    with wandb_config(config={"k": "x" * 500}):
        text = str(explain(context={}))
    assert "x" * 100 not in text
    assert max(len(line) for line in text.splitlines()) < 250
