"""turnout.appdef: the app definition a team writes in its inventory, checked key by key."""

from __future__ import annotations

import pytest

from turnout import appdef, release
from turnout.errors import InputError


def test_no_definition_is_the_sample_app():
    app = appdef.validate(None)
    assert (app.name, app.user, app.root, app.port) == ("app", "app", "/srv/app", 8080)
    assert app.unit == "app.service" and app.exec_start() == "/usr/bin/python3 app.py"
    assert app.working_directory() == "/srv/app/current"
    assert app.artifact_name("1.2.3") == "app-1.2.3.tar.gz"
    assert appdef.validate({}) == app


def test_a_team_service_derives_its_names():
    app = appdef.validate({"name": "shop", "start": "bin/shop --port 9000", "port": 9000,
                           "workdir": "srv", "env": {"LOG_LEVEL": "info"},
                           "secrets": {"DB_PASSWORD": "s3cr3t-value"},
                           "version": {"kind": "header", "header": "X-Shop-Version"},
                           "writable": ["/var/lib/shop"], "stop": {"signal": "SIGINT"}})
    assert app.unit == "shop.service" and app.root == "/srv/shop" and app.user == "shop"
    assert app.exec_start() == "/srv/shop/current/bin/shop --port 9000"
    assert app.working_directory() == "/srv/shop/current/srv"
    assert app.secrets_file == "/etc/turnout/shop.env"
    facts = app.as_facts()
    assert facts["secrets"] == ["DB_PASSWORD"] and "s3cr3t-value" not in str(facts)
    assert facts["version"]["header"] == "X-Shop-Version" and facts["exec_start"]


@pytest.mark.parametrize(("value", "match"), [
    ({"name": "Shop!"}, "turnout_app.name: 'Shop!' is not a service name"),
    ({"name": "shop"}, "turnout_app.start: is missing"),
    ({"start": "../bin/x"}, "turnout_app.start: '../bin/x' leaves the release"),
    ({"port": 70000}, "turnout_app.port: must be a whole number from 1 to 65535"),
    ({"port": "http"}, "turnout_app.port: must be a whole number"),
    ({"version": {"kind": "xml"}}, "turnout_app.version.kind: 'xml' is not a kind"),
    ({"version": {"kind": "regex"}}, "turnout_app.version.pattern: is missing"),
    ({"version": {"kind": "regex", "pattern": "("}}, "is not a regular expression"),
    ({"version": {"kind": "command"}}, "turnout_app.version.command: is missing"),
    ({"templates": [{"src": "x.j2", "dest": "/etc/passwd"}]}, "leaves the release"),
    ({"templates": [{"dest": "x"}]}, "turnout_app.templates[0].src: is missing"),
    ({"secrets": {"TOKEN": "abcd1234"}, "start": "/usr/bin/app --token abcd1234"},
     "turnout_app.start: contains the value of secret TOKEN"),
    ({"secrets": {"TOKEN": "abcd1234"}, "env": {"T": "abcd1234"}},
     "turnout_app.env.T: contains the value of secret TOKEN"),
    ({"env": {"APP_PORT": "1"}}, "is set by turnout itself"),
    ({"env": {"1X": "1"}}, "is not an environment variable name"),
    ({"user": "root"}, "turnout_app.user: 'root' cannot run the app"),
    ({"root": "/etc"}, "is not a directory turnout can own"),
    ({"writable": ["/etc"]}, "cannot be made writable"),
    ({"stop": {"signal": "TERM"}}, "is not a signal"),
    ({"colour": "blue"}, "turnout_app.colour: is not a known key"),
    ({"artifact": "release.tgz"}, "is not a file name with {version}"),
    ({"workers": {"check": ""}}, "turnout_app.workers.check: is missing"),
    ("shop", "turnout_app: must be a mapping"),
])
def test_a_bad_definition_is_one_line_naming_the_key(value, match):
    with pytest.raises(InputError) as caught:
        appdef.validate(value)
    assert match in str(caught.value) and "\n" not in str(caught.value)
    assert "docs/app.md" in str(caught.value)


@pytest.mark.parametrize(("check", "status", "body", "headers", "found"), [
    ({"kind": "json"}, 200, '{"version": "1.2"}', {}, "1.2"),
    ({"kind": "json", "key": "build.version"}, 200, '{"build": {"version": "3"}}', {}, "3"),
    ({"kind": "json"}, 500, '{"version": "1.2"}', {}, None),
    ({"kind": "header", "header": "X-V"}, 200, "", {"x-v": "4.0"}, "4.0"),
    ({"kind": "regex", "pattern": r"release (\S+)"}, 200, "<p>release 5.1</p>", {}, "5.1</p>"),
    ({"kind": "regex", "pattern": r"v[0-9.]+"}, 200, "v6.0 up", {}, "v6.0"),
    ({"kind": "command", "command": "bin/x --version"}, 200, "x\n7.0\n", {}, "7.0"),
])
def test_the_version_an_answer_reports(check, status, body, headers, found):
    parsed = appdef.validate({"version": check}).version
    assert appdef.version_from(parsed, status, body, headers) == found


@pytest.mark.parametrize("path", ["/tmp", "/var", "/var/lib", "/srv", "/opt", "/home",
                                  "/usr/local", "/etc/app", "/run/app", "/proc/1", "/"])
def test_a_system_directory_is_neither_the_root_nor_writable(path: str) -> None:
    with pytest.raises(InputError, match=r"turnout_app\.root: "):
        appdef.validate({"root": path})
    with pytest.raises(InputError, match=r"turnout_app\.writable\[0\]: "):
        appdef.validate({"writable": [path]})


@pytest.mark.parametrize("path", ["/srv/app", "/var/lib/catalog", "/opt/site"])
def test_a_directory_of_the_apps_own_is_fine(path: str) -> None:
    assert appdef.validate({"root": path, "writable": [path + "/data"]}).root == path


def test_a_workdir_keeps_its_dots() -> None:
    app = appdef.validate({"workdir": "./.venv"})
    assert app.working_directory() == "/srv/app/current/.venv"
    assert appdef.validate({"workdir": "."}).working_directory() == "/srv/app/current"


@pytest.mark.parametrize("pattern", ["{name}-{version}-{arch}.tar.gz", "{version}.tar.gz}",
                                     "{name}-{{version}}.tgz"])
def test_an_artifact_pattern_fills_in_only_name_and_version(pattern: str) -> None:
    with pytest.raises(InputError, match=r"turnout_app\.artifact: "):
        appdef.validate({"artifact": pattern})


def test_a_check_without_a_path_names_the_path() -> None:
    with pytest.raises(InputError, match=r"turnout_app\.checks\[0\]\.path: "):
        appdef.validate({"checks": [{"name": "root page"}]})


def test_env_values_and_secrets_reach_the_app_unchanged() -> None:
    """systemd reads % in Environment= as a specifier and \\$ in an env file as $; values
    are written so that both arrive as given (checked on a real host: docs/app.md)."""
    unit = release.unit(appdef.validate({"env": {"A": 'x$y%z"w\\v'}}).as_facts(), "blue", "h")
    assert 'Environment=A="x$y%%z\\"w\\\\v"' in unit
    assert release.env_file({"S": 'p$w%d'}) == 'S="p\\$w%d"\n'


def test_a_pruned_releases_artifact_is_found_by_its_exact_name() -> None:
    assert release.pruned_artifact("app-1.2.3.tar.gz", "1.2.3", "1.2") == "app-1.2.tar.gz"
    assert release.pruned_artifact("shop_9.tgz", "9", "8") == "shop_8.tgz"
    assert release.pruned_artifact(None, "1.0", "0.9") is None  # no name given: none removed


def test_what_a_host_runs_comes_from_this_runs_read() -> None:
    read = {"changed": False, "release": {"version": "1.4.2", "sha256": "ab"},
            "active": "active", "current": "releases/1.4.2", "base_ready": True}
    assert release.current(read) == {"version": "1.4.2", "sha256": "ab", "service": "active"}
    assert release.current({**read, "release": {}}) == {}  # read, nothing deployed
    for unread in (None, {}, {"skipped": True}, {"failed": True, "msg": "no"},
                   {"unreachable": True}):
        assert release.current(unread) is None, unread
