"""A cluster rehearsal on one machine: every action its own ``a0`` process, as in a pod.

On a cluster Flyte serializes each task (``flyte run`` for the first one, the parent's controller
for every sub-task call), writes the call's ``inputs.pb``, and the backend starts a pod whose
container runs ``a0`` with the task's container args, the ``{{.templates}}`` filled in. The pod
knows nothing but those args, its environment and ``inputs.pb``: no context variable, no module
state of its parent. This harness does the same without a backend:

- :meth:`Cluster.run` serializes a task as ``flyte run`` does (``translate_task_to_wire``, with the
  run's ``custom_context``), writes ``inputs.pb`` with ``convert_from_native_to_inputs``, fills the
  templates and starts ``a0`` in a fresh directory with the pod's environment (the image's
  variables given to :class:`Cluster`, the task's ``env_vars``, and what Flyte injects:
  ``FLYTE_INTERNAL_EXECUTION_PROJECT``, ``FLYTE_ATTEMPT_NUMBER``, ...). It reads ``outputs.pb``
  or ``error.pb`` back.
- Inside a parent's ``a0`` the controller is :class:`cluster.controller.RehearsalController`: flyte's
  own ``RemoteController`` (same serialization of the sub-task, same action names, same
  ``inputs.pb``, same links rendered with the parent's context) with only the backend round trip
  replaced: each sub-task call becomes its own ``a0`` process, started by :func:`run_action`.
- A failed attempt is retried as the backend does, up to the task's ``retries``: a new pod
  directory, ``FLYTE_ATTEMPT_NUMBER`` incremented, ``--prev-checkpoint`` the last attempt's
  checkpoint path.
- :meth:`Cluster.replica` runs actions in one long-lived process the way a reusable container
  (``flyte.ReusePolicy``) does: many actions through ``load_and_run_task``, up to ``concurrency``
  at a time, the user's modules unloaded whenever the replica is idle.

Every attempt of every action is recorded (:class:`Attempt`), in the order they end, in
``<root>/actions.jsonl``; :class:`RunResult` reads them back. Each pod's directory is
``<root>/pods/<action>-<attempt>`` (its ``wandb/`` folders, its output in ``pod.log``).

The task code, the plugin, flyte's serialization and flyte's ``a0`` entrypoint are the real ones;
only the backend (scheduling pods, filling templates, retrying) is played by this module. Tasks
must live in an importable package (``Cluster(code=...)``, by default this one, whose
``workflows.py`` holds the matrix's tasks), as they must on a cluster: it is copied into every pod,
as a code bundle is unpacked there. Works with flyte 2.2 to 2.12.

Example::

    cluster = Cluster(tmp_path, env={"WANDB_MODE": "offline"})
    result = cluster.run(workflows.parent, 3, custom_context={"wandb_project": "p"})
    assert result.ok
    root = result.root                           # the first action ("a0")
    child = result.children_of(root.action)[0]   # its first sub-action
    print(child.links, child.pod_dir, child.exit_code, result.outputs)

    pod = cluster.start(workflows.preemptible, 50)  # the first action's pod, not waited for
    pod.wait_for("READY")                        # something the task prints
    pod.process.send_signal(signal.SIGTERM)
    attempt = pod.wait()                         # exit_code -15: ended by the signal (k8s: 143)

    replica = cluster.replica(concurrency=4)     # a reusable container
    for i in range(20):
        replica.add(workflows.reused, i, 5)
    attempts = replica.run()                     # one Attempt per action
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = [
    "Attempt",
    "Cluster",
    "Pod",
    "Replica",
    "RunResult",
    "fill_templates",
    "run_action",
]

HARNESS_DIR = Path(__file__).resolve().parent
TESTS_DIR = HARNESS_DIR.parent  # the default code root: task modules are named from here
POD_ENTRY = Path(__file__).with_name("pod.py")
REPLICA_ENTRY = Path(__file__).with_name("replica.py")
# Where a pod started by a controller records its attempts: harness plumbing, not a pod variable
# Flyte knows (the backend keeps this record on a real cluster).
STATE_VAR = "FLYTE_REHEARSAL_STATE"
PROJECT, DOMAIN, ORG = "rehearsal-project", "development", "rehearsal-org"
VERSION = "rehearsal-v1"
_TEMPLATE = re.compile(r"\{\{\s*\.?(\w+)\s*\}\}")


@dataclass
class Attempt:
    """One attempt of one action: one pod (or one slot of a replica), as the backend would record it."""

    action: str  # the action name, e.g. "a0" or the hash Flyte derives for a sub-task call
    task: str  # the task's full name, e.g. "cluster.parent"
    parent: str | None  # the parent action's name (None for the run's first action)
    attempt: int  # FLYTE_ATTEMPT_NUMBER
    pod_dir: str  # the pod's working directory
    output_prefix: str  # where outputs.pb / error.pb are written
    checkpoint: str
    prev_checkpoint: str
    links: list[tuple[str, str]]  # the links Flyte shows for the action, templates filled in
    exit_code: int | None = None
    phase: str = "RUNNING"  # SUCCEEDED or FAILED
    error: str | None = None  # error.pb's message
    error_kind: str | None = None  # "USER" / "SYSTEM"
    recoverable: bool | None = None
    elapsed: float = 0.0
    replica: str | None = None  # the reusable container's id, when run in one

    @property
    def ok(self) -> bool:
        """Whether the attempt succeeded."""
        return self.phase == "SUCCEEDED"

    def link(self, name: str | None = None) -> str:
        """The one link named ``name`` (or the only link) Flyte shows for this action."""
        found = [uri for link_name, uri in self.links if name is None or link_name == name]
        assert len(found) == 1, f"{len(found)} links named {name!r} on {self.action}: {self.links}"
        return found[0]

    def log(self) -> str:
        """What the attempt's process printed (stdout and stderr)."""
        path = Path(self.pod_dir) / "pod.log"
        return path.read_text(errors="replace") if path.exists() else ""


def fill_templates(text: str, values: Mapping[str, str]) -> str:
    """Fill ``{{.name}}`` templates as the backend does; an unknown template is an error.

    >>> fill_templates("runs/{{.runName}}-{{.actionName}}", {"runName": "r", "actionName": "a0"})
    'runs/r-a0'
    """

    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"template {match.group(0)} has no value in this rehearsal: {text}")
        return values[key]

    return _TEMPLATE.sub(one, text)


@dataclass
class ActionSpec:
    """What the backend gets for one action: its serialized task, its inputs and its parent."""

    name: str
    task: str
    template_args: list[str]  # the container args, templates unfilled
    env_vars: dict[str, str]  # the task's container environment
    links: list[tuple[str, str]]  # rendered by the parent, templates unfilled
    inputs_path: str
    retries: int
    parent: str | None = None


@dataclass
class ClusterConfig:
    """Where a rehearsal keeps its pods and what every pod's image carries; passed to pods as JSON."""

    root: str
    run_name: str
    image_env: dict[str, str]
    reuse: bool = False
    code: str = str(Path(__file__).resolve().parent)  # the task code's package, copied into every pod

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_env() -> ClusterConfig:
        return ClusterConfig(**json.loads(os.environ[STATE_VAR]))


def spec_from_template(template: Any, name: str, inputs_path: str, parent: str | None) -> ActionSpec:
    """The backend's view of a serialized ``TaskTemplate`` proto (``task_spec.task_template``)."""
    links = [(log.name, log.uri) for log in template.metadata.log_links]
    env = {kv.key: kv.value for kv in template.container.env}
    return ActionSpec(
        name=name,
        task=template.id.name,
        template_args=list(template.container.args),
        env_vars=env,
        links=links,
        inputs_path=inputs_path,
        retries=int(template.metadata.retries.retries),
        parent=parent,
    )


class Pod:
    """One attempt's process, started and not yet waited for."""

    def __init__(self, attempt: Attempt, process: subprocess.Popen[bytes], config: ClusterConfig) -> None:
        self.attempt = attempt
        self.process = process
        self._config = config
        self._started = time.monotonic()

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        """Wait until the pod printed ``text`` (fails the test when it never does or the pod ends)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.attempt.log():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"pod {self.attempt.action} never printed {text!r}:\n{self.attempt.log()}")

    def wait(self, timeout: float = 120.0) -> Attempt:
        """Wait for the pod to end; read ``error.pb`` back; record the attempt."""
        try:
            self.attempt.exit_code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.attempt.exit_code = self.process.wait()
            self.attempt.error = f"the rehearsal killed the pod after {timeout} s"
        self.attempt.elapsed = time.monotonic() - self._started
        _finish(self.attempt)
        _record(self._config, self.attempt)
        return self.attempt


def _finish(attempt: Attempt) -> None:
    """Decide the attempt's phase as the backend does: ``error.pb`` or a failed exit fails it."""
    error_pb = Path(attempt.output_prefix) / "error.pb"
    if error_pb.exists():
        from flyteidl2.core import execution_pb2

        document = execution_pb2.ErrorDocument()
        document.ParseFromString(error_pb.read_bytes())
        attempt.error = document.error.message
        attempt.error_kind = execution_pb2.ExecutionError.ErrorKind.Name(document.error.origin)
        attempt.recoverable = document.error.kind == execution_pb2.ContainerError.RECOVERABLE
        attempt.phase = "FAILED"
    elif attempt.exit_code != 0:
        attempt.error = attempt.error or f"the pod exited with code {attempt.exit_code}"
        attempt.error_kind, attempt.recoverable, attempt.phase = "SYSTEM", True, "FAILED"
    else:
        attempt.phase = "SUCCEEDED"


def _record(config: ClusterConfig, attempt: Attempt) -> None:
    line = json.dumps(asdict(attempt)) + "\n"
    with open(Path(config.root) / "actions.jsonl", "a", encoding="utf-8") as out:
        out.write(line)


def _attempt_paths(config: ClusterConfig, spec: ActionSpec, number: int) -> tuple[Path, Path, Path, str]:
    root = Path(config.root)
    pod_dir = root / "pods" / f"{spec.name}-{number}"
    output_prefix = root / "outputs" / spec.name / str(number + 1)
    checkpoint = root / "checkpoints" / spec.name / str(number)
    prev = str(root / "checkpoints" / spec.name / str(number - 1)) if number > 0 else ""
    pod_dir.mkdir(parents=True, exist_ok=True)
    install_code(config, pod_dir)
    output_prefix.mkdir(parents=True, exist_ok=True)
    return pod_dir, output_prefix, checkpoint, prev


def install_code(config: ClusterConfig, pod_dir: Path) -> None:
    """Put the user's code (and this harness) into a pod's working directory, as a code bundle is
    unpacked there."""
    for code in {Path(config.code), HARNESS_DIR}:
        target = pod_dir / code.name
        if not target.exists():
            shutil.copytree(code, target, ignore=shutil.ignore_patterns("__pycache__"))


def _template_values(
    config: ClusterConfig, spec: ActionSpec, output_prefix: Path, checkpoint: Path, prev: str, pod_dir: Path
) -> dict[str, str]:
    return {
        "input": spec.inputs_path,
        "inputs": spec.inputs_path,
        "outputPrefix": str(output_prefix),
        "rawOutputDataPrefix": str(Path(config.root) / "raw" / spec.name),
        "checkpointOutputPrefix": str(checkpoint),
        "prevCheckpointPrefix": prev,
        "runName": config.run_name,
        "actionName": spec.name,
        "podName": pod_dir.name,
        "runStartTime": "2026-01-01T00:00:00Z",
    }


def pod_env(config: ClusterConfig, spec: ActionSpec, number: int) -> dict[str, str]:
    """A pod's environment: the image's variables, the task's, and what Flyte injects. Nothing else."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": ".",  # the pod's working directory, where its code is unpacked
        "PYTHONUNBUFFERED": "1",
        "FLYTE_LOG_LEVEL": os.environ.get("FLYTE_LOG_LEVEL", "WARNING"),
        **config.image_env,
        **spec.env_vars,
        "FLYTE_INTERNAL_EXECUTION_PROJECT": PROJECT,
        "FLYTE_INTERNAL_EXECUTION_DOMAIN": DOMAIN,
        "_U_ORG_NAME": ORG,
        "_U_RUN_BASE": str(Path(config.root) / "outputs"),
        "FLYTE_ATTEMPT_NUMBER": str(number),
        "RUN_NAME": config.run_name,
        "ACTION_NAME": spec.name,
        STATE_VAR: config.to_env(),
    }
    return env


def start_attempt(config: ClusterConfig, spec: ActionSpec, number: int) -> Pod:
    """Start one attempt of ``spec`` as ``a0`` in a fresh pod directory; do not wait."""
    pod_dir, output_prefix, checkpoint, prev = _attempt_paths(config, spec, number)
    values = _template_values(config, spec, output_prefix, checkpoint, prev, pod_dir)
    args = [fill_templates(arg, values) for arg in spec.template_args]
    assert args[0] == "a0", f"not an a0 container: {args}"
    attempt = Attempt(
        action=spec.name,
        task=spec.task,
        parent=spec.parent,
        attempt=number,
        pod_dir=str(pod_dir),
        output_prefix=str(output_prefix),
        checkpoint=str(checkpoint),
        prev_checkpoint=prev,
        links=[(name, fill_templates(uri, values)) for name, uri in spec.links],
    )
    log = open(pod_dir / "pod.log", "wb")  # noqa: SIM115 - the pod owns it until it ends
    process = subprocess.Popen(
        [sys.executable, str(pod_dir / HARNESS_DIR.name / POD_ENTRY.name), *args[1:]],
        cwd=pod_dir,
        env=pod_env(config, spec, number),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a pod: a signal to the test's process group does not reach it
    )
    log.close()
    return Pod(attempt, process, config)


def run_action(config: ClusterConfig, spec: ActionSpec, timeout: float = 120.0) -> Attempt:
    """Run an action to its end as the backend does: attempts in new pods until one succeeds or
    the task's retries are spent (a non-recoverable error is not retried). Returns the last attempt."""
    number = 0
    while True:
        attempt = start_attempt(config, spec, number).wait(timeout)
        if attempt.ok or number >= spec.retries or attempt.recoverable is False:
            return attempt
        number += 1


@dataclass
class RunResult:
    """Every attempt of every action of a rehearsed run, and the first action's outputs."""

    attempts: list[Attempt]
    outputs: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the run's first action succeeded."""
        return self.root.ok

    @property
    def root(self) -> Attempt:
        """The last attempt of the run's first action."""
        return [a for a in self.attempts if a.parent is None][-1]

    def final(self) -> list[Attempt]:
        """The last attempt of each action, in start order of the actions."""
        last: dict[str, Attempt] = {}
        for attempt in self.attempts:
            last[attempt.action] = attempt
        return list(last.values())

    def children_of(self, action: str) -> list[Attempt]:
        """The final attempts of ``action``'s sub-actions."""
        return [a for a in self.final() if a.parent == action]

    def by_task(self, short_name: str) -> list[Attempt]:
        """The final attempts of the actions of the task whose name ends in ``short_name``."""
        return [a for a in self.final() if a.task.split(".")[-1] == short_name]

    def attempts_of(self, action: str) -> list[Attempt]:
        """Every attempt of ``action``, first to last."""
        return [a for a in self.attempts if a.action == action]


def read_attempts(root: Path) -> list[Attempt]:
    """The attempts recorded under ``root``, in the order they ended."""
    path = root / "actions.jsonl"
    if not path.exists():
        return []
    attempts = []
    for line in path.read_text().splitlines():
        data = json.loads(line)
        data["links"] = [tuple(link) for link in data["links"]]
        attempts.append(Attempt(**data))
    return attempts


def read_outputs(task: Any, output_prefix: str) -> Any:
    """The native outputs an action wrote under ``output_prefix`` (``outputs.pb``)."""
    from flyte._internal.runtime import convert, io

    async def load() -> Any:
        outputs = await io.load_outputs(io.outputs_path(output_prefix))
        return await convert.convert_outputs_to_native(task.native_interface, outputs)

    return asyncio.run(load())


def serialize(task: Any, custom_context: Mapping[str, str] | None = None, root_dir: Path = TESTS_DIR) -> Any:
    """Serialize ``task`` as ``flyte run`` does for a run's first action (the links rendered with
    ``{{.runName}}``/``{{.actionName}}`` templates and the run's custom context)."""
    import flyte
    import flyte.report
    from flyte._internal.runtime.task_serde import translate_task_to_wire
    from flyte.models import ActionID, RawDataPath, SerializationContext, TaskContext

    s_ctx = SerializationContext(version=VERSION, project=PROJECT, domain=DOMAIN, org=ORG, root_dir=root_dir)
    action = ActionID(
        name="{{.actionName}}", run_name="{{.runName}}", project=PROJECT, domain=DOMAIN, org=ORG
    )
    tctx = TaskContext(
        action=action,
        output_path="",
        version=VERSION,
        raw_data_path=RawDataPath(path=""),
        run_base_dir="",
        report=flyte.report.Report(name=action.name),
        custom_context=dict(custom_context or {}),
    )
    return translate_task_to_wire(task, s_ctx, default_inputs=None, task_context=tctx)


def write_inputs(
    task: Any,
    path: Path,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    custom_context: Mapping[str, str] | None,
) -> None:
    """Write a call's ``inputs.pb``: its arguments and the run's custom context, as strings."""
    from flyte._internal.runtime import convert

    inputs = asyncio.run(
        convert.convert_from_native_to_inputs(
            task.native_interface, *args, custom_context=dict(custom_context or {}), **kwargs
        )
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(inputs.proto_inputs.SerializeToString(deterministic=True))


@dataclass
class Cluster:
    """A rehearsal cluster rooted at ``root``: pods are directories under it.

    ``env`` is what every pod's image carries (e.g. ``{"WANDB_MODE": "offline"}``); the test
    process's own environment does not reach the pods, as it would not reach a cluster.
    """

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    run_name: str = "rehearsal-run"
    timeout: float = 120.0
    # The package holding the tasks: copied into every pod (as a code bundle is unpacked there);
    # task modules are named from its parent directory, e.g. ``cluster.workflows``.
    code: Path = HARNESS_DIR

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def config(self) -> ClusterConfig:
        """What a pod needs to know of this rehearsal (passed to it in its environment)."""
        return ClusterConfig(
            str(self.root), self.run_name, dict(self.env), code=str(Path(self.code).resolve())
        )

    def _root_spec(
        self,
        task: Any,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        custom_context: Mapping[str, str] | None,
        name: str = "a0",
    ) -> ActionSpec:
        spec = serialize(task, custom_context, Path(self.code).resolve().parent)
        inputs = self.root / "inputs" / name / "inputs.pb"
        write_inputs(task, inputs, args, kwargs, custom_context)
        return spec_from_template(spec.task_template, name, str(inputs), None)

    def start(
        self,
        task: Any,
        *args: Any,
        custom_context: Mapping[str, str] | None = None,
        attempt: int = 0,
        **kwargs: Any,
    ) -> Pod:
        """Start the run's first action (attempt ``attempt``) and return its pod without waiting."""
        return start_attempt(self.config, self._root_spec(task, args, kwargs, custom_context), attempt)

    def run(
        self, task: Any, *args: Any, custom_context: Mapping[str, str] | None = None, **kwargs: Any
    ) -> RunResult:
        """Run ``task`` as a run's first action, its sub-tasks as their own pods; wait for all."""
        spec = self._root_spec(task, args, kwargs, custom_context)
        last = run_action(self.config, spec, self.timeout)
        return self.result(task, last)

    def result(self, task: Any, last: Attempt | None = None) -> RunResult:
        """What the rehearsal recorded so far, with the first action's outputs when it succeeded."""
        attempts = read_attempts(self.root)
        root = last or [a for a in attempts if a.parent is None][-1]
        outputs = read_outputs(task, root.output_prefix) if root.ok else None
        return RunResult(attempts, outputs, root.error)

    def replica(self, concurrency: int = 1, measure_memory: bool = False) -> Replica:
        """A reusable container of this cluster: one process running many actions.

        With ``measure_memory`` the replica records its resident memory after each wave of actions
        (see :meth:`Replica.memory`)."""
        return Replica(self, concurrency, measure_memory=measure_memory)


@dataclass
class Replica:
    """One replica of a reusable container (``flyte.ReusePolicy``): one long-lived process that runs
    many actions through ``load_and_run_task``, up to ``concurrency`` at a time.

    Queue actions with :meth:`add`, then :meth:`start` the process and :meth:`wait` for it, or use
    :meth:`run`. Each action is the first action of its own run (``run_name`` ``<cluster run>-<i>``).
    :meth:`barrier` splits the queue into waves: a wave's actions start once every action of the
    waves before it has ended (as when a container gets its next actions only after the last ones
    ended). With ``measure_memory`` the process records its resident memory, and that of its
    children (wandb-core), after each wave: :meth:`memory`.

    Example::

        replica = cluster.replica(concurrency=2, measure_memory=True)
        replica.add(workflows.long_writer, 4.0)
        replica.add(workflows.undecorated_looker, 1.5)  # beside the writer
        replica.barrier()
        replica.add(workflows.undecorated_looker, 0.0)  # alone, after both ended
        replica.run()
        print(replica.memory()[-1]["self_kb"])
    """

    cluster: Cluster
    concurrency: int = 1
    actions: list[dict[str, Any]] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    id: str = field(default_factory=lambda: f"replica-{uuid.uuid4().hex[:8]}")
    measure_memory: bool = False
    wave: int = 0  # the wave that :meth:`add` queues into

    @property
    def directory(self) -> Path:
        """The replica's working directory (its container's)."""
        path = self.cluster.root / "pods" / self.id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def add(
        self, task: Any, *args: Any, custom_context: Mapping[str, str] | None = None, **kwargs: Any
    ) -> str:
        """Queue one action of ``task``; returns its run name."""
        index = len(self.actions)
        run_name = f"{self.cluster.run_name}-{index}"
        spec = self.cluster._root_spec(task, args, kwargs, custom_context, name=f"a0-{index}")
        output_prefix = self.cluster.root / "outputs" / run_name / "a0" / "1"
        output_prefix.mkdir(parents=True, exist_ok=True)
        config = replace(self.cluster.config, run_name=run_name, reuse=True)
        fake = ActionSpec(**{**asdict(spec), "name": "a0"})
        values = _template_values(
            config, fake, output_prefix, self.cluster.root / "checkpoints" / run_name, "", self.directory
        )
        self.actions.append(
            {
                "run_name": run_name,
                "task": spec.task,
                "args": [fill_templates(arg, values) for arg in spec.template_args][1:],
                "links": [(name, fill_templates(uri, values)) for name, uri in spec.links],
                "output_prefix": str(output_prefix),
                "env_vars": spec.env_vars,
                "wave": self.wave,
            }
        )
        return run_name

    def barrier(self) -> None:
        """Start the actions queued from now on only once every action queued before has ended."""
        self.wave += 1

    def start(self) -> subprocess.Popen[bytes]:
        """Start the replica's process on the queued actions."""
        plan = self.directory / "actions.json"
        plan.write_text(
            json.dumps(
                {"concurrency": self.concurrency, "actions": self.actions, "memory": self.measure_memory}
            )
        )
        # A reusable container is one environment's: its variables are those of its tasks.
        environment = self.actions[0]["env_vars"] if self.actions else {}
        first = ActionSpec("a0", "", [], environment, [], "", 0)
        env = pod_env(replace(self.cluster.config, reuse=True), first, 0)
        log = open(self.directory / "pod.log", "wb")  # noqa: SIM115
        install_code(self.cluster.config, self.directory)
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(self.directory / Path(self.cluster.config.code).name / REPLICA_ENTRY.name),
                str(plan),
            ],
            cwd=self.directory,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self.process

    def log(self) -> str:
        """What the replica's process printed."""
        path = self.directory / "pod.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for(self, text: str, count: int = 1, timeout: float = 60.0) -> None:
        """Wait until the replica printed ``text`` at least ``count`` times."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log().count(text) >= count:
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"replica never printed {text!r} {count} times:\n{self.log()}")

    def wait(self, timeout: float = 120.0) -> int:
        """Wait for the replica's process to end; its exit code."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the replica was still running after {timeout} s:\n{self.log()}") from None

    def results(self) -> list[Attempt]:
        """The attempts the replica recorded, one per action, in the order they ended."""
        return [a for a in read_attempts(self.cluster.root) if a.replica == self.id]

    def run(self, timeout: float = 120.0) -> list[Attempt]:
        """Start the replica, wait for it and return the actions' attempts."""
        self.start()
        code = self.wait(timeout)
        assert code == 0, f"the replica exited with {code}:\n{self.log()}"
        return self.results()

    def memory(self) -> list[dict[str, Any]]:
        """The memory the replica recorded after each wave (``Cluster.replica(measure_memory=True)``),
        in order: ``wave`` (from 1), ``seconds`` since its first action, ``self_kb`` (its resident
        memory) and ``children_kb`` (that of all its descendants: wandb-core), read from ``/proc``."""
        path = self.directory / "memory.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines]

    def terminate(self) -> None:
        """Send the replica SIGTERM, as Kubernetes does when it stops the pod."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)


def iter_pod_dirs(root: Path) -> Iterator[Path]:
    """Every pod directory of a rehearsal."""
    yield from sorted((root / "pods").iterdir()) if (root / "pods").exists() else iter(())
