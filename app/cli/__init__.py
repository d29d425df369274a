"""The ``graft`` command line: the same core as the GUI, driven by the same recipe file.

Each sub-command lives in a module ``app/cli/cmd_<name>.py`` that registers it into
:data:`COMMANDS` (a :class:`core.registry.Registry`, like every other "find it by name" table):

    @command("inspect", help="list a source's tensors")
    def arguments(parser) -> None:
        parser.add_argument("source")
        parser.set_defaults(func=run)

The registry imports every ``cmd_*`` module on the first lookup, so adding a command is adding a
file. A command's arguments are added only when its parser is used (parsing or ``--help``), so
``graft strategies`` or ``graft --help`` never import what another command's flags need (torch,
for the training options). Starting the CLI never imports Qt.
"""

from __future__ import annotations

import argparse
import logging
import os
import pkgutil
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.errors import Cancelled, GraftError
from core.registry import Registry

log = logging.getLogger("graft")


@dataclass(frozen=True)
class Command:
    """A sub-command: its name, one line for ``graft --help``, and what adds its arguments."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    aliases: tuple[str, ...] = ()
    description: str | None = None


COMMANDS: Registry[Command] = Registry(
    "command",
    GraftError,
    hint="see 'graft --help'",
    modules=sorted(f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if m.name.startswith("cmd_")),
)


def command(name: str, *, help: str, aliases: Sequence[str] = (), description: str | None = None) -> Callable:
    """Decorator: register ``arguments(parser) -> None`` as the sub-command ``name``.

    ``arguments`` adds the command's flags and ``parser.set_defaults(func=run)``, where
    ``run(args) -> int`` is the exit code.
    """

    def wrap(arguments: Callable[[argparse.ArgumentParser], None]) -> Callable[[argparse.ArgumentParser], None]:
        COMMANDS.add(name, Command(name, help, arguments, tuple(aliases), description))
        return arguments

    return wrap


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``graft: error: …``, exit 2) like every other error,
    and a sub-command's arguments are added on the first parse or help."""

    def __init__(self, *args, arguments: Callable[[argparse.ArgumentParser], None] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._arguments = arguments

    def _add_command_arguments(self) -> None:
        arguments, self._arguments = self._arguments, None
        if arguments is not None:
            arguments(self)

    def parse_known_args(self, args=None, namespace=None):
        self._add_command_arguments()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._add_command_arguments()
        return super().format_usage()

    def format_help(self) -> str:
        self._add_command_arguments()
        return super().format_help()

    def error(self, message: str):
        self.exit(2, f"graft: error: {self.prog}: {message}; see '{self.prog} --help'\n")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every ``finally`` and clean-up runs (temp folders go)."""


def _on_sigterm(signum, frame) -> None:
    # A second SIGTERM must not interrupt the clean-up the first one started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="graft",
        description="Build a new model's starting weights from a pretrained one.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS.names():
        c = COMMANDS.get(name)
        sub.add_parser(name, help=c.help, aliases=list(c.aliases), description=c.description, arguments=c.arguments)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 cancelled, 2 user error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        force=True,  # main() may run more than once in a process (tests): log to today's stderr
    )
    # Only the main thread may set handlers; main() called from another thread keeps the default.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        result = args.func(args)
        # Flush here, not at exit: a reader gone by then (`graft plan … | head`) is the quiet case below,
        # not an "Exception ignored … BrokenPipeError" traceback from the interpreter's shutdown.
        sys.stdout.flush()
    except Cancelled:
        print("graft: cancelled", file=sys.stderr)
        return 1
    except GraftError as exc:
        log.debug("error", exc_info=True)
        from core.sources.trust import shown  # names in messages come from files: no raw escapes

        print(f"graft: error: {shown(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`graft inspect demo | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE
    except Terminated:
        print("graft: terminated", file=sys.stderr)
        return 143  # 128 + SIGTERM, as a shell reports a process the signal killed
    except KeyboardInterrupt:
        print("graft: interrupted", file=sys.stderr)
        return 130
    finally:
        if in_main:  # main() may run inside a test process: leave its SIGTERM as it was
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
