"""One module per family; each exposes ``SPEC`` (an ArchitectureSpec)."""
