"""Pure: what a run's log says of its lineage, for the report page.

The plugin records lineage in places wandb keeps in the run's transaction log (see the Lineage
page): the owner's run notes point back to Flyte; every writer of the run has a config entry
(``flyte`` for the task that started the run, ``flyte/<label>`` for every other writer) naming
its Flyte run, action, task and page, and the artifacts of its ``File``/``Dir`` inputs
(``used``); ``log_outputs`` logs reference artifacts; online, the SDK also records the artifacts
the run used. :func:`read_lineage` gathers these from an
:class:`~flyteplugins.wandb._offline.OfflineRun` (as the report's reader builds it: the history
reader folds every record but the history through the offline reader's own fold).

Values are taken as the log has them and never trusted: an entry that is not the plugin's (a
user's own ``flyte`` config key that is not a dict) is left out, and only text and numbers are
kept from an entry's fields.

Example:
    >>> from pathlib import Path
    >>> from flyteplugins.wandb._offline import OfflineRun
    >>> run = OfflineRun(path=Path("."), run_id="r", notes="Flyte local run r1, action a0",
    ...                  config={"flyte": {"run": "r1", "action": "a0", "task": "env.train",
    ...                          "used": {"data": {"artifact": "d.csv-1a2b", "uri": "s3://b/d.csv"}}}})
    >>> lineage = read_lineage(run)
    >>> [(w.key, w.fields["action"]) for w in lineage.writers], lineage.uses[0].artifact
    ([('flyte', 'a0')], 'd.csv-1a2b')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._offline import OfflineArtifact, OfflineRun

__all__ = ["OWNER_KEY", "WRITER_FIELDS", "RunLineage", "Use", "Writer", "read_lineage"]

# The owner's run-config key (``_lineage.CONFIG_KEY``; a test keeps the two equal). Not imported:
# the report's helper process reads logs without loading the settings machinery.
OWNER_KEY = "flyte"
# A writer entry's fields the page shows, in order.
WRITER_FIELDS = ("task", "function", "run", "action", "attempt", "mode", "rank", "org", "project", "domain")
_MAX_WRITERS = 64
_MAX_USES = 256


@dataclass(frozen=True)
class Writer:
    """One Flyte action that wrote to the run, from its config entry.

    Attributes:
        key: its config key (``flyte`` for the run's owner, ``flyte/<label>`` for the others).
        fields: the entry's identity fields (of :data:`WRITER_FIELDS`) that are text or numbers.
        url: the action's page in the Flyte console (remote runs), as recorded: not checked.
        metadata: where Flyte keeps the action's metadata (local runs: a local folder).

    Example:
        >>> Writer("flyte", {"task": "env.train"}).owner
        True
    """

    key: str
    fields: dict[str, str | int | float]
    url: str | None = None
    metadata: str | None = None

    @property
    def owner(self) -> bool:
        """Whether this is the entry of the task that started the run.

        Example:
            >>> Writer("flyte/a1", {}).owner
            False
        """
        return self.key == OWNER_KEY


@dataclass(frozen=True)
class Use:
    """An artifact (or blob) a writer's task used: one of its ``File``/``Dir`` inputs.

    Example:
        >>> Use("flyte", "data", "d.csv-1a2b", "s3://b/d.csv").input
        'data'
    """

    writer: str
    input: str
    artifact: str
    uri: str


@dataclass(frozen=True)
class RunLineage:
    """A run's lineage as its log records it.

    Attributes:
        notes: the run's notes (the owner's line back to Flyte, unless the user set notes).
        writers: the Flyte actions that wrote to the run (owner first).
        logged: the artifacts the run logged (``log_outputs``), with their references.
        uses: the artifacts of the writers' ``File``/``Dir`` inputs (config ``used`` entries).
        used_online: the artifacts the SDK recorded as used (online runs only).

    Example:
        >>> RunLineage().empty
        True
    """

    notes: str | None = None
    writers: list[Writer] = field(default_factory=list)
    logged: list[OfflineArtifact] = field(default_factory=list)
    uses: list[Use] = field(default_factory=list)
    used_online: list[OfflineArtifact] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Whether the log records no lineage at all.

        Example:
            >>> RunLineage(notes="n").empty
            False
        """
        return not (self.notes or self.writers or self.logged or self.uses or self.used_online)


def _scalar(value: Any) -> str | int | float | None:
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, (str, int, float)) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _writer_keys(config: Mapping[str, Any]) -> list[str]:
    keys = [key for key in config if key == OWNER_KEY or key.startswith(OWNER_KEY + "/")]
    return sorted(keys, key=lambda key: (key != OWNER_KEY, key))[:_MAX_WRITERS]


def read_lineage(run: OfflineRun) -> RunLineage:
    """The lineage recorded in a run's log: notes, writers' entries, logged and used artifacts.

    Example:
        >>> from pathlib import Path
        >>> read_lineage(OfflineRun(path=Path("."), run_id="r", config={"flyte": "mine"})).empty
        True
    """
    writers: list[Writer] = []
    uses: list[Use] = []
    for key in _writer_keys(run.config):
        entry = run.config[key]
        if not isinstance(entry, Mapping):
            continue  # a user's own "flyte" value: not a writer's entry
        fields = {name: value for name in WRITER_FIELDS if (value := _scalar(entry.get(name))) is not None}
        writers.append(Writer(key, fields, _text(entry.get("url")), _text(entry.get("metadata"))))
        used = entry.get("used")
        if isinstance(used, Mapping):
            for name, spec in used.items():
                if len(uses) >= _MAX_USES:
                    break
                if isinstance(spec, Mapping):
                    uses.append(
                        Use(key, str(name), _text(spec.get("artifact")) or "", _text(spec.get("uri")) or "")
                    )
    return RunLineage(
        notes=run.notes,
        writers=writers,
        logged=list(run.artifacts),
        uses=uses,
        used_online=_distinct_uses(run.used_artifacts),
    )


def _distinct_uses(used: list[OfflineArtifact]) -> list[OfflineArtifact]:
    """One entry per artifact used: online, ``use_artifact(draft)`` writes the draft (with its
    references) and then a use record naming the committed version (``name:v3``)."""
    drafts = {(artifact.name, artifact.type) for artifact in used if artifact.references}
    out: list[OfflineArtifact] = []
    for artifact in used:
        if not artifact.references and (artifact.name.partition(":")[0], artifact.type) in drafts:
            continue
        if artifact not in out:
            out.append(artifact)
    return out
