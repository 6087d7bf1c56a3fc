"""The supported wandb and flyte floors, the version gates, and ``wandb.Settings`` per wandb release.

Settings that need a newer wandb than the one installed are dropped by
:func:`settings_for_installed_wandb` with a warning that names the feature, the installed and the
needed version; everything else keeps working. The releases a gate names are constants here, so
that ``docs/versions.md`` has one table to follow.

Example:
    >>> from flyteplugins.wandb._compat.versions import version_tuple
    >>> version_tuple("0.19.10") < version_tuple("0.23.0") <= version_tuple("0.31.0rc1")
    True
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .init_arguments import version_tuple

__all__ = [
    "MIN_FLYTE",
    "MIN_WANDB",
    "NON_PRIMARY_OFFLINE_FINISH",
    "TEARDOWN_AFTER_FAILED_INIT",
    "WANDB_FEATURES",
    "WandbFeature",
    "explicit_settings",
    "run_id_validator",
    "settings_computed_fields",
    "settings_fields_set",
    "settings_for_installed_wandb",
    "version_tuple",
    "wandb_at_least",
    "wandb_supports_setting",
    "wandb_version",
    "warn_once",
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
NON_PRIMARY_OFFLINE_FINISH = "0.26.1"
# wandb.teardown() after an online wandb.init that failed waits forever before 0.28.2.
TEARDOWN_AFTER_FAILED_INIT = "0.28.2"


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


_warned: set[str] = set()


def warn_once(key: str, message: str, *args: object) -> None:
    """Log ``message`` (``%``-style ``args``) as a warning, the first time ``key`` is warned about only.

    The version gates of every compat module warn through it, once per process each.

    Example:
        >>> warn_once("example", "W&B: %s", "said once")  # doctest: +SKIP
    """
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
        warn_once(
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
        and not wandb_at_least(NON_PRIMARY_OFFLINE_FINISH)
    ):
        # Outside shared mode (offline) each writer has its own folder; the setting only decides,
        # at sync time, whose exit finishes the run.
        del kept["x_update_finish_state"]
        warn_once(
            "x_update_finish_state",
            "W&B: a non-primary writer of a shared run that is not in shared mode (e.g. offline) needs "
            "wandb>=%s to finish (older releases wait forever); wandb %s is installed, so the "
            "writer's exit also counts as the run's when its folder is synced. Upgrade wandb to get it.",
            NON_PRIMARY_OFFLINE_FINISH,
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
