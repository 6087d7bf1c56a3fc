"""List the installed Python packages once per process, not once per W&B run.

For every run it starts, wandb 0.31 records the installed packages as the run's
``requirements.txt``: ``Run._on_start`` (``wandb/sdk/wandb_run.py``) calls
``wandb.util.working_set()``, which reads the metadata of every installed distribution
(``importlib.metadata``, twice per distribution), and hands the list to its service, which writes
``files/requirements.txt`` and registers it for upload. That scan is about two thirds of an
offline ``wandb.init``; a process that starts many runs (one per task, per rank, per sweep
trial) pays it each time for the same answer.

The run-start code therefore turns wandb's own scan off (:func:`settings_overrides`) and, once
the run exists, hands the service a list computed once per process (:func:`after_init`). The
service then does exactly what it does by default: same file, same bytes, same upload
registration, and still nothing for a non-primary writer (``x_primary=False``). The list is
computed again only when the distributions visible on ``sys.path`` change (a package installed,
upgraded or removed at run time), so it stays the truth.

Example:
    >>> from flyteplugins.wandb._requirements import settings_overrides
    >>> settings_overrides()
    {'x_save_requirements': False}
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import threading
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, NamedTuple

from . import _compat

__all__ = [
    "Package",
    "after_init",
    "clear_cache",
    "installed_packages",
    "settings_overrides",
    "write_requirements",
]

logger = logging.getLogger("flyteplugins.wandb")

_SETTING = "x_save_requirements"
_REQUIREMENTS_FILE = "requirements.txt"


class Package(NamedTuple):
    """One installed distribution, shaped like wandb's own (``key``, ``version``).

    Example:
        >>> Package("wandb", "0.31.0").requirement
        'wandb==0.31.0'
    """

    key: str
    version: str

    @property
    def requirement(self) -> str:
        """The pinned requirement line wandb writes for this package.

        Example:
            >>> Package("torch", "2.13.0").requirement
            'torch==2.13.0'
        """
        return f"{self.key}=={self.version}"


_Fingerprint = tuple[tuple[str, tuple[str, ...]], ...]
_METADATA_SUFFIXES = (".dist-info", ".egg-info")

_lock = threading.Lock()
_cached: tuple[_Fingerprint, tuple[Package, ...]] | None = None
# Set by settings_overrides() in the context that then calls wandb.init() and after_init(), so
# after_init() publishes only for a run whose own scan this module turned off, never for a run
# whose caller disabled requirements itself.
_pending: ContextVar[bool] = ContextVar("flyteplugins_wandb_requirements_pending", default=False)


def settings_overrides(user_settings: Mapping[str, Any] | Any | None = None) -> dict[str, Any]:
    """``wandb.Settings`` fields to pass to the next ``wandb.init`` made in this context.

    Returns ``{"x_save_requirements": False}`` and arms :func:`after_init` for the run that
    follows, or ``{}`` when requirements are not wanted: ``user_settings`` (a mapping or a
    ``wandb.Settings`` given to ``wandb.init``) sets ``x_save_requirements`` itself, or the
    process-wide W&B settings (``WANDB__SAVE_REQUIREMENTS=false``, settings files) turned it off.

    Example:
        >>> settings_overrides()
        {'x_save_requirements': False}
        >>> settings_overrides({"x_save_requirements": False})
        {}
    """
    if _user_decides(user_settings) or not _globally_enabled():
        _pending.set(False)
        return {}
    _pending.set(True)
    return {_SETTING: False}


def after_init(run: Any) -> None:
    """Record the installed packages for ``run``, right after ``wandb.init`` returned it.

    Does nothing unless the preceding :func:`settings_overrides` call in this context turned
    wandb's own scan off for this run. Never raises: a run without its requirements file is
    better than a task that fails for it.

    Example:
        >>> import wandb  # doctest: +SKIP
        >>> settings = settings_overrides()  # doctest: +SKIP
        >>> run = wandb.init(mode="offline", settings=wandb.Settings(**settings))  # doctest: +SKIP
        >>> after_init(run)  # doctest: +SKIP
    """
    if not _pending.get():
        return
    _pending.set(False)
    settings = getattr(run, "settings", None)
    if getattr(settings, _SETTING, None) is not False:
        # Our override did not reach the run (the caller's settings won): wandb scanned itself.
        return
    try:
        write_requirements(run)
    except Exception:
        logger.warning(
            "could not record the installed packages for W&B run %s", getattr(run, "id", "?"), exc_info=True
        )


def write_requirements(run: Any) -> bool:
    """Have ``run`` record the installed packages as wandb would, from this process's cached list.

    The list goes to the run's service the way wandb sends its own (it writes
    ``files/requirements.txt`` and registers it for upload; a non-primary shared-mode writer
    records none). With a wandb that lacks that internal call, the file is written into the
    run's ``files`` directory and saved with ``run.save`` instead. Returns whether the packages
    were handed over; a disabled run records nothing.

    Example:
        >>> import wandb  # doctest: +SKIP
        >>> settings = wandb.Settings(x_save_requirements=False)  # doctest: +SKIP
        >>> run = wandb.init(mode="offline", settings=settings)  # doctest: +SKIP
        >>> write_requirements(run)  # doctest: +SKIP
        True
    """
    settings = getattr(run, "settings", None)
    if settings is None or getattr(settings, "mode", None) == "disabled":
        return False
    packages = installed_packages()
    if _compat.publish_python_packages(run, packages):
        return True
    return _write_and_save(run, packages)


def installed_packages() -> tuple[Package, ...]:
    """The installed distributions, as wandb lists them, computed once while ``sys.path`` is unchanged.

    Example:
        >>> any(p.key == "wandb" for p in installed_packages())
        True
    """
    global _cached
    fingerprint = _fingerprint()
    cached = _cached
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    with _lock:
        cached = _cached
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        packages = _scan()
        _cached = (fingerprint, packages)
        return packages


def _scan() -> tuple[Package, ...]:
    """What ``wandb.util.working_set()`` lists, parsing only each distribution's metadata headers.

    wandb reads every distribution's whole metadata file twice (for ``Name``, then for
    ``Version``), long descriptions included; the headers end at the first blank line, and parsing
    just them with the same parser gives the same values, in the same order, with the same
    distributions skipped (no ``Name``, undecodable metadata), in a fraction of the time.
    """
    import email
    import warnings
    from importlib.metadata import distributions

    # Each distribution's metadata is wrapped in the adapter of the implementation that found it
    # (the standard library's importlib.metadata, or the importlib_metadata backport once a package
    # has imported it): missing headers then behave exactly as in wandb's scan.
    adapters: dict[str, Any] = {}

    def adapter_of(dist: Any) -> Any:
        module = type(dist).__module__
        if module not in adapters:
            try:
                adapters[module] = importlib.import_module(f"{module}._adapters").Message
            except (ImportError, AttributeError):  # pragma: no cover - an implementation without it
                adapters[module] = None
        return adapters[module]

    packages = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for dist in distributions():
            # The same errors wandb's scan skips a distribution for.
            with contextlib.suppress(KeyError, UnicodeDecodeError, TypeError):
                text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or dist.read_text("")
                if text is None:
                    continue  # no metadata file: wandb's scan fails on it (TypeError) and skips it
                parsed = email.message_from_string(text.split("\n\n", 1)[0])
                adapt = adapter_of(dist)
                headers = adapt(parsed) if adapt is not None else parsed
                packages.append(Package(str(headers["Name"]), str(headers["Version"])))
    return tuple(packages)


def clear_cache() -> None:
    """Forget the cached package list; the next run scans again.

    Example:
        >>> clear_cache()
    """
    global _cached
    with _lock:
        _cached = None


def _fingerprint() -> _Fingerprint:
    # importlib.metadata finds a distribution by its *.dist-info / *.egg-info entry in a sys.path
    # directory, and the entry's name carries the version: installing, removing or upgrading a
    # package changes these names, while files a task writes next to its script do not.
    entries: list[tuple[str, tuple[str, ...]]] = []
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as listing:
                names = tuple(sorted(e.name for e in listing if e.name.endswith(_METADATA_SUFFIXES)))
        except NotADirectoryError:
            try:
                names = (str(os.stat(entry).st_mtime_ns),)
            except OSError:
                names = ()
        except OSError:
            names = ()
        entries.append((entry, names))
    return tuple(entries)


def _user_decides(user_settings: Mapping[str, Any] | Any | None) -> bool:
    if user_settings is None:
        return False
    if isinstance(user_settings, Mapping):
        return _SETTING in user_settings
    return _SETTING in (_compat.settings_fields_set(user_settings) or ())


def _globally_enabled() -> bool:
    try:
        return bool(getattr(_compat.process_settings(), _SETTING, True))
    except Exception:
        logger.debug("could not read the process-wide W&B settings", exc_info=True)
        return True


def _write_and_save(run: Any, packages: tuple[Package, ...]) -> bool:
    settings = run.settings
    if getattr(settings, "x_primary", True) is False:
        return False
    files_dir = str(getattr(settings, "files_dir", "") or run.dir)
    path = os.path.join(files_dir, _REQUIREMENTS_FILE)
    os.makedirs(files_dir, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(f"{package.requirement}\n" for package in packages)
    run.save(path, base_path=files_dir, policy="now")
    return True
