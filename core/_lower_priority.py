"""Imported first by the job fork server (``core.process``): lowers the server's CPU priority.

The server imports torch and transformers (seconds of CPU) while the user starts working, and
every job child is forked from it and inherits the priority: on a machine with few cores the
GUI process then gets the CPU first. Importing this module anywhere else is a mistake.
"""

import os

CHILD_NICENESS = 10

try:
    os.nice(CHILD_NICENESS)
except (AttributeError, OSError):  # not POSIX, or not allowed: keep the priority
    pass
