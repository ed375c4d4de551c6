"""What the fuzzer can aim at: every port of every variant in the registry.

A target is a variant and one of its framings, named after the variant alone
when it has one port (``ftp``) and ``variant-framing`` when it has several
(``exec-framed`` is exec-server's framed port). Host, port and transport are
the registry's; the family decides what is sent and how it is judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from socklab.probes.fuzz.families import Family, open_family
from socklab.registry import VARIANTS, Variant


@dataclass(frozen=True)
class Target:
    name: str
    variant: Variant
    framing: str
    family: Family

    @property
    def host(self) -> str:
        return self.variant.host

    @property
    def port(self) -> int:
        return self.variant.port(self.framing)

    @property
    def transport(self) -> str:
        return self.variant.transport

    @property
    def concurrency(self) -> int:
        """Connections at once by default: one where the server serves one client at a
        time (more would only queue), else the family's."""
        return self.family.concurrency if self.variant.concurrent else 1


def target_name(variant: Variant, framing: str) -> str:
    return variant.name if len(variant.ports) == 1 else f"{variant.name}-{framing}"


def open_targets() -> dict[str, Target]:
    targets = {}
    for variant in VARIANTS.values():
        for framing in variant.ports:
            name = target_name(variant, framing)
            targets[name] = Target(name, variant, framing, open_family(variant, framing))
    return targets


TARGETS: Mapping[str, Target] = MappingProxyType(open_targets())
