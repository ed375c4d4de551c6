"""Evidence a failed scenario leaves behind: sockets, counters and a capture.

A scenario test asks for the ``evidence`` fixture and names the hosts it
drives; a packet capture runs on the first of them for the whole test. When
the test fails, ``ss -tanp`` and ``nstat -az`` of every host and the capture
are saved under ``test-reports/evidence/<test>/`` and the failure report
names the files. When it passes, nothing is kept.
"""

from __future__ import annotations

import contextlib
import io
import re
import tarfile
from pathlib import Path

import docker.errors

from integration.harness import ROOT, Host

EVIDENCE_ROOT = ROOT / "test-reports" / "evidence"
CAPTURE = "/tmp/socklab-evidence.pcap"


class Evidence:
    def __init__(self, test_name: str) -> None:
        self.directory = EVIDENCE_ROOT / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        self.hosts: list[Host] = []
        self.capturing: Host | None = None

    def watch(self, *hosts: Host) -> None:
        """Collect from these hosts on failure; capture packets on the first one."""
        self.hosts.extend(h for h in hosts if h not in self.hosts)
        if self.capturing is None and hosts:
            self.capturing = hosts[0]
            self.capturing.container.exec_run(
                ["tcpdump", "-i", "any", "-U", "--immediate-mode", "-B", "8192", "-s", "256",
                 "-w", CAPTURE], detach=True,
                user="root")

    def collect(self) -> list[Path]:
        self.directory.mkdir(parents=True, exist_ok=True)
        saved = []
        for host in self.hosts:
            for name, argv in (("ss", ["ss", "-tanp"]), ("nstat", ["nstat", "-az"])):
                path = self.directory / f"{host.alias}.{name}.txt"
                try:
                    result = host.run(*argv, timeout=10, user="root")
                except docker.errors.APIError as error:
                    # The host is gone or stopped (what failed the test, perhaps): say so in
                    # its file; a collector that raised here would hide the test's own failure.
                    path.write_text(f"could not run {' '.join(argv)} on {host.alias}: {error}\n")
                else:
                    path.write_text(result.stdout + result.stderr)
                saved.append(path)
        if self.capturing is not None:
            saved.extend(self._save_capture(self.capturing))
        return saved

    def stop(self) -> None:
        if self.capturing is not None:
            with contextlib.suppress(docker.errors.NotFound):  # the test removed the host
                self.capturing.run("pkill", "-INT", "-x", "tcpdump", timeout=10, user="root")

    def _save_capture(self, host: Host) -> list[Path]:
        self.stop()
        try:
            stream, _ = host.container.get_archive(CAPTURE)
        except Exception:
            return []
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            member = archive.extractfile(archive.getmembers()[0])
            path = self.directory / f"{host.alias}.pcap"
            path.write_bytes(member.read() if member else b"")
        return [path]
