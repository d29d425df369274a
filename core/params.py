"""One parameter system: frozen options dataclasses whose fields say their help, range and choices.

A strategy's ``Params`` and the validation options (:class:`core.training.ValidationConfig`)
declare each option once, with :func:`param`; everything else is generated from that
declaration through :func:`describe`:

* checking values from a recipe, a form or the command line (:func:`build`, :func:`check`): the
  JSON type of the annotation (an int may stand for a float, a bool is neither), finite floats,
  choices, and the min/max bounds — one sentence per problem, raised as the caller's error class;
* typed CLI flags (:func:`add_arguments`, :func:`from_args`): ``--seq-len N`` for ``seq_len: int``,
  ``--bf16/--no-bf16`` for a bool, the choices listed, the same checks at parse time;
* the app's forms (``app.panels.forms.DataclassForm``) and ``graft strategies NAME``.

    @dataclass(frozen=True)
    class Params:
        noise: float = param(0.0, help="noise std, relative to the tensor's", min=0.0, max=1.0)

    build(Params, {"noise": 0.1}, owner="mean_field")    # Params(noise=0.1)
    build(Params, {"noise": 2}, owner="mean_field")      # StrategyError: mean_field.noise must be ≤ 1.0, not 2

No torch, no Qt: the CLI lists parameters without loading either.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import reprlib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass
from typing import Any

from core.errors import GraftError, StrategyError

#: How a type reads in a message: "steps must be a whole number, not 'x'".
_PHRASES = {
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    str: "a string",
    list: "a list",
    tuple: "a list",
    dict: "an object",
}
_SHORT = reprlib.Repr()  # a hostile value (a huge string, a list nested 5000 deep) stays one short line
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlevel = 3


def param(
    default: Any, *, help: str, min: float | None = None, max: float | None = None, choices: tuple | None = None
) -> Any:
    """A dataclass field carrying the metadata every generated view reads.

    Args:
        default: the value a recipe that does not name the option gets.
        help: one line for tooltips, ``--help`` and ``graft strategies``.
        min, max: inclusive bounds of a number.
        choices: the only values allowed.
    """
    return dataclasses.field(default=default, metadata={"help": help, "min": min, "max": max, "choices": choices})


@dataclass(frozen=True)
class ParamInfo:
    """One option of a parameter dataclass, as the views see it.

    ``type`` is the Python type of the annotation (``int``, ``float``, ``bool``, ``str``, ``list``,
    ``tuple``, ``dict``, or ``object`` when it cannot be resolved); ``optional`` means ``None`` is
    allowed too (``str | None``); ``default`` is ``dataclasses.MISSING`` for a required field.
    """

    name: str
    type_name: str
    type: type
    optional: bool
    default: Any
    min: float | None
    max: float | None
    choices: tuple | None
    help: str

    def to_dict(self) -> dict:
        """JSON-ready: ``type`` is the type's name; ``default`` is absent for a required field."""
        out = {
            "name": self.name,
            "type": self.type_name,
            "optional": self.optional,
            "min": self.min,
            "max": self.max,
            "choices": list(self.choices) if self.choices else None,
            "help": self.help,
        }
        if self.default is not MISSING:
            out["default"] = list(self.default) if isinstance(self.default, tuple) else self.default
        return out

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this option (``"must be ≥ 1, not 0"``), or None."""
        if value is None and self.optional:
            return None
        if not _is_a(value, self.type):
            return f"must be {_PHRASES.get(self.type, f'a {self.type_name}')}, not {_SHORT.repr(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, not {value}"
        if self.choices and value not in self.choices:
            return f"{_SHORT.repr(value)} is unknown; use one of {', '.join(map(str, self.choices))}"
        if isinstance(value, int | float) and not isinstance(value, bool):
            if self.min is not None and value < self.min:
                return f"must be ≥ {self.min}, not {value}"
            if self.max is not None and value > self.max:
                return f"must be ≤ {self.max}, not {value}"
        return None


def _is_a(value: Any, kind: type) -> bool:
    """JSON-typed check: an int is a float, but a bool is neither an int nor a float."""
    if kind is object:
        return True
    if isinstance(value, bool):
        return kind is bool
    if kind in (list, tuple):
        return isinstance(value, list | tuple)
    return isinstance(value, kind) or (kind is float and isinstance(value, int))


def _resolve(hint: Any, default: Any) -> tuple[type, bool]:
    """``(python type, optional)`` of an annotation: ``str | None`` → ``(str, True)``."""
    if isinstance(hint, str):  # unresolvable forward reference: the default says what it holds
        return (type(default) if default not in (MISSING, None) else object), default is None
    args = typing.get_args(hint)
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        optional = len(rest) < len(args)
        hint = rest[0] if len(rest) == 1 else object
    origin = typing.get_origin(hint) or hint
    return (origin if isinstance(origin, type) else object), optional


@functools.cache
def describe(cls: type) -> tuple[ParamInfo, ...]:
    """Every field of the dataclass ``cls``, in declaration order, with its resolved type.

    Raises:
        TypeError: ``cls`` is not a dataclass.
    """
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # a name the annotations use is not importable here: each default says its type
        hints = {}
    out = []
    for f in dataclasses.fields(cls):
        default = f.default
        if default is MISSING and f.default_factory is not MISSING:
            default = f.default_factory()
        kind, optional = _resolve(hints.get(f.name, f.type), default)
        meta = f.metadata
        choices = tuple(meta["choices"]) if meta.get("choices") else None
        out.append(
            ParamInfo(
                f.name,
                getattr(kind, "__name__", str(kind)),
                kind,
                optional,
                default,
                meta.get("min"),
                meta.get("max"),
                choices,
                meta.get("help", ""),
            )
        )
    return tuple(out)


def check(obj: Any, *, owner: str, error: type[GraftError] = StrategyError) -> None:
    """Check every field of the dataclass instance ``obj`` (for a ``__post_init__``).

    Raises:
        GraftError: ``error``, e.g. "validation.steps must be ≥ 1, not 0".
    """
    for info in describe(type(obj)):
        _raise_if_bad(info, getattr(obj, info.name), owner, error)


def build(
    cls: type, values: Mapping[str, Any] | None = None, *, owner: str, error: type[GraftError] = StrategyError
) -> Any:
    """An instance of ``cls`` from plain values (a recipe, a form, flags), every value checked first.

    Args:
        cls: a parameter dataclass.
        values: option name → value; missing options keep their defaults.
        owner: names the options in messages (``mean_field`` → "mean_field.noise must be …").
        error: the error class raised.

    Raises:
        GraftError: ``error``: an unknown name (the message lists the known ones) or a bad value.
    """
    values = dict(values or {})
    infos = {info.name: info for info in describe(cls)}
    unknown = sorted(set(values) - set(infos), key=str)
    if unknown:
        raise error(
            f"{owner} has no parameter(s) {', '.join(map(str, unknown))}; it takes: {', '.join(infos) or 'none'}"
        )
    for name, value in values.items():
        _raise_if_bad(infos[name], value, owner, error)
    return cls(**values)


def _raise_if_bad(info: ParamInfo, value: Any, owner: str, error: type[GraftError]) -> None:
    problem = info.problem(value)
    if problem is not None:
        raise error(f"{owner}.{info.name} {problem}")


# -- command-line flags -----------------------------------------------------------------------


def add_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    only: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    prefix: str = "",
) -> None:
    """One typed ``--flag`` per field of ``cls``; a flag left out is None (keep the dataclass default).

    Numbers are parsed and checked (type, finite, range) by argparse, so ``--steps 0`` is refused
    at parse time with the same sentence a recipe gets; choices are argparse choices; a bool is
    ``--flag/--no-flag``. ``prefix`` ("index-") goes in front of every flag (and its dest).
    """
    only = set(only) if only is not None else None
    exclude = set(exclude)
    for info in describe(cls):
        if (only is not None and info.name not in only) or info.name in exclude:
            continue
        flag = "--" + (prefix + info.name).replace("_", "-")
        dest = (prefix + info.name).replace("-", "_")
        default = info.default if info.default is not MISSING else None
        help_text = f"{info.help} (default {default})"
        if info.type is bool:
            parser.add_argument(flag, dest=dest, default=None, action=argparse.BooleanOptionalAction, help=help_text)
            continue
        kind = info.type if info.type in (int, float) else str
        parser.add_argument(
            flag,
            dest=dest,
            type=_flag_type(info, kind),
            default=None,
            choices=info.choices,
            metavar=None if info.choices else info.name.upper(),
            help=help_text,
        )


def _flag_type(info: ParamInfo, kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {_PHRASES[kind]}, not {text!r}") from None
        problem = None if info.choices else info.problem(value)  # argparse says what the choices are
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = kind.__name__
    return parse


def from_args(cls: type, args: argparse.Namespace, base: Any = None, *, prefix: str = "") -> Any:
    """``base`` (default: ``cls()``) with the flags :func:`add_arguments` added that were given."""
    changes = {}
    for info in describe(cls):
        value = getattr(args, (prefix + info.name).replace("-", "_"), None)
        if value is not None:
            changes[info.name] = value
    return dataclasses.replace(base if base is not None else cls(), **changes)
