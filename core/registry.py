"""One registration mechanism for every "find it by name" table in Graft.

Strategies, architecture families, training tasks, data sets, statistics metrics and CLI
commands are each a :class:`Registry`: entries register under a name (a decorator or a call),
lookups by an unknown name raise the registry's error class with the known names listed, and
the modules that hold the entries are imported on the first lookup, so a new entry is a new
module (plus its name in ``modules``) and nothing else.

    STRATEGIES = Registry("strategy", StrategyError, modules=("core.strategies",))

    @STRATEGIES.register("select")
    class Select: ...

    STRATEGIES.get("select")      # the registered object
    STRATEGIES.names()            # sorted names
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from core.errors import GraftError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, loaded lazily from ``modules``.

    Args:
        what: the entry's kind in messages ("strategy", "data set" …).
        error: the :class:`~core.errors.GraftError` subclass an unknown name raises.
        modules: modules imported (once, on the first lookup) to register the entries.
        hint: appended to the unknown-name message, e.g. "run `graft strategies`".
    """

    def __init__(
        self, what: str, error: type[GraftError] = GraftError, *, modules: Iterable[str] = (), hint: str = ""
    ) -> None:
        self.what = what
        self.error = error
        self.modules = tuple(modules)
        self.hint = hint
        self._entries: dict[str, T] = {}
        self._loaded = not self.modules

    # -- registering -------------------------------------------------------------------------
    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``; a second entry of the same name is a bug."""
        if name in self._entries and self._entries[name] is not entry:
            raise RuntimeError(f"{self.what} {name!r} registered twice")
        self._entries[name] = entry
        return entry

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name`` (default: its ``name`` attribute)."""

        def decorate(entry: T) -> T:
            self.add(name if name is not None else entry.name, entry)  # type: ignore[attr-defined]
            return entry

        return decorate

    # -- looking up ---------------------------------------------------------------------------
    def load(self) -> None:
        """Import the modules that register this registry's entries (once)."""
        if self._loaded:
            return
        self._loaded = True  # first, so a module that looks itself up while importing does not recurse
        for module in self.modules:
            importlib.import_module(module)

    def get(self, name: str) -> T:
        """The entry ``name``.

        Raises:
            GraftError: the registry's error class, naming the known entries.
        """
        self.load()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            known = ", ".join(self.names()) or "none"
            hint = f"; {self.hint}" if self.hint else ""
            raise self.error(f"unknown {self.what} {name!r}; known: {known}{hint}") from None

    def find(self, name: str) -> T | None:
        """The entry ``name``, or None."""
        self.load()
        return self._entries.get(name)

    def names(self) -> list[str]:
        self.load()
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) in registration order."""
        self.load()
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self.load()
        return len(self._entries)
