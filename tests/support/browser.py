"""Headless Chromium driven over the DevTools protocol, for tests that look at a page as a person.

Chromium talks CDP over a pipe (`--remote-debugging-pipe`: commands on fd 3, replies on fd 4,
one JSON message per NUL), so no port, websocket library or driver binary is needed. Every
request the page makes is recorded from `Network.requestWillBeSent`, and Content-Security-Policy
violations from a listener installed before the page's own scripts run, so a test can assert
that a page fetched nothing. The browser is started with its own background networking off and
every host name resolving to nothing, so even a bad page cannot reach the network.

Debian's package is `chromium` (`.ci/run` installs it when missing).
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Self

NO_NETWORK_FLAGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-extensions",
    "--disable-sync",
    "--metrics-recording-only",
    "--no-pings",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    # Any name resolves to nothing and any proxy use fails: a request cannot leave the machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--hide-scrollbars",
    "--font-render-hinting=none",
)

_RECORD_VIOLATIONS = """
window.__leaktraceViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__leaktraceViolations.push(e.blockedURI + " (" + e.violatedDirective + ")");
});
"""

LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(RuntimeError):
    pass


@dataclass
class Page:
    browser: Chromium
    session: str
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 30.0
    ) -> dict[str, Any]:
        return self.browser.call(method, params, session=self.session, timeout=timeout)

    def evaluate(self, expression: str, *, timeout: float = 30.0) -> Any:
        reply = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            timeout=timeout,
        )
        if "exceptionDetails" in reply:
            raise BrowserError(f"{expression!r} raised: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, *, timeout: float = 30.0, interval: float = 0.1) -> Any:
        """Poll a JS expression until it is truthy; its value, or BrowserError on timeout."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            self.browser.pump(interval)
        raise BrowserError(
            f"timed out after {timeout:.0f} s waiting for {expression!r} (last {value!r})"
        )

    def screenshot(self, *, clip_height: int | None = None, scale: float = 1.0) -> bytes:
        """PNG of the whole page (or its top `clip_height` CSS pixels), scaled by `scale`."""
        size = self.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        height = min(size[1], clip_height) if clip_height else size[1]
        params: dict[str, Any] = {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size[0], "height": height, "scale": scale},
        }
        return base64.b64decode(self.call("Page.captureScreenshot", params, timeout=60)["data"])

    def violations(self) -> list[str]:
        return list(self.evaluate("window.__leaktraceViolations || []") or [])

    def non_local_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]


class Chromium:
    """One headless browser process; use as a context manager so it always ends."""

    def __init__(
        self,
        executable: str | None = None,
        *,
        width: int = 1600,
        height: int = 1000,
        extra_flags: tuple[str, ...] = (),
    ) -> None:
        exe = executable or find_chromium()
        if exe is None:
            raise BrowserError("no chromium found (Debian: apt-get install chromium)")
        self._profile = tempfile.TemporaryDirectory(prefix="leaktrace-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire_fds() -> None:  # in the child: its fd 3 reads our commands, fd 4 writes replies
            a, b = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._proc = subprocess.Popen(
            [
                exe,
                *NO_NETWORK_FLAGS,
                "--remote-debugging-pipe",
                f"--user-data-dir={self._profile.name}",
                f"--window-size={width},{height}",
                *extra_flags,
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Not pass_fds=(3, 4): the child marks pass_fds inheritable before preexec_fn runs,
            # so that failed (EBADF) whenever the parent's own fd 3 or 4 was closed, as in the
            # suite on 3.12. Without close_fds the child keeps only inheritable fds: 0-2 and the
            # two dup2'ed in wire_fds (Python opens every other fd non-inheritable, PEP 446).
            preexec_fn=wire_fds,
            close_fds=False,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._next_id = 0
        self._pages: dict[str, Page] = {}
        self.width, self.height = width, height

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._send({"id": -1, "method": "Browser.close"})
                self._proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait(timeout=10)
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        self._profile.cleanup()

    # --- protocol --------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        os.write(self._to_child, json.dumps(message).encode() + b"\0")

    def _read_one(self, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._from_child], [], [], left)
            if not ready:
                return None
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise BrowserError(f"chromium closed the pipe (exit status {self._proc.poll()})")
            self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def _dispatch(self, message: dict[str, Any]) -> None:
        page = self._pages.get(message.get("sessionId", ""))
        if page is None:
            return
        if message.get("method") == "Network.requestWillBeSent":
            page.requests.append(message["params"]["request"]["url"])
        elif message.get("method") == "Page.javascriptDialogOpening":
            # An alert() would block every later evaluation: note it and dismiss it.
            page.dialogs.append(str(message["params"].get("message", "")))
            self._next_id += 1
            self._send(
                {
                    "id": self._next_id,
                    "method": "Page.handleJavaScriptDialog",
                    "params": {"accept": True},
                    "sessionId": page.session,
                }
            )

    def pump(self, seconds: float) -> None:
        """Handle events for a while (request records arrive as events)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            message = self._read_one(left)
            if message is None:
                return
            self._dispatch(message)

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        self._next_id += 1
        mid = self._next_id
        message: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._send(message)
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_one(max(0.0, deadline - time.monotonic()))
            if reply is None:
                raise BrowserError(f"no reply to {method} within {timeout:.0f} s")
            if reply.get("id") == mid:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self._dispatch(reply)

    def open(self, url: str, *, timeout: float = 30.0) -> Page:
        """A new tab that records its requests from the first one, loaded with `url`."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = self._pages[session] = Page(self, session)
        page.call("Network.enable")
        page.call("Page.enable")
        page.call("Page.addScriptToEvaluateOnNewDocument", {"source": _RECORD_VIOLATIONS})
        page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
        )
        page.call("Page.navigate", {"url": url}, timeout=timeout)
        page.wait_for("document.readyState === 'complete'", timeout=timeout)
        return page


# --- PNG ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Image:
    width: int
    height: int
    channels: int
    pixels: bytes  # rows of width*channels bytes, filters undone

    def gray(self, step: int = 1) -> list[int]:
        """Luma of every `step`-th pixel (in both directions)."""
        out = []
        c = self.channels
        row_len = self.width * c
        for y in range(0, self.height, step):
            row = self.pixels[y * row_len : (y + 1) * row_len]
            for x in range(0, self.width, step):
                r, g, b = row[x * c], row[x * c + 1], row[x * c + 2]
                out.append((299 * r + 587 * g + 114 * b) // 1000)
        return out


def decode_png(data: bytes) -> Image:
    """8-bit RGB/RGBA non-interlaced PNG (what Chromium writes), decoded with zlib alone."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat = 8, bytearray()
    width = height = channels = 0
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height = int.from_bytes(body[0:4], "big"), int.from_bytes(body[4:8], "big")
            depth, colour, interlace = body[8], body[9], body[12]
            if depth != 8 or colour not in (2, 6) or interlace:
                raise ValueError(
                    f"unsupported PNG (depth {depth}, colour type {colour}, interlace {interlace})"
                )
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(bytes(idat))
    stride = width * channels
    out = bytearray(height * stride)
    prev = bytearray(stride)
    src = 0
    for y in range(height):
        filt = raw[src]
        line = bytearray(raw[src + 1 : src + 1 + stride])
        src += 1 + stride
        _unfilter(filt, line, prev, channels)
        out[y * stride : (y + 1) * stride] = line
        prev = line
    return Image(width, height, channels, bytes(out))


def _unfilter(filt: int, line: bytearray, prev: bytearray, bpp: int) -> None:
    n = len(line)
    if filt == 0:
        return
    if filt == 1:
        for i in range(bpp, n):
            line[i] = (line[i] + line[i - bpp]) & 0xFF
    elif filt == 2:
        for i in range(n):
            line[i] = (line[i] + prev[i]) & 0xFF
    elif filt == 3:
        for i in range(n):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
    elif filt == 4:
        for i in range(n):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            line[i] = (line[i] + pred) & 0xFF
    else:
        raise ValueError(f"bad PNG filter {filt}")


def variance(values: list[int]) -> float:
    if not values:
        return 0.0
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / len(values)
