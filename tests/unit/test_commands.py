"""Pure parts of the command layer."""

from turnout.commands import deployed_by


def test_deployed_by_prefers_explicit_then_ci_then_user():
    assert deployed_by({"TURNOUT_BY": "alice@ws1", "BUILD_TAG": "x"}) == "alice@ws1"
    assert deployed_by({"BUILD_TAG": "jenkins-turnout-42"}) == "jenkins:jenkins-turnout-42"
    assert "@" in deployed_by({})
