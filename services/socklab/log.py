"""One line per event on stdout, so ``docker logs`` and ``make logs`` read well."""

from __future__ import annotations

import logging
import sys
import time


def setup(name: str, level: int = logging.INFO) -> logging.Logger:
    """Log ``<UTC time> <name> <message>`` lines to stdout, unbuffered."""
    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(name)s %(message)s",
                                  "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return logging.getLogger(name)


def peer_name(address: object) -> str:
    """``host:port`` for an IPv4 or IPv6 socket address."""
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
    return str(address)
