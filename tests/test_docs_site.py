"""The documentation site as a reader gets it: built with ``mkdocs build --strict`` into a temporary
folder, it loads nothing from the network (the docs are read air-gapped), its mermaid diagrams draw
as SVG in a browser that has no network, no code block is cut off in a 1280 px wide window, and the
pages read from disk without a web server.

The browser tests use headless Chromium (``tests/browser.py``) on the built site served from
127.0.0.1, with every other host unreachable, and skip with the reason when there is no browser.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from browser import Page, open_page

REPO = Path(__file__).resolve().parent.parent
VENDORED_MERMAID = REPO / "docs" / "assets" / "vendor" / "mermaid.min.js"
EXTERNAL = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
# CSS that fetches: @import of a remote sheet, or url(...) of a remote font or image.
CSS_EXTERNAL = re.compile(r"""@import\s+(url\()?\s*['"]?\s*(https?:)?//|url\(\s*['"]?\s*(https?:)?//""", re.I)
# <link rel=...> kinds that name a page rather than load anything.
NON_LOADING_LINKS = {"canonical", "alternate", "author", "license", "help", "next", "prev", "search"}
LOADING_ATTRIBUTES = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "frame": ("src",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "input": ("src",),
}


class _ExternalLoads(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "link":
            rels = set(values.get("rel", "").lower().split())
            if EXTERNAL.match(values.get("href", "")) and not rels <= NON_LOADING_LINKS:
                self.found.append(f'<link rel="{values.get("rel", "")}" href="{values["href"]}">')
        for name in LOADING_ATTRIBUTES.get(tag, ()):
            urls = [part.split()[0] for part in values.get(name, "").split(",") if part.split()]
            for url in urls if name.endswith("srcset") else [values.get(name, "")]:
                if EXTERNAL.match(url):
                    self.found.append(f'<{tag} {name}="{url}">')
        if CSS_EXTERNAL.search(values.get("style", "")):
            self.found.append(f'<{tag} style="{values["style"]}">')
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style and (match := CSS_EXTERNAL.search(data)):
            self.found.append(f"<style>...{data[match.start() : match.start() + 80]}...</style>")


def external_loads(html: str) -> list[str]:
    """What in an HTML page makes a browser fetch from another host: scripts, stylesheets, fonts,
    images, frames (links a reader may click are not loads)."""
    parser = _ExternalLoads()
    parser.feed(html)
    parser.close()
    return parser.found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        import material  # noqa: F401
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.skip("mkdocs-material is not installed (pip install -e '.[docs]'): the site is not built")
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return out


def _pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def test_the_checker_finds_every_kind_of_external_load() -> None:
    page = """<html><head>
      <link rel="preconnect" href="https://fonts.gstatic.com" crossorigin>
      <link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">
      <link rel="canonical" href="https://example.com/docs/">
      <script src="https://unpkg.com/mermaid@11/dist/mermaid.min.js"></script>
      <script src="//cdn.example.com/x.js"></script>
      <style>@import url("https://fonts.googleapis.com/css2?family=Inter");</style>
      <style>@font-face { src: url(https://example.com/f.woff2) }</style>
    </head><body style="background: url('http://example.com/bg.png')">
      <img srcset="local.png 1x, https://example.com/big.png 2x">
      <iframe src="http://example.com/embed"></iframe>
      <a href="https://squidfunk.github.io/mkdocs-material/">a link, not a load</a>
      <script src="assets/javascripts/bundle.js"></script><img src="images/report-tab.png">
    </body></html>"""
    found = external_loads(page)
    assert len(found) == 9, found
    not_loads = ("canonical", "squidfunk", "bundle.js", "report-tab")
    assert not any(name in f for name in not_loads for f in found)


def test_no_built_page_or_stylesheet_loads_from_the_network(site: Path) -> None:
    pages = _pages(site)
    assert len(pages) >= 15, [p.name for p in pages]
    found = {str(p.relative_to(site)): loads for p in pages if (loads := external_loads(p.read_text()))}
    assert found == {}
    sheets = {
        str(p.relative_to(site)): CSS_EXTERNAL.findall(p.read_text())
        for p in site.rglob("*.css")
        if CSS_EXTERNAL.search(p.read_text())
    }
    assert sheets == {}
    # The one place a remote script could come from: mkdocs-material fetches mermaid from a CDN
    # unless a page already defines it. Every page with a diagram loads the vendored copy.
    for path in pages:
        html = path.read_text()
        if 'class="mermaid"' in html:
            assert re.search(r'<script src="(\.\./)*assets/vendor/mermaid\.min\.js"', html), path


def test_the_vendored_mermaid_is_the_pinned_release() -> None:
    script = (REPO / "scripts" / "vendor_mermaid.sh").read_text()
    version = re.search(r"^MERMAID_VERSION=(\S+)$", script, re.M)
    digest = re.search(r"^MERMAID_SHA256=([0-9a-f]{64})$", script, re.M)
    assert version and digest, "scripts/vendor_mermaid.sh pins MERMAID_VERSION and MERMAID_SHA256"
    assert hashlib.sha256(VENDORED_MERMAID.read_bytes()).hexdigest() == digest.group(1)
    notice = (VENDORED_MERMAID.parent / "mermaid.LICENSE.txt").read_text()
    assert notice.startswith(f"mermaid {version.group(1)} ")
    assert "MIT License" in notice


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href") if tag in ("a", "link") else None
        if href and not re.match(r"^[a-z][a-z0-9+.-]*:|^#|^//", href, re.I):
            self.hrefs.append(href)


def test_every_link_between_pages_names_a_file(site: Path) -> None:
    # The site reads from disk without a web server (use_directory_urls: false): a link to a folder
    # ("quickstart/") needs a server to answer with its index.html, a link to a file does not.
    broken: dict[str, list[str]] = {}
    checked = 0
    # 404.html is the one page a server shows for any missing address: its links start at the root.
    for path in (p for p in _pages(site) if p.name != "404.html"):
        parser = _Links()
        parser.feed(path.read_text())
        for href in parser.hrefs:
            target = (path.parent / href.split("#")[0].split("?")[0]).resolve()
            checked += 1
            if not target.is_file():
                broken.setdefault(path.relative_to(site).as_posix(), []).append(href)
    assert checked > 300
    assert broken == {}


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    # One browser for the module, 1280 x 800 CSS pixels, no network but the loopback.
    with open_page(width=1280, height=800) as opened:
        yield opened


def _url(served: str, site: Path, path: Path) -> str:
    relative = path.relative_to(site).as_posix()
    return served + relative


def _visit(page: Page, url: str) -> None:
    page.requests.clear()
    page.goto(url)


def _stayed_local(page: Page, served: str) -> list[str]:
    return [u for u in page.requests if not u.startswith((served, "data:", "blob:", "about:"))]


def _shadow_svgs(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The root <svg> in the (closed) shadow root of each <div class="mermaid"> under ``node``."""
    attributes = node.get("attributes", [])
    classes = dict(zip(attributes[::2], attributes[1::2], strict=True)).get("class", "").split()
    if node.get("localName") == "div" and "mermaid" in classes:
        for root in node.get("shadowRoots", []):
            for child in root.get("children", []):
                if child.get("localName") == "svg":
                    yield child
    for child in node.get("children", []):
        yield from _shadow_svgs(child)


@pytest.mark.timeout(240)
def test_every_mermaid_diagram_draws_as_svg_without_a_network(page: Page, served: str, site: Path) -> None:
    diagrams = {p: p.read_text().count('<pre class="mermaid">') for p in _pages(site)}
    diagrams = {p: n for p, n in diagrams.items() if n}
    assert site / "reports.html" in diagrams
    assert sum(diagrams.values()) >= 6
    for path, expected in diagrams.items():
        _visit(page, _url(served, site, path))
        # mkdocs-material draws each diagram asynchronously, replacing its <pre> by a
        # <div class="mermaid"> whose shadow root holds the SVG.
        drawn = page.evaluate(
            f"""new Promise(done => {{
                const start = Date.now();
                const poll = () => {{
                    const n = document.querySelectorAll("div.mermaid").length;
                    if (n >= {expected} || Date.now() - start > 20000) done(n); else setTimeout(poll, 100);
                }};
                poll();
            }})"""
        )
        where = path.relative_to(site).as_posix()
        assert drawn == expected, (
            f"{where}: {drawn} of {expected} diagrams drawn; requests that left the machine: "
            f"{_stayed_local(page, served)}; console: {page.console}"
        )
        svgs = list(_shadow_svgs(page.document()))
        assert len(svgs) == expected, where
        for svg in svgs:
            attributes = dict(zip(svg["attributes"][::2], svg["attributes"][1::2], strict=True))
            # mermaid draws a syntax error as an SVG too: that is not a diagram.
            assert attributes.get("aria-roledescription") != "error", f"{where}: a diagram has a syntax error"
            assert svg.get("childNodeCount", len(svg.get("children", []))) > 0
        heights = page.evaluate('[...document.querySelectorAll("div.mermaid")].map(d => d.offsetHeight)')
        assert all(h > 40 for h in heights), (where, heights)
        assert _stayed_local(page, served) == [], where


@pytest.mark.timeout(240)
def test_no_code_block_is_cut_off_at_1280_px_and_nothing_is_fetched(
    page: Page, served: str, site: Path
) -> None:
    cut_off: dict[str, list[str]] = {}
    fetched: dict[str, list[str]] = {}
    pages = [p for p in _pages(site) if p.name != "404.html"]
    assert len(pages) >= 15
    for path in pages:
        _visit(page, _url(served, site, path))
        assert page.evaluate("window.innerWidth") == 1280
        wide = page.evaluate(
            """[...document.querySelectorAll("article pre, article pre > code")]
                .filter(e => e.scrollWidth > e.clientWidth + 1)
                .map(e => e.textContent.split("\\n").reduce((a, b) => (a.length >= b.length ? a : b)))"""
        )
        if wide:
            cut_off[path.relative_to(site).as_posix()] = wide
        if outside := _stayed_local(page, served):
            fetched[path.relative_to(site).as_posix()] = outside
    assert cut_off == {}
    assert fetched == {}


@pytest.mark.timeout(120)
def test_the_home_page_code_fits_unwrapped_and_shows_the_report_tab(page: Page, served: str) -> None:
    _visit(page, served)
    # The first example reads as written: no line needs the wrap that catches long lines elsewhere.
    widths = page.evaluate(
        """(() => {
            const code = document.querySelector("article pre > code");
            code.style.whiteSpace = "pre";
            return [code.scrollWidth, code.clientWidth];
        })()"""
    )
    assert widths[0] <= widths[1], widths
    shot = page.evaluate(
        """[...document.querySelectorAll("article img")]
            .filter(i => i.complete)
            .map(i => [i.getAttribute("src"), i.naturalWidth, i.getBoundingClientRect().width])"""
    )
    shown = [(src, natural, width) for src, natural, width in shot if src.endswith("images/report-tab.png")]
    assert shown and all(natural > 0 and width > 300 for _, natural, width in shown), shot


@pytest.mark.timeout(120)
def test_the_site_reads_from_disk_without_a_server(page: Page, site: Path) -> None:
    # Opened as files (file://), as an air-gapped reader with only the built folder would.
    diagrams = (REPO / "docs" / "reports.md").read_text().count("```mermaid")
    assert diagrams >= 1
    page.requests.clear()
    page.goto((site / "reports.html").as_uri())
    drawn = page.evaluate(
        f"""new Promise(done => {{
            const expected = {diagrams};
            const start = Date.now();
            const poll = () => {{
                const n = document.querySelectorAll("div.mermaid").length;
                if (n >= expected || Date.now() - start > 20000) done(n); else setTimeout(poll, 100);
            }};
            poll();
        }})"""
    )
    assert drawn == diagrams
    quickstart = page.evaluate("document.querySelector(\"nav a[href='quickstart.html']\").href")
    assert quickstart == (site / "quickstart.html").as_uri()
    page.goto(quickstart)
    assert page.evaluate('document.querySelector("article h1").textContent').startswith("Quickstart")
    assert [u for u in page.requests if not u.startswith((site.as_uri(), "data:", "blob:"))] == []
