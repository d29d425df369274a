"""The ``graft`` command line: the same core as the GUI, driven by the same recipe file.

Each sub-command lives in a module ``app/cli/cmd_<name>.py`` exposing
``register(subparsers) -> None``; this module finds them, so adding a command is adding a file.
Starting the CLI never imports Qt.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from core.errors import Cancelled, GraftError

log = logging.getLogger("graft")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    )
    try:
        result = args.func(args)
    except Cancelled:
        print("graft: cancelled", file=sys.stderr)
        return 1
    except GraftError as exc:
        log.debug("error", exc_info=True)
        print(f"graft: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("graft: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
