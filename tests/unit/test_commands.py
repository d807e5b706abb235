"""Pure parts of the command layer."""

from turnout.commands import deployed_by


def test_deployed_by_prefers_explicit_then_ci_then_user():
    assert deployed_by({"TURNOUT_BY": "alice@ws1", "BUILD_TAG": "x"}) == "alice@ws1"
    assert deployed_by({"BUILD_TAG": "jenkins-turnout-42"}) == "jenkins:jenkins-turnout-42"
    assert "@" in deployed_by({})


def test_a_lock_refusal_in_the_playbook_is_found_in_the_failure_messages():
    from turnout import commands, runner

    held = runner.RunResult(rc=2, status="failed", failure_messages=[
        "localhost: turnout: deploy failed in phase lock: deploy lock held by bob@ws2 (run r1, "
        "deploy 1.0, pid 7 on ws2, since 2026-11-22T15:00:00Z, heartbeat 2026-11-22T15:00:00Z);"
        " wait for it to finish or, if it is gone, run 'invoke unlock --env prod'"])
    refusal = commands._lock_refusal(held)
    assert refusal is not None and refusal.startswith("deploy lock held by bob@ws2")
    other = runner.RunResult(rc=2, status="failed", failure_messages=["blue1: smoke failed"])
    assert commands._lock_refusal(other) is None


def test_salvage_history_keeps_valid_entries_of_an_unreadable_manifest(tmp_path):
    from turnout import commands

    env = tmp_path / "prod"
    env.mkdir()
    good = {"id": "20261122T150000Z-aaa", "action": "deploy", "result": "failed", "env": "prod",
            "by": "a@b", "started_at": "2026-11-22T15:00:00Z",
            "finished_at": "2026-11-22T15:01:00Z"}
    bad = {**good, "id": "20261122T150500Z-bbb", "result": "exploded"}
    import yaml

    (env / "manifest.yml").write_text(yaml.safe_dump(
        {"schema_version": 1, "env": "prod", "live_pool": "red", "history": [good, bad]}))
    kept = commands._salvage_history(env / "manifest.yml")
    assert [entry["id"] for entry in kept] == [good["id"]]
    (env / "manifest.yml").write_text("history: [unclosed\n")
    assert commands._salvage_history(env / "manifest.yml") == []


def test_rollback_full_smoke_asks_the_playbook_for_the_full_path(monkeypatch):
    from types import SimpleNamespace

    from turnout import commands

    ran = []
    planned = SimpleNamespace(stage=False, to_version="1.0.0", target_pool="blue")
    monkeypatch.setattr(commands, "environment", lambda name: SimpleNamespace(name=name))
    monkeypatch.setattr(commands, "_view", lambda env: None)
    monkeypatch.setattr(commands.plan, "plan", lambda *args: planned)
    monkeypatch.setattr(commands.plan, "render_plan", lambda p: "plan")
    monkeypatch.setattr(commands, "_execute",
                        lambda action, env, extravars, *rest: ran.append(extravars) or "r1")
    commands.rollback("prod")
    commands.rollback("prod", full_smoke=True)
    assert ran == [{}, {"turnout_rollback_full_smoke": True}]
