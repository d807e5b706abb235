"""turnout.plan.plan_promote: which staged release a promote may flip to, or why not; decided
from the fleet's release state on the load balancers, not from a controller's manifest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from turnout import fleetstate as fs
from turnout import traffic
from turnout.errors import InputError
from turnout.plan import FleetView, plan_promote

SHA_OLD, SHA_NEW = "a" * 64, "b" * 64
NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
POOLS = {"blue": ["blue1"], "green": ["green1", "green2"]}


def state(finished: datetime = NOW, approve: bool = True) -> dict:
    stamp = finished.strftime("%Y-%m-%dT%H:%M:%SZ")
    s = fs.transition(None, {"op": "stage", "pool": "blue", "version": "1.0", "sha256": SHA_OLD,
                             "run_id": "r1", "at": stamp})
    s = fs.transition(s, {"op": "begin", "to": "blue", "action": "deploy", "run_id": "r1",
                          "at": stamp})
    s = fs.transition(s, {"op": "commit", "run_id": "r1", "at": stamp})
    s = fs.transition(s, {"op": "stage", "pool": "green", "version": "2.0", "sha256": SHA_NEW,
                          "run_id": "r2", "at": stamp})
    if approve:
        s = fs.transition(s, {"op": "awaiting", "pool": "green", "run_id": "r2", "at": stamp})
    return s


HOSTS = {"blue1": {"version": "1.0", "sha256": SHA_OLD},
         "green1": {"version": "2.0", "sha256": SHA_NEW},
         "green2": {"version": "2.0", "sha256": SHA_NEW}}


def view(fleet_state, routed="blue", hosts=None, manifest=None):
    members = {pool: tuple(h) for pool, h in POOLS.items()}
    lbs = {"lb1": traffic.LbView("lb1", routed, routed, members=members, state=fleet_state),
           "lb2": traffic.LbView("lb2", routed, routed, members=members, state=fleet_state)}
    return FleetView("prod", POOLS, lbs, hosts or HOSTS, manifest or {})


def test_the_staged_release_is_promoted():
    manifest = {"history": [{"id": "r2", "release_notes": "notes"}]}
    staged = plan_promote(view(state(), manifest=manifest), NOW + timedelta(seconds=30), 60)
    assert staged.target_pool == "green" and staged.target_hosts == ("green1", "green2")
    assert (staged.to_version, staged.to_sha256, staged.run_id) == ("2.0", SHA_NEW, "r2")
    assert staged.live_pool == "blue" and staged.age_s == 30 and staged.release_notes == "notes"


def test_nothing_awaiting_is_refused():
    with pytest.raises(InputError, match="nothing awaits approval in prod"):
        plan_promote(view(state(approve=False)), NOW, 60)


def test_a_changed_release_on_a_host_is_refused():
    hosts = {**HOSTS, "green2": {"version": "2.0", "sha256": "c" * 64}}
    with pytest.raises(InputError, match="the staged release changed on green2"):
        plan_promote(view(state(), hosts=hosts), NOW, 60)


def test_an_unreachable_staged_host_is_refused():
    with pytest.raises(InputError, match="changed on green1"):
        plan_promote(view(state(), hosts={**HOSTS, "green1": None}), NOW, 60)


def test_stale_smoke_results_are_refused():
    with pytest.raises(InputError, match=r"are 61s old \(max 60s"):
        plan_promote(view(state()), NOW + timedelta(seconds=61), 60)


def test_another_version_than_the_staged_one_is_refused():
    with pytest.raises(InputError, match="turnout_version=3.0 but the release awaiting"):
        plan_promote(view(state()), NOW, 60, version="3.0")
