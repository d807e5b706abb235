"""Security defaults that need no lab: host key checking everywhere, safe role defaults."""

from __future__ import annotations

import configparser
from pathlib import Path

import yaml

from turnout import inventory, runner

REPO = Path(__file__).resolve().parents[2]
WEAK = ("stricthostkeychecking=no", "stricthostkeychecking no", "userknownhostsfile=/dev/null",
        "userknownhostsfile /dev/null", "accept-new")


def _inventory_files() -> list[Path]:
    files = [*REPO.glob("inventories/*/hosts.yml"), *REPO.glob("inventories/*/hosts.yml.example"),
             *REPO.glob("inventories/*/group_vars/**/*.yml"),
             *REPO.glob("inventories/*/host_vars/**/*.yml")]
    return sorted(p for p in files if p.is_file())


def test_every_environment_has_an_inventory_example_or_generated_lab() -> None:
    for env in ("staging", "prod"):
        example = REPO / "inventories" / env / "hosts.yml.example"
        data = yaml.safe_load(example.read_text())
        children = data["all"]["children"]
        assert children["lb"]["hosts"] and children["app"]["children"]["blue"]["hosts"]
        assert (REPO / "inventories" / env / "group_vars" / "all.yml").is_file()


def test_host_key_checking_is_on_in_every_inventory() -> None:
    files = _inventory_files()
    assert any("staging" in str(p) for p in files) and any("prod" in str(p) for p in files)
    for path in files:
        text = path.read_text().lower()
        for weak in WEAK:
            assert weak not in text, f"{path} turns host key checking off ({weak})"
        data = yaml.safe_load(text) or {}
        flat = yaml.safe_dump(data).lower()
        assert "ansible_host_key_checking: false" not in flat, path
        assert "host_key_checking: false" not in flat, path


def test_ansible_cfg_and_runner_keep_host_key_checking_on() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "ansible.cfg")
    assert cfg.getboolean("defaults", "host_key_checking") is True
    assert runner.BASE_ENV["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert all(w not in cfg.get("ssh_connection", "ssh_args").lower() for w in WEAK)


def test_role_defaults_are_private_by_default() -> None:
    haproxy = yaml.safe_load((REPO / "roles/haproxy/defaults/main.yml").read_text())
    assert str(haproxy["haproxy_stats_bind"]).startswith("127.0.0.1:")
    template = (REPO / "roles/haproxy/templates/haproxy.cfg.j2").read_text()
    assert "stats socket {{ haproxy_socket }} mode 600 level admin" in template
    assert yaml.safe_load((REPO / "roles/haproxy/defaults/main.yml").read_text())[
        "haproxy_socket"].startswith("{{ 'admin_socket' | turnout_path(")
    app = yaml.safe_load((REPO / "roles/app_release/defaults/main.yml").read_text())
    assert app["app_release_user"] not in ("root", "", None)


def test_ssh_control_sockets_live_in_a_directory_only_the_invoking_user_can_write() -> None:
    """A socket in a directory another user can write is a connection that user controls:
    Ansible and turnout's own ssh both use the per-user ~/.ansible/cp (0700)."""
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(REPO / "ansible.cfg")
    directory = cfg.get("ssh_connection", "control_path_dir")
    assert directory == inventory.CONTROL_DIR == "~/.ansible/cp"
    assert cfg.get("ssh_connection", "control_path") == "%(directory)s/%%C"
    for path in (REPO / "src").rglob("*.py"):
        assert "/tmp/.turnout-cp" not in path.read_text(), path
