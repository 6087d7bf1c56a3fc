"""Host normalisation, the W&B web address derived from an API address, and URL building."""

from __future__ import annotations

import pytest

from flyteplugins.wandb import WandbConfigError
from flyteplugins.wandb._urls import (
    app_url_from_api_url,
    group_url,
    normalize_host,
    run_url,
    sweep_url,
    url_segment,
)

API_URLS = [
    "https://api.wandb.ai",  # W&B cloud
    "https://api.qa.wandb.ai",
    "https://api.eu.wandb.ai",
    "https://api.wandb.test",  # W&B development
    "http://api.wandb.test:8080",
    "https://api.company.com",  # on-prem cloud
    "http://api.company.com:8443/prefix",
    "https://wandb.company.com",  # self-hosted
    "https://wandb.company.com/wandb",  # self-hosted behind a path prefix
    "http://localhost:8080",
    "http://127.0.0.1:8080",
    "https://forge.coreweave.com",  # CoreWeave Forge
    "https://api.forge.coreweave.com",
    "https://qa.forge.coreweave.com",
    "https://api.qa.forge.coreweave.com",
    "https://forge.coreweave.com/api/wandb",
]


@pytest.mark.parametrize("api_url", API_URLS)
def test_app_url_matches_the_wandb_sdk(api_url: str) -> None:
    import wandb.util

    assert app_url_from_api_url(api_url) == wandb.util.api_to_app_url(api_url)


@pytest.mark.parametrize(
    "base_url",
    [
        "https://api.wandb.ai/",
        "https://api.company.com/",
        "https://wandb.company.com/",
        "https://wandb.company.com/wandb/",
        "http://localhost:8080/",
        "https://api.forge.coreweave.com",
        "https://forge.coreweave.com/api/wandb",
    ],
)
def test_app_url_matches_the_wandb_settings_for_a_base_url(base_url: str) -> None:
    """The SDK strips a trailing slash from WANDB_BASE_URL before deriving the web address."""
    import wandb

    host = normalize_host(base_url, "env WANDB_BASE_URL", field="WANDB_BASE_URL")
    assert app_url_from_api_url(host) == wandb.Settings(base_url=base_url).app_url


@pytest.mark.parametrize(
    ("value", "normalised"),
    [
        ("https://wandb.ai", "https://wandb.ai"),
        ("https://wandb.ai/", "https://wandb.ai"),
        ("https://wandb.ai//", "https://wandb.ai"),
        ("  https://wandb.example.com/  ", "https://wandb.example.com"),
        ("HTTPS://wandb.example.com", "https://wandb.example.com"),
        ("http://localhost:8080/", "http://localhost:8080"),
        ("https://wandb.example.com/prefix/", "https://wandb.example.com/prefix"),
    ],
)
def test_host_is_normalised(value: str, normalised: str) -> None:
    assert normalize_host(value, "wandb_config()") == normalised


@pytest.mark.parametrize(
    "value",
    [
        "wandb.ai",
        "javascript:alert(1)",
        "ftp://x",
        "file:///etc/passwd",
        "https://wandb.example.com/?next=evil",
        "https://wandb.example.com/#frag",
        "https://",
        "https://wandb example.com",
        "",
        None,
        42,
    ],
)
def test_bad_host_is_rejected_with_origin(value: object) -> None:
    with pytest.raises(WandbConfigError) as info:
        normalize_host(value, "somewhere")
    assert info.value.field == "host"
    assert info.value.origin == "somewhere"
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    ("segment", "quoted"),
    [
        ("plain-name_1.2~x", "plain-name_1.2~x"),
        ("my project", "my%20project"),
        ("a#b?c%d", "a%23b%3Fc%25d"),
        ("a/b", "a%2Fb"),
        ("ünï", "%C3%BCn%C3%AF"),
        ("{{.actionName}}", "{{.actionName}}"),
        ("my run-{{.actionName}}", "my%20run-{{.actionName}}"),
        ("{{.runName}} x-{{.actionName}}", "{{.runName}}%20x-{{.actionName}}"),
        ("{not a template}", "%7Bnot%20a%20template%7D"),
    ],
)
def test_url_segments_are_quoted_and_templates_kept(segment: str, quoted: str) -> None:
    assert url_segment(segment) == quoted


def test_url_builders() -> None:
    host = "https://wandb.example.com/prefix"
    assert run_url(host, "team x", "proj", "r 1") == f"{host}/team%20x/proj/runs/r%201"
    assert group_url(host, "team", "proj", "g#1") == f"{host}/team/proj/groups/g%231"
    assert sweep_url(host, "team", "proj", None) == f"{host}/team/proj/sweeps"
    assert sweep_url(host, "team", "proj", "abc") == f"{host}/team/proj/sweeps/abc"
