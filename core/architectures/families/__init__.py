"""One module per family; each defines ``SPEC`` (an ArchitectureSpec) and registers it in ``FAMILIES``."""
