"""The keyword arguments of ``wandb.init`` in every supported wandb release, known without wandb.

Setting names are checked when they are given (a decorator applied at import, a
``wandb_config(...)`` call): that check must not cost a ``wandb`` import. This table lists the
arguments per release range; ``tests/test_compat.py`` compares the row of the installed wandb
with its real ``wandb.init`` signature (also in the version matrix, on the oldest wandb), so the
table cannot drift. At run start the exact check against the installed SDK still applies.

Re-exported by :mod:`flyteplugins.wandb._compat`, next to the version table of :mod:`.versions`.

Example:
    >>> "save_code" in known_init_arguments()
    True
    >>> init_arguments_for("0.22.1") == WANDB_INIT_ARGUMENTS[0].names
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "INIT_ARGUMENTS_VERIFIED_UP_TO",
    "WANDB_INIT_ARGUMENTS",
    "InitArguments",
    "init_argument_since",
    "init_arguments_for",
    "known_init_arguments",
    "newer_than_table",
    "version_tuple",
]


@dataclass(frozen=True, slots=True)
class InitArguments:
    """The ``wandb.init`` keyword arguments of the wandb releases ``first`` to ``last`` (``None``: newest).

    Example:
        >>> WANDB_INIT_ARGUMENTS[0].first
        '0.22.1'
    """

    first: str
    last: str | None
    names: frozenset[str]


# Read from wandb/sdk/wandb_init.py of every release tag v0.22.1 ... v0.31.0: the names did not
# change in that range (0.23.1 only moved `anonymous` to the end). When a release adds or removes
# an argument, close the last row (`last`) and add one for the new release.
WANDB_INIT_ARGUMENTS: tuple[InitArguments, ...] = (
    InitArguments(
        "0.22.1",
        None,
        frozenset(
            {
                "entity",
                "project",
                "dir",
                "id",
                "name",
                "notes",
                "tags",
                "config",
                "config_exclude_keys",
                "config_include_keys",
                "allow_val_change",
                "group",
                "job_type",
                "mode",
                "force",
                "anonymous",
                "reinit",
                "resume",
                "resume_from",
                "fork_from",
                "save_code",
                "tensorboard",
                "sync_tensorboard",
                "monitor_gym",
                "settings",
            }
        ),
    ),
)
# The newest release the table was checked against. A newer wandb may accept names the table does
# not know: those are not refused when given, only at run start if that wandb refuses them.
INIT_ARGUMENTS_VERIFIED_UP_TO = "0.31.0"


def version_tuple(text: str) -> tuple[int, ...]:
    """The numeric release part of a version string, for comparisons.

    Example:
        >>> version_tuple("0.25.1"), version_tuple("2.12.0b3"), version_tuple("unknown")
        ((0, 25, 1), (2, 12, 0), ())
    """
    numbers: list[int] = []
    for part in text.split(".")[:3]:
        match = re.match(r"\d+", part)
        if match is None:
            break
        numbers.append(int(match.group()))
    return tuple(numbers)


def init_arguments_for(version: str) -> frozenset[str] | None:
    """The ``wandb.init`` arguments of wandb ``version``; ``None`` for a release outside the table.

    Example:
        >>> "fork_from" in (init_arguments_for("0.25.0") or ())
        True
        >>> init_arguments_for("0.10.0") is None
        True
    """
    wanted = version_tuple(version)
    for row in WANDB_INIT_ARGUMENTS:
        if version_tuple(row.first) <= wanted and (row.last is None or wanted <= version_tuple(row.last)):
            return row.names
    return None


def known_init_arguments() -> frozenset[str]:
    """Every name some supported wandb release accepts as a ``wandb.init`` argument.

    Example:
        >>> "projcet" in known_init_arguments()
        False
    """
    return frozenset().union(*(row.names for row in WANDB_INIT_ARGUMENTS))


def init_argument_since(name: str) -> str | None:
    """The first wandb release whose ``wandb.init`` accepts ``name``, when that is newer than the
    oldest supported release (``None`` otherwise, or for a name no release in the table accepts).

    Example:
        >>> init_argument_since("save_code") is None
        True
    """
    for index, row in enumerate(WANDB_INIT_ARGUMENTS):
        if name in row.names:
            return row.first if index else None
    return None


def newer_than_table(version: str) -> bool:
    """Whether wandb ``version`` is newer than the releases the table was checked against.

    Example:
        >>> newer_than_table("0.22.1"), newer_than_table("0.99.0")
        (False, True)
    """
    return version_tuple(version) > version_tuple(INIT_ARGUMENTS_VERIFIED_UP_TO)
