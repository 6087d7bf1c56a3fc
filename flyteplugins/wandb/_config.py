"""``wandb_config()`` / ``wandb_sweep_config()``: immutable configuration blocks.

A block is usable three ways: as the ``custom_context`` of a run
(``flyte.with_runcontext(custom_context=wandb_config(...))``), as a ``with`` block, and as a
read-only mapping of its ``custom_context`` entries. Only the fields the caller passed are set.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, TypeVar

from ._codec import encode_fields
from ._layers import Layer, current_context, layer, push_block, reset_block, resolve
from ._settings import RUN, SWEEP, Schema, check_no_credentials, ensure_json, explicit_settings_fields
from ._types import RankScope, RunMode

__all__ = [
    "WandbConfig",
    "WandbSweepConfig",
    "get_wandb_context",
    "get_wandb_sweep_context",
    "wandb_config",
    "wandb_sweep_config",
]


def _entry_key() -> tuple[int, int]:
    # One object may be entered in nested blocks and in concurrent asyncio tasks or threads at
    # once; each entry is remembered per thread and per asyncio task so that every exit undoes
    # its own entry.
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return threading.get_ident(), id(task)


class _Block(Mapping[str, str]):
    __slots__ = ("_defaults", "_encoded", "_entries", "_layer", "_lock")
    _schema: Schema
    _label: str

    def __init__(self, values: Mapping[str, Any], origin: str) -> None:
        check_no_credentials(values, origin, "")
        for name in ("config", "kwargs", "parameters"):
            if name in values:
                values = {**values, name: ensure_json(name, values[name], origin)}
        validated = self._schema.validate(values, origin)
        self._layer: Layer = layer("block", self._schema, validated, origin)
        self._encoded = encode_fields(self._schema, validated, origin)
        self._entries: dict[tuple[int, int], list[tuple[Any, AbstractContextManager[Any] | None]]] = {}
        self._lock = threading.Lock()
        # Typed attributes fall back to these (the resolved block of get_wandb_context); the
        # mapping of custom_context entries never holds them.
        self._defaults: Mapping[str, Any] = {}

    # -- mapping of custom_context entries --------------------------------------------------------

    def __getitem__(self, key: str) -> str:
        return self._encoded[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._encoded)

    def __len__(self) -> int:
        return len(self._encoded)

    def to_dict(self) -> dict[str, str]:
        """The ``custom_context`` entries of this block, as a new dict."""
        return dict(self._encoded)

    def __getattr__(self, name: str) -> Any:
        # Typed read access to the fields, e.g. cfg.project; None when the block does not set it.
        if name.startswith("_") or name not in self._schema.model.model_fields:
            raise AttributeError(name)
        return self._layer.values.get(name, self._defaults.get(name))

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _Block.__slots__:
            object.__setattr__(self, name, value)
            return
        raise TypeError(f"{type(self).__name__} is immutable: create a new {self._label}(...) instead")

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Blocks are immutable; this raises :class:`TypeError` (build a new block instead)."""
        raise TypeError(f"{type(self).__name__} is immutable: create a new {self._label}(...) instead")

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._layer.values.items())
        return f"{self._label}({fields})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Block):
            return type(self) is type(other) and self._encoded == other._encoded
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    @property
    def layer(self) -> Layer:
        """This block as a configuration layer."""
        return self._layer

    # -- context manager ------------------------------------------------------------------------

    def __enter__(self) -> _Block:
        token = push_block(self._layer)
        mirror: AbstractContextManager[Any] | None = None
        flyte = sys.modules.get("flyte")
        if flyte is not None and flyte.ctx():
            # Children of this task inherit the block through Flyte's custom_context; Flyte's own
            # context manager replaces the task context by token, never mutating a dict in place.
            mirror = flyte.custom_context(**self._encoded)
            mirror.__enter__()
        else:
            _warn_if_remote(self._label)
        with self._lock:
            self._entries.setdefault(_entry_key(), []).append((token, mirror))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        key = _entry_key()
        with self._lock:
            stack = self._entries.get(key)
            if not stack:
                raise RuntimeError(f"{self._label} block exited without being entered here")
            token, mirror = stack.pop()
            if not stack:
                del self._entries[key]
        try:
            if mirror is not None:
                mirror.__exit__(exc_type, exc, tb)
        finally:
            reset_block(token)


def _warn_if_remote(label: str) -> None:
    from ._compat import control_plane_available

    if control_plane_available():
        warnings.warn(
            f"`with {label}(...)` outside a Flyte task only affects this process (local runs, links "
            f"rendered here); for a remote run pass it as flyte.with_runcontext(custom_context={label}(...))",
            stacklevel=3,
        )


class WandbConfig(_Block):
    """An immutable block of W&B run settings; build it with :func:`wandb_config`.

    Example:
        >>> cfg = wandb_config(project="demo", tags=["a"])
        >>> cfg.project, dict(cfg)
        ('demo', {'wandb_project': 'demo', 'wandb_tags': '["a"]'})
    """

    __slots__ = ()
    _schema = RUN
    _label = "wandb_config"


class WandbSweepConfig(_Block):
    """An immutable block of W&B sweep settings; build it with :func:`wandb_sweep_config`.

    Example:
        >>> cfg = wandb_sweep_config(method="random", metric={"name": "loss", "goal": "minimize"})
        >>> cfg.method
        'random'
    """

    __slots__ = ()
    _schema = SWEEP
    _label = "wandb_sweep_config"

    def to_sweep_config(self) -> dict[str, Any]:
        """The ``wandb.sweep()`` configuration of this block alone (extra keys merged in)."""
        return sweep_dict(self._layer.values)


def sweep_dict(values: Mapping[str, Any]) -> dict[str, Any]:
    """The ``wandb.sweep()`` configuration dict for resolved sweep values.

    Example:
        >>> sweep_dict({"method": "grid", "project": "p", "kwargs": {"description": "d"}})
        {'method': 'grid', 'description': 'd'}
    """
    config = {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in values.items()
        if k in ("method", "metric", "parameters", "name")
    }
    config.update(values.get("kwargs") or {})
    return config


def _passed(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def wandb_config(
    project: str | None = None,
    entity: str | None = None,
    host: str | None = None,
    id: str | None = None,
    name: str | None = None,
    tags: list[str] | None = None,
    config: dict[str, Any] | None = None,
    mode: str | None = None,
    group: str | None = None,
    run_mode: RunMode | None = None,
    rank_scope: RankScope | None = None,
    download_logs: bool | None = None,
    log_inputs: bool | list[str] | None = None,
    log_outputs: bool | list[str] | None = None,
    timeout: float | None = None,
    report_tab: bool | None = None,
    **kwargs: Any,
) -> WandbConfig:
    """W&B run settings for a workflow, a block of code, or one task call.

    Only the arguments you pass are set: an inner block overrides just those fields of the outer
    layers. ``notes`` and ``job_type`` are first-class fields; any other keyword must be a
    ``wandb.init()`` argument (``save_code``, ``resume``, ...) and travels as an extra one.
    Invalid values and unknown names raise :class:`WandbConfigError` here, at the call, with the
    closest valid name (``run_mod`` -> did you mean ``run_mode``?).
    ``log_inputs`` / ``log_outputs`` choose what lineage records (see the Lineage page).
    ``report_tab=False`` leaves out the "Weights & Biases" tab of ``report=True`` tasks (their
    own tabs stay).

    Example:
        ```python
        import flyte
        from flyteplugins.wandb import wandb_config

        # for a whole run
        flyte.with_runcontext(custom_context=wandb_config(project="demo", entity="team")).run(main)

        # inside a task: only the children called in the block get a new run
        with wandb_config(run_mode="new", tags=["eval"]):
            await evaluate()
        ```
    """
    extra = dict(kwargs)
    if isinstance(extra.get("kwargs"), Mapping):
        # kwargs={...} holds extra keys, as for @wandb_init (wandb.init has no argument of that name).
        extra.update(extra.pop("kwargs"))
    if "settings" in extra:
        # A wandb.Settings travels as the fields the user set on it (credentials refused below).
        extra["settings"] = explicit_settings_fields(extra["settings"], "wandb_config()")
    first_class = {k: extra.pop(k) for k in ("notes", "job_type") if k in extra}
    values = _passed(
        project=project,
        entity=entity,
        host=host,
        id=id,
        name=name,
        tags=tags,
        config=config,
        mode=mode,
        group=group,
        run_mode=run_mode,
        rank_scope=rank_scope,
        download_logs=download_logs,
        log_inputs=log_inputs,
        log_outputs=log_outputs,
        timeout=timeout,
        report_tab=report_tab,
        kwargs=extra or None,
        **first_class,
    )
    return WandbConfig(values, "wandb_config()")


def wandb_sweep_config(
    method: str | None = None,
    metric: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    project: str | None = None,
    entity: str | None = None,
    prior_runs: list[str] | None = None,
    name: str | None = None,
    download_logs: bool | None = None,
    **kwargs: Any,
) -> WandbSweepConfig:
    """W&B sweep settings, used the same three ways as :func:`wandb_config`.

    ``method`` is one of ``grid``, ``random``, ``bayes``; ``metric`` has a ``name`` and a ``goal``
    (``minimize`` or ``maximize``); ``parameters`` maps each parameter to its spec. Other keywords
    must be keys of a W&B sweep configuration (``early_terminate``, ``description``, ``run_cap``,
    ...) and travel as extra keys; an unknown one is refused at the call with the closest valid name.

    Example:
        ```python
        from flyteplugins.wandb import wandb_sweep_config

        sweep = wandb_sweep_config(
            method="random",
            metric={"name": "loss", "goal": "minimize"},
            parameters={"lr": {"min": 1e-4, "max": 1e-1}},
        )
        ```
    """
    values = _passed(
        method=method,
        metric=metric,
        parameters=parameters,
        project=project,
        entity=entity,
        prior_runs=prior_runs,
        name=name,
        download_logs=download_logs,
        kwargs=kwargs or None,
    )
    return WandbSweepConfig(values, "wandb_sweep_config()")


_B = TypeVar("_B", bound=_Block)


def _resolved_block(cls: type[_B]) -> _B:
    resolved = resolve(cls._schema.kind, context=current_context())
    values: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for name, value in resolved.values.items():
        (defaults if resolved.kind_of(name) in ("default", None) else values)[name] = value
    block = cls(values, "resolved configuration")
    block._defaults = defaults
    return block


def get_wandb_context() -> WandbConfig:
    """The W&B run settings in effect here, as a block.

    As a mapping it holds only what some layer set (empty, and so falsy, when nothing configures
    W&B); its typed attributes give the effective value, defaults included
    (``get_wandb_context().run_mode`` is ``"auto"`` when nothing sets it).

    Example:
        >>> from flyteplugins.wandb import get_wandb_context, wandb_config
        >>> with wandb_config(project="demo"):
        ...     get_wandb_context().project
        'demo'
    """
    return _resolved_block(WandbConfig)


def get_wandb_sweep_context() -> WandbSweepConfig:
    """The W&B sweep settings in effect here, from every layer except defaults, as a block.

    Example:
        >>> from flyteplugins.wandb import get_wandb_sweep_context, wandb_sweep_config
        >>> with wandb_sweep_config(method="grid"):
        ...     get_wandb_sweep_context().method
        'grid'
    """
    return _resolved_block(WandbSweepConfig)
