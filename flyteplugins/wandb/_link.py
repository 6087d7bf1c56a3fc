"""The two Flyte links: ``Wandb`` (a task's run) and ``WandbSweep`` (a sweep).

Both keep the constructor and ``get_link`` signature of the reference plugin. Their explicitly-set
fields form the task layer of the one resolution (:func:`~flyteplugins.wandb._layers.resolve`),
which is also what the run start uses, so a link always points at the run the task writes to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from flyte import Link

from ._distributed import distributed_link_target
from ._layers import Layer, Resolved, layer, resolve
from ._plan import own_run_id, own_run_place, sweep_target, task_run_target
from ._settings import RUN, SWEEP, DeclaredEnv
from ._types import RankScope, RunMode
from ._urls import group_url, run_url, sweep_url, url_segment

__all__ = ["Wandb", "WandbSweep"]


class _Default(str):
    """A default value that can be told apart from the same value given explicitly."""

    __slots__ = ()


_HOST = _Default("https://wandb.ai")
_AUTO = _Default("auto")
_GLOBAL = _Default("global")
_MARK_RUN = "flyterunmark"
_MARK_ACTION = "flyteactionmarkone"
_MARK_ACTION2 = "flyteactionmarktwo"


def _explicit(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and not isinstance(v, _Default)}


@dataclass
class Wandb(Link):
    """A link from a Flyte task to its Weights & Biases run.

    ``@wandb_init`` adds it to a task for you; add it yourself (``links=[Wandb(...)]``) for a task
    that logs to W&B in another way. Fields left at their defaults come from the configuration
    layers (``wandb_config``, environment, config file), so the link agrees with the run.

    Args:
        host: W&B web address; defaults to the environment's (``WANDB_APP_URL``, or the web address
            of ``WANDB_BASE_URL``) or ``https://wandb.ai``.
        project: W&B project.
        entity: W&B entity (user or team).
        run_mode: ``auto``, ``new`` or ``shared``, as for ``@wandb_init``.
        rank_scope: ``global`` or ``worker``, for distributed tasks.
        id: the W&B run id, when the task's run has a fixed one.
        name: the link's name in the Flyte UI.

    Example:
        ```python
        @env.task(links=[Wandb(project="demo", entity="team")])
        async def train() -> None: ...
        ```
    """

    host: str = _HOST
    project: str | None = None
    entity: str | None = None
    run_mode: RunMode = _AUTO  # type: ignore[assignment]
    rank_scope: RankScope = _GLOBAL  # type: ignore[assignment]
    id: str | None = None
    name: str = "Weights & Biases"
    # Set by @wandb_init for distributed training tasks.
    _is_distributed: bool = False
    # Set by @wandb_init for one link per worker of a multi-node task.
    _worker_index: int | None = None
    _layer: Layer = field(init=False, repr=False, compare=False)
    # Set by @wandb_init: the W&B variables the task declares, which its container sees.
    _declared_env: DeclaredEnv = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        values = _explicit(
            {
                "host": self.host,
                "project": self.project,
                "entity": self.entity,
                "run_mode": self.run_mode,
                "rank_scope": self.rank_scope,
                "id": self.id,
            }
        )
        self._layer = layer("task", RUN, RUN.validate(values, "Wandb(...) link"), "Wandb(...) link")

    def _with_task_layer(self, task_layer: Layer, declared_env: DeclaredEnv = ()) -> Wandb:
        """Use the full task layer of ``@wandb_init`` (it holds more than the link's fields), and
        read the environment as the task's container sees it (its declared W&B variables)."""
        self._layer = task_layer
        self._declared_env = declared_env
        return self

    def get_link(
        self,
        run_name: str,
        project: str,
        domain: str,
        context: dict[str, str],
        parent_action_name: str,
        action_name: str,
        pod_name: str,
        **kwargs: Any,
    ) -> str:
        """The URL of the task's W&B run (or group, for ``run_mode="new"`` distributed tasks).

        The bare host when entity or project is unknown; an empty string when W&B is disabled
        (there is no run to link to).

        Example:
            >>> Wandb(project="p", entity="e").get_link("r1", "fp", "dev", {}, "a0", "a1", "pod")
            'https://wandb.ai/e/p/runs/r1-a1'
        """
        resolved = resolve(
            "run",
            task=self._layer,
            context=context or {},
            use_current_context=False,
            declared_env=self._declared_env,
        )
        key = (id(self), self._is_distributed, self._worker_index)
        recipe = resolved.memo.get(key)
        if recipe is None:
            recipe = resolved.memo[key] = self._recipe(resolved)
        if isinstance(recipe, str):
            return recipe
        prefix, suffix = recipe
        return prefix + url_segment(f"{run_name}-{action_name}{suffix}")

    def _url(self, resolved: Resolved, run_name: str, action_name: str) -> str:
        if resolved.get("mode") == "disabled":
            return ""
        host = str(resolved.get("host"))
        if self._is_distributed:
            entity, wproject = own_run_place(resolved)
            if not entity or not wproject:
                return host
            target = distributed_link_target(
                resolved.get("run_mode", "auto"),
                resolved.get("rank_scope", "global"),
                own_run_id(resolved, run_name, action_name),
                self._worker_index,
                resolved.get("group"),
            )
            if target.kind == "groups":
                return group_url(host, entity, wproject, target.name)
            return run_url(host, entity, wproject, target.name)
        run = task_run_target(resolved, run_name, action_name)
        if run is None:  # shared, but no parent run to share
            entity, wproject = resolved.get("entity"), resolved.get("project")
            return f"{host}/{entity}/{wproject}" if entity and wproject else host
        if not run.entity or not run.project:
            return run.host
        return run_url(run.host, run.entity, run.project, run.id)

    def _recipe(self, resolved: Resolved) -> str | tuple[str, str]:
        # Links are rendered once per action with a new action name each time: work out once per
        # resolved configuration whether (and where) the default run id enters the URL, by asking
        # the same decision functions with two different marker names.
        first = self._url(resolved, _MARK_RUN, _MARK_ACTION)
        second = self._url(resolved, _MARK_RUN, _MARK_ACTION2)
        if first == second:
            return first
        marker = url_segment(f"{_MARK_RUN}-{_MARK_ACTION}")
        cut = first.index(marker)
        tail = first[cut + len(marker) :]
        return first[:cut], unquote(tail)


@dataclass
class WandbSweep(Link):
    """A link from a Flyte task to its Weights & Biases sweep.

    ``@wandb_sweep`` adds it to a task for you.

    Args:
        host: W&B web address (defaults as for :class:`Wandb`).
        project: W&B project of the sweep.
        entity: W&B entity of the sweep.
        id: the sweep id, when known in advance.
        name: the link's name in the Flyte UI.

    Example:
        >>> WandbSweep(project="p", entity="e").get_link("r1", "fp", "dev", {}, "a0", "a1", "pod")
        'https://wandb.ai/e/p/sweeps'
    """

    host: str = _HOST
    project: str | None = None
    entity: str | None = None
    id: str | None = None
    name: str = "Weights & Biases Sweep"
    _layer: Layer = field(init=False, repr=False, compare=False)
    _host_layer: Layer = field(init=False, repr=False, compare=False)
    # Set by @wandb_sweep: the W&B variables the task declares, which its container sees.
    _declared_env: DeclaredEnv = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        values = _explicit({"project": self.project, "entity": self.entity})
        self._layer = layer(
            "task", SWEEP, SWEEP.validate(values, "WandbSweep(...) link"), "WandbSweep(...) link"
        )
        host = _explicit({"host": self.host})
        self._host_layer = layer(
            "task", RUN, RUN.validate(host, "WandbSweep(...) link"), "WandbSweep(...) link"
        )
        if self.id is not None:
            RUN.validate({"id": self.id}, "WandbSweep(...) link")

    def _with_declared_env(self, declared_env: DeclaredEnv) -> WandbSweep:
        """Read the environment as the task's container sees it (its declared W&B variables)."""
        self._declared_env = declared_env
        return self

    def get_link(
        self,
        run_name: str,
        project: str,
        domain: str,
        context: dict[str, str],
        parent_action_name: str,
        action_name: str,
        pod_name: str,
        **kwargs: Any,
    ) -> str:
        """The URL of the sweep, or of the project's sweeps while its id is not known.

        Project and entity: link field > sweep settings > run settings (each through their
        layers); the sweep a parent created keeps the identity it was created with.
        """
        ctx = context or {}
        declared = self._declared_env
        sweep = resolve(
            "sweep", task=self._layer, context=ctx, use_current_context=False, declared_env=declared
        )
        run = resolve(
            "run", task=self._host_layer, context=ctx, use_current_context=False, declared_env=declared
        )
        host = str(run.get("host"))
        target = sweep_target(sweep, run, self.id)
        if run.get("mode") == "disabled" and not target.inherited and not self.id:
            return ""  # no sweep will be created
        if not target.entity or not target.project:
            return host
        return sweep_url(host, target.entity, target.project, target.id)
