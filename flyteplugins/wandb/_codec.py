"""The round trip of W&B settings through Flyte's ``custom_context`` (a flat ``str -> str`` map).

The key names are those of the reference plugin, so that workflows mixing both interoperate:
``wandb_<field>`` for run settings, ``wandb_sweep_<field>`` for sweep settings, and
``_wandb_run_*`` / ``_wandb_sweep_*`` for the identity of the run or sweep a parent task started.

String fields travel verbatim (a project named ``"2024"`` stays a string); lists, dicts and bools
travel as JSON. Keys this plugin does not know are ignored. Credentials are never written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import WandbConfigError
from ._settings import RUN, SWEEP, Schema, check_no_credentials

__all__ = [
    "RUN_IDENTITY_KEYS",
    "SWEEP_IDENTITY_KEYS",
    "DecodedContext",
    "RunIdentity",
    "SweepIdentity",
    "decode_context",
    "encode_fields",
    "encode_run_identity",
    "encode_sweep_identity",
]


@dataclass(frozen=True, slots=True)
class RunIdentity:
    """Where a run that some task started really lives."""

    id: str
    entity: str | None = None
    project: str | None = None
    host: str | None = None


@dataclass(frozen=True, slots=True)
class SweepIdentity:
    """Where a sweep that some task created really lives."""

    id: str
    entity: str | None = None
    project: str | None = None


RUN_IDENTITY_KEYS = {
    "id": "_wandb_run_id",
    "entity": "_wandb_run_entity",
    "project": "_wandb_run_project",
    "host": "_wandb_run_host",
}
SWEEP_IDENTITY_KEYS = {
    "id": "_wandb_sweep_id",
    "entity": "_wandb_sweep_entity",
    "project": "_wandb_sweep_project",
}


def encode_fields(schema: Schema, values: Mapping[str, Any], origin: str) -> dict[str, str]:
    """Encode validated fields as ``custom_context`` entries.

    Example:
        >>> encode_fields(RUN, {"project": "2024", "tags": ("a",), "download_logs": True}, "wandb_config()")
        {'wandb_project': '2024', 'wandb_tags': '["a"]', 'wandb_download_logs': 'true'}
    """
    check_no_credentials(values, origin, "")
    encoded: dict[str, str] = {}
    for field, value in values.items():
        key = schema.prefix + field
        if field in schema.string_fields:
            encoded[key] = value
            continue
        try:
            encoded[key] = json.dumps(list(value) if isinstance(value, tuple) else value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise WandbConfigError(
                field,
                value,
                origin,
                f"JSON-serialisable values (str, int, float, bool, None, list, dict): {exc}",
            ) from None
    return encoded


def encode_run_identity(identity: RunIdentity) -> dict[str, str]:
    """Encode the identity of a started run for the task's children.

    Example:
        >>> encode_run_identity(RunIdentity("r1", "team", "proj"))
        {'_wandb_run_id': 'r1', '_wandb_run_entity': 'team', '_wandb_run_project': 'proj'}
    """
    return {
        key: value
        for field, key in RUN_IDENTITY_KEYS.items()
        if (value := getattr(identity, field)) is not None
    }


def encode_sweep_identity(identity: SweepIdentity) -> dict[str, str]:
    """Encode the identity of a created sweep for the task's children.

    Example:
        >>> encode_sweep_identity(SweepIdentity("s1"))
        {'_wandb_sweep_id': 's1'}
    """
    return {
        key: value
        for field, key in SWEEP_IDENTITY_KEYS.items()
        if (value := getattr(identity, field)) is not None
    }


@dataclass(frozen=True, slots=True)
class DecodedContext:
    """What a ``custom_context`` says about W&B: per-schema values with their keys, and identities."""

    run: dict[str, Any]
    run_origins: dict[str, str]
    sweep: dict[str, Any]
    sweep_origins: dict[str, str]
    run_identity: RunIdentity | None
    sweep_identity: SweepIdentity | None


def _decode_schema(schema: Schema, raw: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for field, text in raw.items():
        origin = f"custom_context key {schema.prefix}{field}"
        origins[field] = origin
        if field in schema.string_fields:
            values[field] = text
            continue
        try:
            values[field] = json.loads(text)
        except (TypeError, ValueError):
            raise WandbConfigError(field, text, origin, f"JSON: {schema.allowed[field]}") from None
        # Whatever wrote the context, a credential must not travel further from here.
        check_no_credentials({field: values[field]}, origin, "")
    return schema.validate(values, origins), origins


def decode_context(context: Mapping[str, str] | None) -> DecodedContext:
    """Decode the W&B entries of a ``custom_context``; keys this plugin does not know are ignored.

    Example:
        >>> decoded = decode_context({"wandb_project": "2024", "wandb_name": "null", "other": "x"})
        >>> decoded.run
        {'project': '2024', 'name': 'null'}
    """
    run_raw: dict[str, str] = {}
    sweep_raw: dict[str, str] = {}
    run_fields = RUN.model.model_fields
    sweep_fields = SWEEP.model.model_fields
    for key, text in (context or {}).items():
        if key.startswith("wandb_sweep_"):
            if key[12:] in sweep_fields:
                sweep_raw[key[12:]] = text
        elif key.startswith("wandb_") and key[6:] in run_fields:
            run_raw[key[6:]] = text
    run, run_origins = _decode_schema(RUN, run_raw)
    sweep, sweep_origins = _decode_schema(SWEEP, sweep_raw)
    ctx = context or {}
    run_identity = None
    if ctx.get("_wandb_run_id"):
        run_identity = RunIdentity(
            id=ctx["_wandb_run_id"],
            entity=ctx.get("_wandb_run_entity") or None,
            project=ctx.get("_wandb_run_project") or None,
            host=ctx.get("_wandb_run_host") or None,
        )
    sweep_identity = None
    if ctx.get("_wandb_sweep_id"):
        sweep_identity = SweepIdentity(
            id=ctx["_wandb_sweep_id"],
            entity=ctx.get("_wandb_sweep_entity") or None,
            project=ctx.get("_wandb_sweep_project") or None,
        )
    return DecodedContext(run, run_origins, sweep, sweep_origins, run_identity, sweep_identity)
