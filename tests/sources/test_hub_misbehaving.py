"""A hub that hangs, drips, or answers with garbage: Graft stops within seconds, with one sentence.

The real ``huggingface_hub`` client talks to ``fake_hub`` (tests/fake_hub.py) in its misbehaving
modes. Limits are lowered through Graft's environment variables (core/sources/hub/timeouts.py) so
that each case ends in a couple of seconds; a case still running after ``DEADLINE`` seconds
counts as hung: the hub is closed (which frees the client) and the test fails.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from safetensors.torch import save_file

from core.errors import SourceError
from core.sources import open_source

REPO = "graft-test/tiny-bert"
DEADLINE = 15.0


@pytest.fixture
def quick_limits(monkeypatch):
    """Give up on a silent hub after 1 s, on one bringing less than 16 KiB a second after 1 s."""
    monkeypatch.setenv("GRAFT_HUB_TIMEOUT", "1")
    monkeypatch.setenv("GRAFT_HUB_STALL_SECONDS", "1")
    monkeypatch.setenv("GRAFT_HUB_STALL_KB", "16")


def _open_within(hub, *args, **kwargs):
    """``open_source(*args, **kwargs)``: its result or its error, and the seconds it took.

    Fails the test (after closing ``hub`` to free the client) if it is still running at DEADLINE.
    """
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = open_source(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    start = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(DEADLINE)
    elapsed = time.monotonic() - start
    if worker.is_alive():
        hub.close()
        worker.join(30)
        pytest.fail(f"open_source still hung after {DEADLINE:.0f} s against a misbehaving hub")
    return outcome, elapsed


def _refused(hub, tmp_path, *needles, repo: str = REPO) -> str:
    outcome, elapsed = _open_within(hub, repo, cache_dir=tmp_path / "cache", endpoint=hub.url)
    error = outcome.get("error")
    assert isinstance(error, SourceError), outcome
    message = str(error)
    assert "\n" not in message and "Traceback" not in message
    for needle in needles:
        assert needle in message, message
    assert elapsed < 10, f"took {elapsed:.1f} s: {message}"
    return message


@pytest.fixture
def bert_repo(fake_hub, tiny_bert_folder):
    return fake_hub.add_repo(REPO, tiny_bert_folder)


def test_a_hub_that_never_answers_the_api_call(fake_hub, bert_repo, quick_limits, tmp_path):
    fake_hub.misbehave("hang", on="api")
    message = _refused(
        fake_hub,
        tmp_path,
        f"the hub at {fake_hub.url} did not answer within 1 s",
        "GRAFT_HUB_TIMEOUT",
        "not in the local cache",
    )
    assert message.count(";") == 1


def test_a_hub_that_never_answers_the_file_metadata_request(fake_hub, bert_repo, quick_limits, tmp_path):
    # huggingface_hub retries a HEAD that timed out with a 60 s timeout and back-off: not here.
    fake_hub.misbehave("hang", on="head", only="model.safetensors")
    _refused(fake_hub, tmp_path, "did not answer within 1 s", "GRAFT_HUB_TIMEOUT")


def test_a_hub_that_never_sends_the_file(fake_hub, bert_repo, quick_limits, tmp_path):
    fake_hub.misbehave("hang", on="get", only="model.safetensors")
    _refused(fake_hub, tmp_path, "did not answer within 1 s")


def test_a_hub_that_stops_in_the_middle_of_a_file(fake_hub, bert_repo, quick_limits, tmp_path):
    fake_hub.misbehave("stop", on="get", only="model.safetensors")
    _refused(fake_hub, tmp_path, f"the hub at {fake_hub.url} stopped sending data (nothing for 1 s)")


def test_a_hub_that_drips_a_file(fake_hub, bert_repo, quick_limits, tmp_path):
    fake_hub.misbehave("drip", on="get", only="model.safetensors")
    _refused(
        fake_hub,
        tmp_path,
        f"the hub at {fake_hub.url} stopped sending data (less than 16 KB in 1 s)",
        "GRAFT_HUB_STALL_SECONDS",
    )


def test_a_hub_that_drips_its_api_answer(fake_hub, bert_repo, quick_limits, tmp_path):
    fake_hub.misbehave("drip", on="api")
    _refused(fake_hub, tmp_path, "stopped sending data (less than 16 KB in 1 s)")


def test_a_slow_but_steady_hub_is_not_a_stall(fake_hub, tmp_path, quick_limits, monkeypatch):
    # 1 MiB in 64 KiB chunks every 0.1 s: 640 KiB/s, far above the 16 KiB/s floor, over ~1.6 s.
    import torch

    folder = tmp_path / "big"
    folder.mkdir()
    save_file({"w": torch.zeros(256, 1024)}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text("{}")
    fake_hub.add_repo("graft-test/big", folder)
    fake_hub.seconds_per_chunk = 0.1
    outcome, _ = _open_within(fake_hub, "graft-test/big", cache_dir=tmp_path / "cache", endpoint=fake_hub.url)
    assert "value" in outcome, outcome
    assert outcome["value"].tensors["w"].shape == (256, 1024)


@pytest.mark.parametrize("how", ["html", "garbage"])
def test_a_hub_answering_the_api_call_with_html_or_garbage(fake_hub, bert_repo, tmp_path, how):
    fake_hub.misbehave(how, on="api")
    _refused(
        fake_hub,
        tmp_path,
        f"the hub at {fake_hub.url} answered the request for {REPO}",
        "not what a Hugging Face hub sends",
        "HF_ENDPOINT",
    )


def test_a_hub_answering_the_file_listing_with_html(fake_hub, bert_repo, tmp_path):
    # model_info answers; snapshot_download's own tree listing gets the HTML page.
    fake_hub.misbehave("html", on="api", only="/tree/")
    _refused(fake_hub, tmp_path, "not what a Hugging Face hub sends")


def test_a_hub_giving_a_commit_id_that_is_a_path(fake_hub, bert_repo, tmp_path):
    # The commit id names a folder of the cache: "../../x" would have files written outside it.
    bert_repo.sha = "../../../outside"
    bert_repo.refs["main"] = bert_repo.sha
    _refused(fake_hub, tmp_path, "not a 40-digit commit hash")
    assert not (tmp_path / "outside").exists()


def _hostile_index_repo(hub, folder: Path, shard: str, repo_id: str):
    """A repo whose index sends every tensor to ``shard`` (a path outside the snapshot)."""
    import json

    from core.sources.local import read_header

    names, _ = read_header(folder / "model.safetensors")
    index = {"metadata": {}, "weight_map": dict.fromkeys(names, shard)}
    files = {
        "config.json": (folder / "config.json").read_bytes(),
        "model.safetensors.index.json": json.dumps(index).encode(),
        "model-00001-of-00001.safetensors": (folder / "model.safetensors").read_bytes(),
    }
    return hub.add_repo(repo_id, extra=files)


@pytest.mark.parametrize("shard", ["../x.safetensors", "ABSOLUTE", "/etc/passwd"])
def test_a_hub_index_naming_a_file_outside_the_snapshot(fake_hub, tiny_bert_folder, tmp_path, shard):
    cache = tmp_path / "cache"
    repo_id = "graft-test/hostile"
    storage = cache / "models--graft-test--hostile"
    outside = storage / "snapshots" / "x.safetensors"  # where "../x.safetensors" leads from a snapshot
    outside.parent.mkdir(parents=True)
    outside.write_bytes((tiny_bert_folder / "model.safetensors").read_bytes())
    if shard == "ABSOLUTE":
        shard = str(outside)
    _hostile_index_repo(fake_hub, tiny_bert_folder, shard, repo_id)

    _refused(
        fake_hub, tmp_path, "model.safetensors.index.json", repr(shard), "plain *.safetensors file names", repo=repo_id
    )
    # Refused before any weights were fetched.
    assert not {n for n in fake_hub.downloaded(repo_id) if n.endswith(".safetensors")}


def test_limits_from_the_environment_are_checked(monkeypatch):
    from core.sources.hub.timeouts import HubLimits

    monkeypatch.setenv("GRAFT_HUB_TIMEOUT", "soon")
    with pytest.raises(SourceError, match="GRAFT_HUB_TIMEOUT is 'soon'; set it to a positive number"):
        HubLimits.from_env()
    monkeypatch.setenv("GRAFT_HUB_TIMEOUT", "2.5")
    monkeypatch.setenv("GRAFT_HUB_STALL_KB", "0")
    with pytest.raises(SourceError, match="GRAFT_HUB_STALL_KB"):
        HubLimits.from_env()
    monkeypatch.delenv("GRAFT_HUB_STALL_KB")
    assert HubLimits.from_env() == HubLimits(timeout=2.5)
