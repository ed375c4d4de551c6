"""How the benchmark reaches each server: host, port, greeting and echo transform. No I/O.

The four echo variants are the lab's own servers, started from their
compose/lab.yml definitions; where each runs and what it answers is the
registry's (``socklab.registry``). The three references speak exactly the echo
of select-server and epoll-server (the greeting, then each chunk upper-cased,
docs/protocols.md), so a ratio compares the loops, not the protocols. They run
with epoll-server's definition (same image, user, limits, sysctls), only the
command differs.
"""

from __future__ import annotations

from dataclasses import dataclass

from socklab.registry import ECHO_VARIANTS, VARIANTS, Variant

REFERENCE_MODULE = "socklab.loadgen.refservers"
# Whose compose definition, port and echo the references borrow.
REFERENCE_VARIANT = VARIANTS["epoll"]
REFERENCE_SERVICE = REFERENCE_VARIANT.host
REFERENCE_PORT = REFERENCE_VARIANT.main_port


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


def lab_target(variant: Variant) -> EchoTarget:
    """The lab's own echo server of ``variant``, as the registry describes it."""
    return EchoTarget(variant.name, variant.host, variant.main_port, variant.greeting,
                      upper=variant.reply == "upper", blocking=not variant.concurrent)


def reference_target(name: str) -> EchoTarget:
    """A reference server speaking the echo of ``REFERENCE_VARIANT`` on its port."""
    return EchoTarget(name, REFERENCE_SERVICE, REFERENCE_PORT, REFERENCE_VARIANT.greeting,
                      upper=REFERENCE_VARIANT.reply == "upper", reference=True)


VARIANTS_BENCHED: dict[str, EchoTarget] = {
    name: lab_target(VARIANTS[name]) for name in ECHO_VARIANTS}
REFERENCES: dict[str, EchoTarget] = {
    name: reference_target(name) for name in ("uvloop", "asyncio", "threaded")}
ECHO_TARGETS: dict[str, EchoTarget] = {**VARIANTS_BENCHED, **REFERENCES}
