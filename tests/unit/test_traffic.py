"""turnout.traffic: where traffic goes, agreed across the load balancers and the release state."""

from __future__ import annotations

import pytest

from turnout import fleetstate as fs
from turnout import traffic
from turnout.errors import InputError

SHA1, SHA2 = "1" * 64, "2" * 64
MEMBERS = {"blue": ("blue1",), "green": ("green1",)}
POOLS = {"blue": ["blue1"], "green": ["green1"]}


def live_on(pool, version, sha, run="r1"):
    state = fs.transition(None, {"op": "stage", "pool": pool, "version": version,
                                 "sha256": sha, "run_id": run, "at": "t"})
    state = fs.transition(state, {"op": "begin", "to": pool, "action": "deploy", "run_id": run,
                                  "at": "t"})
    return fs.transition(state, {"op": "commit", "run_id": run, "at": "t"})


def lbs(routes, state=None, states=None, up=None):
    return {name: traffic.LbView(name, pool, pool, up=up or {}, members=MEMBERS,
                                 state=(states or {}).get(name, state))
            for name, pool in routes.items()}


def test_lb_view_reads_the_module_result():
    read = {"live_pool": "green", "map_file_pool": "blue", "canary": {"pct": 30},
            "stats": {"servers": {"be_green": {"green1": {"status": "UP"}},
                                  "be_blue": {"blue1": {"status": "DOWN"}}}},
            "fleet_state": {"serial": 3}, "fleet_state_error": None}
    view = traffic.lb_view("lb1", read)
    assert (view.live_pool, view.map_file_pool, view.canary_pct) == ("green", "blue", 30)
    assert view.up == {"blue": (), "green": ("green1",)} and view.state == {"serial": 3}
    assert traffic.lb_view("lb2", {"error": "gone"}).error == "gone"


def test_every_lb_on_one_pool_agrees():
    seen = traffic.agree("prod", lbs({"lb1": "blue", "lb2": "blue"}, live_on("blue", "1", SHA1)))
    assert (seen.live, seen.lb_pool, seen.behind, seen.split) == ("blue", "blue", [], False)


def test_a_new_fleet_has_nothing_live_unless_its_pool_serves():
    assert traffic.agree("prod", lbs({"lb1": "blue"})).live is None
    assert traffic.agree("prod", lbs({"lb1": "blue"}, up={"blue": ("blue1",)})).live == "blue"


def test_a_stale_copy_is_named_behind():
    new = live_on("blue", "1", SHA1)
    seen = traffic.agree("prod", lbs({"lb1": "blue", "lb2": "blue"},
                                     states={"lb1": new, "lb2": None}))
    assert seen.behind == ["lb2"] and seen.state == new


@pytest.mark.parametrize(("routes", "match"), [
    ({"lb1": "blue", "lb2": "green"}, "disagree"),
    ({"lb1": "blue", "lb2": None}, "routes to None"),
])
def test_disagreement_without_a_flip_in_progress_is_refused(routes, match):
    with pytest.raises(InputError, match=match):
        traffic.agree("prod", lbs(routes, live_on("blue", "1", SHA1)))


def test_a_half_done_flip_is_recognised():
    state = fs.transition(live_on("blue", "1", SHA1), {"op": "begin", "to": "green",
                                                       "action": "deploy", "run_id": "r2",
                                                       "at": "t"})
    seen = traffic.agree("prod", lbs({"lb1": "green", "lb2": "blue"}, state))
    assert seen.split and seen.live == "blue" and seen.pending["to"] == "green"
    done = traffic.agree("prod", lbs({"lb1": "green", "lb2": "green"}, state))
    assert done.live == "blue" and done.lb_pool == "green"  # not committed yet


def test_traffic_moved_by_hand_is_refused():
    with pytest.raises(InputError, match="moved traffic by hand.*invoke reconcile"):
        traffic.agree("prod", lbs({"lb1": "green"}, live_on("blue", "1", SHA1)))


def test_lbs_with_different_pools_are_refused():
    views = lbs({"lb1": "blue", "lb2": "blue"})
    views["lb2"] = traffic.LbView("lb2", "blue", "blue", members={"blue": (), "green": ()})
    with pytest.raises(InputError, match="different pools"):
        traffic.agree("prod", views)


def test_provision_view_starts_new_lbs_on_the_committed_pool():
    state = fs.transition(live_on("green", "2", SHA2), {"op": "begin", "to": "blue",
                                                        "action": "deploy", "run_id": "r3",
                                                        "at": "t"})
    reads = {"lb1": {"live_pool": "blue", "fleet_state": state}, "lb2": None}
    view = traffic.provision_view(reads)
    assert view == {"live_pool": "green", "committed": True, "state": state}
    assert traffic.provision_view({"lb1": None})["live_pool"] == "blue"


def test_reconciled_state_records_what_the_lbs_route_to():
    state = live_on("blue", "1", SHA1)
    releases = {"blue1": {"version": "1", "sha256": SHA1},
                "green1": {"version": "2", "sha256": SHA2}}
    new = traffic.reconciled_state("prod", lbs({"lb1": "green"}, state), POOLS, releases, "t2")
    assert new["live"] == "green" and new["serial"] == state["serial"] + 1
    assert new["pools"]["blue"]["status"] == "previous"
    assert new["history"][-1]["action"] == "reconcile"
    assert fs.rollback_target(new)["version"] == "1"
    with pytest.raises(InputError, match="do not all route to one pool"):
        traffic.reconciled_state("prod", lbs({"lb1": "green", "lb2": "blue"}), POOLS, releases,
                                 "t")
