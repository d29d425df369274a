"""What went wrong talking to the hub, as one sentence a user can act on.

``huggingface_hub`` and ``httpx2`` raise their own exception types; :func:`translate` turns each
into a :class:`SourceError`, or into :class:`Unreachable` when the hub cannot be used right now
(``download`` then falls back to a complete cached copy, if there is one). A hub that answers
with an HTML page or garbage where JSON belongs ends here too, instead of in a traceback.
"""

from __future__ import annotations

import re

from core.errors import SourceError
from core.sources.hub.timeouts import HubUnresponsive
from core.sources.local import PICKLE_SUFFIXES
from core.sources.trust import shown

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
NETWORK_ADVICE = "check your connection or proxy and try again"


class Unreachable(Exception):
    """The hub cannot be used now (down, offline, timed out): a cached copy may still do.

    Attributes:
        reason: what happened, as a clause.
        advice: what to do if there is no cached copy either.
        unresponsive: True when the hub answered too slowly (as opposed to not at all).
    """

    def __init__(self, reason: str, advice: str = NETWORK_ADVICE, unresponsive: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.advice = advice
        self.unresponsive = unresponsive

    def message(self, repo_id: str, state: str) -> str:
        """The sentence for a failure with no usable cached copy (``state`` says why not)."""
        if self.unresponsive:
            return f"{self.reason} while Graft was getting {repo_id}, and {state}; {self.advice}"
        return f"cannot reach the hub to get {repo_id} ({self.reason}) and {state}; {self.advice}"


def short(exc: BaseException) -> str:
    """``Type: first line of the message`` (escaped, at most 160 characters)."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    line = shown(line)
    return line if len(line) <= 160 else line[:157] + "..."


def hub_url(endpoint: str | None) -> str:
    """The hub Graft talks to: ``endpoint``, else ``HF_ENDPOINT`` (huggingface.co by default)."""
    from huggingface_hub import constants

    return shown((endpoint or constants.ENDPOINT).rstrip("/"))


def garbage(repo_id: str, endpoint: str | None, what: str) -> SourceError:
    """The hub sent something no Hugging Face hub sends (an HTML page, a proxy's login form, …)."""
    return SourceError(
        f"the hub at {hub_url(endpoint)} answered the request for {repo_id} with {what}, not what a Hugging Face "
        "hub sends; check the hub URL (HF_ENDPOINT, or Hub URL… in the app) and any proxy in between"
    )


def check_commit(sha: object, repo_id: str, endpoint: str | None) -> str:
    """The commit hash the hub gave for a revision; it names a cache folder, so it must be 40 hex digits."""
    if isinstance(sha, str) and _COMMIT.match(sha):
        return sha
    shown_sha = shown(repr(sha))[:60]
    raise garbage(repo_id, endpoint, f"the commit id {shown_sha}, which is not a 40-digit commit hash")


def translate(exc: Exception, repo_id: str, revision: str | None, endpoint: str | None) -> Exception:
    """A huggingface_hub/httpx error as a SourceError (or :class:`Unreachable` for connection trouble)."""
    import httpx2
    from huggingface_hub import errors

    if isinstance(exc, HubUnresponsive):
        return Unreachable(exc.reason, exc.advice, unresponsive=True)
    if isinstance(exc, SourceError):  # already one sentence (a bad index, garbage found on the way)
        return exc
    if isinstance(exc, errors.GatedRepoError):
        return SourceError(
            f"{repo_id} is a gated repo: accept its terms on the hub and log in ('hf auth login') before opening it"
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        return SourceError(
            f"{repo_id} is neither a local file or folder nor a model repo on the hub (or it is private: "
            "log in with 'hf auth login'); check the spelling"
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return SourceError(f"{repo_id} has no revision {revision!r}; give an existing branch, tag or commit hash")
    if isinstance(exc, (errors.OfflineModeIsEnabled, httpx2.ConnectError, httpx2.TimeoutException)):
        return Unreachable(short(exc))
    if isinstance(exc, errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        if isinstance(status, int) and status >= 500:
            return Unreachable(f"the hub answered HTTP {status}")
        return SourceError(f"the hub refused the request for {repo_id} (HTTP {status}): {short(exc)}")
    if isinstance(exc, (httpx2.HTTPError, OSError)):
        return SourceError(
            f"downloading {repo_id} failed ({short(exc)}); check your connection and try again "
            "(completed files are kept in the cache)"
        )
    if isinstance(exc, (ValueError, TypeError, KeyError, AttributeError)):
        # json.JSONDecodeError on an HTML page, ModelInfo(**[...]) on a JSON list, a missing field, …
        return garbage(repo_id, endpoint, f"something Graft cannot read ({short(exc)})")
    return exc


def no_weights_error(repo_id: str, names: list[str]) -> SourceError:
    pickles = [shown(n) for n in names if "/" not in n and n.endswith(PICKLE_SUFFIXES)]
    if pickles:
        return SourceError(
            f"{repo_id} has no safetensors weights, only pickle checkpoints ({', '.join(pickles[:3])}); "
            "Graft never unpickles by default: download the file, run 'graft convert <file>' "
            "(torch.load(weights_only=True)) and open the .safetensors it writes"
        )
    return SourceError(
        f"{repo_id} has no safetensors weights at its root; Graft opens model repos with *.safetensors files"
    )
