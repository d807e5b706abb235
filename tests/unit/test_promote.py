"""turnout.plan.check_promote: which staged release a promote may flip to, or why not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from turnout.errors import InputError
from turnout.plan import check_promote

SHA_OLD, SHA_NEW = "a" * 64, "b" * 64
NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)


def manifest(result: str = "awaiting_approval", finished: datetime = NOW) -> dict:
    staged = {"version": "2.0", "sha256": SHA_NEW, "run_id": "r2", "staged": True}
    return {
        "env": "prod", "live_pool": "blue",
        "pools": {"blue": {"hosts": {"blue1": {"version": "1.0", "sha256": SHA_OLD,
                                                "run_id": "r1"}}},
                  "green": {"hosts": {"green1": staged, "green2": dict(staged)}}},
        "history": [
            {"id": "r1", "action": "deploy", "result": "success", "finished_at": "x",
             "to": {"pool": "blue", "version": "1.0", "sha256": SHA_OLD}},
            {"id": "r2", "action": "deploy", "result": result,
             "finished_at": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
             "from": {"pool": "blue", "version": "1.0", "sha256": SHA_OLD},
             "to": {"pool": "green", "version": "2.0", "sha256": SHA_NEW},
             "release_notes": "notes"},
        ],
    }


HOSTS = {"green1": {"version": "2.0", "sha256": SHA_NEW},
         "green2": {"version": "2.0", "sha256": SHA_NEW}}


def test_the_staged_release_is_promoted():
    staged = check_promote(manifest(), "blue", HOSTS, NOW + timedelta(seconds=30), 60)
    assert staged["pool"] == "green" and staged["hosts"] == ["green1", "green2"]
    assert (staged["version"], staged["sha256"], staged["run_id"]) == ("2.0", SHA_NEW, "r2")
    assert staged["from_pool"] == "blue" and staged["age_s"] == 30


def test_nothing_awaiting_is_refused():
    with pytest.raises(InputError, match="nothing awaits approval in prod"):
        check_promote(manifest(result="success"), "green", HOSTS, NOW, 60)


def test_a_changed_release_on_a_host_is_refused():
    hosts = {**HOSTS, "green2": {"version": "2.0", "sha256": "c" * 64}}
    with pytest.raises(InputError, match="the staged release changed on green2"):
        check_promote(manifest(), "blue", hosts, NOW, 60)


def test_an_unreachable_staged_host_is_refused():
    with pytest.raises(InputError, match="changed on green1"):
        check_promote(manifest(), "blue", {"green1": None, **{"green2": HOSTS["green2"]}},
                      NOW, 60)


def test_stale_smoke_results_are_refused():
    with pytest.raises(InputError, match=r"are 61s old \(max 60s"):
        check_promote(manifest(), "blue", HOSTS, NOW + timedelta(seconds=61), 60)


def test_an_already_live_staged_pool_is_refused():
    with pytest.raises(InputError, match="already live"):
        check_promote(manifest(), "green", HOSTS, NOW, 60)
