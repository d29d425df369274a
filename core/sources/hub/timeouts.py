"""Time limits on every request ``huggingface_hub`` makes for Graft: no hub can hang a download.

``huggingface_hub`` 2.x sends its API calls (``model_info``, ``repo_info``) with no timeout at
all, retries a metadata ``HEAD`` that timed out with a 60 s timeout and exponential back-off, and
resumes a body read that timed out five times. A hub that accepts the connection and never
answers, or drips a byte every few seconds (never tripping a per-read timeout), holds Graft for
minutes or forever. So Graft gives the shared ``httpx2`` client of ``huggingface_hub``
(``set_client_factory``) three guards, read from the environment at every request:

* ``GRAFT_HUB_TIMEOUT`` (seconds): the connect timeout and the limit on every wait for bytes, of
  every request. A request that times out is not retried: :class:`HubUnresponsive` ends the
  download. One generous limit replaces huggingface_hub's short timeouts plus retries, so its
  default is 30 s, or ``HF_HUB_ETAG_TIMEOUT`` / ``HF_HUB_DOWNLOAD_TIMEOUT`` where a user raised
  those above that.
* ``GRAFT_HUB_STALL_SECONDS`` (default 60) and ``GRAFT_HUB_STALL_KB`` (default 64): a response
  body must bring at least that many KiB in every such window, or the download stops with
  "the hub at URL stopped sending data".

Not covered: a hub dripping its response *headers* (each read arrives in time, the headers never
end), and files fetched through Xet storage (``hf_xet``, Rust), which bypass ``httpx2``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from core.errors import SourceError

log = logging.getLogger(__name__)

ENV_TIMEOUT = "GRAFT_HUB_TIMEOUT"
ENV_STALL_SECONDS = "GRAFT_HUB_STALL_SECONDS"
ENV_STALL_KB = "GRAFT_HUB_STALL_KB"
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class HubLimits:
    """How long Graft waits for the hub (see the module docstring)."""

    timeout: float = DEFAULT_TIMEOUT  # seconds: connect, and every wait for bytes
    stall_seconds: float = 60.0  # window of the minimum-progress watchdog
    stall_kb: float = 64.0  # KiB a response body must bring in every window

    @classmethod
    def from_env(cls) -> HubLimits:
        """The limits, with ``GRAFT_HUB_*`` overrides.

        Raises:
            SourceError: a variable is set to something other than a positive number.
        """
        from huggingface_hub import constants

        # A user who raised huggingface_hub's own timeouts for a slow link keeps that patience.
        values = {
            "timeout": max(
                DEFAULT_TIMEOUT, float(constants.HF_HUB_ETAG_TIMEOUT), float(constants.HF_HUB_DOWNLOAD_TIMEOUT)
            )
        }
        for field_name, env in (
            ("timeout", ENV_TIMEOUT),
            ("stall_seconds", ENV_STALL_SECONDS),
            ("stall_kb", ENV_STALL_KB),
        ):
            text = os.environ.get(env, "").strip()
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                value = float("nan")
            if not 0 < value < float("inf"):
                raise SourceError(f"{env} is {text!r}; set it to a positive number (or unset it for the default)")
            values[field_name] = value
        return cls(**values)


class HubUnresponsive(SourceError):
    """The hub did not answer in time, or stopped sending data; the download was stopped.

    Attributes:
        reason: what happened, as a clause ("the hub at URL did not answer within 30 s").
        advice: what the user can do about it.
    """

    def __init__(self, reason: str, advice: str) -> None:
        super().__init__(f"{reason}; {advice}")
        self.reason = reason
        self.advice = advice


def _origin(url) -> str:
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"


def timed_out(url, limits: HubLimits) -> HubUnresponsive:
    return HubUnresponsive(
        f"the hub at {_origin(url)} did not answer within {limits.timeout:g} s",
        f"check the hub URL and your connection, or set {ENV_TIMEOUT} (seconds) to wait longer",
    )


def stalled(url, limits: HubLimits, what: str) -> HubUnresponsive:
    return HubUnresponsive(
        f"the hub at {_origin(url)} stopped sending data ({what})",
        f"try again later, or set {ENV_STALL_SECONDS} / {ENV_STALL_KB} to accept a slower hub",
    )


def _set_timeouts(request, limits: HubLimits) -> None:
    """Request hook: every wait of this request is limited to ``limits.timeout``, none is unlimited."""
    timeouts = dict.fromkeys(("connect", "read", "write", "pool"), limits.timeout)
    request.extensions = {**request.extensions, "timeout": timeouts}


def _guarded_stream_class():
    import httpx2

    class GuardedStream(httpx2.SyncByteStream):
        """A response body that must keep bringing ``stall_kb`` KiB every ``stall_seconds``."""

        def __init__(self, inner, url, limits: HubLimits) -> None:
            self._inner, self._url, self._limits = inner, url, limits

        def __iter__(self) -> Iterator[bytes]:
            need = self._limits.stall_kb * 1024
            window_start, window_bytes = time.monotonic(), 0
            chunks = iter(self._inner)
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    return
                except httpx2.TimeoutException as exc:
                    raise stalled(self._url, self._limits, f"nothing for {self._limits.timeout:g} s") from exc
                window_bytes += len(chunk)
                now = time.monotonic()
                if window_bytes >= need:
                    window_start, window_bytes = now, 0
                elif now - window_start > self._limits.stall_seconds:
                    raise stalled(
                        self._url,
                        self._limits,
                        f"less than {self._limits.stall_kb:g} KB in {self._limits.stall_seconds:g} s",
                    )
                yield chunk

        def close(self) -> None:
            self._inner.close()

    return GuardedStream


def _guarded_client_class():
    import httpx2

    stream_class = _guarded_stream_class()

    class GuardedClient(httpx2.Client):
        """httpx2's client with Graft's limits on every request (and no retry after a timeout)."""

        def __init__(self, **kwargs) -> None:
            hooks = kwargs.pop("event_hooks", None) or {}
            hooks = {
                "request": [*hooks.get("request", ()), self._on_request],
                "response": [*hooks.get("response", ()), self._on_response],
            }
            super().__init__(event_hooks=hooks, **kwargs)

        @staticmethod
        def _on_request(request) -> None:
            _set_timeouts(request, HubLimits.from_env())

        @staticmethod
        def _on_response(response) -> None:
            # Wrapped before anyone reads the body (send() reads it after the hooks when not streaming).
            response.stream = stream_class(response.stream, response.request.url, HubLimits.from_env())

        def send(self, request, **kwargs):
            try:
                return super().send(request, **kwargs)
            except httpx2.TimeoutException as exc:
                # A typed error that huggingface_hub's back-off does not retry.
                raise timed_out(request.url, HubLimits.from_env()) from exc

    return GuardedClient


_lock = threading.Lock()
_installed = False


def guard_hub_session() -> None:
    """Give ``huggingface_hub`` a client with Graft's limits (once per process; later calls do nothing).

    The hooks ``huggingface_hub`` puts on its own default client (request ids, debug logging) are
    taken from it and kept.
    """
    global _installed
    with _lock:
        if _installed:
            return
        from huggingface_hub import get_session, set_client_factory

        default = get_session()
        hooks = {name: list(items) for name, items in default.event_hooks.items()}
        client_class = _guarded_client_class()

        def factory():
            return client_class(event_hooks=hooks, follow_redirects=True, timeout=None)

        set_client_factory(factory)
        _installed = True
        log.debug("hub requests guarded: %s", HubLimits.from_env())
