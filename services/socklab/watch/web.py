"""The live view as a web page on 127.0.0.1: one page, its data pushed as Server-Sent Events.

``GET /`` is the page (page.html, beside this file): self-contained (no
external assets), large type for a projector, one card per host, and small
charts of each host's accept queues and connection states over the last
five minutes, kept in the page.
``GET /events`` streams every snapshot as one ``data:`` line of JSON;
``GET /snapshot.json`` is the latest one. One thread takes the snapshots, so
any number of open pages cost the lab the same.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

PAGE = Path(__file__).with_name("page.html")


class Feed:
    """The latest snapshot, and a way to wait for the next one."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.latest: dict[str, Any] | None = None
        self.serial = 0

    def publish(self, snapshot: dict[str, Any]) -> None:
        with self.condition:
            self.latest, self.serial = snapshot, self.serial + 1
            self.condition.notify_all()

    def next_after(self, serial: int, timeout: float) -> tuple[int, dict[str, Any] | None]:
        """The snapshot after ``serial``, or None when none came within ``timeout`` (the
        last one is not sent twice: the page would chart it twice)."""
        with self.condition:
            if not self.condition.wait_for(lambda: self.serial > serial, timeout):
                return serial, None
            return self.serial, self.latest


def handler_for(feed: Feed, stop: threading.Event) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", PAGE.read_bytes())
            elif path == "/snapshot.json":
                self._send(200, "application/json", json.dumps(feed.latest).encode())
            elif path == "/events":
                self._events()
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _events(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            serial = 0
            while not stop.is_set():
                serial, snapshot = feed.next_after(serial, timeout=5.0)
                try:
                    if snapshot is None:
                        self.wfile.write(b": waiting\n\n")
                    else:
                        self.wfile.write(b"data: " + json.dumps(snapshot).encode() + b"\n\n")
                    self.wfile.flush()
                except OSError:  # the page was closed
                    return

    return Handler


def serve(take: Callable[[], dict[str, Any]], port: int, every: float,
          announce: Callable[[str], None], stop: threading.Event | None = None) -> None:
    """Serve the page on 127.0.0.1:``port``; a snapshot every ``every`` seconds until stopped."""
    stop = stop or threading.Event()
    feed = Feed()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler_for(feed, stop))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="watch-web").start()
    announce(f"socklab watch: http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C to stop)")
    try:
        while not stop.is_set():
            feed.publish(take())
            stop.wait(every)
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
