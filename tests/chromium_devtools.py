"""A headless chromium driven over the DevTools protocol, for tests of the pages socklab writes.

Debian's ``chromium --headless`` is started in a session of its own and
driven over ``--remote-debugging-pipe`` (JSON messages ended by a NUL byte on
its fds 3 and 4): no port, so parallel xdist workers cannot collide, and
nothing listens. No host name resolves in it (``--host-resolver-rules``)
but 127.0.0.1, where a test serves a page (make watch's): whatever a page
asks of the network never leaves the machine, and the request is still
seen. A :class:`Tab` opens a page, evaluates JavaScript in
it (the DOM after its scripts ran), clicks as a mouse does, and lists what
the browser logged (console, uncaught exceptions, CSP violations) and every
request made. :func:`kept_on_failure` keeps a failed page's screenshot, DOM
and log and names them in the failure. :meth:`Chromium.close` leaves no
process behind (its session killed; what survives is reported).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Any one DevTools command, and a page's load, must be done within this (generous: make test
# runs these beside the integration tests, on a machine whose load may be in the hundreds).
TIMEOUT = 60.0
VIEWPORT = {"width": 1280, "height": 900}

# Run in the child between fork and chromium: the two pipe ends it is handed become the fds
# 3 (commands in) and 4 (answers and events out) --remote-debugging-pipe talks on. (A
# trampoline rather than preexec_fn, which is not safe beside the threads xdist runs.)
ONTO_FDS_3_4 = (
    "import fcntl, os, sys\n"
    "r, w = (fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3])\n"
    "os.dup2(r, 3); os.dup2(w, 4); os.close(r); os.close(w)\n"
    "os.execvp(sys.argv[3], sys.argv[3:])\n")

FLAGS = (
    "--headless", "--remote-debugging-pipe", "--no-first-run", "--no-default-browser-check",
    "--disable-gpu", "--disable-extensions", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps",
    "--disable-breakpad", "--disable-crash-reporter", "--mute-audio", "--hide-scrollbars",
    "--disable-dev-shm-usage",
    # No name resolves: whatever the page asked of the network could never leave the machine
    # (and the request is still seen, and fails the test).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    f"--window-size={VIEWPORT['width']},{VIEWPORT['height']}")


class DevToolsError(RuntimeError):
    """Chromium answered a command with an error, did not answer, or went away."""


class Chromium:
    """A headless chromium in a session of its own, driven over --remote-debugging-pipe.

    ``home`` takes its profile, its log, and is its HOME and XDG directories:
    nothing is written outside, and even its crash handler (which leaves the
    session) names ``home`` in its command line.
    """

    def __init__(self, binary: str, home: Path) -> None:
        self.home = home
        self.log = home / "chromium.log"
        self.events: list[dict[str, Any]] = []
        self._buffer = b""
        self._last_id = 0
        home.mkdir(parents=True, exist_ok=True)
        argv = [binary, *FLAGS, f"--user-data-dir={home / 'profile'}"]
        if os.geteuid() == 0:
            argv.append("--no-sandbox")  # chromium refuses to run as root with its sandbox
        argv.append("about:blank")
        env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
               "XDG_CACHE_HOME": str(home / "cache")}
        theirs_in, self._commands = os.pipe()
        self._answers, theirs_out = os.pipe()
        try:
            with self.log.open("wb") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-c", ONTO_FDS_3_4, str(theirs_in), str(theirs_out),
                     *argv], pass_fds=(theirs_in, theirs_out), stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        except BaseException:
            for fd in (self._commands, self._answers):
                os.close(fd)
            raise
        finally:
            os.close(theirs_in)
            os.close(theirs_out)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        kept = [line for line in text.splitlines() if "dbus" not in line]  # no D-Bus here
        return "\n".join(kept[-lines:]) or "(empty)"

    # -- the protocol: JSON messages, each ended by a NUL byte -----------------------------

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The result of one command; the events that come meanwhile go to ``events``."""
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method,
                                   "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._commands, data):]
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline, f"{method} (in {timeout:.0f} s)")
            if reply.get("id") == message["id"]:
                if "error" in reply:
                    raise DevToolsError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str, since: int,
                   timeout: float = TIMEOUT) -> dict[str, Any]:
        """The first event ``method`` of ``session`` from ``events[since]`` on."""
        deadline = time.monotonic() + timeout
        seen = since
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            seen = len(self.events)
            self.events.append(self._receive(deadline, f"{method} (waited {timeout:.0f} s)"))

    def _receive(self, deadline: float, waiting: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._answers], [], [], max(left, 0))
            if not ready:
                raise DevToolsError(f"chromium did not answer: {waiting}; its log ends:\n"
                                    f"{self.log_tail()}")
            chunk = os.read(self._answers, 1 << 20)
            if not chunk:
                raise DevToolsError(f"chromium closed its DevTools pipe ({waiting}): it "
                                    f"exited with {self.process.poll()}; its log ends:\n"
                                    f"{self.log_tail()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    # -- the end -----------------------------------------------------------------------------

    def leftovers(self) -> list[str]:
        """Live processes of its session, or naming its home (its crash handler): pid, name."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace")
            except OSError:
                continue  # gone meanwhile
            name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:]
            state, _parent, _group, session = rest.split()[:4]
            if state in "ZX":
                continue
            if int(session) == self.process.pid or str(self.home) in cmdline:
                found.append(f"{entry.name} {name}")
        return found

    def close(self) -> list[str]:
        """Asks chromium to close, kills its session anyway; what still runs after 5 s."""
        with contextlib.suppress(DevToolsError, OSError):
            self.send("Browser.close", timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for fd in (self._commands, self._answers):
            with contextlib.suppress(OSError):
                os.close(fd)
        deadline = time.monotonic() + 5
        while (left := self.leftovers()) and time.monotonic() < deadline:
            for line in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(line.split()[0]), signal.SIGKILL)
            time.sleep(0.1)
        return left


@dataclass
class Tab:
    """One page of the browser, attached by a flat DevTools session."""

    browser: Chromium
    session: str = ""
    target: str = ""

    def open(self) -> Tab:
        self.target = self.browser.send("Target.createTarget", {"url": "about:blank"})[
            "targetId"]
        self.session = self.browser.send("Target.attachToTarget",
                                         {"targetId": self.target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {**VIEWPORT, "deviceScaleFactor": 1, "mobile": False})
        return self

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.send(method, params, self.session)

    def events(self, method: str) -> list[dict[str, Any]]:
        return [e["params"] for e in self.browser.events
                if e.get("sessionId") == self.session and e.get("method") == method]

    def goto(self, url: str) -> None:
        since = len(self.browser.events)
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise DevToolsError(f"opening {url}: {result['errorText']}")
        self.browser.wait_event("Page.loadEventFired", self.session, since)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise DevToolsError(f"{expression[:80]!r} threw: "
                                f"{details.get('exception', {}).get('description') or details}")
        return result["result"].get("value")

    @property
    def url(self) -> str:
        return str(self.evaluate("location.href"))

    def click(self, selector: str) -> int:
        """A left click, as a mouse gives it, in the middle of the element ``selector``.

        The element is scrolled into view and must be what is under the
        pointer there (not hidden or covered). Returns the index of the next
        event, to wait for what the click causes.
        """
        where = self.evaluate(f"""(() => {{
            const e = document.querySelector({json.dumps(selector)});
            if (!e) return null;
            e.scrollIntoView({{block: "center"}});
            const r = e.getBoundingClientRect(), x = r.left + r.width / 2,
                  y = r.top + r.height / 2, top = document.elementFromPoint(x, y);
            return {{x: x, y: y, w: r.width, h: r.height,
                     hit: !!top && (top === e || e.contains(top))}};
        }})()""")
        assert where is not None, f"no {selector} on the page to click"
        assert where["w"] > 0 and where["h"] > 0 and where["hit"], (
            f"{selector} cannot be clicked: {where} (hidden, empty or covered)")
        since = len(self.browser.events)
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent",
                      {"type": kind, "x": where["x"], "y": where["y"], "clickCount": 1,
                       "button": "none" if kind == "mouseMoved" else "left"})
        return since

    def problems(self) -> list[str]:
        """Everything the page logged as an error or a warning, and uncaught exceptions."""
        found = []
        for call in self.events("Runtime.consoleAPICalled"):
            if call["type"] in ("error", "warning", "assert"):
                text = " ".join(str(a.get("value", a.get("description", "")))
                                for a in call.get("args", []))
                found.append(f"console.{call['type']}: {text}")
        for thrown in self.events("Runtime.exceptionThrown"):
            details = thrown["exceptionDetails"]
            found.append("uncaught: " + str((details.get("exception") or {}).get(
                "description") or details.get("text")))
        for logged in self.events("Log.entryAdded"):
            entry = logged["entry"]
            if entry["level"] in ("error", "warning"):
                found.append(f"{entry['source']} {entry['level']}: {entry['text']} "
                             f"({entry.get('url', '')})")
        return found

    def requests(self) -> list[str]:
        return [sent["request"]["url"] for sent in self.events("Network.requestWillBeSent")]

    def keep(self, directory: Path) -> list[Path]:
        """The page as it is now: screenshot, DOM, and what the browser logged; the files."""
        directory.mkdir(parents=True, exist_ok=True)
        saved = []
        with contextlib.suppress(DevToolsError, KeyError, OSError):
            shot = self.call("Page.captureScreenshot",
                             {"format": "png", "captureBeyondViewport": True})
            path = directory / "screenshot.png"
            path.write_bytes(base64.b64decode(shot["data"]))
            saved.append(path)
        with contextlib.suppress(DevToolsError, OSError):
            dom = self.evaluate("document.documentElement.outerHTML")
            path = directory / "dom.html"
            path.write_text(f"<!-- {self.url} after its scripts ran -->\n{dom}\n")
            saved.append(path)
        path = directory / "browser.log"
        path.write_text("problems:\n" + "".join(f"  {p}\n" for p in self.problems())
                        + "requests:\n" + "".join(f"  {r}\n" for r in self.requests())
                        + f"chromium's own log ends:\n{self.browser.log_tail(40)}\n")
        saved.append(path)
        return saved

    def close(self) -> None:
        with contextlib.suppress(DevToolsError):
            self.browser.send("Target.closeTarget", {"targetId": self.target})


@contextlib.contextmanager
def kept_on_failure(tab: Tab, directory: Path) -> Iterator[None]:
    """A failure inside keeps the page in ``directory`` (Tab.keep) and names the files in
    its message."""
    try:
        yield
    except Exception as error:
        saved = tab.keep(directory)
        raise AssertionError(f"{error}\n\nThe page as it was, kept: "
                             f"{', '.join(str(p) for p in saved)}") from error


def start(home: Path) -> Chromium:
    """Debian's chromium, started and answering; the test fails when it is not installed
    (skipped with SOCKLAB_NO_BROWSER=1)."""
    binary = shutil.which("chromium")
    if binary is None:
        if os.environ.get("SOCKLAB_NO_BROWSER") == "1":
            pytest.skip("SOCKLAB_NO_BROWSER=1: no page is tried in a browser")
        pytest.fail("Debian's chromium is not installed, and the pages the grader writes are "
                    "tested in it: apt-get install chromium (.ci/run does); "
                    "SOCKLAB_NO_BROWSER=1 skips these tests", pytrace=False)
    chromium = Chromium(binary, home)
    try:
        chromium.send("Browser.getVersion")
    except BaseException:
        chromium.close()
        raise
    return chromium
