"""Every use of a wandb or flyte private helper, and of wandb's protobuf records, in one place.

The plugin supports a range of wandb and flyte releases (see ``docs/versions.md``). Public APIs
(``wandb.init``, ``wandb.Settings``, ``flyte.ctx``, ...) are called directly; anything private
(module internals, singleton objects, protobuf fields of the transaction log) is reached only
through a function of this module. Each one detects what the installed release offers
(``hasattr``/try-import, computed once) and degrades to a documented fallback, so that the next
release that moves an internal breaks one function here, not the package.

Settings that need a newer wandb than the one installed are dropped by
:func:`settings_for_installed_wandb` with a warning that names the feature, the installed and the
needed version; everything else keeps working.

Example:
    >>> from flyteplugins.wandb._compat import version_tuple
    >>> version_tuple("0.19.10") < version_tuple("0.23.0") <= version_tuple("0.31.0rc1")
    True
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MIN_FLYTE",
    "MIN_WANDB",
    "WANDB_FEATURES",
    "FlatRecords",
    "WandbFeature",
    "action_tracker",
    "add_reference_entry",
    "bound_account_lookups",
    "bound_exit_telemetry",
    "can_record_traces",
    "control_plane_available",
    "explicit_settings",
    "flat_records",
    "flyte_client",
    "flyte_initialized",
    "follow_global_run",
    "is_function_task",
    "most_recent_active_run",
    "next_local_step",
    "parse_record",
    "prepare_wandb",
    "process_settings",
    "publish_python_packages",
    "real_wandb_init",
    "record_field",
    "record_has",
    "record_kind",
    "record_time",
    "record_type_number",
    "restart_service_after_failed_init",
    "run_id_validator",
    "run_is_finished",
    "save_config_file",
    "set_global_run",
    "settings_computed_fields",
    "settings_fields_set",
    "settings_for_installed_wandb",
    "setup_root_dir",
    "stored_global_run",
    "task_action",
    "teardown_wandb",
    "tracked_actions",
    "unset_global_run",
    "version_tuple",
    "wandb_at_least",
    "wandb_is_set_up",
    "wandb_supports_setting",
    "wandb_version",
    "watch_task_execution",
    "working_set",
]

logger = logging.getLogger("flyteplugins.wandb")

# The oldest releases CI proves (kept in step with pyproject.toml and docs/versions.md).
# wandb 0.19.10 is the first with wandb.init(reinit="create_new"), which every run start uses, and
# shared mode (x_label, x_primary, x_update_finish_state) is older (0.19.9); but before 0.22.1 a
# second start of a run id in the same second writes into the first one's folder, and CI fails.
# flyte before 2.2.4 takes only a tuple, not a list, for @env.task(links=...).
MIN_WANDB = "0.22.1"
MIN_FLYTE = "2.2.4"
# A non-primary writer (x_update_finish_state=False) outside shared mode never finishes before 0.26.1.
_NON_PRIMARY_OFFLINE_FINISH = "0.26.1"
# wandb.teardown() after an online wandb.init that failed waits forever before 0.28.2.
_TEARDOWN_AFTER_FAILED_INIT = "0.28.2"


@dataclass(frozen=True, slots=True)
class WandbFeature:
    """A plugin feature that needs a wandb setting newer than the oldest supported wandb.

    Example:
        >>> WANDB_FEATURES["x_sync_dir_suffix"].since
        '0.23.0'
    """

    setting: str
    description: str
    since: str
    without: str


WANDB_FEATURES: dict[str, WandbFeature] = {
    feature.setting: feature
    for feature in (
        WandbFeature(
            "x_sync_dir_suffix",
            "one local folder per writer of a shared-mode distributed run",
            "0.23.0",
            "writers that start in the same second may share wandb's '-1' folder suffix",
        ),
    )
}

# --- wandb.init's arguments per release (known without importing wandb) -------------------------
# The table lives in its own module; re-exported here, next to the version table above.
from ._compat_init import WANDB_INIT_ARGUMENTS as WANDB_INIT_ARGUMENTS  # noqa: E402
from ._compat_init import init_argument_since as init_argument_since  # noqa: E402
from ._compat_init import init_arguments_for as init_arguments_for  # noqa: E402
from ._compat_init import known_init_arguments as known_init_arguments  # noqa: E402
from ._compat_init import version_tuple as version_tuple  # noqa: E402


def wandb_version() -> str:
    """The installed wandb's version string.

    Example:
        >>> wandb_version().count(".") >= 1
        True
    """
    import wandb

    return str(getattr(wandb, "__version__", "unknown"))


@functools.cache
def _settings_fields() -> frozenset[str]:
    import wandb

    fields = getattr(wandb.Settings, "model_fields", None)
    return frozenset(fields) if fields is not None else frozenset()


def wandb_at_least(version: str) -> bool:
    """Whether the installed wandb is ``version`` or newer.

    Example:
        >>> wandb_at_least("0.1.0")
        True
    """
    return version_tuple(wandb_version()) >= version_tuple(version)


def _warn_once(key: str, message: str, *args: object) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message, *args)


def wandb_supports_setting(name: str) -> bool:
    """Whether the installed ``wandb.Settings`` has the field ``name``.

    Example:
        >>> wandb_supports_setting("x_label"), wandb_supports_setting("no_such_setting")
        (True, False)
    """
    return name in _settings_fields()


def settings_for_installed_wandb(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` without the plugin's settings the installed wandb does not know, each warned about once.

    Only the settings of :data:`WANDB_FEATURES` are dropped: a setting the user wrote that wandb
    does not know still reaches ``wandb.Settings``, which names it in its own error.

    Example:
        >>> settings_for_installed_wandb({"mode": "shared", "x_label": "rank-0"})
        {'mode': 'shared', 'x_label': 'rank-0'}
    """
    kept = dict(settings)
    for name in list(kept):
        feature = WANDB_FEATURES.get(name)
        if feature is None or wandb_supports_setting(name):
            continue
        del kept[name]
        _warn_once(
            name,
            "W&B: %s needs wandb>=%s (setting %s); wandb %s is installed, so %s. Upgrade wandb to get it.",
            feature.description,
            feature.since,
            name,
            wandb_version(),
            feature.without,
        )
    if (
        kept.get("x_update_finish_state") is False
        and kept.get("mode") != "shared"
        and not wandb_at_least(_NON_PRIMARY_OFFLINE_FINISH)
    ):
        # Outside shared mode (offline) each writer has its own folder; the setting only decides,
        # at sync time, whose exit finishes the run.
        del kept["x_update_finish_state"]
        _warn_once(
            "x_update_finish_state",
            "W&B: a non-primary writer of a shared run that is not in shared mode (e.g. offline) needs "
            "wandb>=%s to finish (older releases wait forever); wandb %s is installed, so the "
            "writer's exit also counts as the run's when its folder is synced. Upgrade wandb to get it.",
            _NON_PRIMARY_OFFLINE_FINISH,
            wandb_version(),
        )
    return kept


def explicit_settings(settings: Any) -> dict[str, Any]:
    """The fields of a ``wandb.Settings`` that were set, without wandb's computed ones.

    Example:
        >>> import wandb
        >>> explicit_settings(wandb.Settings(mode="offline"))
        {'mode': 'offline'}
    """
    fields_set = settings_fields_set(settings)
    dump = settings.model_dump()
    if fields_set is None:  # pragma: no cover - a wandb.Settings that is not a pydantic model
        return dict(dump)
    return {k: v for k, v in dump.items() if k in fields_set}


def settings_fields_set(settings: Any) -> frozenset[str] | None:
    """The names of the fields set on a ``wandb.Settings``; ``None`` for anything else.

    Example:
        >>> import wandb
        >>> sorted(settings_fields_set(wandb.Settings(mode="offline")))
        ['mode']
        >>> settings_fields_set({"mode": "offline"}) is None
        True
    """
    fields_set = getattr(settings, "model_fields_set", None)
    return frozenset(fields_set) if fields_set is not None else None


def settings_computed_fields() -> frozenset[str]:
    """The names of ``wandb.Settings``' read-only computed fields (in its dump, never accepted back).

    Example:
        >>> "files_dir" in settings_computed_fields()
        True
    """
    import wandb

    return frozenset(getattr(wandb.Settings, "model_computed_fields", None) or ())


# --- wandb's process-wide state (private wandb API) ---------------------------------------------


def _setup_module() -> Any | None:
    return sys.modules.get("wandb.sdk.wandb_setup")


def wandb_is_set_up() -> bool:
    """Whether wandb has set itself up in this process (without setting it up).

    Example:
        >>> isinstance(wandb_is_set_up(), bool)
        True
    """
    # private wandb API: wandb_setup._singleton (and its _pid, invalid in a forked child)
    singleton = getattr(_setup_module(), "_singleton", None)
    return singleton is not None and getattr(singleton, "_pid", os.getpid()) == os.getpid()


def setup_root_dir() -> str | None:
    """The folder wandb writes this process's runs under, once it is set up (``None`` before).

    Example:
        >>> root = setup_root_dir()
        >>> root is None or isinstance(root, str)
        True
    """
    if not wandb_is_set_up():
        return None
    try:
        root = _setup_module()._singleton.settings.root_dir  # type: ignore[union-attr]
    except Exception:  # a wandb whose setup object looks different: callers fall back
        return None
    return root if isinstance(root, str) else None


def run_is_finished(run: Any) -> bool:
    """Whether ``run.finish()`` has been called on a wandb run.

    Example:
        >>> run_is_finished(object())
        False
    """
    # private wandb API: Run._is_finished
    return bool(getattr(run, "_is_finished", False))


def next_local_step(run: Any) -> int | None:
    """The step the SDK will give the run's next ``log()``, known without asking wandb's service.

    In newer wandb, ``run.step`` asks the service (a round trip that waits up to 30 s when the
    service does not answer); the SDK counts the same steps itself, as ``Run._local_step``
    (``Run._step`` in older releases, where ``run.step`` returned it). ``None`` where neither is
    there, or for a replaced ``wandb.init`` (a mock).

    Example:
        >>> next_local_step(object()) is None
        True
    """
    # private wandb API: Run._local_step (newer), Run._step (older)
    for name in ("_local_step", "_step"):
        step = getattr(run, name, None)
        if isinstance(step, int) and not isinstance(step, bool):
            return step
    return None


def process_settings() -> Any:
    """The process-wide ``wandb.Settings`` (environment, settings files), without starting a service.

    Example:
        >>> process_settings().mode in ("online", "offline", "dryrun", "disabled", "shared")
        True
    """
    # private wandb API: wandb_setup.singleton() (creates the singleton from 0.20 on, returns None
    # before it exists in older releases) and _setup(start_service=False).
    from wandb.sdk import wandb_setup

    singleton = wandb_setup.singleton()
    if singleton is None:
        singleton = wandb_setup._setup(start_service=False)
    return singleton.settings


def most_recent_active_run() -> Any | None:
    """The run wandb itself considers active in this process, if any.

    Example:
        >>> most_recent_active_run() is None
        True
    """
    if not wandb_is_set_up():
        return None
    # private wandb API: the setup singleton's most_recent_active_run
    singleton = _setup_module()._singleton  # type: ignore[union-attr]
    return getattr(singleton, "most_recent_active_run", None)


_warned: set[str] = set()


def teardown_wandb() -> None:
    """Stop wandb's service and forget its process-wide state (``wandb.teardown``).

    Example:
        >>> teardown_wandb()  # doctest: +SKIP
    """
    import wandb

    wandb.teardown()


def restart_service_after_failed_init(seconds: float | None = None) -> bool:
    """Stop wandb's service after an online ``wandb.init`` failed, to free the run id it keeps.

    Returns whether it did: before wandb 0.28.2 the service never stops after such a failure
    (``wandb.teardown`` waits forever), so the offline fallback is not tried there, and a warning
    names the feature and the versions.

    Example:
        >>> restart_service_after_failed_init()  # after wandb.init(mode="online") failed  # doctest: +SKIP
        True
    """
    if not wandb_at_least(_TEARDOWN_AFTER_FAILED_INIT):
        _warn_once(
            "teardown",
            "W&B: continuing offline after an online wandb.init failed (a server that accepts but "
            "never answers) needs wandb>=%s; wandb %s is installed, so the error is raised. "
            "Upgrade wandb to get it.",
            _TEARDOWN_AFTER_FAILED_INIT,
            wandb_version(),
        )
        return False
    if seconds is None:
        teardown_wandb()
    else:
        # The old service may take seconds to shut down (it still waits on a stalled server);
        # wandb forgets it at once, so a new one serves the offline start while it finishes.
        from ._signals import call_within

        call_within(teardown_wandb, seconds, "teardown")
    return True


def set_global_run(run: Any) -> None:
    """Point ``wandb.run``, ``wandb.log``, ... at ``run`` (``reinit="create_new"`` leaves them alone).

    Example:
        >>> import wandb  # doctest: +SKIP
        >>> set_global_run(wandb.init(mode="offline", reinit="create_new"))  # doctest: +SKIP
    """
    # private wandb API: wandb.sdk.wandb_init._set_global_run (0.19.10 and later)
    try:
        from wandb.sdk.wandb_init import _set_global_run
    except ImportError:  # pragma: no cover - fall back to the older module-level helper
        from wandb.sdk.lib import module

        module.set_global(run=run, config=run.config, log=run.log, summary=run.summary, save=run.save)
        return
    _set_global_run(run)


def unset_global_run() -> None:
    """Reset ``wandb.run``, ``wandb.log``, ... to their no-run placeholders.

    Example:
        >>> unset_global_run()
    """
    # private wandb API: wandb.sdk.lib.module.unset_globals
    from wandb.sdk.lib import module

    module.unset_globals()


def follow_global_run(resolve: Callable[[Any], Any]) -> bool:
    """Make ``wandb.run`` answer ``resolve(value wandb set)``; ``False`` when it cannot be done.

    ``wandb.run`` is a plain module attribute: one value for the whole process, while a process
    may run several Flyte actions at once (a local run, a reusable container). The module's class
    becomes a subclass of it whose ``run`` property keeps what wandb (or a user, or a test's
    patch) assigns and returns what ``resolve`` makes of it. Idempotent.

    Example:
        >>> follow_global_run(lambda stored: stored)  # doctest: +SKIP
        True
    """
    import types

    module = sys.modules.get("wandb")
    if module is None:
        return False
    if getattr(type(module), "_flyteplugins_wandb", False):
        type(module)._resolve = staticmethod(resolve)  # type: ignore[attr-defined]
        return True
    if type(module) is not types.ModuleType:  # pragma: no cover - someone else's module class
        return False

    class _WandbModule(types.ModuleType):
        _flyteplugins_wandb = True
        _resolve = staticmethod(resolve)

        @property
        def run(self) -> Any:
            return type(self)._resolve(self.__dict__.get("run"))

        @run.setter
        def run(self, value: Any) -> None:
            self.__dict__["run"] = value

        @run.deleter
        def run(self) -> None:
            self.__dict__.pop("run", None)

    module.__class__ = _WandbModule
    return True


def stored_global_run() -> Any:
    """The value wandb last assigned to ``wandb.run``, whatever :func:`follow_global_run` answers.

    Example:
        >>> stored_global_run() is None  # doctest: +SKIP
        True
    """
    module = sys.modules.get("wandb")
    if module is None:
        return None
    return module.__dict__.get("run")


def bound_account_lookups(seconds: float) -> bool:
    """Let each of wandb's account look-ups (the "logged in as" message, user settings) wait ``seconds``.

    wandb gives each 5 s, before a start's ``init_timeout`` begins. ``False`` when this wandb
    has no such look-up (older releases ask the server through other paths, within the start).

    Example:
        >>> bound_account_lookups(5.0) in (True, False)  # doctest: +SKIP
        True
    """
    # private wandb API: wandb.sdk.lib.identity._RESOLVE_TIMEOUT_SECONDS (read per session), and
    # the session's look-up already made (wandb_setup singleton's _session_identity._service_api)
    try:
        from wandb.sdk.lib import identity
    except ImportError:
        return False
    if not isinstance(getattr(identity, "_RESOLVE_TIMEOUT_SECONDS", None), (int, float)):
        return False
    identity._RESOLVE_TIMEOUT_SECONDS = seconds
    setup = _setup_module()
    singleton = getattr(setup, "_singleton", None) if setup is not None else None
    session = getattr(singleton, "_session_identity", None)
    service_api = getattr(session, "_service_api", None)
    if service_api is not None and hasattr(service_api, "_timeout"):
        service_api._timeout = seconds
    return True


def publish_python_packages(run: Any, packages: Iterable[Any]) -> bool:
    """Hand ``run``'s service the installed packages, as wandb does at run start; ``False`` if it cannot.

    Example:
        >>> publish_python_packages(object(), [])
        False
    """
    # private wandb API: Run._interface.publish_python_packages(working_set)
    interface = getattr(run, "_interface", None)
    publish = getattr(interface, "publish_python_packages", None)
    if not callable(publish):
        return False
    publish(packages)
    return True


def working_set() -> Iterator[Any]:
    """The installed distributions as wandb lists them (``key`` and ``version`` attributes).

    Example:
        >>> any(d.key == "wandb" for d in working_set())
        True
    """
    from wandb import util

    return iter(util.working_set())


def save_config_file(path: str, config: Mapping[str, Any]) -> None:
    """Write ``config`` as wandb's ``config.yaml`` (``{key: {"value": v}}``, as a download has it).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "config.yaml")
        >>> save_config_file(path, {"lr": 0.1})
        >>> "lr" in open(path).read()
        True
    """
    # private wandb API: wandb.sdk.lib.config_util.save_config_file_from_dict
    try:
        from wandb.sdk.lib import config_util

        config_util.save_config_file_from_dict(path, {k: {"value": v} for k, v in config.items()})
        return
    except ImportError:  # pragma: no cover - the same format written here
        pass
    import yaml  # type: ignore[import-untyped]

    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump({k: {"value": v} for k, v in config.items()}, handle)


# --- the transaction log's protobuf records (private wandb API) ----------------------------------


def load_records_without_sdk() -> bool:
    """Make wandb's protobuf modules importable without running ``wandb/__init__.py``.

    For a process that only reads transaction logs and never starts a run (the report helper):
    ``from wandb.proto import wandb_internal_pb2`` imports the whole SDK first, about 0.3 s of
    CPU spent in a process that needs only the generated message classes. This puts an empty
    ``wandb`` package (the installed package's path, none of its code) in ``sys.modules``, so
    that ``wandb.proto`` and the modules it imports are loaded alone. Returns whether it did;
    it does nothing where ``wandb`` is already imported, is not installed, or its protobuf
    modules cannot be loaded alone (the real package is then imported as usual).

    Example:
        >>> load_records_without_sdk()  # doctest: +SKIP
        True
    """
    import importlib
    import importlib.util
    import types

    if "wandb" in sys.modules:
        return False
    spec = importlib.util.find_spec("wandb")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        return False
    package = types.ModuleType("wandb", "wandb's package path only (flyteplugins.wandb report helper)")
    package.__path__ = locations
    package.__package__ = "wandb"
    sys.modules["wandb"] = package
    try:
        importlib.import_module("wandb.proto.wandb_internal_pb2")
    except Exception:
        for name in [name for name in sys.modules if name == "wandb" or name.startswith("wandb.")]:
            del sys.modules[name]
        return False
    return True


def parse_record(payload: bytes) -> Any:
    """Decode one transaction-log payload into wandb's ``Record`` protobuf message.

    Example:
        >>> record_kind(parse_record(b""))
        ''
    """
    from wandb.proto import wandb_internal_pb2

    record = wandb_internal_pb2.Record()
    record.ParseFromString(payload)
    return record


def record_type_number(payload: bytes) -> tuple[int, int]:
    r"""The field number of a serialized ``Record``'s first field after ``num``, and where it starts.

    wandb's service writes ``num`` (field 1) first and the record's kind (one field of its
    ``record_type`` oneof) next, so this tells a history record from a summary record without
    decoding it. ``(0, 0)`` when the bytes do not start that way (decode them then).

    Example:
        >>> record_type_number(b"\x08\x66\x12\x00")  # num=102, then field 2 (history)
        (2, 2)
        >>> record_type_number(b"")
        (0, 0)
    """
    size = len(payload)
    pos = 0
    if size and payload[0] == 0x08:  # num, a varint
        pos = 1
        while pos < size and payload[pos] & 0x80:
            pos += 1
        pos += 1
    if pos >= size:
        return 0, 0
    tag = payload[pos]
    if tag & 0x80:
        # A field number above 15: two tag bytes (the kinds read here are all below 16).
        if pos + 1 >= size:
            return 0, 0
        return (tag & 0x7F | (payload[pos + 1] & 0x7F) << 7) >> 3, pos
    return tag >> 3, pos


@dataclass(frozen=True)
class FlatRecords:
    r"""A reusable message that reads history and summary records as flat lists of keys and values.

    Decoding a record into wandb's ``Record`` and visiting each item costs a Python call per item.
    This message has the same field numbers (taken from wandb's own descriptors, so it follows
    them across releases), but declares a record's items as one message that protobuf merges:
    ``history.item.nested_key`` is the list of every item's key and ``history.item.value_json``
    the list of their values, each produced in one call. Items are aligned only when each has
    exactly one key part: callers check the lengths and decode the record fully otherwise.

    Attributes:
        history, summary: the field numbers of ``Record.history`` and ``Record.summary``.
        message: the reusable message (``ParseFromString`` replaces its content).
        sdk_mark: the bytes that start ``Record._info``, which the SDK sets on every record it
            sends to wandb's service and the service does not set on the records it makes.
            They cannot occur in JSON text (a UTF-8 lead byte, then a control character), so
            a record without them is the service's own; ``b""`` where the schema has no ``_info``.

    Example:
        >>> flat = flat_records()
        >>> _ = flat.message.ParseFromString(b"\x12\x09\n\x07\x12\x01a\x82\x01\x011")
        >>> list(flat.message.history.item.nested_key), list(flat.message.history.item.value_json)
        (['a'], ['1'])
    """

    history: int
    summary: int
    message: Any
    sdk_mark: bytes


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@functools.cache
def flat_records() -> FlatRecords | None:
    """The :class:`FlatRecords` of this wandb's schema; ``None`` where it cannot be built.

    Example:
        >>> flat_records().history
        2
    """
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        from wandb.proto import wandb_internal_pb2 as pb

        record = pb.Record.DESCRIPTOR.fields_by_name
        history_item = pb.HistoryItem.DESCRIPTOR.fields_by_name
        summary_item = pb.SummaryItem.DESCRIPTOR.fields_by_name
        item_numbers = {name: history_item[name].number for name in ("key", "nested_key", "value_json")}
        if any(summary_item[name].number != number for name, number in item_numbers.items()):
            return None
        field = descriptor_pb2.FieldDescriptorProto
        proto = descriptor_pb2.FileDescriptorProto(
            name="flyteplugins_wandb_flat.proto", package="flyteplugins_wandb_flat", syntax="proto3"
        )

        def message(name: str, fields: list[tuple[str, int, int, int, str]]) -> None:
            added = proto.message_type.add(name=name)
            for field_name, number, kind, label, type_name in fields:
                entry = added.field.add(name=field_name, number=number, type=kind, label=label)
                if type_name:
                    entry.type_name = f".flyteplugins_wandb_flat.{type_name}"

        repeated, optional = field.LABEL_REPEATED, field.LABEL_OPTIONAL
        text, nested = field.TYPE_STRING, field.TYPE_MESSAGE
        message("Items", [(name, number, text, repeated, "") for name, number in item_numbers.items()])
        history_items = pb.HistoryRecord.DESCRIPTOR.fields_by_name["item"].number
        message("History", [("item", history_items, nested, optional, "Items")])
        summary = pb.SummaryRecord.DESCRIPTOR.fields_by_name
        message(
            "Summary",
            [
                ("update", summary["update"].number, nested, optional, "Items"),
                ("remove", summary["remove"].number, field.TYPE_BYTES, repeated, ""),
            ],
        )
        history, summary_number = record["history"].number, record["summary"].number
        message(
            "Record",
            [
                ("history", history, nested, optional, "History"),
                ("summary", summary_number, nested, optional, "Summary"),
            ],
        )
        pool = descriptor_pool.DescriptorPool()
        pool.Add(proto)
        descriptor = pool.FindMessageTypeByName("flyteplugins_wandb_flat.Record")
        get_class = getattr(message_factory, "GetMessageClass", None)
        if get_class is not None:
            cls = get_class(descriptor)
        else:  # protobuf < 4.22
            cls = message_factory.MessageFactory(pool).GetPrototype(descriptor)
        info = record.get("_info")
        mark = _varint(info.number << 3 | 2) if info is not None else b""
        if not (len(mark) == 2 and 0xC2 <= mark[0] <= 0xDF and mark[1] < 0x20):
            mark = b""  # could occur in JSON text: not a mark
        return FlatRecords(history=history, summary=summary_number, message=cls(), sdk_mark=mark)
    except Exception as exc:  # an unexpected schema: the callers decode every record fully
        logger.debug("flat record reading is not available: %s", exc)
        return None


def record_kind(record: Any) -> str:
    """Which record a ``Record`` holds (``"run"``, ``"history"``, ...), ``""`` when none.

    Example:
        >>> record_kind(parse_record(b""))
        ''
    """
    return str(record.WhichOneof("record_type") or "")


def record_field(message: Any, name: str, default: Any = None) -> Any:
    """Field ``name`` of a protobuf message, or ``default`` when this wandb's schema lacks it.

    Fields come and go across wandb releases (``RunRecord.resume`` is not in every one), and a
    log may have been written by another release than the one reading it.

    Example:
        >>> record = parse_record(b"")
        >>> record_field(record, "no_such_field", "missing")
        'missing'
        >>> record_field(record.run, "run_id")
        ''
    """
    if message is None:
        return default
    descriptor = getattr(message, "DESCRIPTOR", None)
    if descriptor is not None and name not in descriptor.fields_by_name:
        return default
    return getattr(message, name, default)


def record_time(message: Any, name: str) -> float | None:
    """A ``google.protobuf.Timestamp`` field in seconds since the epoch, ``None`` when unset or absent.

    Example:
        >>> record_time(parse_record(b"").run, "start_time") is None
        True
    """
    if record_field(message, name) is None or not message.HasField(name):
        return None
    stamp = getattr(message, name)
    return float(stamp.seconds + stamp.nanos / 1e9)


# --- flyte internals (private flyte API) ---------------------------------------------------------


def is_function_task(obj: object) -> bool:
    """Whether ``obj`` is a Flyte function task (what ``@env.task`` returns).

    Example:
        >>> is_function_task(print)
        False
    """
    # private flyte API: flyte._task.AsyncFunctionTaskTemplate (2.0 and later)
    from flyte._task import AsyncFunctionTaskTemplate

    return isinstance(obj, AsyncFunctionTaskTemplate)


def control_plane_available() -> bool | None:
    """Whether flyte was initialised against a remote control plane; ``None`` when flyte cannot say.

    Example:
        >>> control_plane_available() in (True, False, None)
        True
    """
    # private flyte API: flyte._initialize.is_control_plane_available (2.7 and later)
    try:
        from flyte._initialize import is_control_plane_available
    except ImportError:
        return None
    try:
        return bool(is_control_plane_available())
    except Exception:
        return None


def flyte_initialized() -> bool:
    """Whether ``flyte.init()`` has run in this process.

    Example:
        >>> isinstance(flyte_initialized(), bool)
        True
    """
    # private flyte API: flyte._initialize.is_initialized
    from flyte import _initialize

    return bool(_initialize.is_initialized())


def local_report_file(output_path: str) -> str | None:
    """Where Flyte writes the report (``report.html``) of the action whose outputs go to ``output_path``.

    ``None`` when the outputs are not on this machine (an object store).

    Example:
        >>> local_report_file("/tmp/flyte/run/a0")
        '/tmp/flyte/run/a0/report.html'
        >>> local_report_file("s3://bucket/run/a0") is None
        True
    """
    # private flyte API: flyte._internal.runtime.io.report_path (the report's name next to outputs)
    try:
        from flyte._internal.runtime.io import report_path

        path = str(report_path(output_path))
    except Exception:
        path = output_path.rstrip("/") + "/report.html"
    if path.startswith("file://"):
        path = path[len("file://") :]
    if "://" in path:
        return None
    return os.path.abspath(path)


def can_record_traces() -> bool:
    """Whether a Flyte controller is running here (so ``flyte.trace`` calls are recorded).

    Example:
        >>> can_record_traces()
        False
    """
    # private flyte API: flyte._internal.controllers.get_controller
    try:
        from flyte._internal.controllers import get_controller

        get_controller()
    except Exception:
        return False
    return True


def action_tracker() -> Any:
    """A tracker to pass as ``flyte.with_runcontext(_tracker=...)``: it records a local run's actions.

    Example:
        >>> tracker = action_tracker()
        >>> list(tracked_actions(tracker))
        []
    """
    # private flyte API: flyte.cli._tui._tracker.ActionTracker, the local TUI's tracker
    from flyte.cli._tui._tracker import ActionTracker

    return ActionTracker()


def tracked_actions(tracker: Any) -> Iterator[tuple[str, Any]]:
    """``(action id, node)`` of each action a tracker saw, groups left out.

    A node has ``task_name`` and ``log_links`` (``(name, url)`` pairs, as Flyte rendered them).

    Example:
        >>> list(tracked_actions(action_tracker()))
        []
    """
    # private flyte API: ActionTracker._nodes
    nodes: Mapping[str, Any] = getattr(tracker, "_nodes", {})
    for action_id, node in list(nodes.items()):
        if not str(action_id).startswith("__group__"):
            yield str(action_id), node


def record_has(message: Any, name: str) -> bool:
    """Whether a protobuf message field ``name`` is set; ``False`` when this wandb's schema lacks it.

    Example:
        >>> record_has(parse_record(b""), "history"), record_has(parse_record(b""), "no_such_field")
        (False, False)
    """
    descriptor = getattr(message, "DESCRIPTOR", None)
    if message is None or descriptor is None or name not in descriptor.fields_by_name:
        return False
    return bool(message.HasField(name))


def run_id_validator() -> Callable[[str], None] | None:
    """wandb's own check of a run id (raises on an id wandb refuses), or ``None`` without one.

    Example:
        >>> check = run_id_validator()  # doctest: +SKIP
        >>> check("run 50%")  # doctest: +SKIP
    """
    try:
        from wandb.sdk.wandb_settings import Settings

        validate = Settings.validate_run_id
    except Exception:  # a wandb without it
        return None

    def check(value: str) -> None:
        validate(value, None)

    return check


def flyte_client() -> Any | None:
    """The Flyte client ``flyte.init(...)`` configured for a remote endpoint, or ``None``.

    Example:
        >>> flyte_client() is None  # doctest: +SKIP
        True
    """
    try:
        from flyte._initialize import _get_init_config

        config = _get_init_config()
    except Exception:  # a flyte without it, or not initialised
        return None
    return getattr(config, "client", None) if config is not None else None


def add_reference_entry(artifact: Any, path: str, uri: str) -> bool:
    """Add to ``artifact`` the manifest entry ``add_reference(uri, checksum=False)`` makes, without
    the storage handler (which for cloud URIs needs the cloud's SDK even when nothing is read).

    Returns ``False`` when this wandb has no such entry class (the caller falls back to
    ``add_reference``).

    Example:
        >>> add_reference_entry(artifact, "model.pt", "s3://bucket/model.pt")  # doctest: +SKIP
        True
    """
    try:
        from wandb.sdk.artifacts.artifact_manifest_entry import ArtifactManifestEntry
    except ImportError:
        return False
    artifact.manifest.add_entry(ArtifactManifestEntry(path=path, ref=uri, digest=uri))
    return True


def watch_task_execution(started: Callable[[], Any], ended: Callable[[Any], None]) -> bool:
    """Call ``started()`` when a Flyte function task's body begins in this process, ``ended(token)`` after.

    Every action a process runs (a local run's tasks, a pod's one action, the concurrent actions of
    a reusable container) goes through the task's ``execute``; ``started`` runs in the action's
    own context. Nothing is watched before this is called; ``False`` when flyte is not imported or
    has no such method. Idempotent (the callbacks of the first call stay).

    Example:
        >>> watch_task_execution(lambda: None, lambda token: None) in (True, False)
        True
    """
    # private flyte API: flyte._task.AsyncFunctionTaskTemplate.execute (2.0 and later)
    flyte_task = sys.modules.get("flyte._task")
    task_class = getattr(flyte_task, "AsyncFunctionTaskTemplate", None)
    original = getattr(task_class, "execute", None)
    if task_class is None or not callable(original):
        return False
    if getattr(original, "_flyteplugins_wandb", False):
        return True

    @functools.wraps(original)
    async def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        token = started()
        try:
            return await original(self, *args, **kwargs)
        finally:
            ended(token)

    execute._flyteplugins_wandb = True  # type: ignore[attr-defined]
    task_class.execute = execute
    return True


def task_action(ctx: Any) -> Any | None:
    """The action of the task running here, also inside a ``flyte.trace`` (``TaskContext.task_action``);
    ``None`` on flyte releases that do not record it (there a trace's ``ctx.action`` is its own).

    Example:
        >>> task_action(object()) is None
        True
    """
    return getattr(ctx, "task_action", None)


# --- the cold start ------------------------------------------------------------------------------


def real_wandb_init() -> Callable[..., Any]:
    """wandb's own ``init`` function, even while ``wandb.init`` is patched or wrapped by a test suite."""
    try:
        from wandb.sdk import wandb_init

        return wandb_init.init  # type: ignore[no-any-return]
    except (ImportError, AttributeError):  # pragma: no cover - a wandb without this module layout
        import wandb

        return wandb.init


_LAUNCH_INPUTS_MODULE = "wandb.sdk.launch.inputs.internal"
_prepared = False
_prepare_lock = threading.Lock()
# How often to look for the service's port file while it starts (wandb itself looks every 200 ms,
# while the service is ready after about 10 ms).
_PORT_FILE_POLL_SECONDS = 0.005


def prepare_wandb() -> None:
    """Take two fixed waits out of the first run start of a process; idempotent and thread-safe.

    - wandb polls for its service's port file every 200 ms, and the service answers in about
      10 ms: the first ``wandb.init`` of every process (every remote task) waits 190 ms for
      nothing. The poll here looks every 5 ms, still bounded by wandb's own timeout.
    - Every ``wandb.init`` applies W&B Launch inputs staged by the user's code, and to look for
      them imports ``wandb.sdk.launch`` and W&B's public API (about 230 ms and several MB the
      first time). Inputs can only have been staged through that module, so while it has not
      been imported there are none, and the look-up is skipped.

    Each change is made only when the internal it touches is there, as this wandb release has it.

    Example:
        >>> prepare_wandb()  # doctest: +SKIP
    """
    global _prepared
    if _prepared:
        return
    with _prepare_lock:
        if _prepared:
            return
        _prepared = True
        _poll_port_file_sooner()
        _skip_absent_launch_inputs()


def _poll_port_file_sooner() -> None:
    try:
        from wandb.sdk.lib.service import service_port_file
    except ImportError:  # pragma: no cover - a wandb without this module
        return
    sleep = getattr(service_port_file, "_SLEEP", None)
    if not callable(sleep) or getattr(sleep, "_flyteplugins_wandb", False):
        return

    def short_sleep(seconds: float) -> None:
        sleep(min(seconds, _PORT_FILE_POLL_SECONDS))

    short_sleep._flyteplugins_wandb = True  # type: ignore[attr-defined]
    service_port_file._SLEEP = short_sleep


def _skip_absent_launch_inputs() -> None:
    try:
        from wandb.sdk.wandb_run import Run
    except ImportError:  # pragma: no cover - a wandb without this module
        return
    original = getattr(Run, "_detect_and_apply_job_inputs", None)
    if not callable(original) or getattr(original, "_flyteplugins_wandb", False):
        return

    def detect_and_apply_job_inputs(self: Any) -> None:
        if _LAUNCH_INPUTS_MODULE in sys.modules:
            original(self)

    detect_and_apply_job_inputs._flyteplugins_wandb = True  # type: ignore[attr-defined]
    Run._detect_and_apply_job_inputs = detect_and_apply_job_inputs


# --- exit-time telemetry -------------------------------------------------------------------------


def bound_exit_telemetry(seconds: Callable[[], float]) -> bool:
    """Bound wandb's exit-time usage telemetry by ``seconds()``, asked when the process exits.

    wandb (0.25 and later) exports usage metrics and logs through OpenTelemetry; at exit its
    proxy flushes them, each exporter posting to the W&B server with a 10 s timeout, one after the
    other: against a server that accepts and never answers, a pod outlives its task by 20 s.
    The flush keeps running, on a daemon thread, for at most ``seconds()``; what it has not
    delivered by then is dropped (later exports see no server). Telemetry stays on. ``False``
    when this wandb has no such proxy. Idempotent.

    Example:
        >>> bound_exit_telemetry(lambda: 1.0) in (True, False)  # doctest: +SKIP
        True
    """
    # private wandb API: wandb.analytics.opentelemetry.opentelemetry_proxy.OpenTelemetryProxy
    try:
        from wandb.analytics.opentelemetry import opentelemetry_proxy
    except ImportError:
        return False
    proxy_class = getattr(opentelemetry_proxy, "OpenTelemetryProxy", None)
    original = getattr(proxy_class, "shutdown", None)
    if proxy_class is None or not callable(original):
        return False
    if getattr(original, "_flyteplugins_wandb", False):
        return True

    @functools.wraps(original)
    def shutdown(self: Any, *args: Any, **kwargs: Any) -> None:
        limit = max(0.0, seconds())
        finished = threading.Event()

        def flush() -> None:
            try:
                original(self, *args, **kwargs)
            finally:
                finished.set()

        threading.Thread(target=flush, name="flyteplugins-wandb-telemetry", daemon=True).start()
        if not finished.wait(limit):
            # private wandb API: the proxy's answer to "does the server take telemetry?"
            self._server_supports_proxy = False
            logger.debug("wandb's usage telemetry not flushed within %.1f s of exit: dropped", limit)

    shutdown._flyteplugins_wandb = True  # type: ignore[attr-defined]
    proxy_class.shutdown = shutdown
    return True
