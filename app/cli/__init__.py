"""The ``graft`` command line: the same core as the GUI, driven by the same recipe file.

Each sub-command lives in a module ``app/cli/cmd_<name>.py`` exposing
``register(subparsers) -> None``; this module finds them, so adding a command is adding a file.
Starting the CLI never imports Qt.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import signal
import sys
import threading

from core.errors import Cancelled, GraftError

log = logging.getLogger("graft")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``graft: error: …``, exit 2) like every other error."""

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
    package = importlib.import_module(__name__)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub)
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
