"""Graft's engine: sources → architectures → plan → strategies → stats | training | export.

Nothing in this package imports Qt; an import-linter contract in pyproject.toml enforces it.
"""

import os

__version__ = "0.2.0"

# Torch's OpenMP workers spin between calls by default; when torch and numpy calls alternate (the
# stats preview) the spinning burned ~6x the useful CPU time here. Passive waiting fixes it and
# must be set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
