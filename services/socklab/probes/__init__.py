"""Probes: scenario drivers a learner runs on a client host; each prints JSON.

Every probe is a module with ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> dict``. ``socklab probe NAME …`` runs one; the integration
suite runs the very same command on its client hosts.
"""

from __future__ import annotations

import importlib
from types import ModuleType

PROBES = ("ports", "backlog", "reuseaddr", "sticky", "concurrency", "fdwall", "halfclose",
          "udploss", "framing_rtt", "fuzz", "grade")


def load(name: str) -> ModuleType:
    return importlib.import_module(f"socklab.probes.{name}")
