"""turnout.progress: the tracker and both displays, fed real runs' events.

tests/unit/data/progress_*.json are ansible-runner events captured from lab runs (1 LB, one
host per pool), trimmed to what the tracker reads: event, play, host, task, ignore_errors, the
plan's target hosts, smoke results and failure messages.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import REPO
from turnout import progress, runner
from turnout.errors import InputError

DATA = Path(__file__).parent / "data"
LAB = {"lbs": ["lb1"], "app_hosts": ["blue1", "green1"]}


def events(name: str) -> list[dict]:
    return json.loads((DATA / f"progress_{name}.json").read_text())


def fed(name: str, **known) -> progress.Tracker:
    tracker = progress.Tracker(**known)
    for event in events(name):
        tracker.feed(event)
    return tracker


def plain(evts: list[dict], **known) -> list[str]:
    said: list[str] = []
    show = progress.PlainDisplay(said.append, progress.Tracker(**known))
    with show:
        for event in evts:
            show(event)
    return said


def host_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith("== ")]


def play(name: str) -> dict:
    return {"event": "playbook_on_play_start", "event_data": {"play": name}}


def on(kind: str, host: str, task: str = "t", **data) -> dict:
    return {"event": kind, "event_data": {"host": host, "task": task, **data}}


PLAN_TWO = on("runner_on_ok", "localhost", "turnout | plan the deploy",
              res={"turnout_plan": {"target_hosts": ["blue1", "blue2"], "target_workers": [],
                                    "stage": True, "noop": False}})


def test_phase_is_the_play_name_before_the_bar():
    assert progress.phase_of("Stage | stage and activate the release") == "stage"
    assert progress.phase_of("Start | the run, its inputs, the deploy lock: deploy") == "start"
    assert progress.phase_of("no bar here") == "no bar here"


def test_first_deploy_stages_smokes_and_flips_the_one_host():
    tracker = fed("first_deploy", **LAB)
    assert tracker.targets == ["blue1"]
    assert tracker.phases["stage"].hosts == {"blue1": progress.OK}
    assert tracker.phases["smoke"].hosts == {"blue1": progress.OK}
    assert tracker.phases["flip"].hosts == {"lb1": progress.FLIPPED}
    assert [tracker.phases[p].count for p in ("stage", "smoke", "flip")] == ["1/1"] * 3
    assert tracker.flipped() == ["lb1"]
    assert all(phase.finished and phase.state == progress.OK
               for phase in tracker.phases.values())
    assert list(tracker.phases)[:3] == ["start", "discover", "plan"]


def test_plain_lines_of_a_deploy_keep_the_play_lines_and_add_one_line_per_host():
    evts = events("deploy")
    lines = plain(evts, **LAB)
    assert host_lines(lines) == ["stage: green1 ok (1/1)", "smoke: green1 ok (1/1)",
                                 "flip: lb1 flipped (1/1)"]
    # every play line as before, in order
    plays = [runner.progress_line(e) for e in evts if e["event"] == "playbook_on_play_start"]
    assert [line for line in lines if line.startswith("== ")] == plays
    stage_play = lines.index("== Stage | stage and activate the release on the target pool")
    assert lines.index("stage: green1 ok (1/1)") > stage_play
    assert not any("\x1b" in line for line in lines)


def test_a_failed_smoke_test_shows_the_host_failed_no_flip_and_the_failure_line():
    lines = plain(events("deploy_smoke_fails"), **LAB)
    assert host_lines(lines)[:3] == ["stage: green1 ok (1/1)", "smoke: green1 failed (0/1)",
                                     "flip: lb1 skipped (0/1)"]
    failed = [line for line in lines if line.startswith("   FAILED localhost:")]
    assert len(failed) == 1 and "smoke test failed on green1" in failed[0]
    tracker = fed("deploy_smoke_fails", **LAB)
    assert tracker.phases["smoke"].state == progress.FAILED and tracker.flipped() == []


def test_a_rollback_to_the_warm_pool_stages_nothing():
    lines = plain(events("rollback"), **LAB)
    assert host_lines(lines) == ["smoke: blue1 ok (1/1)", "flip: lb1 flipped (1/1)"]
    tracker = fed("rollback", **LAB)
    stage = tracker.phases["stage"]
    assert (stage.hosts, stage.count, stage.state) == ({}, "", progress.SKIPPED)


def test_provision_counts_every_host_of_the_inventory():
    lines = plain(events("provision"), **LAB)
    assert host_lines(lines) == ["provision: lb1 ok (1/3)", "provision: green1 ok (2/3)",
                                 "provision: blue1 ok (3/3)"]
    # without the inventory, N is the hosts seen so far
    assert host_lines(plain(events("provision")))[-1] == "provision: blue1 ok (3/3)"


def test_hosts_failing_and_unreachable_in_stage_count_against_it():
    evts = [play("Plan | plan"), PLAN_TWO, play("Stage | stage and activate"),
            on("runner_on_start", "blue1"), on("runner_on_start", "blue2"),
            on("runner_on_ok", "blue1", "app_release | activate 1.2"),
            on("runner_on_unreachable", "blue2", "app_release | stage 1.2"),
            play("Smoke | smoke-test"),
            on("runner_on_ok", "lb1", "turnout | keep the results on the controller",
               res={"ansible_facts": {"turnout_smoke_results": {"blue1": {"result": "passed"}}}}),
            {"event": "playbook_on_stats", "event_data": {}}]
    lines = plain(evts, lbs=["lb1"])
    assert lines == ["== Plan | plan", "== Stage | stage and activate",
                     "stage: blue1 ok (1/2)", "   UNREACHABLE blue2: app_release | stage 1.2",
                     "stage: blue2 unreachable (1/2)", "== Smoke | smoke-test",
                     "smoke: blue1 ok (1/2)", "smoke: blue2 skipped (1/2)"]


def test_a_rescued_stage_failure_is_a_failed_host_and_an_ignored_error_is_not():
    tracker = progress.Tracker(lbs=["lb1"])
    for event in (PLAN_TWO, play("Stage | let requests finish"),
                  on("runner_on_failed", "lb1", "pool_switch | wait", ignore_errors=True,
                     res={"msg": "no"}),
                  play("Stage | stage and activate"),
                  on("runner_on_failed", "blue2", "app_release | stage", res={"msg": "disk"}),
                  on("runner_on_ok", "blue2", "turnout | note the host failed to stage"),
                  on("runner_on_ok", "blue1", "app_release | stage 1.2",
                     res={"already_active": True})):
        tracker.feed(event)
    stage = tracker.phases["stage"]
    assert stage.hosts == {"blue1": progress.OK, "blue2": progress.FAILED}
    assert (stage.count, stage.state) == ("1/2", progress.FAILED)


def test_the_live_rows_show_each_host_in_its_latest_phase():
    tracker = progress.Tracker(lbs=["lb1"])
    for event in (PLAN_TWO, play("Stage | stage and activate"), on("runner_on_start", "blue1")):
        tracker.feed(event)
    assert tracker.host_rows() == [("blue1", "stage", progress.RUNNING),
                                   ("blue2", "stage", progress.WAITING)]


def test_every_milestone_names_a_task_or_play_that_exists():
    text = "\n".join(p.read_text() for p in (REPO / "playbooks").rglob("*.yml"))
    for task in progress.MILESTONES:
        assert f"- name: {task}\n" in text, task
    for name in progress.PROVISION_PLAYS:
        assert f"- name: {name}\n" in text, name


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("mode", "stream", "environ", "chosen"), [
    ("auto", io.StringIO(), {}, "plain"),
    ("auto", FakeTty(), {"TERM": "xterm"}, "tty"),
    ("auto", FakeTty(), {"TERM": "dumb"}, "plain"),
    ("auto", FakeTty(), {"TERM": "xterm", "TURNOUT_PROGRESS": "plain"}, "plain"),
    ("auto", io.StringIO(), {"TURNOUT_PROGRESS": "tty"}, "tty"),
    ("plain", FakeTty(), {"TURNOUT_PROGRESS": "tty"}, "plain"),
])
def test_live_only_on_a_terminal_unless_told(mode, stream, environ, chosen):
    assert progress.choose_mode(mode, stream, environ) == chosen


def test_an_unknown_progress_mode_is_bad_input():
    with pytest.raises(InputError, match="TURNOUT_PROGRESS must be one of auto, tty, plain"):
        progress.choose_mode("auto", io.StringIO(), {"TURNOUT_PROGRESS": "fancy"})


def test_display_picks_plain_for_a_pipe():
    shown = progress.display(progress.Tracker(), stream=io.StringIO())
    assert isinstance(shown, progress.PlainDisplay)


def test_the_live_table_redraws_in_place_with_per_host_rows_and_counts():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with progress.LiveDisplay(console, progress.Tracker(**LAB)) as show:
        for event in events("deploy_smoke_fails"):
            show(event)
    text = out.getvalue()
    assert "\x1b[2K" in text and "\x1b[1A" in text  # lines erased and redrawn, cursor moved up
    for row in ("green1", "stage", "smoke", "flip", "1/1", "0/1", "LBs flipped: none yet"):
        assert row in text, row
    assert "FAILED localhost: turnout | fail the run when it did not succeed" in text
    # the final table stays on screen: the last frame shows the smoke failure
    last = text[text.rindex("phase"):]
    assert "failed" in last and "green1" in last
    assert "turnout: finished (failed)" in text


def test_the_live_table_of_a_deploy_shows_the_lb_flipped():
    out = io.StringIO()
    with progress.LiveDisplay(Console(file=out, force_terminal=True, width=100),
                              progress.Tracker(**LAB)) as show:
        for event in events("first_deploy"):
            show(event)
    last = out.getvalue()[out.getvalue().rindex("phase"):]
    assert "LBs flipped: lb1" in last and "blue1" in last and "1/1" in last
    assert "turnout: finished\n" in out.getvalue()


def test_an_lb_flipped_back_fails_the_flip_phase():
    tracker = progress.Tracker(lbs=["lb1", "lb2"])
    for event in (play("Flip | switch every load balancer"),
                  on("runner_on_ok", "lb1", "turnout | the map is flipped here"),
                  on("runner_on_failed", "lb2", "pool_switch | route fe_app", res={"msg": "x"}),
                  play("Flip | put every load balancer back if needed"),
                  on("runner_on_ok", "lb1", "turnout | flip back")):
        tracker.feed(event)
    flip = tracker.phases["flip"]
    assert flip.hosts == {"lb1": progress.BACK, "lb2": progress.FAILED}
    assert (flip.count, flip.state, tracker.flipped()) == ("0/2", progress.FAILED, [])


def test_a_host_is_staged_when_app_release_activates_or_finds_the_release_active():
    assert progress.milestone("app_release | activate 1.4.2", {}) == ("stage", progress.OK)
    assert progress.milestone("app_release | stage 1.4.2", {"already_active": True}) == \
        ("stage", progress.OK)
    assert progress.milestone("app_release | stage 1.4.2", {"already_active": False}) is None
    assert progress.milestone("turnout | note the host failed to stage", {}) == \
        ("stage", progress.FAILED)
    assert progress.milestone("app_release | render the app's configuration templates", {}) is None
