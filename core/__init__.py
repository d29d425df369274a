"""Graft's engine: sources → architectures → plan → strategies → stats | training | export.

Nothing in this package imports Qt; an import-linter contract in pyproject.toml enforces it.
"""

__version__ = "0.1.0"
