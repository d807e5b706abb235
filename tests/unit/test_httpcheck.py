"""Unit tests for turnout.httpcheck: one curl run, N requests, parsed."""

from __future__ import annotations

import pytest

from turnout.httpcheck import WRITE_OUT, curl_argv, parse_batch


def test_curl_argv_repeats_the_url_and_marks_each_response() -> None:
    argv = curl_argv("http://lb/version", 3, 5)
    assert argv[:5] == ["curl", "--silent", "--show-error", "--max-time", "5"]
    assert argv[5:7] == ["--write-out", WRITE_OUT]
    assert argv[7:] == ["http://lb/version"] * 3


def test_curl_argv_needs_one_request() -> None:
    with pytest.raises(ValueError):
        curl_argv("http://lb/version", 0, 5)


def test_parse_batch_reads_status_seconds_and_version() -> None:
    text = ('{"version": "1.2.0", "pool": "green"}\n@@turnout 200 0.004512\n'
            '{"version": "1.2.0"}\n@@turnout 200 0.001\n')
    assert parse_batch(text) == [
        {"status": 200, "seconds": 0.004512, "version": "1.2.0",
         "body": '{"version": "1.2.0", "pool": "green"}'},
        {"status": 200, "seconds": 0.001, "version": "1.2.0", "body": '{"version": "1.2.0"}'},
    ]


def test_parse_batch_body_without_a_trailing_newline() -> None:
    # curl prints the write-out right after the body; WRITE_OUT starts with a newline
    text = '{"version":"2.0"}' + WRITE_OUT.replace("%{http_code}", "200").replace(
        "%{time_total}", "0.01")
    assert [r["version"] for r in parse_batch(text)] == ["2.0"]


def test_parse_batch_failed_transfers_and_errors() -> None:
    text = ("\n@@turnout 000 0.000\n"
            "<html>503 Service Unavailable</html>\n@@turnout 503 0.002\n"
            "not json\n@@turnout 200 0.002\n")
    results = parse_batch(text)
    assert [(r["status"], r["version"]) for r in results] == [(0, None), (503, None), (200, None)]


def test_parse_batch_pads_a_short_batch_with_failures() -> None:
    results = parse_batch('{"version": "1"}\n@@turnout 200 0.1\n', expected=3)
    assert [r["status"] for r in results] == [200, 0, 0]
    assert parse_batch("", expected=2) == [
        {"status": 0, "seconds": 0.0, "version": None, "body": ""}] * 2
