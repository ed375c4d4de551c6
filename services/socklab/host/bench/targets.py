"""How the benchmark reaches each server: host, port, greeting and echo transform. No I/O.

The four echo variants are the lab's own servers, started from their
compose/lab.yml definitions. The three references speak exactly the echo of
select-server and epoll-server (the greeting ``hello``, then each chunk
upper-cased, docs/protocols.md), so a ratio compares the loops, not the
protocols. They run with epoll-server's definition (same image, user,
limits, sysctls), only the command differs.
"""

from __future__ import annotations

from dataclasses import dataclass

HELLO = b"hello"  # select-server and epoll-server greet with it (PROTOCOLS.md)
REFERENCE_MODULE = "socklab.loadgen.refservers"
REFERENCE_PORT = 9000
REFERENCE_SERVICE = "epoll-server"  # whose compose definition the references borrow


@dataclass(frozen=True)
class EchoTarget:
    """One echo server of the benchmark."""

    name: str
    service: str  # compose/lab.yml service whose definition it runs with
    port: int
    greeting: bytes
    upper: bool  # replies are chunk.upper() (else the chunk unchanged)
    reference: bool = False
    blocking: bool = False  # serves one client at a time: concurrency 1 only

    @property
    def alias(self) -> str:
        """The host name the load generator connects to."""
        return self.service if not self.reference else f"{self.name}-ref"

    def command(self) -> list[str] | None:
        """The container's command; None keeps the compose service's own."""
        if not self.reference:
            return None
        return ["python3", "-m", REFERENCE_MODULE, self.name, "--port", str(self.port)]


VARIANTS: dict[str, EchoTarget] = {t.name: t for t in (
    EchoTarget("tcp", "tcp-server", 9000, b"", upper=True, blocking=True),
    EchoTarget("select", "select-server", 9000, HELLO, upper=True),
    EchoTarget("epoll", "epoll-server", 9000, HELLO, upper=True),
    EchoTarget("twisted", "twisted-server", 8000, b"", upper=False),
)}

REFERENCES: dict[str, EchoTarget] = {t.name: t for t in (
    EchoTarget("uvloop", REFERENCE_SERVICE, REFERENCE_PORT, HELLO, upper=True, reference=True),
    EchoTarget("asyncio", REFERENCE_SERVICE, REFERENCE_PORT, HELLO, upper=True, reference=True),
    EchoTarget("threaded", REFERENCE_SERVICE, REFERENCE_PORT, HELLO, upper=True,
               reference=True),
)}

ECHO_TARGETS: dict[str, EchoTarget] = {**VARIANTS, **REFERENCES}
