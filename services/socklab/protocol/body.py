"""A body of known size inside a byte stream (an upload, a download, an output).

``SizedBody(n).feed(data)`` splits ``data`` into the part that belongs to the
body and the bytes after it, which belong to whatever message comes next.
"""

from __future__ import annotations

from typing import TypeVar

# A memoryview is split without copying (a loop's own receive buffer).
Data = TypeVar("Data", bytes, memoryview)


class SizedBody:
    """Counts down the bytes of a body whose size was announced up front."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"a body cannot have {size} bytes")
        self.size = size
        self.remaining = size

    def feed(self, data: Data) -> tuple[Data, Data]:
        """Return ``(part of the body, bytes after the body)``."""
        take = data[: self.remaining]
        self.remaining -= len(take)
        return take, data[len(take) :]

    @property
    def done(self) -> bool:
        return self.remaining == 0
