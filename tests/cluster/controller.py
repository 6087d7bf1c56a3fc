"""The controller of a rehearsed pod: flyte's ``RemoteController`` with the backend replaced.

Everything a parent's ``a0`` does for a sub-task call is flyte's own code
(``RemoteController._submit``): the sub-task is serialized with the parent's task context (its links
rendered with ``{{.actionName}}`` templates and the parent's ``custom_context``), the action name
derived, ``inputs.pb`` written. Only ``submit_and_wait_for_action``, the round trip to the backend,
is replaced: the rehearsal starts the action's pods itself (:func:`cluster.harness.run_action`), as
the backend would, and hands back the outcome as the backend's watch would.

:func:`install` makes ``a0`` (and a replica) create this controller instead of connecting to a
control plane; ``init_in_cluster`` is replaced by a local ``flyte.init`` for the same reason.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

from flyte._internal.controllers.remote._controller import RemoteController
from flyteidl2.common import phase_pb2
from flyteidl2.core import execution_pb2

from cluster.harness import ClusterConfig, run_action, spec_from_template


class RehearsalController(RemoteController):
    """flyte's remote controller, whose backend is this machine: each sub-task call is its own pod."""

    def __init__(self) -> None:  # no control plane: none of the core controller's thread or informers
        self._default_parent_concurrency = 1000
        self._parent_action_semaphore = defaultdict(lambda: asyncio.Semaphore(1000))
        self._submit_loop = None
        self._submit_thread = None
        self._submit_init_lock = threading.Lock()
        self._pending_conditions = {}
        self._config = ClusterConfig.from_env()
        self._stopped = asyncio.Event()

    async def submit_and_wait_for_action(self, action: Any) -> Any:
        if action.type == "trace":  # a trace is recorded by the backend, never run: nothing to do
            action.phase = phase_pb2.ACTION_PHASE_SUCCEEDED
            return action
        spec = spec_from_template(
            action.task.task_template, action.name, action.inputs_uri, action.parent_action_name
        )
        config = ClusterConfig(self._config.root, action.run_name, self._config.image_env, self._config.reuse)
        attempt = await asyncio.to_thread(run_action, config, spec)
        if attempt.ok:
            action.phase = phase_pb2.ACTION_PHASE_SUCCEEDED
            action.realized_outputs_uri = attempt.output_prefix
        else:
            action.phase = phase_pb2.ACTION_PHASE_FAILED
            kind = (
                execution_pb2.ExecutionError.USER
                if attempt.error_kind == "USER"
                else execution_pb2.ExecutionError.SYSTEM
            )
            action.err = execution_pb2.ExecutionError(
                code="RehearsedFailure", message=attempt.error or "", kind=kind
            )
        return action

    async def get_action(self, action_id: Any, parent_action_name: str) -> Any:
        return None  # nothing recorded before: every trace runs (a first attempt of its parent)

    async def cancel_action(self, action: Any) -> None:
        return None

    async def finalize_parent_action(self, action_id: Any) -> None:
        return None

    async def watch_for_errors(self) -> None:
        await self._stopped.wait()  # the backend never fails here; a0 cancels this when the task ends

    async def stop(self) -> None:
        self._stopped.set()


def install() -> None:
    """Make flyte's runtime create :class:`RehearsalController` and initialise without a control plane."""
    import flyte
    from flyte import _initialize
    from flyte._internal import controllers
    from flyte._internal.controllers.remote import _controller as remote_controller

    real_create = controllers.create_controller

    def create_controller(ct: str, **kwargs: Any) -> Any:
        if ct != "remote":
            return real_create(ct, **kwargs)
        controller = RehearsalController()
        with controllers._ControllerState.lock:
            controllers._ControllerState.controller = controller
        return controller

    def init_in_cluster(
        org: str | None = None, project: str | None = None, domain: str | None = None, **_: Any
    ) -> dict[str, Any]:
        flyte.init(org=org, project=project, domain=domain, root_dir=Path.cwd())  # as init_in_cluster does
        return {}

    # The rehearsal's blob store is the local disk: a prefix must exist before a file is put under it.
    real_upload = remote_controller.upload_inputs_with_retry

    async def upload_inputs_with_retry(serialized_inputs: bytes, inputs_uri: str, max_bytes: int) -> None:
        Path(inputs_uri).parent.mkdir(parents=True, exist_ok=True)
        await real_upload(serialized_inputs, inputs_uri, max_bytes)

    remote_controller.upload_inputs_with_retry = upload_inputs_with_retry  # type: ignore[assignment]
    controllers.create_controller = create_controller  # type: ignore[assignment]
    _initialize.init_in_cluster = init_in_cluster  # type: ignore[assignment]
