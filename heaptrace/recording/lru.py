"""A bounded cache: the most recently used entries up to a count, with hits, misses and
evictions counted. The recorder's caches of stacks use it so that its memory depends on how
many stacks are in use, not on how many were ever seen (what is evicted is found again in the
recording or recomputed)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Hashable, Optional, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lru(Generic[K, V]):
    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"an LRU cache holds at least one entry, not {size}")
        self.size = size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self.hits = self.misses = self.evictions = 0

    def get(self, key: K) -> Optional[V]:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
            self.evictions += 1

    def drop(self, which: Callable[[K], bool]) -> int:
        """Remove the entries whose key `which` picks (what was kept for processes that ended:
        one pass over the entries); returns how many went."""
        gone = [key for key in self._entries if which(key)]
        for key in gone:
            del self._entries[key]
        return len(gone)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def counts(self) -> dict:
        return {"entries": len(self), "size": self.size, "hits": self.hits,
                "misses": self.misses, "evictions": self.evictions}
