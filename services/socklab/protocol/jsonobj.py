"""One JSON object from a peer's bytes, whatever the bytes are.

``json.loads`` raises more than ``JSONDecodeError`` on hostile input: a
``RecursionError`` for arrays nested about a thousand deep, a plain
``ValueError`` for an integer of more than 4,300 digits, and
``UnicodeDecodeError`` before that for bytes that are not UTF-8. Every
protocol that reads JSON from a peer parses it here, so each of those is the
peer's protocol error and never an exception that kills a connection's thread.
"""

from __future__ import annotations

import json
from typing import Any

from socklab.protocol.errors import RemoteProtocolError


def parse_object(data: bytes, what: str) -> dict[str, Any]:
    """``data`` as a JSON object; ``RemoteProtocolError`` naming ``what`` otherwise."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError too
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise RemoteProtocolError(f"{what} is not valid UTF-8 JSON: {reason}") from None
    if not isinstance(value, dict):
        raise RemoteProtocolError(f"{what} is not a JSON object")
    return value
