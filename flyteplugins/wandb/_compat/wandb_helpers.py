"""wandb's private helpers the plugin reuses: a run's package list, ``config.yaml``, artifact entries.

Example:
    >>> from flyteplugins.wandb._compat.wandb_helpers import publish_python_packages
    >>> publish_python_packages(object(), [])
    False
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = [
    "add_reference_entry",
    "publish_python_packages",
    "save_config_file",
    "working_set",
]


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
