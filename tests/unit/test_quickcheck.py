"""turnout.quickcheck: the rollback's quick check, from the load balancers' reads alone."""

from __future__ import annotations

import copy

from turnout import quickcheck

V1, V2 = "1.0.0", "2.0.0"
SHA1, SHA2 = "a" * 64, "b" * 64
POOLS = {"blue": ["blue1", "blue2"], "green": ["green1", "green2"]}
VERSION_CHECK = {"kind": "json", "path": "/version", "key": "version"}


def state(serial: int = 5) -> dict:
    return {"serial": serial, "live": "green", "pending": None,
            "pools": {"blue": {"version": V1, "sha256": SHA1, "status": "previous"},
                      "green": {"version": V2, "sha256": SHA2, "status": "live"}}}


def read(version: str = V1, up: str = "UP", serial: int = 5, run_id: str = "r1",
         lock: bool = True) -> dict:
    found = {"running": True, "live_pool": "green", "map_file_pool": "green",
             "canary": {"backend": None, "pct": 0},
             "releases": {"be_blue": V1, "be_green": V2},
             "stats": {"servers": {"be_blue": {"blue1": {"status": up}, "blue2": {"status": "UP"}},
                                   "be_green": {"green1": {"status": "UP"},
                                                "green2": {"status": "UP"}}}},
             "fleet_state": state(serial), "answered_pool": "blue", "version_kind": "json",
             "answers": {"blue1": {"status": 200, "version": version, "checks": [], "ms": 3},
                         "blue2": {"status": 200, "version": V1, "checks": [], "ms": 4}}}
    if lock:
        found["lock"] = {"run_id": run_id, "action": "rollback"}
    return found


def plan(**changes) -> dict:
    return {"action": "rollback", "refused": "", "live_pool": "green", "target_pool": "blue",
            "target_hosts": ["blue1", "blue2"], "target_workers": [], "to_version": V1,
            "to_sha256": SHA1, "stage": False, "resume": False, "noop": False, **changes}


def test_ask_reads_the_version_and_the_extra_checks_in_one_go():
    answers = {"/version": (200, '{"version": "1.0.0"}', {}), "/db": (200, "db ok", {})}
    ticks = iter([10.0, 10.012])
    found = quickcheck.ask(VERSION_CHECK, [{"name": "db", "path": "/db", "contains": "ok"}],
                           answers.__getitem__, clock=lambda: next(ticks))
    assert found == {"status": 200, "version": V1, "ms": 12,
                     "checks": [{"name": "db", "ok": True, "detail": "status 200 (want 200)"}]}


def test_ask_a_server_that_does_not_answer_reports_no_version():
    found = quickcheck.ask(VERSION_CHECK, [], lambda path: (0, "refused", {}))
    assert found["version"] is None and found["status"] == 0


def test_idle_hosts_are_the_pool_the_lb_does_not_route_to():
    hosts = [{"name": "blue1", "pool": "blue"}, {"name": "green1", "pool": "green"}]
    assert quickcheck.idle_hosts("green", hosts) == [{"name": "blue1", "pool": "blue"}]
    assert quickcheck.idle_hosts(None, hosts) == []


def test_releases_take_the_state_for_hosts_that_answer_its_version():
    found = quickcheck.releases({"lb1": read(), "lb2": read()}, POOLS)
    assert found["blue1"] == {"version": V1, "sha256": SHA1}
    assert found["green1"] == {"version": V2, "sha256": SHA2}  # live pool: from the state


def test_releases_give_no_sha256_to_a_host_that_answers_another_version():
    found = quickcheck.releases({"lb1": read(version="9.9.9")}, POOLS)
    assert found["blue1"] == {"version": "9.9.9", "sha256": None}
    assert quickcheck.releases({"lb1": read(version=None)}, POOLS)["blue1"] is None


def test_releases_disagreeing_answers_from_two_lbs_are_no_release():
    assert quickcheck.releases({"lb1": read(), "lb2": read(version=V2)}, POOLS)["blue1"] is None


def test_verdict_passes_when_everything_agrees():
    found = quickcheck.verdict(plan(), {"lb1": read(), "lb2": read(lock=False)},
                               ["lb1", "lb2"], "r1")
    assert found["ok"], found["message"]
    assert set(found["results"]) == {"blue1", "blue2"}
    assert all(r["result"] == "passed" for r in found["results"].values())
    assert [c["name"] for c in found["results"]["blue1"]["checks"]] == ["up", "version"]


def test_verdict_refuses_a_server_that_is_not_up():
    found = quickcheck.verdict(plan(), {"lb1": read(up="DOWN")}, ["lb1"], "r1")
    assert not found["ok"]
    assert "blue1" in found["message"] and "not UP" in found["message"]
    assert found["results"]["blue1"]["result"] == "failed"


def test_verdict_refuses_a_version_mismatch():
    found = quickcheck.verdict(plan(), {"lb1": read(version="9.9.9")}, ["lb1"], "r1")
    assert not found["ok"] and "expected 1.0.0, got 9.9.9" in found["message"]


def test_verdict_refuses_a_failing_extra_check():
    bad = read()
    bad["answers"]["blue2"]["checks"] = [{"name": "db", "ok": False, "detail": "status 500"}]
    found = quickcheck.verdict(plan(), {"lb1": bad}, ["lb1"], "r1")
    assert not found["ok"] and "status 500" in found["message"]


def test_verdict_refuses_another_runs_lock_and_a_missing_lock():
    assert "held by r2" in quickcheck.verdict(plan(), {"lb1": read(run_id="r2")}, ["lb1"],
                                              "r1")["message"]
    assert "held by nobody" in quickcheck.verdict(plan(), {"lb1": read(lock=False)}, ["lb1"],
                                                  "r1")["message"]


def test_verdict_refuses_an_lb_behind_or_routing_elsewhere_or_with_a_canary():
    behind = quickcheck.verdict(plan(), {"lb1": read(), "lb2": read(serial=4, lock=False)},
                                ["lb1", "lb2"], "r1")
    assert not behind["ok"] and "lb2's release state is behind" in behind["message"]
    split = read(lock=False)
    split["live_pool"] = "blue"
    assert "lb2 routes to blue" in quickcheck.verdict(plan(), {"lb1": read(), "lb2": split},
                                                      ["lb1", "lb2"], "r1")["message"]
    canary = read()
    canary["canary"] = {"backend": "be_blue", "pct": 10}
    assert "canary" in quickcheck.verdict(plan(), {"lb1": canary}, ["lb1"], "r1")["message"]


def test_verdict_refuses_a_release_map_or_state_that_disagrees():
    named = read()
    named["releases"]["be_blue"] = "0.9.0"
    assert "release map names 0.9.0" in quickcheck.verdict(plan(), {"lb1": named}, ["lb1"],
                                                           "r1")["message"]
    other = read()
    other["fleet_state"] = copy.deepcopy(other["fleet_state"])
    other["fleet_state"]["pools"]["blue"]["sha256"] = "c" * 64
    assert "release state says" in quickcheck.verdict(plan(), {"lb1": other}, ["lb1"],
                                                      "r1")["message"]


def test_verdict_refuses_a_plan_it_cannot_take_quickly():
    for changes, words in (({"refused": "nothing to roll back to"}, "the plan refused"),
                           ({"stage": True}, "restages"), ({"resume": True}, "pending"),
                           ({"noop": True}, "nothing to flip"),
                           ({"target_workers": ["w1"]}, "workers")):
        found = quickcheck.verdict(plan(**changes), {"lb1": read()}, ["lb1"], "r1")
        assert not found["ok"] and words in found["message"], changes


def test_verdict_refuses_an_lb_that_was_not_read_or_a_command_version_check():
    assert "no quick read from lb2" in quickcheck.verdict(plan(), {"lb1": read()},
                                                          ["lb1", "lb2"], "r1")["message"]
    command = read()
    command["version_kind"] = "command"
    assert "command" in quickcheck.verdict(plan(), {"lb1": command}, ["lb1"], "r1")["message"]


def test_drift_names_a_host_whose_release_json_disagrees():
    found = {"blue1": {"version": V1, "sha256": SHA1}, "blue2": {"version": V1, "sha256": SHA2}}
    lines = quickcheck.drift(plan(), found)
    assert len(lines) == 1 and lines[0].startswith("blue2: release.json holds 1.0.0")
    assert quickcheck.drift(plan(), {**found, "blue2": {"version": V1, "sha256": SHA1}}) == []
    assert "holds nothing" in quickcheck.drift(plan(), {"blue1": found["blue1"]})[0]
