"""Setting names: which names each layer accepts, and the error for one it does not.

A name is checked where it is given (a decorator's keyword when the decorator is applied, a
``wandb_config(...)`` keyword at the call, a key of the configuration file or a
``FLYTEPLUGINS_WANDB_*`` variable when read), so that a typo fails on the developer's machine,
not after a pod and its GPUs started. The valid names come from the schemas themselves (a field
added to :class:`~flyteplugins.wandb._settings.RunSettings` is valid at once) and, for the extra
``wandb.init`` arguments, from the per-release table of the compatibility layer: no ``wandb``
import.

Example:
    >>> from flyteplugins.wandb._settings import RUN
    >>> try:
    ...     check_extra_names(RUN, {"projcet": "p"}, "@wandb_init(...)")
    ... except Exception as exc:
    ...     print(exc.field, "did you mean 'project'?" in str(exc))
    projcet True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._compat.init_arguments import init_argument_since, known_init_arguments, newer_than_table
from ._errors import WandbConfigError

if TYPE_CHECKING:
    from ._settings import Schema

__all__ = [
    "SWEEP_CONFIG_KEYS",
    "check_env_names",
    "check_extra_names",
    "closest_name",
    "init_argument_hint",
    "unknown_field_error",
]

# The top-level keys of a W&B sweep configuration (the sweeps service's JSON schema, which refuses
# any other key): those that are not fields of the sweep schema travel as its extra keys.
SWEEP_CONFIG_KEYS = frozenset(
    {
        "apiVersion",
        "command",
        "controller",
        "description",
        "early_terminate",
        "entity",
        "image_uri",
        "job",
        "kind",
        "method",
        "metric",
        "metrics",
        "name",
        "parameters",
        "program",
        "project",
        "run_cap",
        "scheduler",
    }
)
ENV_PREFIX = "FLYTEPLUGINS_WANDB_"


def closest_name(name: str, candidates: Iterable[str]) -> str | None:
    """The valid name ``name`` most likely meant, if one is close enough.

    Example:
        >>> closest_name("projcet", ["project", "entity"])
        'project'
        >>> closest_name("zzz", ["project"]) is None
        True
    """
    import difflib

    pool = sorted(set(candidates))
    found = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not found:
        # Case and separators are the usual slips: RunMode, run-mode.
        folded = {c.lower().replace("-", "_"): c for c in pool}
        return folded.get(name.lower().replace("-", "_"))
    return found[0]


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = closest_name(name, candidates)
    return f"; did you mean {close!r}?" if close else ""


def _extra_candidates(schema: Schema) -> frozenset[str]:
    if schema.kind == "run":
        return known_init_arguments()
    return SWEEP_CONFIG_KEYS - set(schema.fields)


def unknown_field_error(schema: Schema, name: str, value: Any, origin: str) -> WandbConfigError:
    """The error for a name that is not a field of ``schema`` where only fields are allowed.

    Example:
        >>> from flyteplugins.wandb._settings import RUN
        >>> "did you mean 'run_mode'?" in str(unknown_field_error(RUN, "run_mod", "new", "file cfg.toml"))
        True
    """
    fields = [f for f in schema.fields if f != "kwargs"]
    if name in _extra_candidates(schema):
        kind = "a wandb.init() argument" if schema.kind == "run" else "a sweep configuration key"
        return WandbConfigError(
            name,
            value,
            origin,
            f"a {schema.kind} setting: {name!r} is {kind}, give it in kwargs ([kwargs] in a file)",
        )
    close = closest_name(name, fields)
    return WandbConfigError(
        name,
        value,
        origin,
        f"a {schema.kind} setting{f' (did you mean {close!r}?)' if close else ''}: one of "
        f"{', '.join(fields)}, or kwargs (a table of extra keys)",
    )


def _newer_wandb_installed() -> bool:
    """Whether the installed wandb is newer than the releases the table was checked against.

    Read from the package metadata, not by importing wandb; asked only for an unknown name.
    """
    from importlib import metadata

    try:
        installed = metadata.version("wandb")
    except metadata.PackageNotFoundError:
        return False
    return newer_than_table(installed)


def check_extra_names(schema: Schema, extra: Mapping[str, Any], origin: str) -> None:
    """Refuse an extra key that is neither a field nor a ``wandb.init`` argument (run) or a sweep
    configuration key (sweep).

    Run extras are checked against every supported wandb release's ``wandb.init`` arguments,
    without importing wandb; whether the installed wandb accepts one is checked at run start.

    Example:
        >>> from flyteplugins.wandb._settings import RUN
        >>> check_extra_names(RUN, {"save_code": True}, "wandb_config()")
    """
    if not extra:
        return
    allowed = _extra_candidates(schema)
    unknown = [key for key in extra if key not in allowed]
    if not unknown:
        return
    if schema.kind == "run" and all(str(k).isidentifier() for k in unknown) and _newer_wandb_installed():
        return  # a newer wandb may accept them: its own signature decides at run start
    name = str(unknown[0])
    fields = [f for f in schema.fields if f != "kwargs"]
    close = closest_name(name, [*fields, *allowed])
    what = f"a known name{f' (did you mean {close!r}?)' if close else ''}: {schema.kind} settings "
    if schema.kind == "run":
        what += f"{', '.join(fields)}; wandb.init() arguments {', '.join(sorted(allowed - set(fields)))}"
    else:
        what += f"{', '.join(fields)}; sweep configuration keys {', '.join(sorted(allowed))}"
    raise WandbConfigError(name, extra[unknown[0]], origin, what)


def init_argument_hint(name: str, accepted: Iterable[str], installed: str) -> str:
    """What to say about ``name``, an argument the installed wandb's ``init`` does not accept.

    Example:
        >>> init_argument_hint("projcet", ["project"], "0.22.1")
        "a wandb.init() argument of the installed wandb 0.22.1: one of project; did you mean 'project'?"
    """
    names = sorted(accepted)
    text = f"a wandb.init() argument of the installed wandb {installed}: one of {', '.join(names)}"
    since = init_argument_since(name)
    if since is not None:
        return f"{text}; {name!r} needs wandb {since} or newer: upgrade wandb"
    return text + _did_you_mean(name, names)


def check_env_names(environ: Mapping[str, str], known: Iterable[str]) -> None:
    """Refuse a ``FLYTEPLUGINS_WANDB_*`` variable that the plugin does not read.

    Example:
        >>> check_env_names({"FLYTEPLUGINS_WANDB_RUN_MODE": "new"}, ["FLYTEPLUGINS_WANDB_RUN_MODE"])
    """
    known_set = frozenset(known)
    for var in environ:
        if var.startswith(ENV_PREFIX) and var not in known_set:
            ours = sorted(v for v in known_set if v.startswith(ENV_PREFIX))
            close = closest_name(var, ours)
            raise WandbConfigError(
                var,
                environ[var],
                f"env {var}",
                f"a variable the plugin reads{f' (did you mean {close!r}?)' if close else ''}: one of "
                f"{', '.join(ours)}",
            )
