"""The configuration layers, their one resolution, and ``explain``.

Lowest to highest precedence: defaults, file, environment, the parent task (Flyte's
``custom_context``), ``wandb_config`` blocks, the task itself (decorator arguments, explicitly-set
link fields). The host is the one exception: a host from the context (parent or block) beats the
task's, as in the reference plugin, so a workflow can point every link at a self-hosted server.

Every layer is an immutable value; blocks live in a ``contextvars`` stack that is a tuple of
layers, reset by token. :func:`resolve` is the only place where layers are merged: links, run
start, sweep creation and :func:`explain` all call it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from ._codec import DecodedContext, RunIdentity, SweepIdentity, decode_context
from ._settings import (
    RUN,
    SWEEP,
    WATCHED_ENV_VARS,
    DeclaredEnv,
    Schema,
    declared_wandb_env,
    read_env,
    read_file,
)
from ._urls import DEFAULT_HOST

__all__ = [
    "DecoratedCall",
    "Explanation",
    "Layer",
    "LayerKind",
    "Resolved",
    "blocks",
    "current_context",
    "decorated_call",
    "enter_decorated",
    "explain",
    "layer",
    "leave_decorated",
    "push_block",
    "reload_settings",
    "reset_block",
    "resolve",
]

LayerKind = Literal["default", "file", "env", "parent", "block", "task"]
_ORDER: tuple[LayerKind, ...] = ("default", "file", "env", "parent", "block", "task")
_HOST_ORDER: tuple[LayerKind, ...] = ("default", "file", "env", "task", "parent", "block")
# Dict-valued fields merge key by key across layers; every other field is replaced whole.
_MERGED_FIELDS = frozenset({"config", "kwargs"})


@dataclass(frozen=True, eq=False, slots=True)
class Layer:
    """One immutable layer of settings for one schema (``run`` or ``sweep``).

    ``values`` holds only the fields this layer sets; ``origins`` says where each came from, e.g.
    ``env WANDB_PROJECT`` or ``wandb_config()``.
    """

    kind: LayerKind
    schema: Literal["run", "sweep"]
    values: Mapping[str, Any]
    origins: Mapping[str, str]


_EMPTY: Mapping[str, Any] = MappingProxyType({})


def layer(
    kind: LayerKind, schema: Schema, values: Mapping[str, Any], origins: Mapping[str, str] | str
) -> Layer:
    """Build a layer from already validated values.

    Example:
        >>> layer("block", RUN, {"project": "p"}, "wandb_config()").origins["project"]
        'wandb_config()'
    """
    if isinstance(origins, str):
        origins = dict.fromkeys(values, origins)
    return Layer(kind, schema.kind, MappingProxyType(dict(values)), MappingProxyType(dict(origins)))


# --- defaults, file and environment: built rarely ------------------------------------------------


@dataclass(frozen=True, eq=False, slots=True)
class _Base:
    run: tuple[Layer, ...]
    sweep: tuple[Layer, ...]


_base_cache: tuple[tuple[str | None, ...], _Base] | None = None
_ENV_DATA: Any = getattr(os.environ, "_data", None)
_ENCODED_VARS = tuple(os.environ.encodekey(v) for v in WATCHED_ENV_VARS) if _ENV_DATA is not None else ()


def _env_snapshot() -> tuple[Any, ...]:
    # Links are rendered often and must stay cheap: look the watched variables up in os.environ's
    # own dict with pre-encoded keys (one dict lookup each) instead of os.environ.get, which
    # re-encodes every key; the snapshot tells when the settings must be read again.
    if _ENV_DATA is not None:
        return tuple(map(_ENV_DATA.get, _ENCODED_VARS))
    return tuple(map(os.environ.get, WATCHED_ENV_VARS))


def _build_base(declared: Mapping[str, str] | None = None) -> _Base:
    env_values, env_origins, config_path = read_env(declared)
    file_values = read_file(config_path)
    file_origin = f"file {file_values.path}"
    return _Base(
        run=(
            layer("default", RUN, {**RUN.defaults, "host": DEFAULT_HOST}, "default"),
            layer("file", RUN, file_values.run, file_origin),
            layer("env", RUN, env_values, env_origins),
        ),
        sweep=(
            layer("default", SWEEP, SWEEP.defaults, "default"),
            layer("file", SWEEP, file_values.sweep, f"{file_origin} [sweep]"),
        ),
    )


# Per declared environment: the process snapshot it was built for and the base (None: the same as
# the process's own base, as in the task's own container, where the declared variables are set).
_declared_bases: dict[DeclaredEnv, tuple[tuple[Any, ...], _Base | None]] = {}


def _base(declared: DeclaredEnv = ()) -> _Base:
    global _base_cache
    snapshot = _env_snapshot()
    cached = _base_cache
    if cached is None or cached[0] != snapshot:
        cached = _base_cache = (snapshot, _build_base())
    if not declared:
        return cached[1]
    # The environment a task's container sees: its declared variables over this process's.
    found = _declared_bases.get(declared)
    if found is None or found[0] != snapshot:
        overlay = dict(declared)
        differs = any(value != os.environ.get(var, "") for var, value in declared)
        if len(_declared_bases) > 256:
            _declared_bases.clear()
        found = _declared_bases[declared] = (snapshot, _build_base(overlay) if differs else None)
    return found[1] or cached[1]


def reload_settings() -> None:
    """Forget the cached file and environment layers; the next resolution reads them again.

    Environment changes are noticed on their own; call this after editing the configuration file
    or changing the working directory in a long-lived process.

    Example:
        >>> reload_settings()
    """
    global _base_cache
    global _last_parent
    _base_cache = None
    _declared_bases.clear()
    _last_parent = ({}, _NO_PARENT)
    _parent_cache.clear()
    _resolved_cache.clear()


# --- parent: what the enclosing task put in custom_context ---------------------------------------


@dataclass(frozen=True, eq=False, slots=True)
class _Parent:
    run: Layer | None
    sweep: Layer | None
    run_identity: RunIdentity | None
    sweep_identity: SweepIdentity | None


_parent_cache: dict[tuple[tuple[str, str], ...], _Parent] = {}
_NO_PARENT = _Parent(None, None, None, None)


_last_parent: tuple[dict[str, str], _Parent] = ({}, _NO_PARENT)


def _parent(context: Mapping[str, str] | None) -> _Parent:
    global _last_parent
    if not context:
        return _NO_PARENT
    # Flyte hands every sibling action the same context: comparing with the last one seen is a
    # C-level dict comparison, cheaper than hashing its items.
    last_context, last_parent = _last_parent
    if context == last_context:
        return last_parent
    key = tuple(context.items())
    found = _parent_cache.get(key)
    if found is not None:
        _last_parent = (dict(context), found)
        return found
    decoded: DecodedContext = decode_context(context)
    parent = _Parent(
        run=layer("parent", RUN, decoded.run, decoded.run_origins) if decoded.run else None,
        sweep=layer("parent", SWEEP, decoded.sweep, decoded.sweep_origins) if decoded.sweep else None,
        run_identity=decoded.run_identity,
        sweep_identity=decoded.sweep_identity,
    )
    if len(_parent_cache) > 512:
        _parent_cache.clear()
    _parent_cache[key] = parent
    _last_parent = (dict(context), parent)
    return parent


def current_context() -> Mapping[str, str]:
    """The ``custom_context`` of the Flyte task running now (empty outside a task).

    Example:
        >>> current_context()
        {}
    """
    flyte = sys.modules.get("flyte")
    if flyte is None:
        return {}
    ctx = flyte.ctx()
    if not ctx:
        return {}
    return ctx.custom_context or {}


# --- blocks: the contextvar stack ----------------------------------------------------------------

_blocks: ContextVar[tuple[Layer, ...]] = ContextVar("flyteplugins_wandb_blocks", default=())


def blocks() -> tuple[Layer, ...]:
    """The ``wandb_config`` / ``wandb_sweep_config`` blocks active here, outermost first."""
    return _blocks.get()


def push_block(new: Layer) -> Any:
    """Enter a block; returns the token that :func:`reset_block` takes to leave it."""
    return _blocks.set((*_blocks.get(), new))


def reset_block(token: Any) -> None:
    """Leave a block entered by :func:`push_block`."""
    _blocks.reset(token)


# --- the decorated call running here: what explain() shows inside a task -----------------------


@dataclass(frozen=True, slots=True)
class DecoratedCall:
    """A ``@wandb_init`` / ``@wandb_sweep`` task (or function) running here.

    ``layers`` holds its decorator's layer by schema, ``context`` the ``custom_context`` it
    received (before it published its own run to its children), ``action`` the Flyte action it
    runs for (``None`` outside a task).
    """

    action: str | None
    layers: Mapping[str, Layer]
    context: Mapping[str, str]
    declared_env: DeclaredEnv = ()


_decorated: ContextVar[DecoratedCall | None] = ContextVar("flyteplugins_wandb_decorated", default=None)


def enter_decorated(task_layer: Layer, action: str | None, declared_env: DeclaredEnv = ()) -> Any:
    """Record that a decorated task (or function) runs here; :func:`leave_decorated` undoes it.

    Example:
        >>> token = enter_decorated(layer("task", RUN, {"project": "p"}, "@wandb_init(...)"), None)
        >>> explain().as_dict()["project"]
        'p'
        >>> leave_decorated(token)
    """
    outer = _decorated.get()
    if outer is not None and outer.action == action:
        # A decorated function called in a decorated task: the task's other schema stays known.
        layers: Mapping[str, Layer] = {**outer.layers, task_layer.schema: task_layer}
        context = outer.context
        declared_env = declared_env or outer.declared_env
    else:
        layers = {task_layer.schema: task_layer}
        context = current_context()
    return _decorated.set(DecoratedCall(action, MappingProxyType(dict(layers)), context, declared_env))


def leave_decorated(token: Any) -> None:
    """Undo :func:`enter_decorated`."""
    _decorated.reset(token)


def decorated_call(action: str | None) -> DecoratedCall | None:
    """The decorated task (or function) running here for Flyte action ``action``, if any.

    A child task inherits its parent's context variables in a local run: a call recorded for
    another action is not this one's.

    Example:
        >>> decorated_call(None) is None
        True
    """
    call = _decorated.get()
    return call if call is not None and call.action == action else None


# --- resolution ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resolved:
    """The resolved settings of one schema: every field's value and the layers it came from.

    ``parent_run`` / ``parent_sweep`` are the identities of the run or sweep an enclosing task
    started, when there is one.
    """

    schema: Literal["run", "sweep"]
    values: Mapping[str, Any]
    layers: tuple[Layer, ...]
    parent_run: RunIdentity | None = None
    parent_sweep: SweepIdentity | None = None
    _origin_cache: dict[str, tuple[tuple[Any, str, LayerKind], ...]] = field(
        default_factory=dict, repr=False, compare=False
    )
    memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    """Scratch space for values derived from this resolution alone (e.g. a link's URL recipe)."""

    def get(self, name: str, default: Any = None) -> Any:
        """The value of a field, or ``default`` when no layer sets it."""
        return self.values.get(name, default)

    def __getitem__(self, name: str) -> Any:
        return self.values.get(name)

    def history(self, name: str) -> tuple[tuple[Any, str, LayerKind], ...]:
        """Every value a layer gave the field, winner first: ``(value, origin, layer kind)``."""
        cached = self._origin_cache.get(name)
        if cached is None:
            order = _HOST_ORDER if name == "host" else _ORDER
            ranked = sorted(
                (lyr for lyr in self.layers if name in lyr.values), key=lambda lyr: order.index(lyr.kind)
            )
            cached = tuple((lyr.values[name], lyr.origins[name], lyr.kind) for lyr in reversed(ranked))
            self._origin_cache[name] = cached
        return cached

    def origin(self, name: str) -> str | None:
        """Where the winning value of a field came from (``None`` if no layer sets it)."""
        history = self.history(name)
        return history[0][1] if history else None

    def kind_of(self, name: str) -> LayerKind | None:
        """Which kind of layer the winning value of a field came from."""
        history = self.history(name)
        return history[0][2] if history else None


_resolved_cache: dict[tuple[Any, ...], Resolved] = {}


def resolve(
    schema: Literal["run", "sweep"] = "run",
    *,
    task: Layer | None = None,
    context: Mapping[str, str] | None = None,
    use_current_context: bool = True,
    declared_env: DeclaredEnv = (),
) -> Resolved:
    """Merge every layer for ``schema`` into one :class:`Resolved`.

    ``task`` is the task-level layer (decorator arguments or explicitly-set link fields);
    ``context`` is the ``custom_context`` handed down by the parent, and defaults to the context
    of the Flyte task running now. ``declared_env`` (``declared_wandb_env``) are the W&B variables
    the task declares in its ``TaskEnvironment``: the environment layer is read as the task's
    container sees it, those variables over this process's.

    Example:
        >>> from flyteplugins.wandb import wandb_config
        >>> with wandb_config(project="demo"):
        ...     resolve().get("project")
        'demo'
    """
    base = _base(declared_env)
    if context is None and use_current_context:
        context = current_context()
    parent = _parent(context)
    active = _blocks.get()
    key = (schema, base, parent, active, task)
    found = _resolved_cache.get(key)
    if found is not None:
        return found
    if schema == "run":
        layers = [*base.run, *((parent.run,) if parent.run else ())]
    else:
        layers = [*base.sweep, *((parent.sweep,) if parent.sweep else ())]
    layers.extend(lyr for lyr in active if lyr.schema == schema)
    if task is not None:
        layers.append(task)
    values: dict[str, Any] = {}
    for lyr in layers:
        for name, value in lyr.values.items():
            if name in _MERGED_FIELDS and name in values:
                values[name] = {**values[name], **value}
            else:
                values[name] = value
    if schema == "run":
        host_layers = sorted(
            (lyr for lyr in layers if "host" in lyr.values), key=lambda lyr: _HOST_ORDER.index(lyr.kind)
        )
        values["host"] = host_layers[-1].values["host"]
    resolved = Resolved(
        schema, MappingProxyType(values), tuple(layers), parent.run_identity, parent.sweep_identity
    )
    if len(_resolved_cache) > 1024:
        _resolved_cache.clear()
    _resolved_cache[key] = resolved
    return resolved


# --- explain -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExplainedField:
    """One row of :func:`explain`: a field, its value, where it came from, what it overrode."""

    name: str
    value: Any
    origin: str | None
    overridden: tuple[tuple[Any, str], ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    """The resolved settings with their provenance; ``str()`` renders a table.

    Example:
        >>> from flyteplugins.wandb import explain
        >>> "run_mode" in str(explain())
        True
    """

    schema: Literal["run", "sweep"]
    fields: tuple[ExplainedField, ...]
    parent_run: RunIdentity | None
    own_run: RunIdentity | None = None
    """The run of the task (or function) that called :func:`explain`, once it has one."""
    own_run_shared: bool = False
    """Whether that run is another task's, which this task writes to (``run_mode`` auto/shared)."""

    def __iter__(self) -> Iterator[ExplainedField]:
        return iter(self.fields)

    def as_dict(self) -> dict[str, Any]:
        """The resolved values, by field name."""
        return {f.name: f.value for f in self.fields if f.origin is not None}

    def __str__(self) -> str:
        rows = [("field", "value", "from", "overrides")]
        for f in self.fields:
            shown = "-" if f.origin is None else _show(f.value)
            overrides = "; ".join(f"{_show(v)} ({o})" for v, o in f.overridden)
            rows.append((f.name, shown, f.origin or "unset", overrides))
        if self.own_run is not None:
            how = (
                "the parent's run, which this task writes to"
                if self.own_run_shared
                else "started by this task"
            )
            rows.append(("this task's run", self.own_run.id, how, ""))
        if self.parent_run is not None:
            rows.append(("parent run", self.parent_run.id, "custom_context key _wandb_run_id", ""))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [
            f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 9)
        return "\n".join(lines)


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def explain(
    schema: Literal["run", "sweep"] = "run",
    *,
    task: Layer | Any = None,
    context: Mapping[str, str] | None = None,
) -> Explanation:
    """Explain where every W&B setting comes from, here and now.

    Uses the same resolution as the links and the run start, so what it shows is what they use.
    Called inside a ``@wandb_init`` task (or ``@wandb_sweep`` task, with ``"sweep"``), it shows
    the settings that task resolves, its decorator's arguments included, and names the task's own
    run as such; the parent run is the one the task received. ``task`` (a task layer) or
    ``context`` given explicitly replace what the running task would contribute.
    ``task`` may also be a Flyte task decorated with ``@wandb_init``: the settings as that task
    gets them, its decorator's arguments on top.

    Example:
        >>> from flyteplugins.wandb import explain, wandb_config
        >>> with wandb_config(project="demo"):
        ...     print(explain().as_dict()["project"])
        demo
    """
    own_run: RunIdentity | None = None
    own_run_shared = False
    call: DecoratedCall | None = None
    declared: DeclaredEnv = ()
    if task is None and context is None and _decorated.get() is not None:
        from ._active import current_action_name, current_active

        call = decorated_call(current_action_name())
        if call is not None:
            task = call.layers.get(schema)
            context = call.context
            declared = call.declared_env
            active = current_active()
            if schema == "run" and active is not None:
                own_run, own_run_shared = active.identity, not active.owner
    if task is not None and not isinstance(task, Layer):
        # A decorated task carries its decorator's layers on its function (see @wandb_init).
        from ._decorated import task_layers

        declared = declared_wandb_env(getattr(task, "env_vars", None))
        task = task_layers(task).get(schema)
    resolved = resolve(schema, task=task, context=context, declared_env=declared)
    model = RUN if schema == "run" else SWEEP
    rows = []
    for name in model.fields:
        history = resolved.history(name)
        if history:
            rows.append(
                ExplainedField(
                    name, resolved.values[name], history[0][1], tuple((v, o) for v, o, _ in history[1:])
                )
            )
        else:
            rows.append(ExplainedField(name, None, None, ()))
    return Explanation(schema, tuple(rows), resolved.parent_run, own_run, own_run_shared)
