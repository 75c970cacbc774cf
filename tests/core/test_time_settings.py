"""The time-driven settings are seconds, and a renewal window that lets channels lapse is refused
at start-up with one line naming the variables."""

from __future__ import annotations

import pytest

from core.settings import ConfigError, load_settings


def test_intervals_are_read_in_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALSYNC_FALLBACK_SYNC_INTERVAL_S", "5")
    monkeypatch.setenv("CALSYNC_CHANNEL_RENEWAL_INTERVAL_S", "6")
    monkeypatch.setenv("CALSYNC_CHANNEL_RENEW_BEFORE_S", "30")
    monkeypatch.setenv("CALSYNC_PUSH_CHANNEL_TTL_S", "60")

    settings = load_settings()

    assert (settings.fallback_sync_interval_s, settings.channel_renewal_interval_s) == (5, 6)
    assert (settings.channel_renew_before_s, settings.push_channel_ttl_s) == (30, 60)


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        (
            {
                "CALSYNC_CHANNEL_RENEWAL_INTERVAL_S": "10",
                "CALSYNC_CHANNEL_RENEW_BEFORE_S": "60",
                "CALSYNC_PUSH_CHANNEL_TTL_S": "60",
            },
            "shorter than CALSYNC_PUSH_CHANNEL_TTL_S",
        ),
        (
            {"CALSYNC_CHANNEL_RENEWAL_INTERVAL_S": "172800"},
            "RENEWAL_INTERVAL_S: must be shorter than CALSYNC_CHANNEL_RENEW_BEFORE_S",
        ),
    ],
)
def test_a_renewal_that_could_let_a_channel_expire_is_refused(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError, match=named):
        load_settings()
