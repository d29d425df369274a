"""Undo and redo for the form: the recipes it described, in order.

Every recipe the workspace adopts is pushed (a burst of identical ones counts once: recipes compare
by content, :func:`app.panels.stale.recipe_key`); undo steps back, redo forward, and a new edit after an
undo drops the redo branch, as editors do. Opening a source starts a new history.
"""

from __future__ import annotations

from app.panels.stale import recipe_key

#: how many recipes are kept (the oldest are dropped first).
LIMIT = 200


class RecipeHistory:
    """The recipes of one source, oldest first, with a cursor at the one the form shows."""

    def __init__(self) -> None:
        self._recipes: list = []
        self._keys: list[str] = []
        self._at = -1

    def reset(self) -> None:
        self._recipes, self._keys, self._at = [], [], -1

    def push(self, recipe) -> None:
        """The form now describes ``recipe``."""
        key = recipe_key(recipe)
        if self._at >= 0 and self._keys[self._at] == key:
            return
        del self._recipes[self._at + 1 :], self._keys[self._at + 1 :]
        self._recipes.append(recipe)
        self._keys.append(key)
        if len(self._recipes) > LIMIT:
            del self._recipes[0], self._keys[0]
        self._at = len(self._recipes) - 1

    @property
    def can_undo(self) -> bool:
        return self._at > 0

    @property
    def can_redo(self) -> bool:
        return self._at < len(self._recipes) - 1

    def undo(self):
        """The recipe before the current one (None at the start)."""
        if not self.can_undo:
            return None
        self._at -= 1
        return self._recipes[self._at]

    def redo(self):
        """The recipe an undo stepped back from (None when there is none)."""
        if not self.can_redo:
            return None
        self._at += 1
        return self._recipes[self._at]
