"""Host normalisation and W&B web URLs, in one place."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from ._errors import WandbConfigError

__all__ = [
    "DEFAULT_HOST",
    "app_url_from_api_url",
    "group_url",
    "normalize_host",
    "run_url",
    "sweep_url",
    "url_segment",
]

DEFAULT_HOST = "https://wandb.ai"

# The W&B SDK (0.31) maps these CoreWeave Forge hosts to the API hosts behind them; the web UI of
# such a deployment lives under /wandb on the Forge host. Mirrored here so that links never need
# to import wandb.
_FORGE_HOSTS = {
    "forge.coreweave.com": "api.wandb.ai",
    "qa.forge.coreweave.com": "api.qa.wandb.ai",
}
_FORGE_APP_PATH = "/wandb"

_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
# Flyte renders links of remote tasks with templates such as {{.actionName}} that its backend
# fills in later: they must reach the backend unquoted.
_TEMPLATE = re.compile(r"(\{\{[^{}]*\}\})")


def app_url_from_api_url(api_url: str) -> str:
    """The W&B web UI address for a W&B API address, derived the way the W&B SDK derives it.

    Example:
        >>> app_url_from_api_url("https://api.wandb.ai")
        'https://forge.coreweave.com/wandb'
        >>> app_url_from_api_url("https://api.mycompany.com")
        'https://app.mycompany.com'
        >>> app_url_from_api_url("https://wandb.mycompany.com/")
        'https://wandb.mycompany.com'
    """
    hostname = urlsplit(api_url).hostname
    for forge, api in _FORGE_HOSTS.items():
        if hostname in (forge, f"api.{forge}", api):
            return f"https://{forge}{_FORGE_APP_PATH}"
    if "://api.wandb.test" in api_url:
        return api_url.replace("://api.", "://app.").strip("/")
    if "://api.wandb." in api_url:
        return api_url.replace("://api.", "://").strip("/")
    if "://api." in api_url:
        return api_url.replace("://api.", "://app.").strip("/")
    return api_url.rstrip("/")


def normalize_host(value: object, origin: str, field: str = "host") -> str:
    """Validate a W&B web host and return it without trailing slashes.

    Only absolute ``http`` and ``https`` URLs are accepted; a path (a W&B server behind a prefix)
    is kept, a query or fragment is not.

    Example:
        >>> normalize_host("https://wandb.example.com/", origin="wandb_config()")
        'https://wandb.example.com'
    """
    allowed = "an http(s) URL such as https://wandb.ai or https://wandb.example.com"
    if not isinstance(value, str):
        raise WandbConfigError(field, value, origin, allowed)
    text = value.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        raise WandbConfigError(field, value, origin, allowed) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise WandbConfigError(field, value, origin, allowed)
    if any(ch.isspace() for ch in text) or parts.hostname is None:
        raise WandbConfigError(field, value, origin, allowed)
    return f"{parts.scheme.lower()}://{parts.netloc}{parts.path}".rstrip("/")


def url_segment(value: str) -> str:
    """Quote one URL path segment, keeping Flyte templates such as ``{{.actionName}}`` intact.

    Example:
        >>> url_segment("a b/{{.actionName}}")
        'a%20b%2F{{.actionName}}'
    """
    if _SAFE_SEGMENT.fullmatch(value):
        return value
    if "{{" in value:
        return "".join(
            piece if _TEMPLATE.fullmatch(piece) else quote(piece, safe="") for piece in _TEMPLATE.split(value)
        )
    return quote(value, safe="")


def run_url(host: str, entity: str, project: str, run_id: str) -> str:
    """The web address of one run.

    Example:
        >>> run_url("https://wandb.ai", "team", "my project", "r1")
        'https://wandb.ai/team/my%20project/runs/r1'
    """
    return f"{host}/{url_segment(entity)}/{url_segment(project)}/runs/{url_segment(run_id)}"


def group_url(host: str, entity: str, project: str, group: str) -> str:
    """The web address of a group of runs.

    Example:
        >>> group_url("https://wandb.ai", "team", "proj", "job-a0")
        'https://wandb.ai/team/proj/groups/job-a0'
    """
    return f"{host}/{url_segment(entity)}/{url_segment(project)}/groups/{url_segment(group)}"


def sweep_url(host: str, entity: str, project: str, sweep_id: str | None) -> str:
    """The web address of a sweep, or of the project's sweeps when the id is not known yet.

    Example:
        >>> sweep_url("https://wandb.ai", "team", "proj", None)
        'https://wandb.ai/team/proj/sweeps'
    """
    base = f"{host}/{url_segment(entity)}/{url_segment(project)}/sweeps"
    return f"{base}/{url_segment(sweep_id)}" if sweep_id else base
