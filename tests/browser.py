"""Headless Chromium for the tests that look at a page the way a person would: one way to find the
browser, and a small client of its DevTools protocol over a pipe (no extra package, no port).

``find_browser()`` names the executable or ``None``; ``require_browser()`` skips the calling test
with the reason when there is none (``.ci/run`` installs Debian's ``chromium`` where it can, and says
so when it cannot). ``open_page()`` starts a browser with the network cut off (every host name fails
to resolve except 127.0.0.1, and every connection that is not to the loopback goes to a proxy that
refuses), and records each request the page makes, so a test can assert that nothing left the
machine.

Example::

    with open_page(width=1280, height=800) as page:
        page.goto("http://127.0.0.1:8000/")
        page.evaluate("document.title")
        page.requests  # every URL the page asked for
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Set by .ci/run when it could not install a browser, so the skips say why (outside the package's
# FLYTEPLUGINS_WANDB_* names, which are its settings).
UNAVAILABLE_REASON_ENV = "CI_NO_BROWSER_REASON"


def find_browser() -> str | None:
    """The headless browser's executable: ``$CHROMIUM`` if set, else the first of CANDIDATES on PATH."""
    given = os.environ.get("CHROMIUM")
    if given:
        return shutil.which(given)
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


def require_browser() -> str:
    """The browser's executable, or skip the calling test saying why there is none."""
    browser = find_browser()
    if browser is None:
        why = os.environ.get(UNAVAILABLE_REASON_ENV) or (
            "no headless browser on PATH (one of: " + ", ".join(CANDIDATES) + "); "
            "Debian: apt-get install -y chromium (.ci/run installs it when run as root)"
        )
        pytest.skip(why)
    return browser


def base_flags(profile: Path) -> list[str]:
    """Flags every test browser gets: headless, no sandbox (root in CI), a throwaway profile."""
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ]


OFFLINE_FLAGS = [
    # Host names do not resolve (except the loopback address), and anything not to the loopback is
    # sent to port 9 of 127.0.0.1, which refuses: the page gets the network an air-gapped reader has.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
]


def screenshot(browser: str, page: Path, shot: Path, width: int, height: int, home: Path) -> None:
    """Save a ``width`` x ``height`` PNG of ``page`` (a file) to ``shot``, offline, with ``home`` as HOME."""
    subprocess.run(
        [
            browser,
            *base_flags(home / "profile"),
            *OFFLINE_FLAGS,
            f"--screenshot={shot}",
            f"--window-size={width},{height}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=90,
        check=True,
        env={**os.environ, "HOME": str(home)},
    )


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGB(A) pixels of an 8-bit, non-interlaced PNG (Chromium's)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, previous = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, [bytes(row[i : i + 3]) for row in rows for i in range(0, stride, channels)]


class BrowserError(RuntimeError):
    """The browser answered a command with an error, or did not answer in time."""


class Page:
    """One tab of a headless Chromium driven over the DevTools protocol (``--remote-debugging-pipe``)."""

    def __init__(self, process: subprocess.Popen[bytes], send: int, receive: int, timeout: float) -> None:
        self._process, self._send, self._receive, self._timeout = process, send, receive, timeout
        self._buffer = b""
        self._next_id = 0
        self._session = ""
        self._events: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.console: list[str] = []

    # The protocol: JSON messages separated by NUL bytes, in both directions.
    def _write(self, message: dict[str, Any]) -> None:
        os.write(self._send, json.dumps(message).encode() + b"\0")

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise BrowserError("the browser did not answer in time")
            ready, _, _ = select.select([self._receive], [], [], 0.5)
            if ready:
                chunk = os.read(self._receive, 1 << 20)
                if not chunk:
                    raise BrowserError(f"the browser exited (code {self._process.poll()})")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        self._note(message)
        return message

    def _note(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        params = message.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled":
            args = params["args"]
            self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
        elif method:
            self._events.append(message)

    def command(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True) -> Any:
        """Send one protocol command and return its result (raise BrowserError on an error)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self._session:
            message["sessionId"] = self._session
        self._write(message)
        deadline = time.monotonic() + self._timeout
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def wait_for(self, event: str) -> dict[str, Any]:
        """Wait for the next protocol event named ``event`` (one seen already counts) and return it."""
        deadline = time.monotonic() + self._timeout
        while True:
            for i, message in enumerate(self._events):
                if message.get("method") == event:
                    del self._events[: i + 1]
                    return message
            self._events.clear()
            self._read(deadline)

    def open(self, width: int, height: int) -> None:
        target = self.command("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self._session = self.command(
            "Target.attachToTarget", {"targetId": target, "flatten": True}, session=False
        )["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            self.command(f"{domain}.enable")
        self.command(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def goto(self, url: str) -> None:
        """Load ``url`` and wait for its load event."""
        self._events.clear()
        result = self.command("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"cannot load {url}: {result['errorText']}")
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.command(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True}
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    def document(self) -> dict[str, Any]:
        """The whole DOM, closed shadow roots included (the page's own scripts cannot see into those)."""
        root: dict[str, Any] = self.command("DOM.getDocument", {"depth": -1, "pierce": True})["root"]
        return root

    def screenshot(self) -> bytes:
        """A PNG of the viewport."""
        return base64.b64decode(self.command("Page.captureScreenshot", {"format": "png"})["data"])


@contextmanager
def open_page(
    *, width: int = 1280, height: int = 800, offline: bool = True, timeout: float = 60.0
) -> Iterator[Page]:
    """A fresh headless browser with one tab of ``width`` x ``height`` CSS pixels; skips without one."""
    browser = require_browser()
    with tempfile.TemporaryDirectory(prefix="browser-") as home:
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()

        def wire() -> None:
            # The browser reads commands from fd 3 and writes answers to fd 4 (moved out of the way
            # first, in case either pipe end already is 3 or 4). Everything else the test process has
            # open is not inherited (Python opens files close-on-exec).
            commands = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            answers = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(commands, 3)
            os.dup2(answers, 4)

        flags = [*base_flags(Path(home) / "profile"), "--remote-debugging-pipe"]
        if offline:
            flags += OFFLINE_FLAGS
        process = subprocess.Popen(
            [browser, *flags, "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire,
            close_fds=False,
            env={**os.environ, "HOME": home},
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        page = Page(process, to_browser_w, from_browser_r, timeout)
        try:
            page.open(width, height)
            yield page
        finally:
            with suppress(BrowserError, OSError):
                page.command("Browser.close", session=False)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            os.close(to_browser_w)
            os.close(from_browser_r)
