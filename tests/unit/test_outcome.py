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
