"""Deploy and rollback planning (pure): pools from the load balancers, what each pool holds and
whether it went live from the fleet's release state."""

import pytest

from turnout import fleetstate as fs
from turnout import traffic
from turnout.errors import InputError
from turnout.plan import FleetView, plan_deploy, plan_rollback, render_plan

POOLS = {"blue": ["blue1", "blue2"], "green": ["green1", "green2"]}
SHA = {"1.0.0": "1" * 64, "2.0.0": "2" * 64, "3.0.0": "3" * 64, "0.9.0": "9" * 64}


def rel(version):
    return {"version": version, "sha256": SHA[version]}


def on(pool, version):
    return {host: rel(version) for host in POOLS[pool]}


def deployed(*versions, approve_last=False):
    """The release state after deploying ``versions`` in turn (blue first)."""
    state, pool = fs.empty("lab"), "blue"
    for number, version in enumerate(versions):
        run = f"r{number}"
        state = fs.transition(state, {"op": "stage", "pool": pool, "version": version,
                                      "sha256": SHA[version], "run_id": run, "at": "t"})
        if approve_last and number == len(versions) - 1:
            return fs.transition(state, {"op": "awaiting", "pool": pool, "run_id": run,
                                         "at": "t"})
        state = fs.transition(state, {"op": "begin", "to": pool, "action": "deploy",
                                      "run_id": run, "at": "t"})
        state = fs.transition(state, {"op": "commit", "run_id": run, "at": "t"})
        pool = "green" if pool == "blue" else "blue"
    return state


def view(routes, releases, state=None, up=None, recorded=()):
    """A fleet of one or more LBs: ``routes`` is a pool (every LB) or {lb: pool}; the manifest
    has a record of the runs in ``recorded``."""
    routes = {"lb1": routes} if isinstance(routes, str) or routes is None else routes
    members = {pool: tuple(hosts) for pool, hosts in POOLS.items()}
    lbs = {name: traffic.LbView(name, pool, pool, up=up or {}, members=members, state=state)
           for name, pool in routes.items()}
    return FleetView("lab", POOLS, lbs, releases, {"history": [{"id": r} for r in recorded]})


def test_empty_fleet_goes_to_the_routed_pool():
    plan = plan_deploy(view("blue", {}), "1.0.0", SHA["1.0.0"])
    assert plan.first_deploy and plan.target_pool == "blue" and plan.live_pool is None
    assert plan.target_hosts == ("blue1", "blue2") and not plan.noop
    assert "empty fleet" in render_plan(plan)


def test_next_release_goes_to_idle_pool():
    plan = plan_deploy(view("blue", on("blue", "1.0.0"), deployed("1.0.0")), "2.0.0",
                       SHA["2.0.0"])
    assert (plan.live_pool, plan.target_pool, plan.from_version) == ("blue", "green", "1.0.0")
    text = render_plan(plan)
    assert "stage on       green: green1, green2" in text and "from version   1.0.0" in text


def test_a_serving_pool_without_release_json_is_never_restaged_in_place():
    """Blue serves (its servers are UP) but its release.json is gone: still the live pool."""
    plan = plan_deploy(view("blue", {}, up={"blue": ("blue1", "blue2")}), "2.0.0", SHA["2.0.0"])
    assert plan.target_pool == "green" and not plan.first_deploy


def test_live_version_is_a_noop_but_same_version_other_sha_is_not():
    state = deployed("1.0.0", "2.0.0")
    releases = {**on("blue", "1.0.0"), **on("green", "2.0.0")}
    assert plan_deploy(view("green", releases, state), "2.0.0", SHA["2.0.0"]).noop
    assert not plan_deploy(view("green", releases, state), "2.0.0", SHA["3.0.0"]).noop
    assert "already live" in render_plan(plan_deploy(view("green", releases, state), "2.0.0",
                                                     SHA["2.0.0"]))


def test_lb_routing_elsewhere_is_refused():
    with pytest.raises(InputError, match="routes to 'red'"):
        plan_deploy(view("red", {}), "1.0.0", SHA["1.0.0"])


def test_load_balancers_that_disagree_are_refused():
    state = deployed("1.0.0", "2.0.0")
    with pytest.raises(InputError, match="disagree.*lb1 routes to green, lb2 routes to blue"):
        plan_deploy(view({"lb1": "green", "lb2": "blue"}, {}, state), "3.0.0", SHA["3.0.0"])


def test_a_half_finished_flip_is_finished_by_the_same_release_and_refused_to_others():
    state = deployed("1.0.0")
    state = fs.transition(state, {"op": "stage", "pool": "green", "version": "2.0.0",
                                  "sha256": SHA["2.0.0"], "run_id": "r9", "at": "t"})
    state = fs.transition(state, {"op": "begin", "to": "green", "action": "deploy",
                                  "run_id": "r9", "at": "t"})
    releases = {**on("blue", "1.0.0"), **on("green", "2.0.0")}
    split = view({"lb1": "green", "lb2": "blue"}, releases, state)
    again = plan_deploy(split, "2.0.0", SHA["2.0.0"])
    assert again.resume and again.target_pool == "green" and again.live_pool == "blue"
    with pytest.raises(InputError, match="left the flip to green unfinished"):
        plan_deploy(split, "3.0.0", SHA["3.0.0"])
    back = plan_rollback(split)
    assert (back.target_pool, back.to_version, back.resume) == ("blue", "1.0.0", True)


def test_rollback_flips_to_the_warm_previous_release():
    releases = {**on("blue", "1.0.0"), **on("green", "2.0.0")}
    plan = plan_rollback(view("green", releases, deployed("1.0.0", "2.0.0")))
    assert (plan.target_pool, plan.to_version, plan.from_version) == ("blue", "1.0.0", "2.0.0")
    assert not plan.stage and "flip to        blue (1.0.0, still warm)" in render_plan(plan)


def test_rollback_refuses_a_release_that_never_went_live():
    state = deployed("1.0.0", "2.0.0", "3.0.0", approve_last=True)  # 3.0.0 awaits on blue
    releases = {**on("blue", "3.0.0"), **on("green", "2.0.0")}
    with pytest.raises(InputError, match=r"blue pool holds 3\.0\.0 \(awaiting approval, never "
                                         r"live.*--to 1\.0\.0"):
        plan_rollback(view("green", releases, state))
    restage = plan_rollback(view("green", releases, state), to_version="1.0.0")
    assert restage.stage and restage.target_pool == "blue" and restage.to_version == "1.0.0"


def test_rollback_refusals():
    with pytest.raises(InputError, match="no release has gone live"):
        plan_rollback(view("blue", {}))
    with pytest.raises(InputError, match="no verified release went live before 1.0.0"):
        plan_rollback(view("blue", on("blue", "1.0.0"), deployed("1.0.0")))
    state = deployed("1.0.0", "2.0.0")
    mixed = {**on("green", "2.0.0"), "blue1": rel("1.0.0"), "blue2": rel("3.0.0")}
    with pytest.raises(InputError, match="nothing to roll back to on the idle pool"):
        plan_rollback(view("green", mixed, state))
    with pytest.raises(InputError, match="--to 7.0: that release never went live"):
        plan_rollback(view("green", mixed, state), to_version="7.0")


def test_a_rollback_is_never_undone_by_rolling_back_again():
    state = deployed("1.0.0", "2.0.0")
    state = fs.transition(state, {"op": "begin", "to": "blue", "action": "rollback",
                                  "run_id": "rb", "at": "t"})
    releases = {**on("blue", "1.0.0"), **on("green", "2.0.0")}
    interrupted = plan_rollback(view({"lb1": "blue", "lb2": "green"}, releases, state))
    assert (interrupted.target_pool, interrupted.to_version) == ("blue", "1.0.0")
    state = fs.transition(state, {"op": "commit", "run_id": "rb", "at": "t"})
    with pytest.raises(InputError, match="green pool holds 2.0.0 \\(rolled back from"):
        plan_rollback(view("blue", releases, state, recorded=["rb"]))
    # killed after its flip, before its record: run again, it only records what happened
    again = plan_rollback(view("blue", releases, state))
    assert again.converge and again.noop and again.to_version == "1.0.0"


def test_rollback_to_does_not_mark_what_it_leaves_as_rolled_back():
    state = deployed("1.0.0", "2.0.0")
    state = fs.transition(state, {"op": "begin", "to": "blue", "action": "rollback_to",
                                  "run_id": "rt", "at": "t"})
    state = fs.transition(state, {"op": "commit", "run_id": "rt", "at": "t"})
    assert state["pools"]["green"]["status"] == "previous"


def test_parse_canary_steps():
    from turnout.plan import parse_canary
    assert parse_canary("10,50") == [10, 50]
    assert parse_canary("5") == [5]
    for bad in ("", "0", "100", "50,10", "10,10", "ten", "10;rm"):
        with pytest.raises(InputError, match="invalid --canary"):
            parse_canary(bad)
