"""The example configuration files in ``config/``: each one loads, every setting it documents is read,
and each value is attributed to the right layer."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from flyteplugins.wandb import Wandb, WandbSweep, explain, reload_settings
from flyteplugins.wandb._layers import resolve
from flyteplugins.wandb._settings import RUN, SWEEP, WATCHED_ENV_VARS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG = Path(__file__).resolve().parent.parent / "config"
ENV_FILE = CONFIG / "example.env"
TOML_FILE = CONFIG / "wandb.toml"
ENV_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=(\S*)$")
OPTIONAL_ENV_LINE = re.compile(r"^# ([A-Z][A-Z0-9_]*)=(\S*)$")
OPTIONAL_TOML_LINE = re.compile(r"^# ([a-z_]+ = .+)$")


def parse_env_file(text: str, optional: bool = False) -> dict[str, str]:
    """KEY=VALUE lines; comments and blank lines skipped (``optional``: the ``# KEY=VALUE`` lines)."""
    entries: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if optional:
            match = OPTIONAL_ENV_LINE.match(line)
            if match:
                entries[match.group(1)] = match.group(2)
            continue
        if not line or line.startswith("#"):
            continue
        match = ENV_LINE.match(line)
        assert match, f"{ENV_FILE.name}:{number} is not NAME=value without quotes or spaces: {raw!r}"
        entries[match.group(1)] = match.group(2)
    return entries


def load_env_file(monkeypatch: pytest.MonkeyPatch, entries: dict[str, str]) -> None:
    for var in WATCHED_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    for var, value in entries.items():
        monkeypatch.setenv(var, value)


def render(link: Wandb | WandbSweep) -> str:
    return link.get_link("run1", "fp", "dev", {}, "a0", "a1", "pod")


# --- example.env -------------------------------------------------------------------------------


def test_example_env_sets_every_plugin_variable_or_shows_it_as_optional() -> None:
    text = ENV_FILE.read_text()
    active, optional = parse_env_file(text), parse_env_file(text, optional=True)
    assert set(active) | set(optional) == set(WATCHED_ENV_VARS)
    assert not set(active) & set(optional)
    assert "WANDB_API_KEY" not in text.replace('as_env_var="WANDB_API_KEY"', "")
    lines = text.splitlines()
    for var in WATCHED_ENV_VARS:
        # Each variable has a comment right above it, or above the group of variables it is in.
        number = next(
            i
            for i, line in enumerate(lines)
            if ENV_LINE.match(line) or OPTIONAL_ENV_LINE.match(line)
            if line.lstrip("# ").startswith(f"{var}=")
        )
        above = number - 1
        while ENV_LINE.match(lines[above]) or OPTIONAL_ENV_LINE.match(lines[above]):
            above -= 1
        assert lines[above].startswith("# ") and len(lines[above]) > 10, var


def test_example_env_resolves_to_its_documented_values(monkeypatch: pytest.MonkeyPatch) -> None:
    load_env_file(monkeypatch, parse_env_file(ENV_FILE.read_text()))
    resolved = resolve(context={})
    expected = {
        "host": ("https://wandb.example.com", "env WANDB_BASE_URL (web address derived from it)"),
        "entity": ("ml-platform", "env WANDB_ENTITY"),
        "project": ("image-classifier", "env WANDB_PROJECT"),
        "group": ("nightly", "env WANDB_RUN_GROUP"),
        "tags": (("nightly", "resnet50"), "env WANDB_TAGS"),
        "notes": ("nightly-retraining-on-the-latest-snapshot", "env WANDB_NOTES"),
        "job_type": ("train", "env WANDB_JOB_TYPE"),
        "mode": ("online", "env WANDB_MODE"),
        "run_mode": ("auto", "env FLYTEPLUGINS_WANDB_RUN_MODE"),
        "rank_scope": ("worker", "env FLYTEPLUGINS_WANDB_RANK_SCOPE"),
        "download_logs": (True, "env FLYTEPLUGINS_WANDB_DOWNLOAD_LOGS"),
        "log_inputs": (True, "env FLYTEPLUGINS_WANDB_LOG_INPUTS"),
        "log_outputs": (("model",), "env FLYTEPLUGINS_WANDB_LOG_OUTPUTS"),
        "report_tab": (True, "env FLYTEPLUGINS_WANDB_REPORT_TAB"),
        "timeout": (30.0, "env FLYTEPLUGINS_WANDB_TIMEOUT"),
    }
    assert {name: (resolved.get(name), resolved.origin(name)) for name in expected} == expected
    assert resolved.get("id") is None and resolved.get("name") is None
    assert render(Wandb()) == "https://wandb.example.com/ml-platform/image-classifier/runs/run1-a1"


def test_example_env_optional_lines_work_when_uncommented(monkeypatch: pytest.MonkeyPatch) -> None:
    text = ENV_FILE.read_text()
    entries = {**parse_env_file(text), **parse_env_file(text, optional=True)}
    entries["FLYTEPLUGINS_WANDB_CONFIG"] = str(TOML_FILE)  # the documented path, made absolute
    load_env_file(monkeypatch, entries)
    resolved = resolve(context={})
    assert (resolved.get("host"), resolved.origin("host")) == (
        "https://wandb-ui.example.com",
        "env WANDB_APP_URL",
    )
    assert (resolved.get("id"), resolved.origin("id")) == ("resnet50-nightly-0001", "env WANDB_RUN_ID")
    assert (resolved.get("name"), resolved.origin("name")) == ("resnet50-nightly", "env WANDB_NAME")
    # The file layer is read, and the environment beats it.
    assert resolved.get("config") == {"architecture": "resnet50", "learning_rate": 0.001, "epochs": 10}
    assert resolved.history("project")[1][1] == f"file {TOML_FILE}"
    assert (
        render(Wandb())
        == "https://wandb-ui.example.com/ml-platform/image-classifier/runs/resnet50-nightly-0001"
    )


def test_example_env_works_with_the_documented_path_from_the_repository_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(CONFIG.parent)
    reload_settings()
    load_env_file(monkeypatch, parse_env_file(ENV_FILE.read_text(), optional=True))
    assert resolve(context={}).origin("config") == "file config/wandb.toml"


# --- wandb.toml --------------------------------------------------------------------------------


def toml_keys(text: str) -> tuple[set[str], set[str]]:
    data = tomllib.loads(text)
    return set(data) - {"sweep"}, set(data.get("sweep", {}))


def test_wandb_toml_documents_every_run_and_sweep_key() -> None:
    text = TOML_FILE.read_text()
    run_keys, sweep_keys = toml_keys(text)
    uncommented = "\n".join(
        OPTIONAL_TOML_LINE.sub(r"\1", line) if not line.startswith("[") else line
        for line in text.splitlines()
    )
    all_run_keys, all_sweep_keys = toml_keys(uncommented)
    assert all_run_keys == set(RUN.fields)
    assert all_sweep_keys == set(SWEEP.fields)
    assert run_keys == set(RUN.fields) - {"id", "name"}
    assert sweep_keys == set(SWEEP.fields) - {"prior_runs"}
    assert "api_key" not in text


def test_wandb_toml_resolves_to_its_documented_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(TOML_FILE))
    run = resolve(context={})
    origin = f"file {TOML_FILE}"
    assert dict(run.values) == {
        "host": "https://wandb.example.com",
        "entity": "ml-platform",
        "project": "image-classifier",
        "mode": "online",
        "group": "nightly",
        "tags": ("nightly", "resnet50"),
        "notes": "Nightly retraining on the latest data snapshot.",
        "job_type": "train",
        "run_mode": "auto",
        "rank_scope": "global",
        "download_logs": False,
        "log_inputs": True,
        "log_outputs": ("model",),
        "report_tab": True,
        "timeout": 30.0,
        "config": {"architecture": "resnet50", "learning_rate": 0.001, "epochs": 10},
        "kwargs": {"save_code": True},
    }
    assert {run.origin(name) for name in run.values} == {origin}
    sweep = resolve("sweep", context={})
    assert dict(sweep.values) == {
        "method": "bayes",
        "entity": "ml-platform",
        "project": "image-classifier-tuning",
        "name": "lr-and-batch-size",
        "download_logs": False,
        "metric": {"name": "val/loss", "goal": "minimize"},
        "parameters": {
            "learning_rate": {"distribution": "log_uniform_values", "min": 0.0001, "max": 0.1},
            "batch_size": {"values": [32, 64, 128]},
        },
        "kwargs": {
            "description": "Tune the learning rate and batch size of the nightly model.",
            "early_terminate": {"type": "hyperband", "min_iter": 3},
        },
    }
    assert {sweep.origin(name) for name in sweep.values} == {f"{origin} [sweep]"}
    assert render(Wandb()) == "https://wandb.example.com/ml-platform/image-classifier/runs/run1-a1"
    assert render(WandbSweep()) == "https://wandb.example.com/ml-platform/image-classifier-tuning/sweeps"
    assert "file" in str(explain(context={}))


def test_wandb_toml_optional_lines_work_when_uncommented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = TOML_FILE.read_text().splitlines()
    path = tmp_path / "all.toml"
    path.write_text("\n".join(OPTIONAL_TOML_LINE.sub(r"\1", line) for line in lines) + "\n")
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(path))
    assert (resolve(context={}).get("id"), resolve(context={}).get("name")) == (
        "resnet50-nightly-0001",
        "resnet50-nightly",
    )
    assert resolve("sweep", context={}).get("prior_runs") == ("resnet50-nightly-0001",)


def pyproject_from(toml_text: str) -> str:
    """The file's keys as the README says to put them in pyproject.toml."""
    out = ['[project]\nname = "example"\n', "[tool.flyteplugins.wandb]"]
    for line in toml_text.splitlines():
        if line.startswith("["):
            line = "[tool.flyteplugins.wandb." + line[1:]
        out.append(line)
    return "\n".join(out) + "\n"


def test_wandb_toml_keys_work_in_pyproject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    (tmp_path / "pyproject.toml").write_text(pyproject_from(TOML_FILE.read_text()))
    reload_settings()
    assert resolve(context={}).get("project") == "image-classifier"
    assert resolve("sweep", context={}).get("method") == "bayes"


def test_env_file_beats_toml_file(monkeypatch: pytest.MonkeyPatch) -> None:
    load_env_file(monkeypatch, parse_env_file(ENV_FILE.read_text()))
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(TOML_FILE))
    resolved = resolve(context={})
    assert (resolved.get("rank_scope"), resolved.origin("rank_scope")) == (
        "worker",
        "env FLYTEPLUGINS_WANDB_RANK_SCOPE",
    )
    assert resolved.history("rank_scope")[1][:2] == ("global", f"file {TOML_FILE}")
    # Settings only the file has still come from the file.
    assert resolved.origin("kwargs") == f"file {TOML_FILE}"
