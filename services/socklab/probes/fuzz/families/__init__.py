"""The fuzzer's protocol families, one class each; a variant's framing picks one."""

from __future__ import annotations

from socklab.probes.fuzz.families.base import Family
from socklab.probes.fuzz.families.echo import Echo
from socklab.probes.fuzz.families.exec import Framed, Handshake, Naive
from socklab.probes.fuzz.families.ftp import Ftp
from socklab.probes.fuzz.families.udp import Udp
from socklab.registry import Variant

FAMILIES: tuple[type[Family], ...] = (Echo, Udp, Naive, Handshake, Framed, Ftp)


def open_family(variant: Variant, framing: str) -> Family:
    """The family that speaks ``framing``, aimed at ``variant``."""
    for family in FAMILIES:
        if family.framing == framing:
            return family(variant, framing)
    raise LookupError(f"{variant.name}: no fuzz family speaks framing {framing!r}")


__all__ = ["FAMILIES", "Echo", "Family", "Framed", "Ftp", "Handshake", "Naive", "Udp",
           "open_family"]
