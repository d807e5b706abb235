"""turnout.outcome: the flip's result and the rollback's manifest event."""

from __future__ import annotations

from turnout import outcome

PLAN = {"action": "rollback", "live_pool": "green", "lb_pool": "green", "target_pool": "blue",
        "target_hosts": ["blue1"], "target_workers": [], "to_version": "1.0.0",
        "to_sha256": "a" * 64, "live_version": "2.0.0", "live_sha256": "b" * 64}


def verified(moved_at: str | None) -> dict:
    return {"ready": True, "switched": True, "verified": True, "moved_at": moved_at}


def test_traffic_moved_when_the_last_lb_routed_to_the_target():
    found = outcome.flip_result(["lb1", "lb2"], {"lb1": verified("2026-12-03T10:00:01.200Z"),
                                                 "lb2": verified("2026-12-03T10:00:01.500Z")},
                                PLAN, 10)
    assert found["result"] == "success"
    assert found["traffic_moved_at"] == "2026-12-03T10:00:01.500Z"


def test_traffic_moved_is_unknown_when_an_lb_did_not_say():
    found = outcome.flip_result(["lb1", "lb2"], {"lb1": verified("2026-12-03T10:00:01.200Z"),
                                                 "lb2": verified(None)}, PLAN, 10)
    assert found["traffic_moved_at"] is None


def test_a_flip_back_has_no_traffic_moved():
    failed = {**verified("2026-12-03T10:00:01.200Z"), "verified": False, "message": "bad"}
    found = outcome.flip_result(["lb1"], {"lb1": failed}, PLAN, 10)
    assert found["result"] == "flipped_back" and "traffic_moved_at" not in found


def test_the_rollback_event_records_traffic_moved_and_the_check():
    switch = {"result": "success", "message": "moved",
              "traffic_moved_at": "2026-12-03T10:00:01.500Z"}
    evt = outcome.rollback_event({"failed": False}, {**PLAN, "check": "quick"}, {}, switch)
    assert evt["traffic_moved_at"] == "2026-12-03T10:00:01.500Z" and evt["check"] == "quick"
    full = outcome.rollback_event({"failed": True, "phase": "smoke", "message": "no"}, PLAN, {},
                                  {})
    assert full["check"] == "full" and "traffic_moved_at" not in full
    converge = outcome.rollback_event({"failed": False}, {**PLAN, "converge": True}, {}, switch)
    assert "check" not in converge


def test_a_host_is_staged_only_on_this_runs_positive_evidence():
    staged = {"app_release_stage_result": {"changed": True, "already_active": False},
              "app_release_activate_result": {"changed": True}}
    assert outcome.staged(staged) is True
    assert outcome.staged({"app_release_stage_result": {"already_active": True},
                           "app_release_activate_result": {"skipped": True}}) is True
    # the stage's rescue noted a failure: that wins over anything registered before it
    assert outcome.staged({**staged, "turnout_host_staged": False}) is False
    # unreachable or never run: no evidence either way
    assert outcome.staged({}) is None
    assert outcome.staged({"app_release_stage_result": {"unreachable": True}}) is None
    assert outcome.staged({"app_release_stage_result": {"skipped": True}}) is None
    assert outcome.staged({"app_release_stage_result": {"already_active": False}}) is None
    assert outcome.staged({"app_release_stage_result": {"already_active": False},
                           "app_release_activate_result": {"failed": True}}) is None


def test_judge_fails_the_stage_of_a_host_without_evidence():
    results = {"blue1": {"staged": outcome.staged({}), "smoke": {"result": "passed"}}}
    verdict = outcome.judge(["blue1"], results, staging=True)
    assert verdict["phase"] == "stage" and verdict["not_staged"] == ["blue1"]
    assert "blue1: unreachable or not run" in verdict["message"]
