"""The randomized operator drill's pure parts: the draw is reproducible, the judge catches what
the invariant forbids and only that."""

from __future__ import annotations

from collections import Counter

import pytest

from turnout import chaos
from turnout.chaos import Served, Step, StepResult


def test_a_seed_draws_the_same_sequence_and_another_seed_another():
    first, again = chaos.draw(11, 50), chaos.draw(11, 50)
    assert first == again
    assert chaos.draw(12, 50) != first
    assert [s.index for s in first] == list(range(1, 51))


def test_a_long_draw_meets_every_kind_with_a_weight():
    kinds = Counter(step.kind for step in chaos.draw(3, 400))
    assert set(kinds) == set(chaos.WEIGHTS)
    assert kinds["deploy"] > kinds["manifest_lost"]  # weights matter


def test_weights_change_and_zero_removes_a_kind():
    weights = chaos.parse_weights("kill=10, provision=0")
    assert weights["kill"] == 10 and weights["provision"] == 0
    assert weights["deploy"] == chaos.WEIGHTS["deploy"]
    assert "provision" not in {s.kind for s in chaos.draw(5, 300, weights)}


@pytest.mark.parametrize(("text", "says"), [
    ("explode=3", "unknown step 'explode'"),
    ("kill=-1", "not a whole number"),
    ("kill=x", "not a whole number"),
    (",".join(f"{k}=0" for k in chaos.WEIGHTS), "every weight is 0"),
])
def test_bad_weights_are_refused_with_one_line(text, says):
    with pytest.raises(chaos.ChaosError, match=says) as caught:
        chaos.parse_weights(text)
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)


def test_steps_below_one_are_refused():
    with pytest.raises(chaos.ChaosError, match="at least 1"):
        chaos.draw(1, 0)


def test_kill_steps_name_a_killable_command_and_a_moment():
    kills = [s for s in chaos.draw(9, 400) if s.kind == "kill"]
    assert kills and {s.args["command"] for s in kills} == set(chaos.KILLABLE)
    assert all(0 < s.args["at"] < 1 for s in kills)


def test_pick_is_stable_and_refuses_nothing_to_pick():
    assert chaos.pick(["a", "b", "c"], 4) == "b"
    with pytest.raises(chaos.ChaosError):
        chaos.pick([], 1)


STEP = Step(4, "deploy")


def test_traffic_from_proven_releases_only_is_no_violation():
    seen = [Served("lb1", Counter({"1.0": 50, "2.0": 20}), Counter())]
    assert chaos.judge_traffic(STEP, seen, {"1.0", "2.0"}, {"9.9"}, False) == ([], Counter())


def test_a_response_from_a_broken_or_unproven_release_is_a_violation():
    seen = [Served("lb2", Counter({"1.0": 5, "9.9": 1, "3.0": 2}), Counter())]
    violations, _ = chaos.judge_traffic(STEP, seen, {"1.0"}, {"9.9"}, False)
    said = [str(v) for v in violations]
    assert len(said) == 2
    assert "lb2 served 1 responses from the broken release 9.9" in said[1] or \
        "broken release 9.9" in " ".join(said)
    assert any("3.0, which never passed its smoke test" in s for s in said)
    assert all(s.startswith("after step #4:") for s in said)


def test_refused_connections_count_apart_only_while_haproxy_restarts():
    failures = Counter({"ConnectionRefusedError": 7})
    seen = [Served("lb1", Counter({"1.0": 5}), failures)]
    violations, causes = chaos.judge_traffic(STEP, seen, {"1.0"}, set(), restarting=True)
    assert violations == [] and causes == Counter({"haproxy restart": 7})
    violations, causes = chaos.judge_traffic(STEP, seen, {"1.0"}, set(), restarting=False)
    assert len(violations) == 1 and "7 failed requests (ConnectionRefusedError)" in \
        str(violations[0])
    assert causes == Counter({"lb1: ConnectionRefusedError": 7})


def test_a_timeout_is_a_failure_even_during_a_restart():
    seen = [Served("lb1", Counter(), Counter({"TimeoutError": 1}))]
    violations, _ = chaos.judge_traffic(STEP, seen, set(), set(), restarting=True)
    assert len(violations) == 1


def fleet(**overrides):
    args = {"pools": {"lb1": "blue", "lb2": "blue"}, "status_code": 0, "status_says": "",
            "drift_explained_by": None, "lock": "", "command_running": False}
    return chaos.judge_fleet(STEP, **{**args, **overrides})


def test_a_fleet_that_agrees_is_clean():
    assert fleet() == []


def test_lbs_that_disagree_are_a_violation():
    (violation,) = fleet(pools={"lb1": "blue", "lb2": "green"})
    assert "lb1 routes to blue, lb2 routes to green" in str(violation)


def test_drift_is_a_violation_unless_a_step_explains_it():
    (violation,) = fleet(status_code=3, status_says="drift: green1 runs 9.1")
    assert "no step explains" in str(violation) and "green1 runs 9.1" in str(violation)
    assert fleet(status_code=3, drift_explained_by=2) == []
    (other,) = fleet(status_code=1, status_says="boom", drift_explained_by=2)
    assert "status exited 1" in str(other)


def test_a_lock_left_with_no_command_running_is_a_violation():
    (violation,) = fleet(lock="lb1: {run 1}")
    assert "lock is held" in str(violation)
    assert fleet(lock="lb1: {run 1}", command_running=True) == []


def result(index, kind, violations=(), causes=None):
    return StepResult(step=Step(index, kind), commands=[], seconds=1.0, live_before="blue 1",
                      live_after="green 2", requests=100, failures_by_cause=causes or {},
                      status=0, violations=list(violations), state_before={"a": 1},
                      state_after={"a": 2})


def test_summary_names_the_first_broken_step_with_the_fleet_before_and_after():
    results = [result(1, "deploy"), result(2, "haproxy_restart", causes={"haproxy restart": 3}),
               result(3, "kill", ["after step #3: the LBs disagree"]), result(4, "rollback")]
    summary = chaos.summarize(5, results, 12.34)
    assert summary["steps"] == 4 and summary["requests"] == 400
    assert summary["failed_requests_by_cause"] == {"haproxy restart": 3}
    assert summary["failed_outside_haproxy_restarts"] == 0
    assert summary["violations"] == ["after step #3: the LBs disagree"]
    assert summary["first_violation"]["step"] == "#3 kill"
    assert summary["first_violation"]["before"] == {"a": 1}
    assert summary["first_violation"]["after"] == {"a": 2}
    text = chaos.render_markdown([summary], "2026-12-03", "test")
    assert "| 5 | 4 | 400 | 3 | 0 | 1 | 12 s |" in text
    assert "first violation after #3 kill" in text


def test_a_clean_summary_has_no_first_violation():
    summary = chaos.summarize(1, [result(1, "deploy")], 1.0)
    assert summary["first_violation"] is None and summary["violations"] == []


def test_then_steps_follow_the_drawn_ones_and_every_kind_gets_its_arguments():
    kinds = ("deploy", "deploy_broken", "rollback_to", "host_power_cycle", "manifest_corrupt",
             "host_power_cycle")
    steps = chaos.then_steps(1944, 7, kinds)
    assert [(s.index, s.kind) for s in steps] == list(enumerate(kinds, 8))
    by_kind = {s.kind: s.args for s in steps}
    assert "pick" in by_kind["deploy"] and "pick" in by_kind["rollback_to"]
    assert by_kind["deploy_broken"]["broken"] in chaos.BROKEN_VARIANTS
    assert steps[3].args == steps[5].args and "host" in steps[3].args  # same kind, same args
    assert chaos.then_steps(1944, 7, kinds) == steps  # a seed replays
    with pytest.raises(chaos.ChaosError, match="unknown step 'explode'"):
        chaos.then_steps(1, 1, ("explode",))


def test_a_powered_off_host_comes_back_after_a_bounded_number_of_steps():
    off_at, steps_off = 12, chaos.POWER_OFF_STEPS
    assert not chaos.power_back_due(None, 40)  # nothing is off
    assert [chaos.power_back_due(off_at, off_at + n) for n in range(1, steps_off + 2)] \
        == [False] * steps_off + [True]  # off for steps_off steps, back before the next one
    assert chaos.power_back_due(off_at, off_at + 30)
    assert not chaos.power_back_due(off_at, off_at + 2, steps_off=2)
    assert chaos.power_back_due(off_at, off_at + 3, steps_off=2)
