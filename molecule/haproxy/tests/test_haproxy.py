"""What the haproxy role promises on the load balancer (docs/contracts.md)."""

from __future__ import annotations

import pytest
from molecule_helpers import (
    ADMIN_SOCKET,
    address,
    get_json,
    http_get,
    poll,
    runtime_api,
    server_states,
)

testinfra_hosts = ["lb"]


def test_haproxy_service_is_running_and_enabled(host) -> None:
    service = host.service("haproxy")
    assert service.is_running
    assert service.is_enabled


def test_config_is_valid_and_root_owned(host) -> None:
    check = host.run("haproxy -c -f /etc/haproxy/haproxy.cfg")
    assert check.rc == 0, check.stdout + check.stderr
    cfg = host.file("/etc/haproxy/haproxy.cfg")
    assert (cfg.user, cfg.group, cfg.mode) == ("root", "root", 0o644)
    assert "use_backend %[str(active),map(/etc/haproxy/pool.map,be_blue)]" in cfg.content_string


def test_runtime_socket_is_admin_only(host) -> None:
    sock = host.file(ADMIN_SOCKET)
    assert sock.is_socket
    assert sock.user == "root"
    assert sock.mode == 0o600, f"{ADMIN_SOCKET} has mode {sock.mode:o}, want 600"
    assert "level admin" in host.file("/etc/haproxy/haproxy.cfg").content_string


def test_pool_map_points_at_blue_on_disk_and_at_runtime(host) -> None:
    pool_map = host.file("/etc/haproxy/pool.map")
    assert (pool_map.user, pool_map.group, pool_map.mode) == ("root", "root", 0o644)
    assert pool_map.content_string == "active be_blue\n"
    assert runtime_api(host, "show map /etc/haproxy/pool.map").split()[-2:] == ["active", "be_blue"]


def test_server_states_survive_reloads(host) -> None:
    script = host.file("/usr/local/sbin/turnout-haproxy-save-state")
    assert (script.user, script.mode) == ("root", 0o755)
    dropin = host.file("/etc/systemd/system/haproxy.service.d/turnout-server-state.conf")
    assert (dropin.user, dropin.mode) == ("root", 0o644)
    exec_reload = host.run("systemctl show -p ExecReload haproxy").stdout
    assert "turnout-haproxy-save-state" in exec_reload
    # The converge changed haproxy.cfg, so its reload ran the saver: the file exists.
    state = host.file("/var/lib/haproxy/server-state")
    assert state.exists and state.content_string.startswith("1\n")


def test_every_inventory_server_is_up_in_its_backend(host) -> None:
    def all_up() -> dict[str, str]:
        states = server_states(host)
        assert states == {"be_blue/blue1": "UP", "be_green/green1": "UP"}, states
        return states

    poll(all_up)


def test_frontend_routes_to_the_mapped_pool(host) -> None:
    url = f"http://{address(host)}:80/version"

    def blue_answers() -> None:
        status, headers, body = http_get(url)
        assert status == 200, (status, body[:200])
        assert headers.get("x-turnout-backend") == "be_blue"

    poll(blue_answers)
    for _ in range(5):
        assert get_json(url) == {"version": "1.0.0", "host": "blue1", "pool": "blue"}


@pytest.mark.parametrize(("path", "expected"), [("/healthz", "ok"), ("/", "hello from")])
def test_app_endpoints_through_the_load_balancer(host, path: str, expected: str) -> None:
    status, _, body = http_get(f"http://{address(host)}:80{path}")
    assert status == 200
    assert expected in body


def test_stats_page_only_on_loopback(host) -> None:
    assert host.socket("tcp://127.0.0.1:8404").is_listening
    assert not host.socket("tcp://0.0.0.0:8404").is_listening
    assert host.run("curl -fsS -o /dev/null http://127.0.0.1:8404/stats").rc == 0
    assert host.socket("tcp://0.0.0.0:80").is_listening
