"""Which recipe a result belongs to, and the moment it stops describing the form.

Every result the window shows (a validation's curves and verdict, the materialised target's
overview, the preview of a tensor) carries a :class:`ResultStamp`: one line naming the recipe it
was made for (a short key and a summary). When the form's recipe changes to another one, the
stamp turns into "Out of date — re-run", and the result's widgets are greyed out; going back to
the same recipe (an undo, reopening the same file) makes it current again.

The key is a hash of the recipe's JSON without what does not decide the result (the Graft
version and an export's provenance), so it costs microseconds on the GUI thread.
"""

from __future__ import annotations

import hashlib
import json

from app.qt import QtCore, QtGui, QtWidgets
from core import runs

#: recipe fields that do not change what a result shows.
_NOT_DECIDING = ("graft_version", "provenance")
#: the tint of a plot that no longer belongs to the form's recipe (it is drawn in shades of this grey).
STALE_GREY = "#b4b4b4"


def recipe_key(recipe) -> str:
    """A short, stable name of ``recipe``'s content (7 hex digits)."""
    data = {k: v for k, v in recipe.to_dict().items() if k not in _NOT_DECIDING}
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:7]


def recipe_summary(recipe) -> str:
    """``all-MiniLM-L6-v2 → layers 4, hidden 256 · select · seed 0``: what a person checks at a glance
    (the Runs tab and ``graft history`` say it the same way: :func:`core.runs.recipe_summary`)."""
    return runs.recipe_summary(recipe.to_dict())


class ResultStamp(QtWidgets.QLabel):
    """The line above a result: the recipe it was made for; "Out of date — re-run" once the form moves on.

    Args:
        what: the result in words ("validation", "materialised target", "preview").
        results: the widgets greyed out while the result is stale.
        follows: the result recomputes itself after every edit (the preview): while the form's recipe
            can be planned, a stale one says a new one follows and is not greyed (greying a plot for the
            fraction of a second until its replacement arrives cost 50–100 ms of GUI thread per edit);
            it is greyed only when the recipe cannot be planned (:meth:`set_plannable`).
    """

    def __init__(self, what: str, results: list[QtWidgets.QWidget], parent=None, *, follows: bool = False) -> None:
        super().__init__(parent)
        self.what = what
        self.results = list(results)
        self.follows = follows
        self.plannable = True
        self.live = False  # the result is still being drawn (a running validation): greyed once it ends
        self.key: str | None = None
        self.summary = ""
        self.current_key: str | None = None
        # One line of fixed height: a stamp that wrapped to two lines when it went stale re-laid out
        # (and repainted) every plot below it at each edit. What does not fit is in the tooltip.
        self.setWordWrap(False)
        self.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Fixed)
        self.setFixedHeight(self.fontMetrics().height() + 6)
        self.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.setObjectName("result-stamp")
        self.hide()

    @property
    def stale(self) -> bool:
        """The result was made for a recipe other than the form's."""
        return self.key is not None and self.key != self.current_key

    def stamp(self, recipe) -> None:
        """The result now shown was made for ``recipe`` (which the form holds)."""
        self.key, self.summary = recipe_key(recipe), recipe_summary(recipe)
        self.current_key = self.key
        self._show()

    def clear(self) -> None:
        """No result is shown."""
        self.key = None
        self._show()

    def set_shown(self, shown: bool) -> None:
        """Show the stamp with its result, or hide both the stamp and the greying (another view is up)."""
        if shown:
            self._show()
        else:
            self.hide()
            self._grey(False)

    def set_live(self, live: bool) -> None:
        """The result is still growing (its curves redraw several times a second): while it does, a stale
        one is only said, not greyed (a graphics effect on a live plot costs every redraw)."""
        self.live = live
        self._show()

    def set_plannable(self, plannable: bool) -> None:
        """Whether the form's recipe can be planned (False: no new result will follow an edit)."""
        self.plannable = plannable
        self._show()

    def plan_made(self, _result) -> None:
        """The form's recipe was planned (a new result follows)."""
        self.set_plannable(True)

    def plan_failed(self, _message: str) -> None:
        """The form's recipe cannot be planned (no new result will come)."""
        self.set_plannable(False)

    def recipe_changed(self, recipe) -> None:
        """The form's recipe is now ``recipe`` (None: the form describes no valid recipe)."""
        self.current_key = recipe_key(recipe) if recipe is not None else None
        self._show()

    def _show(self) -> None:
        if self.key is None:
            self.hide()
            self._grey(False)
            return
        waiting = self.follows and self.plannable  # a new result is on its way: say so, do not grey
        if self.stale:
            head = (
                "<b>Out of date — a new one follows.</b>"
                if waiting
                else "<b>Out of date — the form's recipe cannot be planned.</b>"
                if self.follows
                else "<b>Out of date — re-run.</b>"
            )
            self.setText(
                f"{head} This {self.what} is for recipe {self.key} ({self.summary}); the form has changed since."
            )
            self.setStyleSheet("color: palette(text); background: rgba(230, 160, 40, 60); padding: 2px;")
        else:
            self.setText(f"{self.what.capitalize()} of recipe {self.key}: {self.summary}")
            self.setStyleSheet("color: palette(dark); padding: 2px;")
        self.setToolTip(
            f"{self.what.capitalize()} of recipe {self.key}: {self.summary}"
            + ("; the form has changed since" if self.stale else "")
            + ". The key is a hash of the recipe's settings; save the recipe to keep them."
        )
        self.show()
        self._grey(self.stale and not waiting and not self.live)

    def _grey(self, grey: bool) -> None:
        # Text greys by being disabled; a plot is drawn in grey (an opacity effect would composite it on black).
        for widget in self.results:
            if isinstance(widget, QtWidgets.QLabel):
                widget.setEnabled(not grey)
            elif grey:
                effect = QtWidgets.QGraphicsColorizeEffect(widget)
                effect.setColor(QtGui.QColor(STALE_GREY))
                effect.setStrength(1.0)
                widget.setGraphicsEffect(effect)
            elif widget.graphicsEffect() is not None:
                widget.setGraphicsEffect(None)
