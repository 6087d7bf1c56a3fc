"""Typed W&B settings: the fields, their validation, and the environment and file sources.

Two schemas describe what can be configured: :data:`RUN` (what ``wandb.init`` and the run link
need) and :data:`SWEEP` (what ``wandb.sweep`` and the sweep link need). Every value that enters
the plugin, from whatever layer, is validated here, and a bad one becomes a
:class:`~flyteplugins.wandb.WandbConfigError` naming the field, the value, the layer and what is
allowed.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._errors import CREDENTIAL_NAME, WandbConfigError
from ._names import check_env_names, check_extra_names, unknown_field_error
from ._urls import app_url_from_api_url, normalize_host

__all__ = [
    "CONFIG_FILE_ENV",
    "RUN",
    "SWEEP",
    "DeclaredEnv",
    "RunSettings",
    "Schema",
    "SweepSettings",
    "check_no_credentials",
    "declared_wandb_env",
    "ensure_json",
    "explicit_settings_fields",
    "preserved_environ",
    "read_env",
    "read_file",
]

CONFIG_FILE_ENV = "FLYTEPLUGINS_WANDB_CONFIG"

# Characters the W&B backend rejects in run ids, project and entity names (wandb_settings.py).
_RESERVED = {"id": ":;,#?/'", "project": "/\\#?%:", "entity": "/\\#?%:"}


def check_no_credentials(value: Any, origin: str, path: str) -> None:
    """Refuse credentials in configuration that may travel (context, links, logs).

    The W&B API key belongs in the environment (``WANDB_API_KEY``, e.g. from a ``flyte.Secret``).

    Example:
        >>> check_no_credentials({"notes": "ok"}, "wandb_config()", "kwargs")
    """
    if isinstance(value, Mapping):
        for key, item in value.items():
            name = str(key)
            if CREDENTIAL_NAME.search(name):
                raise WandbConfigError(
                    f"{path}.{name}" if path else name,
                    "<hidden>",
                    origin,
                    "no credentials here: give the W&B API key as the WANDB_API_KEY environment "
                    "variable, e.g. flyte.Secret(key=..., as_env_var='WANDB_API_KEY')",
                )
            check_no_credentials(item, origin, f"{path}.{name}" if path else name)
    elif isinstance(value, (list, tuple)):
        for item in value:
            check_no_credentials(item, origin, path)


def explicit_settings_fields(settings: Any, origin: str) -> Any:
    """The fields set on a ``wandb.Settings`` (a mapping is returned as it is).

    Its dump also holds wandb's defaults and computed fields: only what the user set travels.

    Example:
        >>> explicit_settings_fields({"console": "off"}, "wandb_config()")
        {'console': 'off'}
    """
    if settings is None or isinstance(settings, Mapping):
        return settings
    fields_set = getattr(settings, "model_fields_set", None)
    if fields_set is None:
        raise WandbConfigError("settings", settings, origin, "a dict or a wandb.Settings object")
    return {k: v for k, v in settings.model_dump(mode="json").items() if k in fields_set}


def ensure_json(field: str, value: Any, origin: str) -> Any:
    """Return a deep copy of ``value`` made of plain JSON types, or raise a clear error.

    Example:
        >>> ensure_json("config", {"lr": 0.1}, "wandb_config()")
        {'lr': 0.1}
    """
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise WandbConfigError(
            field, value, origin, f"JSON-serialisable values (str, int, float, bool, None, list, dict): {exc}"
        ) from None


def _wandb_name(field: str) -> Any:
    reserved = _RESERVED[field]

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        if not value or value != value.strip():
            raise ValueError("empty or surrounded by whitespace")
        if len(value) > 128:
            raise ValueError("longer than 128 characters")
        bad = sorted({ch for ch in value if ch in reserved})
        if bad:
            raise ValueError(f"contains {''.join(bad)!r}")
        return value

    return check


def _name_selection(value: Any) -> Any:
    """``log_inputs`` / ``log_outputs``: a boolean, or names; text as from an environment variable
    (``true``, ``false``, ``lr,epochs``) becomes one of those."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off", ""):
            return False
        value = [name.strip() for name in text.split(",") if name.strip()]
    if isinstance(value, (list, tuple)):
        if not all(isinstance(name, str) and name.isidentifier() for name in value):
            raise ValueError("names must be Python identifiers")
        return tuple(value)
    return value


def _wandb_run_id(value: str | None) -> str | None:
    """Accept exactly the run ids the installed wandb accepts.

    Once wandb is imported, its own validator decides; before (links rendered, blocks built
    without wandb loaded) the rule of wandb 0.31 stands in, so that a configuration does not
    cost a wandb import. A test keeps the two in agreement.
    """
    if value is None:
        return None
    validate = None
    if "wandb" in sys.modules:
        from ._compat import run_id_validator

        validate = run_id_validator()
    if validate is not None:
        try:
            validate(value)
        except Exception as exc:
            raise ValueError(str(exc)) from None
        return value
    if not value or value != value.strip():
        raise ValueError("Run ID cannot be empty or start or end with whitespace")
    if any(ch in _RESERVED["id"] for ch in value):
        raise ValueError(f"Run ID cannot contain the characters: {_RESERVED['id']}")
    return value


class _Strict(BaseModel):
    # Validators are built on first use: a process that never validates a sweep never builds its model.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, defer_build=True)


class RunSettings(_Strict):
    """The settings of one W&B run, every field optional (unset fields come from lower layers)."""

    project: str | None = None
    entity: str | None = None
    host: str | None = None
    id: str | None = None
    name: str | None = None
    tags: tuple[str, ...] | None = None
    config: dict[str, Any] | None = None
    mode: Literal["online", "offline", "disabled", "shared"] | None = None
    group: str | None = None
    notes: str | None = None
    job_type: str | None = None
    run_mode: Literal["auto", "new", "shared"] | None = None
    rank_scope: Literal["global", "worker"] | None = None
    download_logs: bool | None = None
    log_inputs: bool | tuple[str, ...] | None = None
    log_outputs: bool | tuple[str, ...] | None = None
    report_tab: bool | None = None
    timeout: float | None = None
    kwargs: dict[str, Any] | None = None

    _check_project = field_validator("project")(_wandb_name("project"))
    _check_entity = field_validator("entity")(_wandb_name("entity"))
    _check_id = field_validator("id")(_wandb_run_id)
    _check_selection = field_validator("log_inputs", "log_outputs", mode="before")(_name_selection)

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError("a finite number of seconds above 0")
        return value

    @field_validator("mode", mode="before")
    @classmethod
    def _legacy_modes(cls, value: Any) -> Any:
        # The W&B SDK still accepts its old names for these modes.
        return {"dryrun": "offline", "run": "online"}.get(value, value) if isinstance(value, str) else value

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("a list of strings, not one string")
        return value

    @field_validator("tags")
    @classmethod
    def _tag_length(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            for tag in value:
                if not tag or len(tag) > 64:
                    raise ValueError("each tag must be 1 to 64 characters")
        return value


_METHODS = ("grid", "random", "bayes")
_PARAM_KEYS = frozenset(
    {
        "value",
        "values",
        "distribution",
        "min",
        "max",
        "mu",
        "sigma",
        "q",
        "probabilities",
        "parameters",
        "a",
        "b",
    }
)


class SweepMetric(_Strict):
    """The metric a sweep optimises."""

    name: str = Field(min_length=1)
    goal: Literal["minimize", "maximize"] = "minimize"
    target: float | None = None

    @field_validator("target")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("a finite number")
        return value


class SweepSettings(_Strict):
    """The settings of one W&B sweep, every field optional."""

    method: Literal["grid", "random", "bayes"] | None = None
    metric: SweepMetric | None = None
    parameters: dict[str, dict[str, Any]] | None = None
    project: str | None = None
    entity: str | None = None
    prior_runs: tuple[str, ...] | None = None
    name: str | None = None
    download_logs: bool | None = None
    kwargs: dict[str, Any] | None = None

    _check_project = field_validator("project")(_wandb_name("project"))
    _check_entity = field_validator("entity")(_wandb_name("entity"))

    @field_validator("parameters")
    @classmethod
    def _parameter_specs(cls, value: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]] | None:
        for name, spec in (value or {}).items():
            unknown = set(spec) - _PARAM_KEYS
            if not spec or unknown:
                raise ValueError(
                    f"parameter {name!r} needs a spec with keys from {sorted(_PARAM_KEYS)}"
                    + (f", got unknown {sorted(unknown)}" if unknown else "")
                )
        return value


_RUN_ALLOWED = {
    "project": "a W&B project name: 1-128 characters, none of / \\ # ? % :",
    "entity": "a W&B entity name: 1-128 characters, none of / \\ # ? % :",
    "host": "an http(s) URL such as https://wandb.ai",
    "id": "a W&B run id as wandb accepts it: no leading or trailing whitespace, none of : ; , # ? / '",
    "name": "a string",
    "tags": "a list of strings, each 1-64 characters",
    "config": "a dict of JSON-serialisable values",
    "mode": "one of 'online', 'offline', 'disabled', 'shared'",
    "group": "a string",
    "notes": "a string",
    "job_type": "a string",
    "run_mode": "one of 'auto', 'new', 'shared'",
    "rank_scope": "one of 'global', 'worker'",
    "download_logs": "a boolean (true/false)",
    "log_inputs": "true, false, or a list of the task's input names (env: comma-separated)",
    "log_outputs": "true, false, or a list of the task's output names (env: comma-separated)",
    "report_tab": "a boolean (true/false): the Weights & Biases tab of a report=True task's report",
    "timeout": "seconds W&B may delay a task's start and finish in total, e.g. 30",
    "kwargs": "a dict of extra wandb.init() arguments",
}
_SWEEP_ALLOWED = {
    "method": f"one of {', '.join(repr(m) for m in _METHODS)}",
    "metric": "a mapping with 'name' (str) and 'goal' ('minimize' or 'maximize')",
    "parameters": "a mapping of parameter name to spec, e.g. {'lr': {'min': 0.001, 'max': 0.1}}",
    "project": _RUN_ALLOWED["project"],
    "entity": _RUN_ALLOWED["entity"],
    "prior_runs": "a list of run ids",
    "name": "a string",
    "download_logs": "a boolean (true/false)",
    "kwargs": "a dict of extra sweep configuration keys",
}


@dataclass(frozen=True)
class Schema:
    """What one kind of configuration (run or sweep) consists of."""

    kind: Literal["run", "sweep"]
    model: type[_Strict]
    prefix: str
    allowed: Mapping[str, str]
    string_fields: frozenset[str]
    defaults: Mapping[str, Any]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.model.model_fields)

    def split_arguments(self, arguments: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split decorator arguments into this schema's fields and extra keys (``kwargs`` flattened in).

        Arguments left at ``None`` are dropped: they were not given.

        Example:
            >>> RUN.split_arguments({"project": "p", "save_code": True, "kwargs": {"x": 1}, "id": None})
            ({'project': 'p'}, {'save_code': True, 'x': 1})
        """
        values = {k: v for k, v in arguments.items() if v is not None}
        extra = {k: values.pop(k) for k in list(values) if k not in self.model.model_fields or k == "kwargs"}
        if "kwargs" in extra:
            extra.update(extra.pop("kwargs") or {})
        return values, extra

    def validate(self, values: Mapping[str, Any], origins: Mapping[str, str] | str) -> dict[str, Any]:
        """Validate a partial set of fields; return them as plain Python values (only those given).

        Example:
            >>> RUN.validate({"run_mode": "new"}, "wandb_config()")
            {'run_mode': 'new'}
        """

        def origin_of(name: str) -> str:
            return origins if isinstance(origins, str) else origins.get(name, "configuration")

        unknown = [key for key in values if key not in self.model.model_fields]
        if unknown:
            raise unknown_field_error(self, unknown[0], values[unknown[0]], origin_of(unknown[0]))
        data = {k: v for k, v in values.items() if v is not None}
        if isinstance(data.get("kwargs"), Mapping):
            # Extra keys are checked where they are given, against the names wandb may accept.
            check_extra_names(self, data["kwargs"], origin_of("kwargs"))
        if "host" in data:
            data["host"] = normalize_host(data["host"], origin_of("host"))
        try:
            model = self.model.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            name = str(error["loc"][0]) if error["loc"] else "configuration"
            detail = self.allowed.get(name, "a valid value")
            if error.get("type") == "value_error":
                detail = f"{detail} ({error['msg'].removeprefix('Value error, ')})"
            raise WandbConfigError(name, data.get(name), origin_of(name), detail) from None
        dumped = model.model_dump(exclude_unset=True, exclude_none=True)
        for key in ("tags", "prior_runs", "log_inputs", "log_outputs"):
            if isinstance(dumped.get(key), list):
                dumped[key] = tuple(dumped[key])
        return dumped


RUN = Schema(
    kind="run",
    model=RunSettings,
    prefix="wandb_",
    allowed=_RUN_ALLOWED,
    string_fields=frozenset(
        {
            "project",
            "entity",
            "host",
            "id",
            "name",
            "mode",
            "group",
            "notes",
            "job_type",
            "run_mode",
            "rank_scope",
        }
    ),
    defaults={
        "run_mode": "auto",
        "rank_scope": "global",
        "download_logs": False,
        "log_inputs": True,
        "log_outputs": False,
        "report_tab": True,
        "timeout": 30.0,
    },
)
SWEEP = Schema(
    kind="sweep",
    model=SweepSettings,
    prefix="wandb_sweep_",
    allowed=_SWEEP_ALLOWED,
    string_fields=frozenset({"method", "project", "entity", "name"}),
    defaults={"download_logs": False},
)


# --- environment -------------------------------------------------------------------------------

# Which environment variable feeds which run field: the W&B SDK's own variables, plus ours for the
# fields the SDK does not know.
ENV_VARS: dict[str, str] = {
    "WANDB_PROJECT": "project",
    "WANDB_ENTITY": "entity",
    "WANDB_RUN_ID": "id",
    "WANDB_NAME": "name",
    "WANDB_TAGS": "tags",
    "WANDB_RUN_GROUP": "group",
    "WANDB_NOTES": "notes",
    "WANDB_JOB_TYPE": "job_type",
    "WANDB_MODE": "mode",
    "FLYTEPLUGINS_WANDB_RUN_MODE": "run_mode",
    "FLYTEPLUGINS_WANDB_RANK_SCOPE": "rank_scope",
    "FLYTEPLUGINS_WANDB_DOWNLOAD_LOGS": "download_logs",
    "FLYTEPLUGINS_WANDB_LOG_INPUTS": "log_inputs",
    "FLYTEPLUGINS_WANDB_LOG_OUTPUTS": "log_outputs",
    "FLYTEPLUGINS_WANDB_REPORT_TAB": "report_tab",
    "FLYTEPLUGINS_WANDB_TIMEOUT": "timeout",
}
HOST_ENV_VARS = ("WANDB_APP_URL", "WANDB_BASE_URL")
WATCHED_ENV_VARS: tuple[str, ...] = (*ENV_VARS, *HOST_ENV_VARS, CONFIG_FILE_ENV)
_WATCHED = frozenset(WATCHED_ENV_VARS)


@functools.cache
def _env_source() -> type[Any]:
    """The pydantic-settings class the TOML file source reads for.

    Built on first use: pydantic-settings is needed only when a configuration file is read.
    """
    from pydantic import create_model
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class _EnvBase(BaseSettings):
        model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", env_ignore_empty=True)

    fields: dict[str, Any] = {var: (str | None, None) for var in WATCHED_ENV_VARS}
    return create_model("_EnvSource", __base__=_EnvBase, **fields)


def read_env(declared: Mapping[str, str] | None = None) -> tuple[dict[str, Any], dict[str, str], str | None]:
    """Read the run fields set in the environment.

    ``declared`` holds variables a task's ``TaskEnvironment(env_vars=...)`` declares: they replace
    this process's values (an empty one unsets the variable), as in the task's container.

    Returns the validated values, the variable each came from (``env WANDB_PROJECT``), and the
    config file named by ``FLYTEPLUGINS_WANDB_CONFIG`` if any.
    """
    # The variables verbatim, case-sensitive, empty ones ignored (what the pydantic-settings source
    # did). Read straight from os.environ: every remote task reads them on its cold path, and the
    # pydantic-settings machinery costs that path time and memory for a plain dictionary lookup.
    environ: Mapping[str, str] = os.environ
    check_env_names(environ, WATCHED_ENV_VARS)
    if declared:
        environ = {**{var: environ[var] for var in WATCHED_ENV_VARS if var in environ}, **declared}
    raw = {var: environ[var] for var in WATCHED_ENV_VARS if environ.get(var)}

    def source(var: str) -> str:
        return f"env {var} (TaskEnvironment env_vars)" if declared and var in declared else f"env {var}"

    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for var, field in ENV_VARS.items():
        if var in raw:
            text = raw[var].strip()
            # The W&B SDK reads WANDB_TAGS as a comma-separated list.
            values[field] = (
                tuple(t.strip() for t in text.split(",") if t.strip()) if field == "tags" else text
            )
            origins[field] = source(var)
    if "WANDB_APP_URL" in raw:
        values["host"] = raw["WANDB_APP_URL"]
        origins["host"] = source("WANDB_APP_URL")
    elif "WANDB_BASE_URL" in raw:
        base = normalize_host(raw["WANDB_BASE_URL"], source("WANDB_BASE_URL"), field="WANDB_BASE_URL")
        values["host"] = app_url_from_api_url(base)
        origins["host"] = f"{source('WANDB_BASE_URL')} (web address derived from it)"
    return RUN.validate(values, origins), origins, raw.get(CONFIG_FILE_ENV)


DeclaredEnv = tuple[tuple[str, str], ...]
"""A task's declared W&B variables (``TaskEnvironment(env_vars=...)``), as sorted ``(name, value)`` pairs."""


def declared_wandb_env(env_vars: Mapping[str, Any] | None) -> DeclaredEnv:
    """The W&B settings variables among a task's declared ``env_vars``, as a hashable value.

    Example:
        >>> declared_wandb_env({"WANDB_PROJECT": "p", "OMP_NUM_THREADS": "1", "WANDB_MODE": None})
        (('WANDB_MODE', ''), ('WANDB_PROJECT', 'p'))
    """
    if not env_vars:
        return ()
    return tuple(
        sorted(
            (name, "" if value is None else str(value))
            for name, value in env_vars.items()
            if name in _WATCHED
        )
    )


@contextmanager
def preserved_environ(*names: str) -> Iterator[None]:
    """Put the named environment variables back as they were on exit, whatever happened in between.

    Example:
        >>> with preserved_environ("WANDB_SILENT"):
        ...     os.environ["WANDB_SILENT"] = "true"
    """
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- configuration file ------------------------------------------------------------------------


@dataclass(frozen=True)
class FileValues:
    """The run and sweep fields a configuration file sets."""

    path: str | None
    run: dict[str, Any]
    sweep: dict[str, Any]


def _toml_table(path: Path, header: tuple[str, ...]) -> dict[str, Any]:
    from pydantic_settings import TomlConfigSettingsSource

    # pydantic-settings' TOML source reads the file; the table is picked here, so that the same
    # code serves a plain file (no header) and pyproject.toml ([tool.flyteplugins.wandb]).
    data: Any = TomlConfigSettingsSource(_env_source(), toml_file=path).toml_data
    for key in header:
        data = data.get(key, {}) if isinstance(data, dict) else {}
    return dict(data) if isinstance(data, dict) else {}


def read_file(explicit: str | None, cwd: str | None = None) -> FileValues:
    """Read the file layer: the TOML file named by ``FLYTEPLUGINS_WANDB_CONFIG``, else the
    ``[tool.flyteplugins.wandb]`` table of ``pyproject.toml`` in the working directory.

    Run fields sit at the top of the table, sweep fields in its ``sweep`` sub-table.

    Example:
        >>> read_file(None, cwd="/nonexistent").path is None
        True
    """
    if explicit:
        path = Path(explicit).expanduser()
        origin = f"file {path}"
        if not path.is_file():
            raise WandbConfigError(
                CONFIG_FILE_ENV, explicit, f"env {CONFIG_FILE_ENV}", "the path of a TOML file"
            )
        header: tuple[str, ...] = ()
    else:
        path = Path(cwd or os.getcwd()) / "pyproject.toml"
        if not path.is_file():
            return FileValues(None, {}, {})
        header = ("tool", "flyteplugins", "wandb")
        origin = f"file {path} [tool.flyteplugins.wandb]"
    try:
        table = _toml_table(path, header)
    except Exception as exc:  # a TOML syntax error, reported with the file's name
        raise WandbConfigError("configuration file", str(path), origin, f"valid TOML ({exc})") from None
    if not table:
        return FileValues(str(path), {}, {})
    sweep_table = table.pop("sweep", {})
    if not isinstance(sweep_table, dict):
        raise WandbConfigError("sweep", sweep_table, origin, "a TOML table [sweep] of sweep fields")
    check_no_credentials(table, origin, "")
    check_no_credentials(sweep_table, origin, "sweep")
    return FileValues(
        str(path), RUN.validate(table, origin), SWEEP.validate(sweep_table, f"{origin} [sweep]")
    )
