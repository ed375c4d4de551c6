"""The few Docker Engine API calls the watcher makes, over the engine's Unix socket.

Standard library only: the watcher also runs from a container of the lab
image on a lab VM (``--pid host``, the engine's socket mounted), which has no
Docker SDK. It lists a lab's containers (by network or label), reads each one's PID and
host name once, and follows the servers' logs (one open stream each).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import struct
import urllib.parse
from collections.abc import Iterator
from typing import Any

DEFAULT_SOCKET = "/var/run/docker.sock"
API = "/v1.41"  # Docker 20.10


def socket_path() -> str:
    """The engine's socket: ``DOCKER_HOST`` when it is ``unix://…``, else the default."""
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://"):]
    if host:
        raise EngineError(f"DOCKER_HOST={host}: the watcher reads a local engine's socket "
                          "only (unix://…); run it on the machine the lab runs on")
    return DEFAULT_SOCKET


class EngineError(Exception):
    """The engine could not be reached, or refused a call."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Engine:
    """A Docker engine reached through its socket (a new connection per call)."""

    def __init__(self, path: str | None = None, timeout: float = 10.0) -> None:
        self.path = path or socket_path()
        self.timeout = timeout

    def _open(self, url: str, timeout: float | None) -> tuple[Any, Any]:
        connection = _UnixConnection(self.path, timeout)
        try:
            connection.request("GET", API + url)
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise EngineError(f"the Docker engine at {self.path}: {error}") from error
        if response.status != 200:
            body = response.read().decode(errors="replace")
            connection.close()
            raise EngineError(f"GET {url}: {response.status} {body.strip()}")
        return connection, response

    def get(self, url: str) -> Any:
        connection, response = self._open(url, self.timeout)
        try:
            return json.loads(response.read())
        except (OSError, http.client.HTTPException, ValueError) as error:
            raise EngineError(f"GET {url}: {type(error).__name__}: {error}") from error
        finally:
            connection.close()

    def containers(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        """Running containers matching ``filters`` (the API's: ``label``, ``network``, …)."""
        query = urllib.parse.quote(json.dumps({**filters, "status": ["running"]}))
        return list(self.get(f"/containers/json?filters={query}"))

    def inspect(self, container_id: str) -> dict[str, Any]:
        return dict(self.get(f"/containers/{container_id}/json"))

    def log_lines(self, container_id: str, tail: int) -> Iterator[str]:
        """The container's output from its last ``tail`` lines on, as it comes (blocks)."""
        connection, response = self._open(
            f"/containers/{container_id}/logs?follow=1&stdout=1&stderr=1&tail={tail}", None)
        try:
            yield from frames_to_lines(iter(lambda: response.read(8), b""), response.read)
        finally:
            connection.close()


def frames_to_lines(headers: Iterator[bytes], read: Any) -> Iterator[str]:
    """Lines of the engine's multiplexed log stream (8-byte headers: stream, size)."""
    pending = b""
    for header in headers:
        if len(header) < 8:
            return
        (size,) = struct.unpack(">I", header[4:8])
        pending += read(size)
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode(errors="replace")
