"""A minimal headless-Chromium driver over the DevTools protocol's pipe transport.

One browser process serves every page of a test session (launching Chromium per page costs
seconds each on a busy machine). The protocol is JSON messages separated by NUL bytes on
file descriptors 3 (to the browser) and 4 (from it), which ``--remote-debugging-pipe``
opens: no websocket library, no npm package, only the standard library.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import threading
import time
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--hide-scrollbars",
    "--mute-audio",
]


class BrowserError(RuntimeError):
    pass


def _as_fds_3_and_4(read_end: int, write_end: int) -> None:
    # in the child, before exec: move both ends out of the way first, so that placing one
    # on fd 3 or 4 cannot close the other
    read_end = fcntl.fcntl(read_end, fcntl.F_DUPFD, 10)
    write_end = fcntl.fcntl(write_end, fcntl.F_DUPFD, 10)
    os.dup2(read_end, 3)
    os.dup2(write_end, 4)


class Browser:
    """``Browser(chromium, profile)``; ``open(url, width)`` loads a page in a fixed-width
    viewport and waits for its math; ``evaluate(js)`` returns the value of an expression
    (awaiting a promise)."""

    def __init__(self, executable: str, profile: Path, timeout: float = 60.0):
        self.timeout = timeout
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the child reads commands on fd 3 and writes replies on fd 4
        self._proc = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
             "about:blank"],
            pass_fds=(3, 4),
            preexec_fn=lambda: _as_fds_3_and_4(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self._events: list[dict] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self._call(
            "Target.attachToTarget", {"targetId": target, "flatten": True}
        )["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")

    # ------------------------------------------------------------------ protocol

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._events.append({"method": "_closed"})
                    self._cond.notify_all()
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            with self._cond:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._replies[message["id"]] = message
                    else:
                        self._events.append(message)
                self._cond.notify_all()

    def _call(self, method: str, params: dict | None = None, session: str | None = None):
        self._next_id += 1
        ident = self._next_id
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while ident not in self._replies:
                if any(e.get("method") == "_closed" for e in self._events):
                    raise BrowserError("chromium exited")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowserError(f"no reply to {method} within {self.timeout} s")
                self._cond.wait(left)
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def send(self, method: str, params: dict | None = None):
        return self._call(method, params, self._session)

    def _wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while True:
                for k, event in enumerate(self._events):
                    if event.get("method") == method and event.get("sessionId") == self._session:
                        return self._events.pop(k)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowserError(f"no {method} within {self.timeout} s")
                self._cond.wait(left)

    # ------------------------------------------------------------------ pages

    def viewport(self, width: int, height: int = 900) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def open(self, url: str, width: int = 1400) -> None:
        """Load ``url`` at ``width`` px and wait until KaTeX has rendered every formula."""
        self.viewport(width)
        with self._cond:
            self._events = [e for e in self._events if e.get("method") != "Page.loadEventFired"]
        self.send("Page.navigate", {"url": url})
        self._wait_event("Page.loadEventFired")
        self.evaluate(
            """new Promise(done => {
                const t0 = Date.now();
                const ready = () => [...document.querySelectorAll('.arithmatex')]
                    .every(e => e.querySelector('.katex, .katex-error'));
                (function poll() {
                    if (ready() || Date.now() - t0 > 10000) done(true);
                    else setTimeout(poll, 25);
                })();
            })"""
        )

    def evaluate(self, expression: str):
        reply = self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if "exceptionDetails" in reply:
            raise BrowserError(f"script failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def close(self) -> None:
        try:
            self._call("Browser.close")
        except BrowserError:
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
