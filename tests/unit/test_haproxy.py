"""Unit tests for turnout.haproxy: Runtime API output parsing and map rendering."""

from __future__ import annotations

import pytest

from turnout.errors import InputError
from turnout.haproxy import (
    active_pool,
    all_error_counters,
    backend_for,
    canary_check,
    canary_counters,
    error_counters,
    parse_show_map,
    parse_show_stat,
    pool_for,
    render_map,
    server_states,
    servers_up,
    split_map_stat,
)

# Captured from HAProxy 2.6.12 (Debian 12) in the lab, trimmed to the columns up to hrsp_5xx
# plus a few more; the parser reads columns by name, so the order and the rest do not matter.
HEADER = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,"
    "wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,"
    "lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,"
    "hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other\n"
)
SHOW_STAT = HEADER + (
    "fe_app,FRONTEND,,,3,5,262120,40,4000,8000,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,1,0,5,,,,0,40,0,"
    "0,0,0\n"
    "be_blue,blue1,0,0,1,2,,20,2000,4000,,0,,0,0,0,0,UP,1,1,0,0,0,120,0,,1,3,1,,20,,2,0,,3,"
    "L7OK,200,1,0,20,0,0,0,0\n"
    "be_blue,blue2,0,0,0,2,,18,2000,4000,,0,,1,2,0,0,UP,1,1,0,1,0,120,0,,1,3,2,,18,,2,0,,3,"
    "L7OK,200,1,0,17,0,0,1,0\n"
    "be_blue,BACKEND,0,0,1,3,26212,38,4000,8000,0,0,,1,2,0,0,UP,2,2,0,,0,120,0,,1,3,0,,38,,1,0,,"
    "5,,,,0,37,0,0,1,0\n"
    "be_green,green1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,2,1,5,5,,1,4,1,,0,,2,0,,0,L4CON,,0,0,"
    "0,0,0,0,0\n"
    "be_green,green2,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP 1/2,1,1,0,0,0,5,0,,1,4,2,,0,,2,0,,0,L7OK,200,"
    "1,0,0,0,0,0,0\n"
    "be_green,BACKEND,0,0,0,0,26212,0,0,0,0,0,,0,0,0,0,DOWN,0,0,0,,1,5,5,,1,4,0,,0,,1,0,,0,,,,0,"
    "0,0,0,0,0\n"
    "stats,FRONTEND,,,1,1,262120,1,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,5,0,,,,0,1,0,1,,,,0,0,0,0,0,0\n"
    "stats,BACKEND,0,0,0,0,26212,0,0,0,0,0,,0,0,0,0,UP,0,0,0,,0,5,,,1,5,0,,0,,1,0,,0,,,,0,0,0,0,"
    "0,0\n"
)


def test_parse_show_map_reads_entries() -> None:
    assert parse_show_map("0x55d0c5e0a0e0 active be_green\n") == {"active": "be_green"}


def test_parse_show_map_empty_map_is_empty() -> None:
    assert parse_show_map("\n") == {}


def test_parse_show_map_rejects_an_error_reply() -> None:
    with pytest.raises(InputError, match="unexpected 'show map'"):
        parse_show_map("Unknown map identifier. Please use #<id> or <file>.\n")


@pytest.mark.parametrize(
    ("text", "pool"),
    [
        ("0x1 active be_blue\n", "blue"),
        ("0x1 active be_green\n", "green"),
        ("0x1 active be_purple\n", None),
        ("0x1 other be_green\n", None),
        ("", None),
    ],
)
def test_active_pool(text: str, pool: str | None) -> None:
    assert active_pool(text) == pool


def test_render_map_round_trips_through_active_pool() -> None:
    assert render_map("green") == "active be_green\n"
    assert active_pool("0x7f " + render_map("green")) == "green"


def test_render_map_rejects_unknown_pool() -> None:
    with pytest.raises(InputError, match="unknown pool"):
        render_map("red")


def test_backend_and_pool_names() -> None:
    assert backend_for("blue") == "be_blue"
    assert pool_for("be_green") == "green"
    assert pool_for("stats") is None
    with pytest.raises(InputError):
        backend_for("be_blue")


def test_parse_show_stat_splits_backends_and_servers() -> None:
    stats = parse_show_stat(SHOW_STAT)
    assert sorted(stats["backends"]) == ["be_blue", "be_green", "stats"]
    assert sorted(stats["servers"]["be_blue"]) == ["blue1", "blue2"]
    assert "fe_app" not in stats["backends"]
    assert stats["servers"]["be_blue"]["blue1"]["scur"] == 1
    assert stats["servers"]["be_green"]["green1"]["status"] == "DOWN"
    assert stats["servers"]["be_green"]["green1"]["check_status"] == "L4CON"


def test_parse_show_stat_rejects_non_csv() -> None:
    with pytest.raises(InputError, match="show stat"):
        parse_show_stat("Permission denied\n")


def test_error_counters_per_backend() -> None:
    stats = parse_show_stat(SHOW_STAT)
    assert error_counters(stats, "be_blue") == {"hrsp_5xx": 1, "eresp": 2, "econ": 1}
    assert error_counters(stats, "be_green") == {"hrsp_5xx": 0, "eresp": 0, "econ": 0}
    assert error_counters(stats, "be_missing") == {"hrsp_5xx": 0, "eresp": 0, "econ": 0}


def test_all_error_counters_only_pool_backends() -> None:
    assert sorted(all_error_counters(parse_show_stat(SHOW_STAT))) == ["be_blue", "be_green"]


def test_servers_up_needs_every_server_fully_up() -> None:
    stats = parse_show_stat(SHOW_STAT)
    assert server_states(stats, "be_green") == {"green1": "DOWN", "green2": "UP 1/2"}
    assert servers_up(stats, "be_blue") is True
    assert servers_up(stats, "be_green") is False
    assert servers_up(stats, "be_blue", ["blue1"]) is True
    assert servers_up(stats, "be_blue", ["blue1", "blue3"]) is False
    assert servers_up(stats, "be_missing") is False


def test_parse_show_map_lenient_skips_error_replies() -> None:
    text = "Unknown map identifier. Please use #<id> or <file>.\n\n0x1 active be_blue\n"
    assert parse_show_map(text, strict=False) == {"active": "be_blue"}


def test_active_pool_lenient_reads_set_then_show_output() -> None:
    # "set map ...; show map ..." answers with an empty line for the set, then the map
    assert active_pool("\n0x55d0c5e0a0e0 active be_green\n\n", strict=False) == "green"
    assert active_pool("Can't connect\n", strict=False) is None


def test_canary_counters_include_retries_and_server_health_check_downs() -> None:
    stats = parse_show_stat(SHOW_STAT)
    assert canary_counters(stats, "be_blue") == {
        "hrsp_5xx": 1, "eresp": 2, "econ": 1, "wretr": 0, "wredis": 0, "chkdown": 0}
    # the backend's own chkdown is 1 too, but it is the servers' sum that is kept
    assert canary_counters(stats, "be_green")["chkdown"] == 1
    assert canary_counters(stats, "be_missing") == dict.fromkeys(
        ("hrsp_5xx", "eresp", "econ", "wretr", "wredis", "chkdown"), 0)


def test_canary_check_passes_a_quiet_healthy_backend() -> None:
    stats = parse_show_stat(SHOW_STAT)
    verdict = canary_check(stats, "be_blue", canary_counters(stats, "be_blue"), 0)
    assert verdict == {"ok": True, "new_errors": 0, "not_up": [], "reason": ""}


def test_canary_check_counts_new_errors_against_the_baseline() -> None:
    stats = parse_show_stat(SHOW_STAT)
    baseline = {"hrsp_5xx": 0, "eresp": 0, "econ": 1, "wretr": 0, "wredis": 0, "chkdown": 0}
    verdict = canary_check(stats, "be_blue", baseline, 2)
    assert verdict["new_errors"] == 3 and not verdict["ok"]
    assert "be_blue had 3 new errors (eresp +2, hrsp_5xx +1; max 2)" in verdict["reason"]
    assert canary_check(stats, "be_blue", baseline, 3)["ok"]


def test_canary_check_fails_when_a_server_is_not_up_even_without_errors() -> None:
    stats = parse_show_stat(SHOW_STAT)
    verdict = canary_check(stats, "be_green", canary_counters(stats, "be_green"), 100)
    assert not verdict["ok"]
    assert verdict["not_up"] == ["green1", "green2"]
    assert verdict["reason"] == "be_green server(s) not UP: green1, green2"


def test_canary_check_sees_retries_that_clients_never_see() -> None:
    healthy = parse_show_stat(SHOW_STAT)
    retried = parse_show_stat(SHOW_STAT.replace(
        "be_blue,BACKEND,0,0,1,3,26212,38,4000,8000,0,0,,1,2,0,0,",
        "be_blue,BACKEND,0,0,1,3,26212,38,4000,8000,0,0,,1,2,4,1,"))
    verdict = canary_check(retried, "be_blue", canary_counters(healthy, "be_blue"), 0)
    assert (verdict["ok"], verdict["new_errors"]) == (False, 5)
    assert "wredis +1, wretr +4" in verdict["reason"]


def test_split_map_stat_reads_one_combined_reply() -> None:
    reply = "0x55d0c5e0a0e0 active be_green\n\n" + SHOW_STAT
    parts = split_map_stat(reply)
    assert active_pool(parts["map"]) == "green"
    stats = parse_show_stat(parts["stat"])
    assert server_states(stats, "be_blue") == {"blue1": "UP", "blue2": "UP"}


def test_split_map_stat_without_stats_leaves_stat_empty() -> None:
    assert split_map_stat("Unknown map identifier.\n") == {
        "map": "Unknown map identifier.\n", "stat": ""}
