"""Headless Chromium driven over the DevTools protocol (a WebSocket; the ``websockets`` library).

Chromium binds its DevTools port itself (``--remote-debugging-port=0``) and writes it, with the
browser's WebSocket path, to ``<user-data-dir>/DevToolsActivePort``: no port is picked here.
One page target is attached in flat mode (``sessionId`` on every command), which is all a page
test needs: navigate, evaluate JavaScript, click, take a screenshot.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

#: Where to look for a browser: $KXFEED_CHROMIUM first, then Debian's and others' names.
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    explicit = os.environ.get("KXFEED_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class CdpError(RuntimeError):
    """The browser answered a command with an error, or a page script threw."""


class Chromium:
    """A headless Chromium process with its own profile under ``tmp`` (a context manager)."""

    def __init__(self, binary: str, tmp: Path, *, width: int = 1400, height: int = 860) -> None:
        self.binary = binary
        self.profile = tmp / "chromium-profile"
        self.log_path = tmp / "chromium.log"
        self.size = (width, height)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> str:
        """Start the browser; returns its DevTools WebSocket URL once it has written it."""
        self.profile.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--headless=new",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}",
            f"--window-size={self.size[0]},{self.size[1]}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-dev-shm-usage",  # CI containers have a tiny /dev/shm
            "--disable-background-networking",
            "--disable-extensions",
            "--disable-sync",
            "--mute-audio",
            "about:blank",
        ]
        if os.geteuid() == 0:  # Chromium refuses to run its sandbox as root (CI runs as root)
            args.insert(1, "--no-sandbox")
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                lines = active.read_text().split()
                if len(lines) >= 2 and lines[0].isdigit():
                    return f"ws://127.0.0.1:{int(lines[0])}{lines[1]}"
            time.sleep(0.05)
        raise RuntimeError(f"chromium wrote no {active} in {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(15)

    def log_tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Page:
    """One page target of a browser, over the browser's DevTools WebSocket."""

    def __init__(self, ws: ClientConnection, session: str) -> None:
        self.ws = ws
        self.session = session
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        #: Console messages and uncaught exceptions of the page, in order (for failure reports).
        self.console: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, *, width: int, height: int) -> Page:
        ws = await connect(url, max_size=64 * 1024 * 1024, open_timeout=30)
        page = cls(ws, "")
        page._reader = asyncio.create_task(page._read())
        target = await page.send("Target.createTarget", {"url": "about:blank"})
        attached = await page.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page.session = attached["sessionId"]
        for method in ("Page.enable", "Runtime.enable"):
            await page.send(method)
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        return page

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            fut = self._waiting.pop(msg["id"], None) if "id" in msg else None
            if fut is not None and not fut.done():
                fut.set_result(msg)
            elif msg.get("method") == "Runtime.consoleAPICalled":
                args = msg["params"].get("args", [])
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in args)
                self.console.append(f"console.{msg['params'].get('type')}: {text}")
            elif msg.get("method") == "Runtime.exceptionThrown":
                details = msg["params"].get("exceptionDetails", {})
                exc = details.get("exception", {}).get("description") or details.get("text", "")
                self.console.append(f"exception: {exc}")

    async def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
        n = next(self._ids)
        msg: dict[str, Any] = {"id": n, "method": method, "params": params or {}}
        if self.session:
            msg["sessionId"] = self.session
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[n] = fut
        await self.ws.send(json.dumps(msg))
        answer = await asyncio.wait_for(fut, timeout)
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def navigate(self, url: str) -> None:
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CdpError(f"navigate {url}: {result['errorText']}")

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        result = await self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CdpError(details.get("exception", {}).get("description") or details.get("text", ""))
        return result.get("result", {}).get("value")

    async def poll(self, expression: str, timeout: float, interval: float = 0.1) -> Any:
        """Evaluate ``expression`` until it is truthy; its value, or None at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value or time.monotonic() >= deadline:
                return value or None
            await asyncio.sleep(interval)

    async def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the centre of the element ``selector`` names."""
        box = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        if not box:
            raise CdpError(f"nothing on the page matches {selector!r}")
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}
            )

    async def screenshot(self, path: Path) -> Path:
        result = await self.send("Page.captureScreenshot", {"format": "png"}, timeout=60.0)
        path.write_bytes(base64.b64decode(result["data"]))
        return path

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
