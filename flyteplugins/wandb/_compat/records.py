"""The transaction log's protobuf records (private wandb API): decoding, kinds, fields, flat reading.

Fields come and go across wandb releases, and a log may have been written by another release
than the one reading it: every field is read through :func:`record_field` / :func:`record_has`.

Example:
    >>> from flyteplugins.wandb._compat.records import parse_record, record_kind
    >>> record_kind(parse_record(b""))
    ''
"""

from __future__ import annotations

import functools
import logging
import sys
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FlatRecords",
    "flat_records",
    "load_records_without_sdk",
    "parse_record",
    "record_field",
    "record_has",
    "record_kind",
    "record_time",
    "record_type_number",
]

logger = logging.getLogger("flyteplugins.wandb")


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
