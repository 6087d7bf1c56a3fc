"""The configuration layers: which layer wins for every kind of field (read through ``resolve()`` and
through the links, which must agree), the file and environment sources, and bad values from every
layer, each reported with the field, the value and the layer."""

from __future__ import annotations

import itertools
import json
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flyte
import pytest
from pydantic import ValidationError

from flyteplugins.wandb import (
    Wandb,
    WandbConfigError,
    WandbSweep,
    explain,
    reload_settings,
    wandb_config,
    wandb_init,
    wandb_sweep_config,
)
from flyteplugins.wandb._decorators import task_layer_from_arguments
from flyteplugins.wandb._layers import Layer, resolve

pytestmark = pytest.mark.smoke

env = flyte.TaskEnvironment(name="test_settings")

RUN_NAME, PARENT_ACTION, ACTION = "run1", "a0", "a1"
DEFAULT_RUN_ID = f"{RUN_NAME}-{ACTION}"
PARENT_RUN_ID = "parent-run"
COMPANION = {"project": "companion-project", "entity": "companion-entity"}
COMPANION_ENV = {"project": "WANDB_PROJECT", "entity": "WANDB_ENTITY"}

ENV_VAR = {
    "project": "WANDB_PROJECT",
    "entity": "WANDB_ENTITY",
    "id": "WANDB_RUN_ID",
    "name": "WANDB_NAME",
    "group": "WANDB_RUN_GROUP",
    "notes": "WANDB_NOTES",
    "job_type": "WANDB_JOB_TYPE",
    "tags": "WANDB_TAGS",
    "mode": "WANDB_MODE",
    "run_mode": "FLYTEPLUGINS_WANDB_RUN_MODE",
    "rank_scope": "FLYTEPLUGINS_WANDB_RANK_SCOPE",
    "download_logs": "FLYTEPLUGINS_WANDB_DOWNLOAD_LOGS",
    "log_inputs": "FLYTEPLUGINS_WANDB_LOG_INPUTS",
    "log_outputs": "FLYTEPLUGINS_WANDB_LOG_OUTPUTS",
    "report_tab": "FLYTEPLUGINS_WANDB_REPORT_TAB",
    "timeout": "FLYTEPLUGINS_WANDB_TIMEOUT",
}
DEFAULTS = {
    "run_mode": "auto",
    "rank_scope": "global",
    "download_logs": False,
    "log_inputs": True,
    "log_outputs": False,
    "report_tab": True,
    "timeout": 30.0,
}

# A distinct value for each field in each layer; neighbouring layers always differ, and for the
# fields a link shows, they differ in what the link shows (own run vs the parent's, disabled or not).
VALUES: dict[str, dict[str, Any]] = {
    "project": {"file": "p-file", "env": "p-env", "parent": "p-parent", "block": "p-block", "task": "p-task"},
    "entity": {"file": "e-file", "env": "e-env", "parent": "e-parent", "block": "e-block", "task": "e-task"},
    "id": {"file": "id-file", "env": "id-env", "parent": "id-parent", "block": "id-block", "task": "id-task"},
    "name": {"file": "n-file", "env": "n-env", "parent": "n-parent", "block": "n-block", "task": "n-task"},
    "group": {"file": "g-file", "env": "g-env", "parent": "g-parent", "block": "g-block", "task": "g-task"},
    "notes": {
        "file": "notes-file",
        "env": "notes-env",
        "parent": "notes-parent",
        "block": "nb",
        "task": "nt",
    },
    "job_type": {
        "file": "jt-file",
        "env": "jt-env",
        "parent": "jt-parent",
        "block": "jt-block",
        "task": "jt-t",
    },
    "tags": {
        "file": ("f1", "f2"),
        "env": ("e1",),
        "parent": ("p1", "p2"),
        "block": ("b1",),
        "task": ("t1", "t2"),
    },
    "mode": {
        "file": "offline",
        "env": "disabled",
        "parent": "online",
        "block": "disabled",
        "task": "offline",
    },
    "run_mode": {
        "default": "auto",
        "file": "new",
        "env": "shared",
        "parent": "new",
        "block": "shared",
        "task": "new",
    },
    "rank_scope": {
        "default": "global",
        "file": "worker",
        "env": "global",
        "parent": "worker",
        "block": "global",
        "task": "worker",
    },
    "download_logs": {
        "default": False,
        "file": True,
        "env": False,
        "parent": True,
        "block": False,
        "task": True,
    },
    # Lineage: a boolean or names, alternating from layer to layer. The decorator's output names
    # are checked against the task's outputs, so the task layer says True.
    "log_inputs": {
        "default": True,
        "file": ("a", "b"),
        "env": False,
        "parent": ("c",),
        "block": True,
        "task": ("d",),
    },
    "log_outputs": {
        "default": False,
        "file": True,
        "env": ("m",),
        "parent": False,
        "block": ("n", "o"),
        "task": True,
    },
    "report_tab": {
        "default": True,
        "file": False,
        "env": True,
        "parent": False,
        "block": True,
        "task": False,
    },
    "timeout": {"default": 30.0, "file": 11.0, "env": 12.5, "parent": 13.0, "block": 14.0, "task": 15.0},
}
ORDER = ("default", "file", "env", "parent", "block", "task")
PAIRS = [
    (name, lower, upper)
    for name, by_layer in VALUES.items()
    for lower, upper in itertools.pairwise(ORDER)
    if lower in by_layer and upper in by_layer
]


def env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def context_text(value: Any) -> str:
    # The custom_context format: strings verbatim, everything else JSON.
    if isinstance(value, str):
        return value
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def toml_text(values: dict[str, Any]) -> str:
    lines = []
    for key, value in values.items():
        value = list(value) if isinstance(value, tuple) else value
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@dataclass
class Setup:
    """The layers of one test: what each of them sets."""

    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch
    file: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    context: dict[str, str] = field(default_factory=dict)
    block: dict[str, Any] = field(default_factory=dict)
    task: dict[str, Any] = field(default_factory=dict)
    config_path: Path | None = None

    def set(self, layer_kind: str, name: str, value: Any) -> None:
        if layer_kind == "file":
            self.file[name] = value
        elif layer_kind == "env":
            self.env[ENV_VAR[name]] = env_text(value)
        elif layer_kind == "parent":
            self.context[f"wandb_{name}"] = context_text(value)
        elif layer_kind == "block":
            self.block[name] = list(value) if isinstance(value, tuple) else value
        elif layer_kind == "task":
            self.task[name] = list(value) if isinstance(value, tuple) else value

    @contextmanager
    def applied(self) -> Iterator[None]:
        if self.file:
            self.config_path = self.tmp_path / "wandb-layers.toml"
            self.config_path.write_text(toml_text(self.file))
            self.monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(self.config_path))
        for var, text in self.env.items():
            self.monkeypatch.setenv(var, text)
        with ExitStack() as stack:
            if self.block:
                stack.enter_context(wandb_config(**self.block))
            yield

    def task_layer(self) -> Layer | None:
        return task_layer_from_arguments("@wandb_init(...)", **self.task) if self.task else None

    def origin(self, layer_kind: str, name: str) -> str:
        return {
            "default": "default",
            "file": f"file {self.config_path}",
            "env": f"env {ENV_VAR.get(name)}",
            "parent": f"custom_context key wandb_{name}",
            "block": "wandb_config()",
            "task": "@wandb_init(...)",
        }[layer_kind]


def decorated_link(**arguments: Any) -> Wandb:
    """The link that ``@wandb_init(**arguments)`` puts on a task."""

    async def probe() -> None:
        return None

    task = wandb_init(**arguments)(env.task(probe))
    link = task.links[-1]
    assert isinstance(link, Wandb)
    return link


def render(link: Wandb | WandbSweep, context: dict[str, str]) -> str:
    return link.get_link(RUN_NAME, "flyte-project", "development", context, PARENT_ACTION, ACTION, "pod")


def expected_link(values: dict[str, Any], parent_run: str | None) -> str:
    if values.get("mode") == "disabled":
        return ""
    run_id = parent_run if parent_run and values["run_mode"] != "new" else values.get("id", DEFAULT_RUN_ID)
    return f"https://wandb.ai/{values['entity']}/{values['project']}/runs/{run_id}"


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    # No run is started here: the sandbox's WANDB_MODE would otherwise be one more env layer.
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return Setup(tmp_path, monkeypatch)


@pytest.mark.parametrize(("name", "lower", "upper"), PAIRS, ids=[f"{n}-{lo}<{up}" for n, lo, up in PAIRS])
def test_higher_layer_wins_and_link_agrees(setup: Setup, name: str, lower: str, upper: str) -> None:
    by_layer = VALUES[name]
    for layer_kind in (lower, upper):
        if layer_kind != "default":
            setup.set(layer_kind, name, by_layer[layer_kind])
    for companion, value in COMPANION.items():
        if companion != name:
            setup.env.setdefault(COMPANION_ENV[companion], value)
    parent_run = PARENT_RUN_ID if name == "run_mode" else None
    if parent_run:
        setup.context["_wandb_run_id"] = parent_run

    with setup.applied():
        resolved = resolve(task=setup.task_layer(), context=setup.context)
        assert resolved.get(name) == by_layer[upper]
        expected_history = [
            (by_layer[upper], setup.origin(upper, name)),
            (by_layer[lower], setup.origin(lower, name)),
        ]
        if name in DEFAULTS and lower != "default":
            expected_history.append((DEFAULTS[name], "default"))
        assert [(value, origin) for value, origin, _ in resolved.history(name)] == expected_history
        row = next(r for r in explain(task=setup.task_layer(), context=setup.context) if r.name == name)
        assert (row.value, row.origin) == expected_history[0]
        assert list(row.overridden) == expected_history[1:]

        winners = {**DEFAULTS, **COMPANION, name: by_layer[upper]}
        want = expected_link(winners, parent_run)
        assert render(decorated_link(**setup.task), setup.context) == want
        link_fields = {"project", "entity", "id", "run_mode", "rank_scope"}
        if not setup.task or set(setup.task) <= link_fields:
            assert render(Wandb(**setup.task), setup.context) == want


@pytest.mark.parametrize(
    ("field_name", "value", "var"),
    [
        ("project", "2024", "WANDB_PROJECT"),
        ("tags", ("a", "b", "c"), "WANDB_TAGS"),
        ("download_logs", True, "FLYTEPLUGINS_WANDB_DOWNLOAD_LOGS"),
        ("run_mode", "new", "FLYTEPLUGINS_WANDB_RUN_MODE"),
    ],
)
def test_env_changes_are_noticed_without_reload(
    monkeypatch: pytest.MonkeyPatch, field_name: str, value: Any, var: str
) -> None:
    before = resolve(context={}).get(field_name)
    assert before != value
    monkeypatch.setenv(var, env_text(value) if field_name != "tags" else " a, b ,,c ")
    assert resolve(context={}).get(field_name) == value
    assert resolve(context={}).origin(field_name) == f"env {var}"
    monkeypatch.delenv(var)
    assert resolve(context={}).get(field_name) == before


def test_every_documented_env_var_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = {
        "WANDB_PROJECT": "proj",
        "WANDB_ENTITY": "team",
        "WANDB_RUN_ID": "run-7",
        "WANDB_RUN_GROUP": "grp",
        "WANDB_TAGS": "x,y",
        "WANDB_NAME": "display",
        "WANDB_NOTES": "some notes",
        "WANDB_JOB_TYPE": "eval",
        "WANDB_MODE": "offline",
        "FLYTEPLUGINS_WANDB_RUN_MODE": "shared",
        "FLYTEPLUGINS_WANDB_RANK_SCOPE": "worker",
        "FLYTEPLUGINS_WANDB_DOWNLOAD_LOGS": "true",
        "FLYTEPLUGINS_WANDB_LOG_INPUTS": "lr, epochs",
        "FLYTEPLUGINS_WANDB_LOG_OUTPUTS": "false",
        "FLYTEPLUGINS_WANDB_REPORT_TAB": "false",
        "FLYTEPLUGINS_WANDB_TIMEOUT": "12.5",
        "WANDB_BASE_URL": "https://api.company.com",
    }
    for var, text in texts.items():
        monkeypatch.setenv(var, text)
    resolved = resolve(context={})
    assert dict(resolved.values) == {
        "project": "proj",
        "entity": "team",
        "id": "run-7",
        "group": "grp",
        "tags": ("x", "y"),
        "name": "display",
        "notes": "some notes",
        "job_type": "eval",
        "mode": "offline",
        "run_mode": "shared",
        "rank_scope": "worker",
        "download_logs": True,
        "log_inputs": ("lr", "epochs"),
        "log_outputs": False,
        "report_tab": False,
        "timeout": 12.5,
        "host": "https://app.company.com",
    }
    for name, var in ENV_VAR.items():
        assert resolved.origin(name) == f"env {var}"


# --- the host ----------------------------------------------------------------------------------

HOSTS = {
    "default": ("https://wandb.ai", "default"),
    "file": ("https://file.example.com", "file"),
    "env-base": ("https://app.env.example.com", "env WANDB_BASE_URL (web address derived from it)"),
    "env-app": ("https://ui.env.example.com", "env WANDB_APP_URL"),
    "task": ("https://task.example.com", "task"),
    "parent": ("https://context.example.com", "custom_context key wandb_host"),
    "block": ("https://block.example.com", "wandb_config()"),
}
HOST_ORDER = ("default", "file", "env-base", "env-app", "task", "parent", "block")


@pytest.mark.parametrize(("lower", "upper"), list(itertools.pairwise(HOST_ORDER)))
@pytest.mark.parametrize("task_kind", ["link field", "decorator"])
def test_host_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lower: str, upper: str, task_kind: str
) -> None:
    """Context wandb_host > explicit link field > WANDB_APP_URL > WANDB_BASE_URL > file > default."""
    context: dict[str, str] = {"wandb_project": "proj", "wandb_entity": "team"}
    block: dict[str, Any] = {}
    task_host: str | None = None
    config = tmp_path / "hosts.toml"
    for kind in (lower, upper):
        if kind == "file":
            config.write_text('host = "https://file.example.com/"\n')
            monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(config))
        elif kind == "env-base":
            monkeypatch.setenv("WANDB_BASE_URL", "https://api.env.example.com")
        elif kind == "env-app":
            monkeypatch.setenv("WANDB_APP_URL", "https://ui.env.example.com/")
        elif kind == "task":
            task_host = "https://task.example.com/"
        elif kind == "parent":
            context["wandb_host"] = "https://context.example.com"
        elif kind == "block":
            block["host"] = "https://block.example.com"
    task_origin = "Wandb(...) link" if task_kind == "link field" else "@wandb_init(...)"

    def origin_of(kind: str) -> str:
        return {"file": f"file {config}", "task": task_origin}.get(kind, HOSTS[kind][1])

    want_host = HOSTS[upper][0]
    with ExitStack() as stack:
        if block:
            stack.enter_context(wandb_config(**block))
        if task_kind == "link field":
            link = Wandb(host=task_host) if task_host else Wandb()
            task_layer = task_layer_from_arguments("Wandb(...) link", host=task_host) if task_host else None
        else:
            link = decorated_link(host=task_host) if task_host else decorated_link()
            task_layer = task_layer_from_arguments("@wandb_init(...)", host=task_host) if task_host else None
        resolved = resolve(task=task_layer, context=context)
        assert resolved.get("host") == want_host
        # WANDB_APP_URL and WANDB_BASE_URL are one layer: the environment's host is one of them.
        overridden = "default" if (lower, upper) == ("env-base", "env-app") else lower
        assert [(value, origin) for value, origin, _ in resolved.history("host")][:2] == [
            (want_host, origin_of(upper)),
            (HOSTS[overridden][0], origin_of(overridden)),
        ]
        assert render(link, context) == f"{want_host}/team/proj/runs/{DEFAULT_RUN_ID}"
        sweep = WandbSweep(host=task_host) if task_host else WandbSweep()
        assert render(sweep, context) == f"{want_host}/team/proj/sweeps"


def test_explicit_default_host_on_a_link_beats_env_but_the_default_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.company.com")
    context = {"wandb_project": "proj", "wandb_entity": "team"}
    assert render(Wandb(), context) == f"https://app.company.com/team/proj/runs/{DEFAULT_RUN_ID}"
    assert (
        render(Wandb(host="https://wandb.ai"), context) == f"https://wandb.ai/team/proj/runs/{DEFAULT_RUN_ID}"
    )
    assert render(WandbSweep(), context) == "https://app.company.com/team/proj/sweeps"
    assert render(WandbSweep(host="https://wandb.ai"), context) == "https://wandb.ai/team/proj/sweeps"


def test_host_from_base_url_is_the_app_url_the_wandb_sdk_derives(monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    for base in ("https://api.company.com", "https://wandb.company.com/prefix/", "https://api.wandb.ai"):
        monkeypatch.setenv("WANDB_BASE_URL", base)
        sdk_app_url = getattr(wandb.Settings(base_url=base), "app_url", None)
        if sdk_app_url is None:
            pytest.skip(f"wandb {wandb.__version__} does not derive a web address (Settings.app_url)")
        if base == "https://api.wandb.ai" and sdk_app_url == "https://wandb.ai":
            # An older wandb, from before the cloud's CoreWeave Forge address: links use the newer
            # address (docs/versions.md).
            continue
        assert resolve(context={}).get("host") == sdk_app_url


def test_app_url_beats_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.company.com")
    monkeypatch.setenv("WANDB_APP_URL", "https://ui.company.com")
    resolved = resolve(context={})
    assert (resolved.get("host"), resolved.origin("host")) == ("https://ui.company.com", "env WANDB_APP_URL")


# --- the file layer ----------------------------------------------------------------------------


def test_config_file_holds_run_fields_at_top_and_sweep_fields_in_sweep_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(
        'project = "runs"\nentity = "team"\ntags = ["a"]\ndownload_logs = true\n'
        '[sweep]\nproject = "sweeps"\nmethod = "grid"\n[sweep.metric]\nname = "loss"\ngoal = "minimize"\n'
    )
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(path))
    run = resolve(context={})
    sweep = resolve("sweep", context={})
    assert (run.get("project"), run.get("entity"), run.get("tags"), run.get("download_logs")) == (
        "runs",
        "team",
        ("a",),
        True,
    )
    assert run.origin("project") == f"file {path}"
    assert (sweep.get("project"), sweep.get("method"), sweep.get("metric")) == (
        "sweeps",
        "grid",
        {"name": "loss", "goal": "minimize"},
    )
    assert sweep.origin("method") == f"file {path} [sweep]"
    assert "method" not in run.values
    assert render(WandbSweep(), {}) == "https://wandb.ai/team/sweeps/sweeps"


def test_config_file_path_change_is_noticed_without_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    first.write_text('project = "first"\n')
    second.write_text('project = "second"\n')
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(first))
    assert resolve(context={}).get("project") == "first"
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(second))
    assert resolve(context={}).get("project") == "second"


def test_edited_config_file_is_read_again_after_reload_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('project = "before"\n')
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(path))
    assert resolve(context={}).get("project") == "before"
    path.write_text('project = "after"\n')
    reload_settings()
    assert resolve(context={}).get("project") == "after"


def test_pyproject_table_in_working_directory_is_the_file_layer(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.flyteplugins.wandb]\nproject = "from-pyproject"\nrun_mode = "new"\n'
        '[tool.flyteplugins.wandb.sweep]\nmethod = "random"\n'
    )
    reload_settings()
    run = resolve(context={})
    assert (run.get("project"), run.get("run_mode")) == ("from-pyproject", "new")
    assert str(run.origin("project")).startswith(f"file {tmp_path / 'pyproject.toml'}")
    assert resolve("sweep", context={}).get("method") == "random"


def test_bad_value_in_pyproject_table_is_reported(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.flyteplugins.wandb]\nrun_mode = "sometimes"\n')
    reload_settings()
    with pytest.raises(WandbConfigError) as info:
        resolve(context={})
    assert info.value.field == "run_mode"
    assert info.value.origin.startswith(f"file {tmp_path / 'pyproject.toml'}")


def test_named_config_file_wins_over_pyproject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.flyteplugins.wandb]\nproject = "from-pyproject"\n')
    named = tmp_path / "named.toml"
    named.write_text('entity = "from-named"\n')
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(named))
    resolved = resolve(context={})
    assert resolved.get("entity") == "from-named"
    assert resolved.get("project") is None


def test_pyproject_without_the_table_sets_nothing(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.other]\nproject = "not-ours"\n')
    reload_settings()
    assert resolve(context={}).get("project") is None


# --- bad input ---------------------------------------------------------------------------------


def assert_clear_error(error: WandbConfigError, field_name: str, value_text: str, origin: str) -> None:
    """The error names the field, the value and the layer, and carries nothing from pydantic."""
    message = str(error)
    assert error.field == field_name
    assert error.origin == origin
    assert field_name in message
    assert value_text in message
    assert origin in message
    assert "pydantic" not in message.lower()
    assert error.__cause__ is None or not isinstance(error.__cause__, ValidationError)
    assert error.__suppress_context__ or not isinstance(error.__context__, ValidationError)
    shown = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    assert "pydantic" not in shown.lower()
    assert "ValidationError" not in shown


def case(case_id: str, make: Callable[[], object], field_name: str, value_text: str, origin: str) -> Any:
    return pytest.param(make, field_name, value_text, origin, id=case_id)


AT_CONSTRUCTION = [
    case("run_mode", lambda: wandb_config(run_mode="sometimes"), "run_mode", "'sometimes'", "wandb_config()"),
    case("rank_scope", lambda: wandb_config(rank_scope="all"), "rank_scope", "'all'", "wandb_config()"),
    case("mode", lambda: wandb_config(mode="loud"), "mode", "'loud'", "wandb_config()"),
    case(
        "download_logs",
        lambda: wandb_config(download_logs="maybe"),
        "download_logs",
        "'maybe'",
        "wandb_config()",
    ),
    case("report_tab", lambda: wandb_config(report_tab="maybe"), "report_tab", "'maybe'", "wandb_config()"),
    case("tags-string", lambda: wandb_config(tags="single"), "tags", "'single'", "wandb_config()"),
    case("tags-int", lambda: wandb_config(tags=5), "tags", "5", "wandb_config()"),
    case("host-no-scheme", lambda: wandb_config(host="wandb.ai"), "host", "'wandb.ai'", "wandb_config()"),
    case(
        "host-js",
        lambda: wandb_config(host="javascript:alert(1)"),
        "host",
        "javascript:alert(1)",
        "wandb_config()",
    ),
    case("host-ftp", lambda: wandb_config(host="ftp://x"), "host", "'ftp://x'", "wandb_config()"),
    case(
        "host-query",
        lambda: wandb_config(host="https://w.example.com/?next=x"),
        "host",
        "?next=x",
        "wandb_config()",
    ),
    case("id-slash", lambda: wandb_config(id="a/b"), "id", "'a/b'", "wandb_config()"),
    case("id-colon", lambda: wandb_config(id="a:b"), "id", "'a:b'", "wandb_config()"),
    case(
        "project-slash", lambda: wandb_config(project="team/proj"), "project", "'team/proj'", "wandb_config()"
    ),
    case(
        "config-object",
        lambda: wandb_config(config={"x": object()}),
        "config",
        "object object at",
        "wandb_config()",
    ),
    case("link-run_mode", lambda: Wandb(run_mode="sometimes"), "run_mode", "'sometimes'", "Wandb(...) link"),
    case("link-rank_scope", lambda: Wandb(rank_scope="node"), "rank_scope", "'node'", "Wandb(...) link"),
    case(
        "link-host",
        lambda: Wandb(host="javascript:alert(1)"),
        "host",
        "javascript:alert(1)",
        "Wandb(...) link",
    ),
    case("link-host-ftp", lambda: Wandb(host="ftp://x"), "host", "'ftp://x'", "Wandb(...) link"),
    case("link-id", lambda: Wandb(id="a:b"), "id", "'a:b'", "Wandb(...) link"),
    case("link-project", lambda: Wandb(project="a/b"), "project", "'a/b'", "Wandb(...) link"),
    case(
        "sweep-link-host", lambda: WandbSweep(host="wandb.ai"), "host", "'wandb.ai'", "WandbSweep(...) link"
    ),
    case("sweep-link-project", lambda: WandbSweep(project="a/b"), "project", "'a/b'", "WandbSweep(...) link"),
    case("decorator-run_mode", lambda: wandb_init(run_mode="x"), "run_mode", "'x'", "@wandb_init(...)"),
    case(
        "sweep-method", lambda: wandb_sweep_config(method="best"), "method", "'best'", "wandb_sweep_config()"
    ),
]


@pytest.mark.parametrize(("make", "field_name", "value_text", "origin"), AT_CONSTRUCTION)
def test_bad_value_is_rejected_where_it_is_given(
    make: Callable[[], object], field_name: str, value_text: str, origin: str
) -> None:
    with pytest.raises(WandbConfigError) as info:
        make()
    assert_clear_error(info.value, field_name, value_text, origin)


AT_RESOLUTION_ENV = [
    ("WANDB_MODE", "loud", "mode", "'loud'"),
    ("FLYTEPLUGINS_WANDB_RUN_MODE", "sometimes", "run_mode", "'sometimes'"),
    ("FLYTEPLUGINS_WANDB_RANK_SCOPE", "node", "rank_scope", "'node'"),
    ("FLYTEPLUGINS_WANDB_DOWNLOAD_LOGS", "maybe", "download_logs", "'maybe'"),
    ("FLYTEPLUGINS_WANDB_REPORT_TAB", "maybe", "report_tab", "'maybe'"),
    ("WANDB_RUN_ID", "a/b", "id", "'a/b'"),
    ("WANDB_PROJECT", "team/proj", "project", "'team/proj'"),
    ("WANDB_APP_URL", "javascript:alert(1)", "host", "'javascript:alert(1)'"),
    ("WANDB_BASE_URL", "ftp://x", "WANDB_BASE_URL", "'ftp://x'"),
]


@pytest.mark.parametrize(("var", "text", "field_name", "value_text"), AT_RESOLUTION_ENV)
def test_bad_env_value_is_reported_at_resolution(
    monkeypatch: pytest.MonkeyPatch, var: str, text: str, field_name: str, value_text: str
) -> None:
    monkeypatch.setenv(var, text)
    link = Wandb(project="p", entity="e")  # nothing is resolved while building the link
    with pytest.raises(WandbConfigError) as info:
        resolve(context={})
    assert_clear_error(info.value, field_name, value_text, f"env {var}")
    with pytest.raises(WandbConfigError) as from_link:
        render(link, {})
    assert_clear_error(from_link.value, field_name, value_text, f"env {var}")


@pytest.mark.parametrize(
    ("text", "field_name", "value_text", "section"),
    [
        ('run_mode = "sometimes"\n', "run_mode", "'sometimes'", ""),
        ('tags = "single"\n', "tags", "'single'", ""),
        ('download_logs = "maybe"\n', "download_logs", "'maybe'", ""),
        ('report_tab = "maybe"\n', "report_tab", "'maybe'", ""),
        ('host = "ftp://x"\n', "host", "'ftp://x'", ""),
        ('id = "a:b"\n', "id", "'a:b'", ""),
        ('projekt = "typo"\n', "projekt", "'typo'", ""),
        ('[sweep]\nmethod = "best"\n', "method", "'best'", " [sweep]"),
        ('[sweep]\nmetod = "grid"\n', "metod", "'grid'", " [sweep]"),
    ],
)
def test_bad_value_in_config_file_is_reported_at_resolution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, field_name: str, value_text: str, section: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(path))
    with pytest.raises(WandbConfigError) as info:
        resolve(context={})
    assert_clear_error(info.value, field_name, value_text, f"file {path}{section}")


def test_config_file_that_is_not_toml_is_reported_with_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('project = "unterminated\n')
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(path))
    with pytest.raises(WandbConfigError) as info:
        resolve(context={})
    assert str(path) in str(info.value)
    assert "TOML" in str(info.value)


def test_missing_config_file_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere.toml"
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(missing))
    with pytest.raises(WandbConfigError) as info:
        resolve(context={})
    assert_clear_error(info.value, "FLYTEPLUGINS_WANDB_CONFIG", str(missing), "env FLYTEPLUGINS_WANDB_CONFIG")


@pytest.mark.parametrize(
    ("key", "text", "value_text"),
    [
        ("wandb_run_mode", "sometimes", "'sometimes'"),
        ("wandb_rank_scope", "node", "'node'"),
        ("wandb_mode", "loud", "'loud'"),
        ("wandb_download_logs", "maybe", "'maybe'"),
        ("wandb_report_tab", "maybe", "'maybe'"),
        ("wandb_tags", '"single"', "'single'"),
        ("wandb_host", "javascript:alert(1)", "'javascript:alert(1)'"),
        ("wandb_id", "a/b", "'a/b'"),
    ],
)
def test_bad_value_in_parent_context_is_reported_at_resolution(key: str, text: str, value_text: str) -> None:
    context = {key: text, "wandb_project": "p", "wandb_entity": "e"}
    for attempt in (lambda: resolve(context=context), lambda: render(Wandb(), context)):
        with pytest.raises(WandbConfigError) as info:
            attempt()
        assert_clear_error(info.value, key.removeprefix("wandb_"), value_text, f"custom_context key {key}")
