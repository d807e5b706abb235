"""Unit tests for turnout.manifest: schema, validation, events, atomic writes."""

from __future__ import annotations

import copy
import os
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from turnout import manifest as mf
from turnout.manifest import store
from turnout.errors import InputError, TurnoutError

SHA_OLD = "1" * 64
SHA_NEW = "ab" * 32
SHA_BAD = "cd" * 32


def smoke(result: str = "passed", latency_ms: int = 12) -> dict[str, Any]:
    return {
        "result": result,
        "latency_ms": latency_ms,
        "checks": [{"name": "healthz", "ok": result == "passed", "detail": "200"}],
    }


def event(**overrides: Any) -> dict[str, Any]:
    """A successful deploy of 1.4.2 to green (blue live with 1.4.1 before)."""
    base: dict[str, Any] = {
        "id": "20261122T140000Z-1a2b3c",
        "action": "deploy",
        "result": "success",
        "env": "prod",
        "by": "alice@ws1",
        "started_at": "2026-11-22T14:00:00Z",
        "finished_at": "2026-11-22T14:00:12Z",
        "from": {"pool": "blue", "version": "1.4.1", "sha256": SHA_OLD},
        "to": {"pool": "green", "version": "1.4.2", "sha256": SHA_NEW},
        "phase": None,
        "message": "deployed 1.4.2 to green",
        "hosts": {
            "green1": {"version": "1.4.2", "sha256": SHA_NEW, "smoke": smoke()},
            "green2": {"version": "1.4.2", "sha256": SHA_NEW, "smoke": smoke(latency_ms=7)},
        },
    }
    base.update(overrides)
    return base


def blue_live() -> dict[str, Any]:
    """A prod manifest where blue runs 1.4.1 and is live."""
    data = mf.empty("prod")
    first = event(
        id="20261101T100000Z-000001",
        started_at="2026-11-01T10:00:00Z",
        finished_at="2026-11-01T10:00:30Z",
        **{"from": None},
        to={"pool": "blue", "version": "1.4.1", "sha256": SHA_OLD},
        hosts={
            "blue1": {"version": "1.4.1", "sha256": SHA_OLD, "smoke": smoke()},
            "blue2": {"version": "1.4.1", "sha256": SHA_OLD, "smoke": smoke()},
        },
    )
    return mf.apply_event(data, first)


@pytest.fixture
def prod_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "inventories" / "prod"
    directory.mkdir(parents=True)
    return directory


# ------------------------------------------------------------------- small helpers


def test_other_pool() -> None:
    assert mf.other_pool("blue") == "green"
    assert mf.other_pool("green") == "blue"
    with pytest.raises(ValueError, match="red"):
        mf.other_pool("red")


def test_empty_is_valid_and_has_both_pools() -> None:
    data = mf.empty("staging", app="shop")
    assert mf.validate(data) == data
    assert data["schema_version"] == mf.SCHEMA_VERSION == 2
    assert data["env"] == "staging" and data["app"] == "shop"
    assert data["live_pool"] is None
    assert set(data["pools"]) == {"blue", "green"}
    assert all(state["version"] is None for state in data["pools"].values())


def test_new_run_id_format_and_utc() -> None:
    moment = datetime(2026, 11, 22, 15, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    assert mf.new_run_id(moment, "1a2b3c") == "20261122T140000Z-1a2b3c"
    generated = mf.new_run_id(datetime(2026, 11, 22, 14, 0, 0, tzinfo=UTC))
    prefix, suffix = generated.split("-")
    assert prefix == "20261122T140000Z"
    assert len(suffix) == 6 and int(suffix, 16) >= 0
    assert mf.new_run_id(datetime(2026, 1, 2, 3, 4, 5), "x") == "20260102T030405Z-x"
    with pytest.raises(ValueError):
        mf.new_run_id(moment, "Bad Suffix")


# ---------------------------------------------------------------------- validate


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d.update(live_pool="red"),
            r"live_pool must be blue, green or null \(got 'red'\)",
        ),
        (lambda d: d["pools"].update(red={}), "unknown pool 'red'"),
        (
            lambda d: d["pools"]["blue"].update(sha256="xyz"),
            r"pools\.blue\.sha256 must be 64 lowercase hex",
        ),
        (
            lambda d: d["pools"]["blue"]["hosts"]["blue1"].update(sha256="AB" * 32),
            r"pools\.blue\.hosts\.blue1\.sha256 must be 64 lowercase hex",
        ),
        (lambda d: d["pools"]["blue"].update(version=1.4), r"quote it: '1\.4'"),
        (lambda d: d.update(history={}), "history must be a list"),
        (lambda d: d.update(env=""), "env must be a name"),
        (lambda d: d.update(updated_at="yesterday"), "updated_at must be an ISO 8601 time"),
        (lambda d: d.update(schema_version="1"), "schema_version must be a positive integer"),
        (lambda d: d.update(schema_version=True), "schema_version must be a positive integer"),
        (lambda d: d.update(live_pol="blue"), "unknown key 'live_pol'"),
        (lambda d: d["history"][0].update(action="deploi"), r"history\[0\]\.action must be one"),
        (lambda d: d["history"][0].update(result="ok"), r"history\[0\]\.result must be one"),
        (lambda d: d["history"][0].pop("finished_at"), "missing required key 'finished_at'"),
        (lambda d: d["history"][0].update(phase="deploying"), r"history\[0\]\.phase must be"),
        (lambda d: d["history"][0].update(message="two\nlines"), "must be a one-line string"),
        (lambda d: d["history"][0].update(duration_s="fast"), "duration_s must be a number"),
        (lambda d: d["history"][0].update(traffic_moved_at="soon"),
         r"traffic_moved_at must be an ISO 8601 time"),
        (lambda d: d["history"][0].update(check="fast"), r"history\[0\]\.check must be"),
        (lambda d: d["history"].append(copy.deepcopy(d["history"][0])), "repeats id"),
        (
            lambda d: d["pools"]["green"]["hosts"].update(
                blue1=d["pools"]["blue"]["hosts"]["blue1"]
            ),
            "'blue1' under both blue and green",
        ),
        (
            lambda d: d["pools"]["blue"]["hosts"]["blue1"]["smoke"].update(result="meh"),
            r"smoke\.result must be one of passed",
        ),
        (
            lambda d: d["pools"]["blue"]["hosts"]["blue1"]["smoke"]["checks"][0].update(ok="yes"),
            r"checks\[0\]\.ok must be true or false",
        ),
    ],
)
def test_validate_rejects(mutate: Any, expected: str) -> None:
    data = blue_live()
    mutate(data)
    with pytest.raises(InputError, match=expected) as caught:
        mf.validate(data, "inventories/prod/manifest.yml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("manifest inventories/prod/manifest.yml: ")


def test_validate_message_names_problem_and_fix() -> None:
    data = blue_live()
    data["live_pool"] = "red"
    with pytest.raises(InputError) as caught:
        mf.validate(data, "inventories/prod/manifest.yml")
    assert str(caught.value) == (
        "manifest inventories/prod/manifest.yml: live_pool must be blue, green or null "
        "(got 'red'); fix the file or rebuild it with 'invoke reconcile --env prod'"
    )


def test_validate_future_schema_says_upgrade() -> None:
    data = blue_live()
    data["schema_version"] = 3
    data["something_new"] = True  # a newer schema may have keys we do not know
    with pytest.raises(InputError, match=r"schema_version 3 is newer .*upgrade turnout"):
        mf.validate(data)


def test_a_version_1_file_is_read_and_written_as_version_2() -> None:
    data = blue_live()
    data["schema_version"] = 1
    assert mf.validate(data)["schema_version"] == 2


def test_validate_is_a_normalized_copy() -> None:
    data = blue_live()
    data["updated_at"] = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)  # as PyYAML parses it
    del data["pools"]["green"]
    result = mf.validate(data)
    assert result["updated_at"] == "2026-11-22T14:00:00Z"
    assert result["pools"]["green"] == mf.empty_pool()
    assert "green" not in data["pools"]  # input untouched
    assert list(result) == list(mf.TOP_KEYS)


def test_validate_rejects_non_mapping() -> None:
    with pytest.raises(InputError, match="must be a YAML mapping"):
        mf.validate(["not", "a", "manifest"])


# ------------------------------------------------------------------- load / write


def test_round_trip(prod_dir: Path) -> None:
    path = prod_dir / "manifest.yml"
    data = blue_live()
    mf.write_atomic(path, data)
    assert mf.load(path) == data
    first = path.read_bytes()
    mf.write_atomic(path, mf.load(path))
    assert path.read_bytes() == first  # stable output


def test_written_file_is_plain_yaml_with_mode_0644(prod_dir: Path) -> None:
    path = prod_dir / "manifest.yml"
    mf.write_atomic(path, blue_live())
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    raw = yaml.safe_load(path.read_text())
    assert raw["schema_version"] == 2
    assert raw["pools"]["blue"]["version"] == "1.4.1"
    assert isinstance(raw["updated_at"], str)  # quoted, so YAML keeps it a string


def test_load_missing_file_is_empty_for_dir_env(prod_dir: Path) -> None:
    assert mf.load(prod_dir / "manifest.yml") == mf.empty("prod")
    assert not (prod_dir / "manifest.yml").exists()


def test_load_corrupt_yaml(prod_dir: Path) -> None:
    path = prod_dir / "manifest.yml"
    path.write_text("schema_version: 1\npools: [unclosed\n")
    with pytest.raises(mf.ManifestCorrupt, match=str(path)) as caught:
        mf.load(path)
    assert isinstance(caught.value, InputError)
    assert "\n" not in str(caught.value)
    assert "invoke reconcile --env prod" in str(caught.value)


def test_load_empty_file_is_corrupt(prod_dir: Path) -> None:
    path = prod_dir / "manifest.yml"
    path.write_text("")
    with pytest.raises(mf.ManifestCorrupt, match="is empty"):
        mf.load(path)


def test_load_unreadable_is_corrupt(prod_dir: Path) -> None:
    path = prod_dir / "manifest.yml"
    path.mkdir()  # a directory where the file should be: unreadable as text
    with pytest.raises(mf.ManifestCorrupt, match="cannot be read"):
        mf.load(path)


def test_load_invalid_content_names_path(prod_dir: Path) -> None:
    path = prod_dir / "manifest.yml"
    data = blue_live()
    data["live_pool"] = "red"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match=rf"manifest {path}: live_pool must be"):
        mf.load(path)


def test_load_accepts_unquoted_yaml_timestamps(prod_dir: Path) -> None:
    path = prod_dir / "manifest.yml"
    text = yaml.safe_dump(blue_live(), sort_keys=False).replace(
        "updated_at: '2026-11-01T10:00:30Z'", "updated_at: 2026-11-01T10:00:30Z"
    )
    assert "updated_at: 2026-11-01T10:00:30Z" in text
    path.write_text(text)
    assert mf.load(path)["updated_at"] == "2026-11-01T10:00:30Z"


def test_write_rejects_invalid_data_and_keeps_file(prod_dir: Path) -> None:
    path = prod_dir / "manifest.yml"
    mf.write_atomic(path, blue_live())
    before = path.read_bytes()
    bad = blue_live()
    bad["pools"]["green"]["sha256"] = "nope"
    with pytest.raises(InputError):
        mf.write_atomic(path, bad)
    assert path.read_bytes() == before
    assert os.listdir(prod_dir) == ["manifest.yml"]


def test_write_failure_mid_write_leaves_original_and_no_temp(
    prod_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = prod_dir / "manifest.yml"
    mf.write_atomic(path, blue_live())
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        assert Path(src).parent == prod_dir  # the temp file is beside the manifest
        assert Path(src).read_text().startswith("# turnout manifest")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.os, "replace", broken_replace)
    changed = mf.apply_event(blue_live(), event())
    with pytest.raises(TurnoutError, match="cannot be written.*No space left"):
        mf.write_atomic(path, changed)
    assert path.read_bytes() == before
    assert os.listdir(prod_dir) == ["manifest.yml"]


def test_write_failure_during_fsync_leaves_no_temp(
    prod_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = prod_dir / "manifest.yml"

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store.os, "fsync", broken_fsync)
    with pytest.raises(TurnoutError, match="Input/output error"):
        mf.write_atomic(path, blue_live())
    assert os.listdir(prod_dir) == []


# ---------------------------------------------------------------------- apply_event


def test_apply_deploy_success_updates_pool_hosts_and_live() -> None:
    before = blue_live()
    snapshot = copy.deepcopy(before)
    after = mf.apply_event(before, event())
    assert before == snapshot  # pure
    assert after["live_pool"] == "green"
    assert after["updated_at"] == "2026-11-22T14:00:12Z"
    green = after["pools"]["green"]
    assert green["version"] == "1.4.2" and green["sha256"] == SHA_NEW
    assert green["deployed_by"] == "alice@ws1"
    assert green["deployed_at"] == "2026-11-22T14:00:12Z"
    assert green["run_id"] == "20261122T140000Z-1a2b3c"
    assert set(green["hosts"]) == {"green1", "green2"}
    assert green["hosts"]["green2"]["smoke"]["latency_ms"] == 7
    assert green["hosts"]["green1"]["run_id"] == "20261122T140000Z-1a2b3c"
    assert "staged" not in green["hosts"]["green1"]
    assert after["pools"]["blue"] == before["pools"]["blue"]  # old pool stays warm
    entry = after["history"][-1]
    assert entry["action"] == "deploy" and entry["result"] == "success"
    assert entry["duration_s"] == 12.0
    assert "hosts" not in entry
    assert set(entry["smoke"]) == {"green1", "green2"}
    assert entry["smoke"]["green1"]["result"] == "passed"


def test_apply_deploy_success_host_defaults_from_target() -> None:
    after = mf.apply_event(blue_live(), event(hosts={"green1": {}}))
    host = after["pools"]["green"]["hosts"]["green1"]
    assert host["version"] == "1.4.2" and host["sha256"] == SHA_NEW
    assert host["smoke"] is None


def rollback_event(**overrides):
    """The rollback from green 1.4.2 back to blue 1.4.1 that follows event()'s deploy."""
    return event(**{"action": "rollback", "started_at": "2026-11-22T15:00:00Z",
                    "finished_at": "2026-11-22T15:00:02Z",
                    "from": {"pool": "green", "version": "1.4.2", "sha256": SHA_NEW},
                    "to": {"pool": "blue", "version": "1.4.1", "sha256": SHA_OLD},
                    "hosts": {}, **overrides})


def test_apply_rollback_success_flips_live_only() -> None:
    deployed = mf.apply_event(blue_live(), event())
    rollback = rollback_event(id="20261122T150000Z-aaaaaa")
    after = mf.apply_event(deployed, rollback)
    assert after["live_pool"] == "blue"
    assert after["pools"] == deployed["pools"]
    assert after["history"][-1]["action"] == "rollback"
    assert after["history"][-1]["result"] == "success"
    assert [e["action"] for e in after["history"][-2:]] == ["deploy", "rollback"]
    assert mf.run_entry(after, "20261122T140000Z-1a2b3c")["action"] == "deploy"


def test_a_rollback_keeps_when_traffic_moved_and_how_it_was_checked() -> None:
    deployed = mf.apply_event(blue_live(), event())
    rollback = rollback_event(id="20261122T150000Z-bbbbbb",
                              traffic_moved_at="2026-11-22T15:00:01.234Z", check="quick")
    entry = mf.apply_event(deployed, rollback)["history"][-1]
    assert entry["traffic_moved_at"] == "2026-11-22T15:00:01.234Z"
    assert entry["check"] == "quick"
    assert "traffic_moved_at" not in mf.apply_event(blue_live(), event())["history"][-1]


def test_apply_rollback_to_a_restaged_release_records_the_pool_and_its_hosts() -> None:
    # found by `invoke chaos` (seed 7, step 14): a failed deploy left 1.4.2 staged on green;
    # `rollback --to 1.4.0` restaged green with 1.4.0 and moved traffic there, but the
    # manifest kept green's hosts at 1.4.2 and `status` reported drift
    failed = mf.apply_event(blue_live(), event(
        result="failed", phase="flip", message="canary aborted at 50%",
        hosts={"green1": {"version": "1.4.2", "sha256": SHA_NEW, "smoke": smoke()}}))
    sha_restaged = "c" * 64
    rollback = event(
        id="20261122T150000Z-bbbbbb", action="rollback",
        started_at="2026-11-22T15:00:00Z", finished_at="2026-11-22T15:00:09Z",
        **{"from": {"pool": "blue", "version": "1.4.1", "sha256": SHA_OLD}},
        to={"pool": "green", "version": "1.4.0", "sha256": sha_restaged},
        smoke={"green1": smoke()}, hosts={})
    after = mf.apply_event(failed, rollback)
    assert after["live_pool"] == "green"
    green = after["pools"]["green"]
    assert (green["version"], green["sha256"]) == ("1.4.0", sha_restaged)
    host = green["hosts"]["green1"]
    assert (host["version"], host["sha256"]) == ("1.4.0", sha_restaged)
    assert "staged" not in host and host["run_id"] == "20261122T150000Z-bbbbbb"
    assert host["smoke"]["result"] == "passed"
    assert after["pools"]["blue"] == failed["pools"]["blue"]  # the old pool stays warm


def test_apply_noop_records_history_only() -> None:
    before = blue_live()
    after = mf.apply_event(before, event(result="noop", message="1.4.1 already live", hosts={}))
    assert after["pools"] == before["pools"]
    assert after["live_pool"] == "blue"
    assert after["history"][-1]["result"] == "noop"
    assert len(after["history"]) == len(before["history"]) + 1


@pytest.mark.parametrize("result", ["failed", "flipped_back"])
def test_apply_failure_records_staged_hosts_but_not_pool_version(result: str) -> None:
    before = blue_live()
    failed = event(
        result=result,
        phase="smoke" if result == "failed" else "verify",
        message="green2: healthz returned 500",
        hosts={
            "green1": {"version": "1.4.2", "sha256": SHA_NEW, "smoke": smoke()},
            "green2": {"version": "1.4.2", "sha256": SHA_NEW, "smoke": smoke("failed")},
        },
    )
    after = mf.apply_event(before, failed)
    assert after["live_pool"] == "blue"
    green = after["pools"]["green"]
    assert green["version"] is None and green["sha256"] is None  # pool never served it
    assert green["hosts"]["green2"]["staged"] is True
    assert green["hosts"]["green2"]["smoke"]["result"] == "failed"
    assert green["hosts"]["green2"]["version"] == "1.4.2"
    assert after["pools"]["blue"] == before["pools"]["blue"]
    entry = after["history"][-1]
    assert entry["result"] == result and entry["phase"] in ("smoke", "verify")
    assert entry["smoke"]["green2"]["result"] == "failed"
    assert [e["result"] for e in after["history"]][:-1] == [e["result"] for e in before["history"]]


def test_failed_deploy_blocks_rollback_to_staged_pool() -> None:
    deployed = mf.apply_event(blue_live(), event())  # green live, blue has 1.4.1
    assert not any(h.get("staged") for h in deployed["pools"]["blue"]["hosts"].values())
    failed = event(
        id="20261123T090000Z-bbbbbb",
        result="failed",
        phase="smoke",
        started_at="2026-11-23T09:00:00Z",
        finished_at="2026-11-23T09:00:09Z",
        **{"from": {"pool": "green", "version": "1.4.2", "sha256": SHA_NEW}},
        to={"pool": "blue", "version": "1.4.3", "sha256": SHA_BAD},
        hosts={"blue1": {"version": "1.4.3", "sha256": SHA_BAD, "smoke": smoke("failed")}},
    )
    after = mf.apply_event(deployed, failed)
    assert after["pools"]["blue"]["version"] == "1.4.1"
    assert after["pools"]["blue"]["hosts"]["blue1"]["staged"] is True
    assert "staged" not in after["pools"]["blue"]["hosts"]["blue2"]


def test_awaiting_approval_then_promote() -> None:
    staged = mf.apply_event(blue_live(), event(result="awaiting_approval", phase=None))
    assert staged["live_pool"] == "blue"
    assert staged["pools"]["green"]["version"] is None
    assert all(h["staged"] for h in staged["pools"]["green"]["hosts"].values())
    promote = event(
        id="20261122T160000Z-cccccc",
        action="promote",
        started_at="2026-11-22T16:00:00Z",
        finished_at="2026-11-22T16:00:01Z",
        hosts={},
    )
    after = mf.apply_event(staged, promote)
    assert after["live_pool"] == "green"
    green = after["pools"]["green"]
    assert green["version"] == "1.4.2" and green["run_id"] == "20261122T160000Z-cccccc"
    assert set(green["hosts"]) == {"green1", "green2"}
    assert not any(h.get("staged") for h in green["hosts"].values())
    assert green["hosts"]["green1"]["run_id"] == "20261122T140000Z-1a2b3c"  # staged by deploy


def test_unlock_is_history_only() -> None:
    before = blue_live()
    unlock = event(action="unlock", to=None, hosts={}, message="lock held by bob@ws2 removed")
    after = mf.apply_event(before, unlock)
    assert after["pools"] == before["pools"] and after["live_pool"] == "blue"
    assert after["history"][-1]["action"] == "unlock"


def test_reconcile_records_observed_state() -> None:
    reconcile = event(action="reconcile", **{"from": None})
    after = mf.apply_event(mf.empty("prod"), reconcile)
    assert after["live_pool"] == "green"
    assert after["pools"]["green"]["version"] == "1.4.2"


def test_deploy_moves_host_out_of_other_pool() -> None:
    before = blue_live()
    moved = event(hosts={"blue2": {"version": "1.4.2", "sha256": SHA_NEW}})
    after = mf.apply_event(before, moved)
    assert "blue2" in after["pools"]["green"]["hosts"]
    assert "blue2" not in after["pools"]["blue"]["hosts"]


def test_lb_errors_delta_is_computed() -> None:
    lb_errors = {
        "before": {"be_green": {"hrsp_5xx": 1, "eresp": 0, "econ": 0}},
        "after": {"be_green": {"hrsp_5xx": 4, "eresp": 0, "econ": 2}},
    }
    entry = mf.apply_event(blue_live(), event(lb_errors=lb_errors))["history"][-1]
    assert entry["lb_errors"]["delta"] == {"be_green": {"hrsp_5xx": 3, "eresp": 0, "econ": 2}}


def test_event_message_is_one_line_and_sha_lowercased() -> None:
    upper = event(
        message="line one\nline two",
        to={"pool": "green", "version": "1.4.2", "sha256": SHA_NEW.upper()},
    )
    after = mf.apply_event(blue_live(), upper)
    assert after["history"][-1]["message"] == "line one line two"
    assert after["pools"]["green"]["sha256"] == SHA_NEW


@pytest.mark.parametrize("missing", mf.HISTORY_REQUIRED)
def test_event_missing_required_key(missing: str) -> None:
    bad = event()
    del bad[missing]
    with pytest.raises(InputError, match=f"missing required key '{missing}'"):
        mf.apply_event(blue_live(), bad)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"action": "redeploy"}, "action must be one of"),
        ({"result": "great"}, "result must be one of"),
        ({"to": {"pool": "red", "version": "1", "sha256": SHA_NEW}}, "to.pool must be"),
        ({"to": {"pool": "green", "version": "1.4.2", "sha256": "abc"}}, "to.sha256 must be"),
        ({"to": {"pool": "green", "version": None, "sha256": SHA_NEW}}, "to.version is required"),
        ({"to": None}, "to.pool is required for a successful deploy"),
        ({"hosts": ["green1"]}, "hosts must be a mapping"),
        ({"started_at": "soon"}, "started_at must be an ISO 8601 time"),
        ({"env": "staging"}, "does not match the manifest's env 'prod'"),
    ],
)
def test_event_rejected(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        mf.apply_event(blue_live(), event(**overrides))


def test_same_event_twice_is_idempotent_but_reused_id_is_an_error() -> None:
    once = mf.apply_event(blue_live(), event())
    assert mf.apply_event(once, event()) == once
    with pytest.raises(InputError, match="different entry with id"):
        mf.apply_event(once, event(message="something else"))


def test_secret_never_reaches_the_file(prod_dir: Path) -> None:
    path = prod_dir / "manifest.yml"
    leaky = event(vault_password="s3cret", ansible_become_pass="s3cret")
    leaky["to"] = {**leaky["to"], "token": "s3cret"}
    leaky["hosts"]["green1"]["api_key"] = "s3cret"
    leaky["hosts"]["green1"]["smoke"] = {**smoke(), "password": "s3cret"}
    leaky["lb_errors"] = {"before": {}, "after": {}, "auth": "s3cret"}
    result = mf.record_event(path, leaky)
    assert "s3cret" not in path.read_text()
    assert "s3cret" not in repr(result)
    assert result["pools"]["green"]["version"] == "1.4.2"  # the real data did get through


# --------------------------------------------------------------------- record_event


def test_record_event_creates_then_appends(prod_dir: Path) -> None:
    path = prod_dir / "manifest.yml"
    first = mf.record_event(path, event())
    assert path.exists() and mf.load(path) == first
    assert first["env"] == "prod" and first["live_pool"] == "green"
    second = mf.record_event(
        path,
        event(
            id="20261122T150000Z-dddddd",
            action="rollback",
            to={"pool": "blue", "version": None, "sha256": None},
            hosts={},
        ),
    )
    assert [entry["id"] for entry in mf.load(path)["history"]] == [
        "20261122T140000Z-1a2b3c",
        "20261122T150000Z-dddddd",
    ]
    assert second["live_pool"] == "blue"
    assert os.listdir(prod_dir) == ["manifest.yml"]


def test_record_event_rejects_bad_event_and_keeps_file(prod_dir: Path) -> None:
    path = prod_dir / "manifest.yml"
    mf.record_event(path, event())
    before = path.read_bytes()
    with pytest.raises(InputError):
        mf.record_event(path, {"action": "deploy"})
    assert path.read_bytes() == before


def test_record_event_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="check the --env"):
        mf.record_event(tmp_path / "nope" / "manifest.yml", event())


def test_queries_find_a_run_and_a_host() -> None:
    data = mf.apply_event(blue_live(), event())
    assert mf.run_entry(data, "20261122T140000Z-1a2b3c")["result"] == "success"
    assert mf.run_entry(data, "no-such-run") is None
    assert mf.host_entry(data, "green1")[0] == "green"
    assert mf.host_entry(data, "nobody") == (None, {})


def test_reconciled_rebuilds_pools_from_release_json() -> None:
    sha = "a" * 64
    release = {"version": "2.0.0", "sha256": sha, "activated_at": "2026-11-22T10:00:00Z",
               "activated_by": "ci", "run_id": "20261122T100000Z-abc123"}
    data = mf.reconciled("prod", {"blue": ["b1", "b2"], "green": ["g1"]}, "blue",
                         {"b1": release, "b2": release, "g1": {"error": "unreachable: x"}}, [])
    assert data["live_pool"] == "blue"
    assert data["pools"]["blue"]["version"] == "2.0.0"
    assert set(data["pools"]["blue"]["hosts"]) == {"b1", "b2"}
    assert data["pools"]["green"]["version"] is None and data["pools"]["green"]["hosts"] == {}


def test_reconciled_mixed_pool_has_no_version() -> None:
    one = {"version": "1", "sha256": "a" * 64}
    two = {"version": "2", "sha256": "b" * 64}
    data = mf.reconciled("prod", {"blue": ["b1", "b2"], "green": []}, None,
                         {"b1": one, "b2": two}, [])
    assert data["pools"]["blue"]["version"] is None and len(data["pools"]["blue"]["hosts"]) == 2
