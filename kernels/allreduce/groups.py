"""State the all-reduce backends keep per process group: communicators, made once, on first use."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch.distributed as dist


class PerGroup:
    """Values keyed by a process group (and an optional extra key, such as a device index).

    The group object is kept beside its value, so its id() cannot be taken by another group while
    the entry lives; `None` means the default group.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[int, object], tuple[object, object]] = {}

    @staticmethod
    def _resolve(group):
        return group if group is not None else dist.group.WORLD

    def get(self, group, make: Callable[[object], object], extra: object = None):
        """The value of (group, extra), made with make(group) the first time."""
        group = self._resolve(group)
        key = (id(group), extra)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is group:
            return entry[1]
        value = make(group)
        self._entries[key] = (group, value)
        return value

    def pop(self, group, extra: object = None):
        """Forget (group, extra); returns its value, or None."""
        entry = self._entries.pop((id(self._resolve(group)), extra), None)
        return None if entry is None else entry[1]

    def discard(self, group, value, extra: object = None) -> None:
        """Forget (group, extra) if it still holds value (not one made since)."""
        key = (id(self._resolve(group)), extra)
        entry = self._entries.get(key)
        if entry is not None and entry[1] is value:
            del self._entries[key]

    def values(self) -> list[object]:
        return [value for _, value in self._entries.values()]

    def drain(self) -> Iterator[object]:
        """Every value, forgetting them all."""
        entries, self._entries = self._entries, {}
        for _, value in entries.values():
            yield value
