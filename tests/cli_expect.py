"""How a refused CLI call must look: one line on stderr, exit 2, no traceback, nothing in --out."""

from __future__ import annotations

import hashlib
from pathlib import Path

from app.cli import main


def digest(folder: Path) -> dict:
    """SHA-256 of every file directly in ``folder`` (to prove a source was left untouched)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def fails(capsys, argv: list[str], out: Path | None, *needles: str) -> str:
    """Run ``graft argv`` in-process and check it is refused cleanly; returns the error line."""
    capsys.readouterr()  # drop what building the fixture printed
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("graft: error: ")]
    assert code == 2, err
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    if out is not None:
        assert not out.exists()
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]
