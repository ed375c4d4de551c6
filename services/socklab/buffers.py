"""Reusable, page-aligned byte buffers shared by a server's threads.

A bounded pool, so that a crowd of uploads cannot take a server past its
memory limit: ``take`` returns None when every buffer is lent, and the caller
falls back to a slower path that needs none. Buffers are anonymous mappings,
so they start on a page boundary, as ``O_DIRECT`` writes require.
"""

from __future__ import annotations

import mmap
import threading


class BufferPool:
    """At most ``count`` buffers of ``size`` bytes, made on first need."""

    def __init__(self, count: int, size: int) -> None:
        self.count = count
        self.size = size
        self.made = 0
        self._free: list[memoryview] = []
        self._lock = threading.Lock()

    def take(self) -> memoryview | None:
        """A buffer of ``size`` bytes, or None when ``count`` are in use.

        Raises MemoryError when the system has no memory for a new one; the
        pool's count is then as it was.
        """
        with self._lock:
            if self._free:
                return self._free.pop()
            if self.made == self.count:
                return None
            try:
                buffer = memoryview(mmap.mmap(-1, self.size))
            except (OSError, OverflowError) as error:
                raise MemoryError(f"no memory for a {self.size}-byte buffer: {error}") from error
            self.made += 1
        return buffer

    def take_many(self, wanted: int) -> list[memoryview]:
        """``wanted`` buffers, or none at all when fewer are free."""
        taken: list[memoryview] = []
        try:
            while len(taken) < wanted:
                buffer = self.take()
                if buffer is None:
                    break
                taken.append(buffer)
        except MemoryError:
            pass
        if len(taken) < wanted:
            for buffer in taken:
                self.give(buffer)
            return []
        return taken

    def give(self, buffer: memoryview) -> None:
        with self._lock:
            self._free.append(buffer)
