"""Deploy and rollback planning (pure)."""

import pytest

from turnout.errors import InputError
from turnout.plan import plan_deploy, plan_rollback, render_plan

POOLS = {"blue": ["blue1", "blue2"], "green": ["green1", "green2"]}
SHA1, SHA2, SHA3 = "1" * 64, "2" * 64, "3" * 64


def rel(version, sha):
    return {"version": version, "sha256": sha}


def test_empty_fleet_goes_to_blue():
    plan = plan_deploy("lab", POOLS, "blue", {}, "1.0.0", SHA1)
    assert plan.first_deploy and plan.target_pool == "blue" and plan.live_pool is None
    assert plan.target_hosts == ("blue1", "blue2") and not plan.noop
    assert "empty fleet" in render_plan(plan)


def test_next_release_goes_to_idle_pool():
    releases = {"blue1": rel("1.0.0", SHA1), "blue2": rel("1.0.0", SHA1)}
    plan = plan_deploy("lab", POOLS, "blue", releases, "2.0.0", SHA2)
    assert (plan.live_pool, plan.target_pool, plan.from_version) == ("blue", "green", "1.0.0")
    text = render_plan(plan)
    assert "stage on       green: green1, green2" in text and "from version   1.0.0" in text


def test_live_version_is_a_noop_but_same_version_other_sha_is_not():
    releases = {"green1": rel("2.0.0", SHA2), "green2": rel("2.0.0", SHA2),
                "blue1": rel("1.0.0", SHA1), "blue2": rel("1.0.0", SHA1)}
    assert plan_deploy("lab", POOLS, "green", releases, "2.0.0", SHA2).noop
    assert not plan_deploy("lab", POOLS, "green", releases, "2.0.0", SHA3).noop
    assert "already live" in render_plan(plan_deploy("lab", POOLS, "green", releases,
                                                     "2.0.0", SHA2))


def test_lb_routing_elsewhere_is_refused():
    with pytest.raises(InputError, match="routes to 'red'"):
        plan_deploy("lab", POOLS, "red", {}, "1.0.0", SHA1)


def test_rollback_flips_to_warm_pool():
    releases = {"green1": rel("2.0.0", SHA2), "green2": rel("2.0.0", SHA2),
                "blue1": rel("1.0.0", SHA1), "blue2": rel("1.0.0", SHA1)}
    plan = plan_rollback("lab", POOLS, "green", releases)
    assert (plan.target_pool, plan.to_version, plan.from_version) == ("blue", "1.0.0", "2.0.0")
    assert "flip to        blue (1.0.0" in render_plan(plan)


def test_rollback_refusals():
    with pytest.raises(InputError, match="nothing has been deployed yet"):
        plan_rollback("lab", POOLS, "blue", {})
    one_deploy = {"blue1": rel("1.0.0", SHA1), "blue2": rel("1.0.0", SHA1)}
    with pytest.raises(InputError, match="green pool has no release"):
        plan_rollback("lab", POOLS, "blue", one_deploy)
    mixed = {**one_deploy, "green1": rel("2.0.0", SHA2), "green2": rel("1.5.0", SHA3)}
    with pytest.raises(InputError, match="hosts disagree.*green1=2.0.0, green2=1.5.0"):
        plan_rollback("lab", POOLS, "blue", mixed)


def test_parse_canary_steps():
    from turnout.plan import parse_canary
    assert parse_canary("10,50") == [10, 50]
    assert parse_canary("5") == [5]
    for bad in ("", "0", "100", "50,10", "10,10", "ten", "10;rm"):
        with pytest.raises(InputError, match="invalid --canary"):
            parse_canary(bad)
