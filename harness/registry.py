"""Name -> class registries with "did you mean" errors."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised when a registry lookup fails; str() is a one-line message."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want plain text
        return str(self.args[0])


def did_you_mean(name: str, choices: list[str]) -> str:
    """A suggestion suffix such as ` (did you mean 'lora'?)`, or ''."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    """A named collection of classes; modules register themselves on import."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str):
        def decorator(item: T) -> T:
            if name in self._items and self._items[name] is not item:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            names = sorted(self._items)
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, names)}; known: {', '.join(names)}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def registered(self) -> list[T]:
        """Every item, in the order of registration."""
        return list(self._items.values())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
