"""Lineage both ways between Flyte and W&B: backlinks, inputs, outputs as reference artifacts.

Deciding is separate from doing. The planners are pure:

- :func:`plan_lineage` turns a task's Flyte identity, its inputs and the resolved settings into
  the run-config entry of this writer, the run notes, and the artifacts the task uses;
- :func:`plan_outputs` turns its outputs into reference-artifact specs and summary values;
- :func:`artifact_name` derives an artifact's name from the blob's URI, so that a consumer finds
  what its producer logged without asking W&B.

:class:`TaskLineage` (one per decorated task or function) carries the plans out around the run
scope of :mod:`._run`: the backlink and inputs at the start (in the ``wandb.init`` arguments, or
a ``config.update`` for a writer that reuses a live run), the outputs at the end. A lineage
failure is a warning: it never fails a task that succeeded nor loses its result.

The layout written to W&B is documented in ``docs/lineage.md``.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import logging
import math
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from ._errors import CREDENTIAL_NAME, WandbConfigError
from ._settings import check_no_credentials

__all__ = [
    "ArtifactSpec",
    "FlyteIdentity",
    "LineagePlan",
    "OutputsPlan",
    "TaskLineage",
    "artifact_name",
    "blob_uri",
    "check_output_selection",
    "config_key",
    "describe_value",
    "plan_lineage",
    "plan_outputs",
    "use_artifacts",
]

logger = logging.getLogger("flyteplugins.wandb")

#: The run-config key of the writer that owns the run; every other writer uses ``flyte/<label>``.
CONFIG_KEY = "flyte"
#: Limits on what one input may put into the run config.
MAX_INPUTS = 64
MAX_TEXT = 256
MAX_ITEMS = 32
MAX_JSON = 1024
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True)
class FlyteIdentity:
    """Where a task runs in Flyte: what a W&B run records to point back to it.

    ``console_url`` is set when a remote endpoint is configured (remote runs); ``metadata_path``
    is where Flyte keeps the action's metadata (its output path; the local folder in local runs).

    Example:
        >>> FlyteIdentity(run_name="r1", action_name="a0", task_name="env.train").as_entry()
        {'run': 'r1', 'action': 'a0', 'task': 'env.train', 'attempt': 0, 'mode': 'local'}
    """

    run_name: str
    action_name: str
    task_name: str
    org: str | None = None
    project: str | None = None
    domain: str | None = None
    attempt: int = 0
    mode: str = "local"
    console_url: str | None = None
    metadata_path: str | None = None
    rank: str | None = None
    function: str | None = None
    raw_data_path: str | None = None

    def as_entry(self) -> dict[str, Any]:
        """The identity as a run-config entry (unset fields left out)."""
        entry: dict[str, Any] = {
            "org": self.org,
            "project": self.project,
            "domain": self.domain,
            "run": self.run_name,
            "action": self.action_name,
            "task": self.task_name,
            "function": self.function,
            "attempt": self.attempt,
            "mode": self.mode,
            "rank": self.rank,
            "url": self.console_url,
            "metadata": self.metadata_path,
        }
        return {k: v for k, v in entry.items() if v is not None}

    def notes(self) -> str:
        """One line pointing back to Flyte, for the run's notes.

        Example:
            >>> FlyteIdentity("r1", "a0", "env.train", metadata_path="/tmp/m").notes()
            'Flyte local run r1, action a0 (task env.train); metadata: /tmp/m'
        """
        if self.console_url:
            return (
                f"Flyte action {self.action_name} of run {self.run_name} "
                f"(task {self.task_name}): {self.console_url}"
            )
        where = f"; metadata: {self.metadata_path}" if self.metadata_path else ""
        return (
            f"Flyte {self.mode} run {self.run_name}, action {self.action_name} (task {self.task_name}){where}"
        )


@dataclass(frozen=True, slots=True)
class ArtifactSpec:
    """One W&B artifact that references a Flyte blob (no bytes copied).

    Example:
        >>> spec = ArtifactSpec.for_blob("s3://bucket/run/model.pt", "file")
        >>> spec.name, spec.type, spec.entry
        ('model.pt-f58b5d2c3cc4', 'flyte-file', 'model.pt')
    """

    name: str
    type: str
    uri: str
    entry: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @classmethod
    def for_blob(
        cls,
        uri: str,
        kind: Literal["file", "dir"],
        metadata: Mapping[str, Any] | None = None,
        aliases: tuple[str, ...] = (),
    ) -> ArtifactSpec:
        """The artifact of the blob at ``uri``: name from :func:`artifact_name`, type ``flyte-<kind>``."""
        entry = _safe_name(uri.rstrip("/").rsplit("/", 1)[-1] or "blob", 64)
        return cls(artifact_name(uri), f"flyte-{kind}", uri, entry, dict(metadata or {}), aliases)


@dataclass(frozen=True, slots=True)
class LineagePlan:
    """What a writer records at the start of its task.

    ``key`` is this writer's run-config key (``flyte`` for the run's owner, ``flyte/<label>`` for
    every other writer), ``entry`` its value, ``notes`` the run notes to set (owner only, and only
    when the user set none), ``uses`` the artifacts of ``File``/``Dir`` inputs.
    """

    key: str
    entry: dict[str, Any]
    notes: str | None = None
    uses: tuple[ArtifactSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class OutputsPlan:
    """What a task records at its end: reference artifacts, summary values, and the outputs
    that were selected but cannot be referenced."""

    artifacts: tuple[tuple[str, ArtifactSpec], ...] = ()
    summary: dict[str, Any] = field(default_factory=dict)
    unreferenceable: tuple[str, ...] = ()


# --- pure decisions ----------------------------------------------------------------------------


def _safe_name(text: str, limit: int) -> str:
    return _NAME_CHARS.sub("_", text)[:limit] or "_"


def config_key(label: str | None) -> str:
    """The run-config key of a writer: ``flyte`` for the owner (no label), else ``flyte/<label>``.

    Each writer has its own top-level key because W&B merges config updates of shared-mode writers
    key by key at the top level only: two writers of one nested dict would overwrite each other.

    Example:
        >>> config_key(None), config_key("a3"), config_key("rank-1")
        ('flyte', 'flyte/a3', 'flyte/rank-1')
    """
    return CONFIG_KEY if not label else f"{CONFIG_KEY}/{label}"


def blob_uri(value: Any) -> tuple[str, Literal["file", "dir"]] | None:
    """The URI and kind of a ``flyte.io.File`` or ``Dir`` value; ``None`` for anything else.

    Local paths become absolute ``file://`` URIs; object-store URIs are kept as they are.

    Example:
        >>> from flyte.io import File
        >>> blob_uri(File(path="s3://bucket/x/model.pt"))
        ('s3://bucket/x/model.pt', 'file')
        >>> blob_uri(File(path="/data/model.pt"))
        ('file:///data/model.pt', 'file')
    """
    from flyte.io import Dir, File

    if isinstance(value, File):
        kind: Literal["file", "dir"] = "file"
    elif isinstance(value, Dir):
        kind = "dir"
    else:
        return None
    path = str(value.path or "")
    if not path:
        return None
    scheme = urlsplit(path).scheme
    if scheme and len(scheme) > 1:  # "C:" is a drive, not a scheme
        return path, kind
    return "file://" + os.path.abspath(path), kind


def artifact_name(uri: str) -> str:
    """The W&B artifact name of the blob at ``uri``: ``<last path segment>-<12 hex of sha256(uri)>``.

    Derived from the URI alone, so a consumer of the blob finds the artifact its producer logged
    without a W&B round trip, in another process or pod. Characters W&B does not allow in names
    become ``_``; the segment is cut to 64 characters.

    Example:
        >>> artifact_name("s3://bucket/run/model.pt")
        'model.pt-f58b5d2c3cc4'
        >>> artifact_name("file:///tmp/a b/")
        'a_b-df4a0d1561a3'
    """
    segment = uri.rstrip("/").rsplit("/", 1)[-1] or "blob"
    digest = hashlib.sha256(uri.encode()).hexdigest()[:12]
    return f"{_safe_name(segment, 64)}-{digest}"


def _flyte_io_kind(value: Any) -> str | None:
    """``File``, ``Dir`` or ``DataFrame`` for Flyte's own types, else ``None``; without importing
    ``flyte.io`` for the values that are not (most inputs are plain numbers and strings)."""
    kind = type(value).__name__
    if kind in ("File", "Dir", "DataFrame") and type(value).__module__.startswith("flyte.io"):
        return kind
    return None


def _type_name(value: Any) -> str:
    return f"<{type(value).__name__}>"


def describe_value(value: Any, depth: int = 0) -> Any:
    """A run-config value for a task input or output: small plain values as they are, blobs by
    URI, anything else by its type name; within the size limits.

    Example:
        >>> describe_value(0.1), describe_value([1, 2]), describe_value(object())
        (0.1, [1, 2], '<object>')
        >>> describe_value(list(range(100)))
        '<list of 100 items>'
        >>> describe_value("x" * 300)[-3:], len(describe_value("x" * 300))
        ('...', 256)
    """
    if value is None or isinstance(value, (bool, int)):
        return value.value if isinstance(value, enum.Enum) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 3] + "..."
    if isinstance(value, enum.Enum):
        inner = value.value
        return describe_value(inner, depth) if isinstance(inner, (str, int, float, bool)) else value.name
    io_kind = _flyte_io_kind(value)
    if io_kind == "DataFrame":
        return str(value.uri) if value.uri else _type_name(value)
    if io_kind is not None:
        blob = blob_uri(value)
        return blob[0] if blob is not None else _type_name(value)
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_ITEMS or depth >= 2:
            return f"<{type(value).__name__} of {len(value)} items>"
        described: Any = [describe_value(item, depth + 1) for item in value]
    elif isinstance(value, Mapping):
        if len(value) > MAX_ITEMS or depth >= 2 or not all(isinstance(k, str) for k in value):
            return f"<{type(value).__name__} of {len(value)} items>"
        try:
            check_no_credentials(value, "task input", "")
        except WandbConfigError:
            return "<hidden>"
        described = {k: describe_value(v, depth + 1) for k, v in value.items()}
    else:
        return _type_name(value)
    if len(json.dumps(described, default=str)) > MAX_JSON:
        return f"<{type(value).__name__} of {len(value)} items>"
    return described


def _selected(names: Sequence[str], selection: bool | Sequence[str] | None) -> list[str]:
    if selection is True:
        return list(names)
    if not selection:
        return []
    return [name for name in names if name in selection]


def plan_lineage(
    identity: FlyteIdentity,
    inputs: Mapping[str, Any],
    log_inputs: bool | Sequence[str] | None,
    *,
    label: str | None = None,
    set_notes: bool = False,
) -> LineagePlan:
    """Decide what a writer records at the start of its task. Pure: no wandb, no I/O.

    ``label`` is ``None`` for the run's owner, else the writer's label (its action name, or its
    rank label in distributed training). Inputs whose names look like credentials are never
    recorded; ``File``/``Dir`` inputs are also listed as artifacts the task used.

    Example:
        >>> me = FlyteIdentity("r1", "a1", "env.evaluate")
        >>> plan = plan_lineage(me, {"lr": 0.1, "api_key": "s3cr3t"}, True, label="a1")
        >>> plan.key, plan.entry["inputs"], plan.notes
        ('flyte/a1', {'lr': 0.1}, None)
    """
    entry = identity.as_entry()
    names = [n for n in _selected(list(inputs), log_inputs) if not CREDENTIAL_NAME.search(n)]
    recorded: dict[str, Any] = {}
    uses: list[ArtifactSpec] = []
    used: dict[str, Any] = {}
    for name in names[:MAX_INPUTS]:
        value = inputs[name]
        recorded[name] = describe_value(value)
        blob = blob_uri(value) if _flyte_io_kind(value) in ("File", "Dir") else None
        if blob is not None:
            spec = ArtifactSpec.for_blob(blob[0], blob[1])
            uses.append(spec)
            used[name] = {"artifact": spec.name, "uri": spec.uri}
    if len(names) > MAX_INPUTS:
        recorded["_truncated"] = f"{len(names) - MAX_INPUTS} more inputs not recorded"
    if recorded:
        entry["inputs"] = recorded
    if used:
        entry["used"] = used
    return LineagePlan(
        config_key(label), entry, identity.notes() if set_notes and label is None else None, tuple(uses)
    )


def output_values(output_names: Sequence[str], result: Any) -> dict[str, Any]:
    """The task's result by output name (``o0``, ``o1``, ... or a NamedTuple's field names).

    Example:
        >>> output_values(["o0"], 3), output_values(["model", "score"], ("m", 0.5))
        ({'o0': 3}, {'model': 'm', 'score': 0.5})
    """
    if not output_names:
        return {}
    if len(output_names) == 1:
        return {output_names[0]: result}
    return dict(zip(output_names, tuple(result), strict=False))


def plan_outputs(
    identity: FlyteIdentity,
    task_short_name: str,
    outputs: Mapping[str, Any],
    log_outputs: bool | Sequence[str] | None,
) -> OutputsPlan:
    """Decide what a task records at its end. Pure: no wandb, no I/O.

    ``File``/``Dir`` outputs become reference artifacts (metadata: the Flyte run, action, task,
    output name and console URL; alias ``<task>-<output>``), other outputs summary values under
    ``flyte/<task>/<output>`` (a ``DataFrame`` by its URI). ``File``/``Dir`` outputs without a
    path are listed as unreferenceable, and so are local paths of a remote task outside its raw
    data path: Flyte uploads those after the task returns, to a URI not known yet.

    Example:
        >>> from flyte.io import File
        >>> me = FlyteIdentity("r1", "a0", "env.train")
        >>> plan = plan_outputs(me, "train", {"model": File(path="s3://b/m.pt"), "loss": 0.5}, True)
        >>> [(name, spec.name) for name, spec in plan.artifacts], plan.summary
        ([('model', 'm.pt-932d2333aa61')], {'flyte/train/loss': 0.5})
    """
    artifacts: list[tuple[str, ArtifactSpec]] = []
    summary: dict[str, Any] = {}
    bad: list[str] = []
    base = {k: v for k, v in identity.as_entry().items() if k not in ("attempt", "mode", "rank", "function")}
    for name in _selected(list(outputs), log_outputs):
        value = outputs[name]
        if CREDENTIAL_NAME.search(name):
            continue
        kind = _flyte_io_kind(value)
        blob = blob_uri(value) if kind in ("File", "Dir") else None
        if blob is not None and _uploaded_later(blob[0], identity):
            bad.append(name)
        elif blob is not None:
            metadata = {f"flyte_{k}": v for k, v in base.items()}
            metadata["flyte_output"] = name
            metadata["uri"] = blob[0]
            alias = _safe_name(f"{task_short_name}-{name}", 128)
            artifacts.append((name, ArtifactSpec.for_blob(blob[0], blob[1], metadata, (alias,))))
        elif kind in ("File", "Dir"):
            bad.append(name)
        else:
            summary[f"{CONFIG_KEY}/{task_short_name}/{name}"] = describe_value(value)
    return OutputsPlan(tuple(artifacts), summary, tuple(bad))


def _uploaded_later(uri: str, identity: FlyteIdentity) -> bool:
    """A local path returned by a remote task that is not in Flyte's own (local or shared) storage:
    Flyte uploads it once the task has returned, so the pod-local path is not the blob."""
    if identity.mode == "local" or not uri.startswith("file://"):
        return False
    prefix = identity.raw_data_path or ""
    if prefix and not urlsplit(prefix).scheme:
        prefix = "file://" + os.path.abspath(prefix)
    return not (prefix.startswith("file://") and uri.startswith(prefix.rstrip("/") + "/"))


def check_output_selection(task_name: str, selection: Any, output_names: Sequence[str]) -> None:
    """Refuse ``log_outputs=[...]`` naming no output of the task, when the decorator is applied.

    Example:
        >>> check_output_selection("env.train", ("model",), ["model", "loss"])
        >>> try:
        ...     check_output_selection("env.train", ("nope",), ["o0"])
        ... except WandbConfigError as e:
        ...     print(e.origin, "|", e.allowed)
        @wandb_init(...) on task env.train | names of the task's outputs (o0); nope is not one
    """
    if not isinstance(selection, tuple):
        return
    unknown = [name for name in selection if name not in output_names]
    if unknown:
        shown = ", ".join(output_names) if output_names else "none"
        raise WandbConfigError(
            "log_outputs",
            selection,
            f"@wandb_init(...) on task {task_name}",
            f"names of the task's outputs ({shown}); {', '.join(unknown)} is not one",
        )


# --- carrying the plans out ----------------------------------------------------------------------


def _console_url(ctx: Any) -> str | None:
    """The Flyte console URL of the running action, from Flyte's own URL helper; ``None`` in local
    runs and when no remote endpoint is configured."""
    action = ctx.action
    if ctx.mode == "local" or not (action.project and action.domain and action.run_name):
        return None
    try:
        from ._compat import flyte_client

        client = flyte_client()
        if client is None:
            return None
        url = str(client.console.action_url(action.project, action.domain, action.run_name, action.name))
    except Exception:  # no client, or a flyte without the console helper
        logger.debug("no Flyte console URL", exc_info=True)
        return None
    return url if urlsplit(url).scheme in ("http", "https") else None


_alive_lock = threading.Lock()
# Flyte task contexts of tasks in progress in this process whose work may run in plain threads
# (a sweep task's trials run by wandb.agent), with their task names.
_alive: dict[int, tuple[Any, str]] = {}
# (run id, artifact name) of the artifacts runs of this process logged.
_logged_here: set[tuple[str, str]] = set()


@contextmanager
def task_in_progress(task_name: str) -> Iterator[None]:
    """While the body runs, code in threads without a Flyte context (a sweep trial run by
    ``wandb.agent``) gets this task's identity (the innermost task, when several are in progress).

    Example:
        >>> with task_in_progress("env.tune"):  # outside a task: nothing to remember
        ...     pass
    """
    import flyte

    ctx = flyte.ctx()
    if not ctx:
        yield
        return
    key = object()
    with _alive_lock:
        _alive[id(key)] = (ctx, task_name)
    try:
        yield
    finally:
        with _alive_lock:
            _alive.pop(id(key), None)


def flyte_identity(task_name: str, *, function: str | None = None) -> FlyteIdentity | None:
    """The Flyte identity of the action running here (``None`` outside a Flyte task).

    A plain function (``function`` set) in a thread without a Flyte context gets the identity of
    the task in progress (:func:`task_in_progress`; the most recently entered one if several).

    Example:
        >>> flyte_identity("env.train") is None  # not inside a task
        True
    """
    import flyte

    ctx = flyte.ctx()
    if not ctx and function is not None:
        with _alive_lock:
            alive = list(_alive.values())
        if alive:
            # In a pod, the only task; in a local run, the innermost (last entered).
            ctx, task_name = alive[-1]
    if not ctx:
        return None
    action = ctx.action
    rank = None
    world = os.environ.get("WORLD_SIZE")
    if world and world != "1" and os.environ.get("RANK") is not None:
        rank = os.environ["RANK"]
    return FlyteIdentity(
        run_name=action.run_name or "local",
        action_name=action.name,
        task_name=task_name,
        org=action.org,
        project=action.project,
        domain=action.domain,
        attempt=ctx.attempt_number,
        mode=ctx.mode,
        console_url=_console_url(ctx),
        metadata_path=ctx.output_path or None,
        raw_data_path=str(ctx.raw_data_path.path) if ctx.raw_data_path else None,
        rank=rank,
        function=function,
    )


def _writer_label(scope: Any, identity: FlyteIdentity) -> str | None:
    """``None`` for the run's owner; else the writer's W&B label (its action name, or its rank
    label in a distributed shared run)."""
    plan = scope.plan
    if plan.action == "init" and plan.owner:
        return None
    if plan.shared and plan.shared.get("x_label") and not plan.shared.get("x_primary"):
        return str(plan.shared["x_label"])
    return identity.action_name


def _build_artifact(spec: ArtifactSpec) -> Any:
    """A draft ``wandb.Artifact`` holding one reference to ``spec.uri``: no byte is read or copied.

    Local files: ``add_reference(..., checksum=False)`` (a ``stat`` per file: the digest is the
    path's). Object stores: the entry wandb itself makes for ``checksum=False`` (digest = URI),
    built directly, so that no cloud SDK (boto3, google-cloud-storage) is needed to point at a blob.
    """
    import wandb

    artifact = wandb.Artifact(spec.name, type=spec.type, metadata=dict(spec.metadata) or None)
    if spec.uri.startswith("file://"):
        artifact.add_reference(
            spec.uri, name=spec.entry if spec.type == "flyte-file" else None, checksum=False
        )
        return artifact
    from ._compat import add_reference_entry

    if not add_reference_entry(artifact, spec.entry, spec.uri):  # pragma: no cover - older wandb
        artifact.add_reference(spec.uri, name=spec.entry, checksum=False)
    return artifact


def use_artifacts(run: Any, uses: Sequence[ArtifactSpec]) -> int:
    """Declare the artifacts of a task's ``File``/``Dir`` inputs as used by an online ``run``;
    returns how many were declared (none offline).

    Each is a draft with the producer's name and the same reference, so the same manifest
    digest: W&B resolves it to the version the producer logged, without looking the name up
    first. Offline, wandb refuses ``use_artifact``; the writer's config entry (``used``) records
    each artifact's name and URI instead.
    """
    if not uses or getattr(run, "offline", True) is not False:
        return 0
    run_id = str(getattr(run, "id", ""))
    with _alive_lock:
        # An artifact this very run logged (a sibling writing into the same run) is its output
        # already: using it too would make the run its own input.
        foreign = [spec for spec in uses if (run_id, spec.name) not in _logged_here]
    for spec in foreign:
        run.use_artifact(_build_artifact(spec))
    return len(foreign)


@dataclass
class _Call:
    """Lineage of one call of a decorated task: the plan, then what is left to do."""

    owner: TaskLineage
    identity: FlyteIdentity
    plan: LineagePlan
    log_outputs: bool | Sequence[str] | None
    logs_outputs: bool

    def started(self, scope: Any) -> None:
        """After the run started: a writer reusing a live run adds its entry; used artifacts."""
        try:
            run = scope.run
            if run is None:
                return
            if scope.plan.action == "reuse":
                run.config.update({self.plan.key: self.plan.entry}, allow_val_change=True)
            use_artifacts(run, self.plan.uses)
        except Exception as exc:
            logger.warning("lineage: could not record task %s in W&B run: %s", self.identity.task_name, exc)

    @property
    def wants_outputs(self) -> bool:
        """Whether :meth:`succeeded` has anything to do."""
        return self.logs_outputs

    def succeeded(self, scope: Any, result: Any) -> None:
        """After the task returned: log its selected outputs (never raises)."""
        if not self.logs_outputs or scope.run is None:
            return
        try:
            outputs = output_values(self.owner.output_names, result)
            plan = plan_outputs(self.identity, self.owner.short_name, outputs, self.log_outputs)
        except Exception as exc:
            logger.warning("lineage: outputs of task %s not logged: %s", self.identity.task_name, exc)
            return
        log_output_plan(scope.run, plan, self.identity.task_name)


def log_output_plan(run: Any, plan: OutputsPlan, task_name: str) -> None:
    """Log an :class:`OutputsPlan` into ``run``; each failure is one warning, never an error."""
    for name in plan.unreferenceable:
        logger.warning(
            "lineage: output %r of task %s is not a blob W&B can reference (no path, or a local path of "
            "a remote task, uploaded by Flyte only after the task; return File.from_local(...) to "
            "upload it first); not logged as an artifact",
            name,
            task_name,
        )
    for name, spec in plan.artifacts:
        try:
            run.log_artifact(_build_artifact(spec), aliases=list(spec.aliases))
            with _alive_lock:
                _logged_here.add((str(getattr(run, "id", "")), spec.name))
        except Exception as exc:
            logger.warning(
                "lineage: output %r of task %s not logged as W&B artifact %s (the result is kept): %s",
                name,
                task_name,
                spec.name,
                exc,
            )
    if plan.summary:
        try:
            run.summary.update(plan.summary)
        except Exception as exc:
            logger.warning("lineage: outputs of task %s not written to the run summary: %s", task_name, exc)


class TaskLineage:
    """Lineage of one decorated task (or plain function): built when the decorator is applied.

    ``prepare()`` is called before the run starts and returns the call's lineage (or ``None``),
    which the wrapper tells when the run has started and when the task has returned.

    Example:
        >>> lineage = TaskLineage("env.train", "train", ["lr"], ["o0"])
        >>> lineage.output_names
        ['o0']
    """

    def __init__(
        self,
        task_name: str,
        short_name: str,
        input_names: Sequence[str],
        output_names: Sequence[str],
        *,
        function: str | None = None,
    ) -> None:
        self.task_name = task_name
        self.short_name = short_name
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.function = function

    @classmethod
    def for_task(cls, task: Any, selection: Any) -> TaskLineage:
        """The lineage of a Flyte task; checks the decorator's ``log_outputs`` names against the
        task's outputs (a :class:`WandbConfigError` naming both when one is not an output)."""
        interface = task.interface
        outputs = list(interface.outputs)
        check_output_selection(task.name, selection, outputs)
        return cls(task.name, task.short_name or task.name, list(interface.inputs), outputs)

    @classmethod
    def for_function(cls, fn: Any) -> TaskLineage:
        """The lineage of a plain ``@wandb_init`` function: a backlink to the task it runs in."""
        name = getattr(fn, "__qualname__", getattr(fn, "__name__", "function"))
        return cls("", name, [], [], function=f"{getattr(fn, '__module__', '')}.{name}".lstrip("."))

    def prepare(self, scope: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> _Call | None:
        """Plan this call's lineage and put the owner's entry and notes into the ``wandb.init``
        arguments; ``None`` when there is nothing to record (no run, no Flyte context)."""
        try:
            return self._prepare(scope, args, kwargs)
        except Exception as exc:
            logger.warning("lineage: not recorded for %s: %s", self.task_name or self.function, exc)
            return None

    def _prepare(self, scope: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> _Call | None:
        plan = scope.plan
        if plan.action == "skip" or plan.identity is None:
            return None
        if self.function is not None and plan.action == "reuse":
            return None  # a function inside a task's run: the task's entry says it all
        identity = flyte_identity(self.task_name, function=self.function)
        if identity is None:
            return None
        if self.function is not None:
            identity = dataclasses.replace(identity, task_name=identity.task_name or "-")
        resolved = scope.resolved
        label = _writer_label(scope, identity)
        init_kwargs = plan.init_kwargs
        inputs = dict(zip(self.input_names, args, strict=False))
        inputs.update(kwargs)
        user_notes = resolved.get("notes") is not None or "notes" in init_kwargs
        lineage = plan_lineage(
            identity,
            inputs if self.function is None else {},
            resolved.get("log_inputs", True),
            label=label,
            set_notes=not user_notes,
        )
        if getattr(plan, "parent_run", None) and label is None:
            # A fan-out child's own run names the run of the parent that started it (see _fanout).
            lineage.entry["parent_run"] = plan.parent_run
        if plan.action == "init":
            config = dict(init_kwargs.get("config") or {})
            if lineage.key in config and label is None:
                logger.warning(
                    "lineage: the run config already has a %r key (set by the user): no backlink written",
                    lineage.key,
                )
            else:
                config[lineage.key] = lineage.entry
            new_kwargs = {**init_kwargs, "config": config}
            if lineage.notes:
                new_kwargs["notes"] = lineage.notes
            scope.plan = dataclasses.replace(plan, init_kwargs=new_kwargs)
        log_outputs = resolved.get("log_outputs", False)
        distributed = identity.rank is not None
        logs_outputs = bool(log_outputs) and bool(self.output_names) and (plan.owner or not distributed)
        return _Call(self, identity, lineage, log_outputs, logs_outputs)
