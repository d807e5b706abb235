"""What the pool_switch role promises: traffic on the target pool at runtime and on disk (so a
reload keeps it), every server of the target pool UP, and users served the new version."""

from __future__ import annotations

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
MAP = "/etc/haproxy/pool.map"


def _runtime_pool(host) -> str:
    return runtime_api(host, f"show map {MAP}").split()[-1]


def test_map_file_names_the_new_pool(host) -> None:
    pool_map = host.file(MAP)
    assert pool_map.content_string == "active be_green\n"
    assert (pool_map.user, pool_map.group, pool_map.mode) == ("root", "root", 0o644)


def test_runtime_map_names_the_new_pool(host) -> None:
    assert _runtime_pool(host) == "be_green"


def test_runtime_socket_stays_admin_only(host) -> None:
    sock = host.file(ADMIN_SOCKET)
    assert sock.is_socket and sock.user == "root" and sock.mode == 0o600


def test_target_pool_is_up(host) -> None:
    assert server_states(host)["be_green/green1"] == "UP"


def test_users_get_the_new_version_through_the_load_balancer(host) -> None:
    url = f"http://{address(host)}:80/version"
    for _ in range(10):
        status, headers, _ = http_get(url)
        assert status == 200
        assert headers.get("x-turnout-backend") == "be_green"
    assert get_json(url) == {"version": "1.1.0", "host": "green1", "pool": "green"}


def test_a_reload_keeps_the_flip(host) -> None:
    reload = host.run("systemctl reload haproxy")
    assert reload.rc == 0, reload.stderr
    url = f"http://{address(host)}:80/version"

    def green_after_reload() -> None:
        assert _runtime_pool(host) == "be_green"
        assert get_json(url)["pool"] == "green"

    poll(green_after_reload)
    assert host.service("haproxy").is_running
