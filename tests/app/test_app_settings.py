"""Settings are typed, persistent, versioned and stored where the tests say."""

from __future__ import annotations

import pytest

from app.settings import RECENT_LIMIT, Settings


def test_defaults_and_round_trip(fresh_settings, qapp):
    settings = Settings()
    assert settings.path == fresh_settings
    assert settings.get("sources/offline") is False
    settings.set("sources/offline", True)
    settings.set("export/max_shard_size", "2GB")
    settings.sync()
    again = Settings()
    assert again.get("sources/offline") is True
    assert again.get("export/max_shard_size") == "2GB"
    assert fresh_settings.is_file()


def test_types_are_checked(qapp):
    settings = Settings()
    with pytest.raises(TypeError):
        settings.set("sources/offline", "yes")
    with pytest.raises(KeyError):
        settings.get("no/such/key")


def test_recent_sources_are_unique_and_bounded(qapp):
    settings = Settings()
    for i in range(RECENT_LIMIT + 3):
        settings.add_recent_source(f"/models/{i}")
    settings.add_recent_source("/models/5")
    recent = Settings().recent_sources()
    assert recent[0] == "/models/5" and len(recent) == RECENT_LIMIT and len(set(recent)) == RECENT_LIMIT


def test_corrupt_value_falls_back_to_default(fresh_settings, qapp):
    fresh_settings.parent.mkdir(parents=True, exist_ok=True)
    fresh_settings.write_text("[export]\nmax_shard_size=not json\n[meta]\nversion=1\n")
    assert Settings().get("export/max_shard_size") == "5GB"
