"""Models on the Hugging Face Hub and in its local cache, one concern per module.

- :mod:`core.sources.hub.repo`: what names a repo (``owner/name[@revision]``) and which of its files
  Graft needs (the weights an index lists, ``config.json``, the auxiliary files).
- :mod:`core.sources.hub.download`: the network side — ``download``, with progress and cancel on
  every chunk, falling back to the cache when the hub cannot be reached.
- :mod:`core.sources.hub.cache`: the local HF cache, read without any network call (the models in
  it, one complete snapshot).
- :mod:`core.sources.hub.errors`: what the hub and its client raise, as one sentence a user can act on.
- :mod:`core.sources.hub.timeouts`: time limits on every request, so no hub can hang a download.
"""
