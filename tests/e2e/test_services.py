"""Services of other teams, deployed from their own app definition (docs/app.md):

- catalog (examples/catalog): a Flask app under gunicorn, its wheels bundled in the artifact and
  installed into a virtualenv per release by the build step; a secret from the controller's
  environment; templates rendered per host; a worker on the <pool>_workers hosts; the version
  a nested JSON key; provision, deploy twice and roll back under load, 0 failed requests;
- site (examples/site): busybox httpd, a static binary, its version a regex on the page;
- bad definitions: one line naming the key and the fix, exit 2, nothing changed.

Its own labs (TURNOUT_TEST_SERVICES_LAB / TURNOUT_TEST_SERVICES_SUBNET, default 'tv' on
10.231.14.0/24): one LB, two hosts per pool (catalog: one web host and one worker per pool);
the site reuses the lab after catalog with a fresh one.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, Lab, invoke, require_lab_support
from tests.e2e.test_bluegreen import ssh
from turnout.lab import fleet
from turnout.lab.config import LabConfig
from turnout.probe import TrafficProbe

pytestmark = pytest.mark.e2e

TOKEN = "tok-" + "e2e-9f3c1d7a"  # written so that no command line of this test holds it whole
CATALOG = ("1.0.0", "1.0.1")
CATALOG_URL = "1.0.2"  # served over HTTP to --artifact, never in dist/ before the deploy
SLOW_S = 60  # the long request: several times a rollback plus the checks before staging
SITE = ("3.0.0", "3.0.1")


def say(line: str) -> None:
    print(f"SERVICES {line}", file=sys.stderr, flush=True)


def lab_config() -> LabConfig:
    return LabConfig(name=os.environ.get("TURNOUT_TEST_SERVICES_LAB", "tv"),
                     subnet=os.environ.get("TURNOUT_TEST_SERVICES_SUBNET", "10.231.14.0/24"),
                     app_hosts=2, lbs=1)


def make_env(config: LabConfig, inventories: Path, env: str, example: str,
             workers: bool) -> Lab:
    """inventories/<env>: the lab's hosts (blue2/green2 as workers when asked) and the
    example's own inventory files (group_vars, templates) copied beside it."""
    env_dir = inventories / env
    source = REPO / "examples" / example / "inventory"
    shutil.copytree(source, env_dir)
    lab_hosts = inventories / f"{env}-lab"
    lab_hosts.mkdir()
    fleet.down(config)
    fleet.up(config, lab_hosts)
    hosts = yaml.safe_load((lab_hosts / "hosts.yml").read_text())
    if workers:
        app = hosts["all"]["children"]["app"]["children"]
        app["blue_workers"] = {"hosts": {"blue2": app["blue"]["hosts"].pop("blue2")}}
        app["green_workers"] = {"hosts": {"green2": app["green"]["hosts"].pop("green2")}}
    (env_dir / "hosts.yml").write_text("---\n" + yaml.safe_dump(hosts, sort_keys=False))
    return Lab(config=config, inventories=inventories, env_name=env)


def run(lab: Lab, command: str, *args: str, check: bool = False):
    return invoke(command, "--env", lab.env_name, *args, check=check, timeout=900,
                  env={**lab.environ, "CATALOG_API_TOKEN": TOKEN})


def probe(lab: Lab, path: str) -> TrafficProbe:
    lb = lab.config.host("lb1").address
    return TrafficProbe(lb, 80, workers=2, path=path, interval_s=0.02, max_seconds=900,
                        version_header="X-Turnout-Release")


def under_load(lab: Lab, path: str, command: str, *args: str):
    with probe(lab, path) as traffic:
        traffic.wait_for(20)
        proc = run(lab, command, *args)
        traffic.wait_for(traffic.result.total + 20)
    return proc, traffic.result


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    require_lab_support()
    for version in CATALOG:
        invoke("build", "--example", "catalog", "--version", version, check=True)
    config = lab_config()
    lab = make_env(config, tmp_path_factory.mktemp("inventories"), "cat", "catalog",
                   workers=True)
    try:
        run(lab, "provision", check=True)
        yield lab
    finally:
        if os.environ.get("TURNOUT_KEEP_LAB") != "1":
            fleet.down(config)


def catalog_info(lab: Lab, host: str) -> dict:
    address = lab.config.host(host).address
    return json.loads(ssh(lab, host, f"curl -sf http://{address}:8081/api/info"))


def test_catalog_deploys_builds_its_venv_and_gets_its_secret_and_templates(catalog):
    proc = run(catalog, "deploy", "--version", CATALOG[0])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    live = next(h for h in ("blue1", "green1")
                if catalog_info(catalog, h)["build"]["version"] == CATALOG[0])
    info = catalog_info(catalog, live)
    assert info["token_configured"] is True and info["settings"]["host"] == live
    release = f"/srv/catalog/releases/{CATALOG[0]}"
    assert ssh(catalog, live, f"test -x {release}/venv/bin/gunicorn && "
                              f"test ! -e {release}/wheels && echo ok").strip() == "ok"
    assert ssh(catalog, live, "stat -c '%U %a' /etc/turnout/catalog.env").strip() == "root 600"
    users = ssh(catalog, live, "ps -eo user=,args= | grep '[g]unicorn' | cut -d' ' -f1 | sort -u")
    assert users.split() == ["catalog"], users
    worker = "blue2" if live == "blue1" else "green2"
    assert ssh(catalog, worker, "systemctl is-active catalog.service").strip() == "active"
    assert ssh(catalog, worker, "cat /var/lib/catalog/heartbeat")  # the worker writes it
    status = run(catalog, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"{worker}" in status.stdout and "worker" in status.stdout


def test_catalog_deploy_and_rollback_under_load_never_fail_a_request(catalog):
    proc, traffic = under_load(catalog, "/api/info", "deploy", "--version", CATALOG[1])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert traffic.failures == [], traffic.summary()
    assert set(traffic.versions) == set(CATALOG), traffic.summary()
    back, traffic2 = under_load(catalog, "/api/info", "rollback")
    assert back.returncode == 0, back.stdout + back.stderr
    assert traffic2.failures == [], traffic2.summary()
    assert set(traffic2.versions) == set(CATALOG), traffic2.summary()
    say(f"catalog deploy: {traffic.summary()}; rollback: {traffic2.summary()}")


def in_flight(lab: Lab) -> dict[str, int]:
    """HAProxy's requests in flight (scur) per app server, read on lb1's runtime API."""
    stats = ssh(lab, "lb1", "echo 'show stat' | socat stdio /run/haproxy/admin.sock")
    busy = {}
    for row in stats.splitlines():
        fields = row.split(",")
        if len(fields) > 4 and fields[1] not in ("FRONTEND", "BACKEND", "svname"):
            busy[fields[1]] = busy.get(fields[1], 0) + int(fields[4] or 0)
    return busy


def wait_until(check, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.2)


class LongRequest(threading.Thread):
    """One GET through lb1 that takes SLOW_S seconds; what came back, and when (wall clock)."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(daemon=True)
        self.url = f"http://{lab.config.host('lb1').address}/slow?s={SLOW_S}"
        self.status, self.body, self.release, self.ended = 0, "", "", 0.0

    def run(self) -> None:
        try:
            with urllib.request.urlopen(self.url, timeout=SLOW_S + 60) as answer:
                self.status, self.body = answer.status, answer.read().decode()
                self.release = answer.headers.get("X-Turnout-Release", "")
        except OSError as error:
            self.body = repr(error)
        self.ended = time.time()


class ArtifactServer(http.server.ThreadingHTTPServer):
    """Serves a directory on loopback and counts the GETs of each path."""

    def __init__(self, directory: Path) -> None:
        gets: dict[str, int] = {}

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                gets[self.path] = gets.get(self.path, 0) + 1
                super().do_GET()

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
        self.gets = gets
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


def stops_after(lab: Lab, host: str, since: float) -> list[float]:
    """When systemd began stopping the catalog service on `host` after `since` (wall clock)."""
    out = ssh(lab, host, f"journalctl -q --no-pager -o short-unix --since @{int(since)} "
                         "-u catalog.service | grep 'Stopping catalog.service' || true")
    return [float(line.split()[0]) for line in out.splitlines() if line.strip()]


def test_a_long_request_on_the_old_pool_finishes_before_a_deploy_from_a_url_restages_it(
        catalog, tmp_path):
    """A request still running on the old pool when the next deploy restages that pool ends
    with 200 from its own release: the deploy waits for it (drain_s) before it stops the app.
    The deploy's artifact comes from a URL, fetched once with its sha256 enforced."""
    invoke("build", "--example", "catalog", "--version", CATALOG_URL, check=True)
    served = tmp_path / "served"
    served.mkdir()
    name = f"catalog-{CATALOG_URL}.tar.gz"
    for suffix in ("", ".sha256"):
        shutil.move(REPO / "dist" / (name + suffix), served / (name + suffix))
    sha256 = (served / f"{name}.sha256").read_text().split()[0]
    server = ArtifactServer(served)
    try:
        wrong = run(catalog, "deploy", "--version", CATALOG_URL, "--artifact", server.url(name),
                    "--sha256", "0" * 64)
        assert wrong.returncode == 2 and "expected " + "0" * 64 in wrong.stderr, wrong.stderr
        assert not (REPO / "dist" / name).exists()

        live = next(h for h in ("blue1", "green1")
                    if catalog_info(catalog, h)["build"]["version"] == CATALOG[0])
        long_request = LongRequest(catalog)
        long_request.start()
        wait_until(lambda: in_flight(catalog).get(live, 0) > 0,
                   f"the long request in flight on {live}", 30)
        # traffic leaves `live` for the warm 1.0.1 (live before the last rollback); the long
        # request stays on `live`
        back = run(catalog, "rollback", "--to", CATALOG[1])
        assert back.returncode == 0, back.stdout + back.stderr
        assert catalog_info(catalog, live)["build"]["version"] == CATALOG[0]
        assert long_request.is_alive() and in_flight(catalog).get(live, 0) > 0
        started, fetched = time.time(), server.gets.get(f"/{name}", 0)
        proc = run(catalog, "deploy", "--version", CATALOG_URL, "--artifact", server.url(name),
                   "--sha256", sha256)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        long_request.join(timeout=SLOW_S + 60)
    finally:
        server.shutdown()
    assert long_request.status == 200, long_request.body
    assert f"<h1>catalog {CATALOG[0]}</h1>" in long_request.body
    assert long_request.release == CATALOG[0]
    # it was still running when the deploy began, and the app was stopped only after it ended
    assert long_request.ended > started + 5, (long_request.ended, started)
    stops = stops_after(catalog, live, started)
    assert stops and min(stops) >= long_request.ended - 1, (stops, long_request.ended)
    assert catalog_info(catalog, live)["build"]["version"] == CATALOG_URL
    assert server.gets == {f"/{name}": fetched + 1}, server.gets  # once, into dist/ for --from
    assert (REPO / "dist" / name).is_file()
    say(f"long request: {SLOW_S}s, ended {long_request.ended - started:.1f}s after the deploy "
        f"began; app stopped {min(stops) - long_request.ended:.1f}s after it ended")


def test_the_catalog_secret_is_in_no_manifest_release_json_log_or_command_line(catalog):
    for text in ((catalog.env_dir / "manifest.yml").read_text(),
                 run(catalog, "report", "--format", "json").stdout):
        assert TOKEN not in text
    for host in ("blue1", "green1", "blue2"):
        seen = ssh(catalog, host, "cat /srv/catalog/release.json /srv/catalog/current/*.json; "
                                  "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; "
                                  "journalctl -q --no-pager -u catalog.service | tail -200")
        assert TOKEN not in seen, host


@pytest.mark.parametrize(("change", "message"), [
    ({"start": ""}, "turnout_app.start: "),
    ({"version": {"kind": "xml", "path": "/v"}}, "turnout_app.version.kind: "),
    ({"port": 70000}, "turnout_app.port: "),
    ({"templates": [{"src": "templates/missing.j2", "dest": "x"}]},
     "turnout_app.templates[0].src: templates/missing.j2 not found"),
    ({"secrets": {"CATALOG_API_TOKEN": TOKEN}, "start": f"venv/bin/gunicorn --token {TOKEN}"},
     "turnout_app.start: "),
])
def test_a_bad_definition_is_one_line_exit_2_and_nothing_changes(catalog, change, message):
    group_vars = catalog.env_dir / "group_vars" / "all.yml"
    original = group_vars.read_text()
    before = (catalog.env_dir / "manifest.yml").read_text()
    units = ssh(catalog, "blue1", "stat -c %Y /etc/systemd/system/catalog.service")
    app = yaml.safe_load(original)["turnout_app"]
    group_vars.write_text("---\n" + yaml.safe_dump({"turnout_app": {**app, **change}}))
    try:
        for command, args in (("deploy", ("--version", CATALOG[1])), ("provision", ())):
            proc = run(catalog, command, *args)
            assert proc.returncode == 2, (command, proc.stdout + proc.stderr)
            errors = [line for line in proc.stderr.splitlines() if line.strip()]
            assert len(errors) == 1 and message in errors[0], (command, proc.stderr)
            assert "Traceback" not in proc.stderr and TOKEN not in proc.stderr
    finally:
        group_vars.write_text(original)
    assert (catalog.env_dir / "manifest.yml").read_text() == before
    assert ssh(catalog, "blue1", "stat -c %Y /etc/systemd/system/catalog.service") == units


@pytest.fixture(scope="module")
def site(catalog, tmp_path_factory):
    """The site example on the lab rebooted fresh after the catalog tests."""
    for version in SITE:
        invoke("build", "--example", "site", "--version", version, check=True)
    lab = make_env(catalog.config, tmp_path_factory.mktemp("inventories"), "site", "site",
                   workers=False)
    run(lab, "provision", check=True)
    return lab


def test_a_static_binary_site_deploys_and_rolls_back_under_load(site):
    first = run(site, "deploy", "--version", SITE[0])
    assert first.returncode == 0, first.stdout + first.stderr
    proc, traffic = under_load(site, "/", "deploy", "--version", SITE[1])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert traffic.failures == [] and set(traffic.versions) == set(SITE), traffic.summary()
    back, traffic2 = under_load(site, "/", "rollback")
    assert back.returncode == 0, back.stdout + back.stderr
    assert traffic2.failures == [], traffic2.summary()
    page = ssh(site, "lb1", "curl -sf http://127.0.0.1/")
    assert f'<meta name="release" content="{SITE[0]}">' in page
    say(f"site deploy: {traffic.summary()}; rollback: {traffic2.summary()}")
