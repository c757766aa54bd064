"""Durations printed as k8s.io/apimachinery/pkg/util/duration does (kubectl's AGE)."""
from __future__ import annotations

import datetime as dt

import pytest

from extserver.machinery.humanize import human_duration, short_human_duration, translate_timestamp_since

S, M, H, D, Y = 1, 60, 3600, 86400, 365 * 86400
MS = dt.timedelta(milliseconds=1)


def td(seconds: float) -> dt.timedelta:
    return dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("d,want", [
    (1 * S, "1s"),
    (70 * S, "70s"),
    (190 * S, "3m10s"),
    (70 * M, "70m"),
    (47 * H, "47h"),
    (49 * H, "2d1h"),
    ((8 * 24 + 2) * H, "8d"),
    (367 * D, "367d"),
    (2 * Y + 25 * H, "2y1d"),
    (8 * Y + 2 * H, "8y"),
    # boundaries
    (-2 * S, "<invalid>"),
    (-2 * S + 1e-9, "0s"),
    (0, "0s"),
    (td(1) - MS, "0s"),
    (td(2 * M) - MS, "119s"),
    (2 * M, "2m"),
    (2 * M + 1, "2m1s"),
    (td(10 * M) - MS, "9m59s"),
    (10 * M, "10m"),
    (10 * M + 1, "10m"),
    (td(3 * H) - MS, "179m"),
    (3 * H, "3h"),
    (3 * H + M, "3h1m"),
    (td(8 * H) - MS, "7h59m"),
    (8 * H, "8h"),
    (8 * H + 59 * M, "8h"),
    (td(2 * D) - MS, "47h"),
    (2 * D, "2d"),
    (2 * D + H, "2d1h"),
    (td(8 * D) - MS, "7d23h"),
    (8 * D, "8d"),
    (8 * D + 23 * H, "8d"),
    (td(2 * Y) - MS, "729d"),
    (2 * Y, "2y"),
    (2 * Y + 23 * H + 59 * M, "2y"),
    (td(2 * Y + D) - MS, "2y"),
    (2 * Y + D, "2y1d"),
    (3 * Y, "3y"),
    (7 * Y, "7y"),
    (td(8 * Y) - MS, "7y364d"),
    (8 * Y, "8y"),
    (8 * Y + 364 * D, "8y"),
    (9 * Y, "9y"),
])
def test_human_duration(d, want):
    assert human_duration(d) == want


@pytest.mark.parametrize("d,want", [
    (-2 * S, "<invalid>"),
    (-2 * S + 1e-9, "0s"),
    (0, "0s"),
    (td(1) - MS, "0s"),
    (1, "1s"),
    (td(2) - MS, "1s"),
    (td(M) - MS, "59s"),
    (M, "1m"),
    (td(2 * M) - MS, "1m"),
    (td(H) - MS, "59m"),
    (H, "1h"),
    (td(2 * H) - MS, "1h"),
    (td(D) - MS, "23h"),
    (D, "1d"),
    (td(2 * D) - MS, "1d"),
    (td(Y) - MS, "364d"),
    (Y, "1y"),
    (td(2 * Y) - MS, "1y"),
    (2 * Y, "2y"),
])
def test_short_human_duration(d, want):
    assert short_human_duration(d) == want


def test_float_seconds_and_timedelta_agree():
    assert human_duration(190.9) == human_duration(td(190.9)) == "3m10s"
    assert human_duration(0.3) == "0s"


def test_translate_timestamp_since():
    now = dt.datetime(2024, 1, 3, 0, 0, 0, tzinfo=dt.timezone.utc)
    assert translate_timestamp_since(None, now) == "<unknown>"
    assert translate_timestamp_since("", now) == "<unknown>"
    assert translate_timestamp_since("2024-01-02T23:59:55Z", now) == "5s"
    assert translate_timestamp_since("2024-01-01T00:00:00Z", now) == "2d"
    assert translate_timestamp_since("2024-01-03T00:00:05Z", now) == "<invalid>"  # clock skew
