"""Lab configuration and inventory generation (pure)."""

from pathlib import Path

import pytest
import yaml

from turnout.errors import InputError
from turnout.lab import base
from turnout.lab.config import (
    LabConfig,
    hosts_file,
    inventory,
    known_hosts_lines,
    network_unit,
    ssh_config_text,
    sudoers_line,
)


def test_default_fleet_names_addresses_and_machines():
    config = LabConfig()
    hosts = {h.name: h for h in config.hosts()}
    assert list(hosts) == ["lb1", "blue1", "blue2", "green1", "green2"]
    assert hosts["lb1"].address == "10.231.0.2"
    assert hosts["blue2"].address == "10.231.0.12"
    assert hosts["green1"].address == "10.231.0.31"
    assert hosts["green1"].machine == "lab-green1"
    assert config.bridge == "tn-lab"
    assert config.gateway == "10.231.0.1"


def test_ten_hosts_per_pool_fit_linux_interface_names():
    config = LabConfig(name="abcd", app_hosts=10)
    names = [h.veth for h in config.hosts()] + [config.bridge]
    assert len(config.hosts()) == 21
    assert max(len(n) for n in names) <= 15  # IFNAMSIZ - 1
    assert len({h.address for h in config.hosts()}) == 21


@pytest.mark.parametrize("count", [0, 11, 99, -1, True, "2"])
def test_app_hosts_out_of_range_is_refused(count):
    with pytest.raises(InputError, match="--app-hosts must be a whole number from 1 to 10"):
        LabConfig(app_hosts=count)


@pytest.mark.parametrize("name", ["", "Lab", "toolong", "1ab", "a-b", "a b"])
def test_bad_lab_names(name):
    with pytest.raises(InputError, match="invalid lab name"):
        LabConfig(name=name)


@pytest.mark.parametrize("subnet", ["10.231.0.0/16", "8.8.8.0/24", "10.231.0.5/24", "nonsense"])
def test_bad_subnets(subnet):
    with pytest.raises(InputError, match="invalid lab subnet"):
        LabConfig(subnet=subnet)


def test_unknown_host_names_the_choices():
    with pytest.raises(InputError, match="unknown lab host 'blue9': choose one of lb1, blue1"):
        LabConfig().host("blue9")


def test_inventory_groups_and_strict_host_key_checking():
    config = LabConfig(name="t", subnet="10.231.9.0/24", app_hosts=3)
    inv = inventory(config)
    text = yaml.safe_dump(inv)
    children = inv["all"]["children"]
    assert list(children["lb"]["hosts"]) == ["lb1"]
    assert list(children["app"]["children"]["blue"]["hosts"]) == ["blue1", "blue2", "blue3"]
    assert children["app"]["children"]["green"]["hosts"]["green3"] == {
        "ansible_host": "10.231.9.33"}
    common = inv["all"]["vars"]["ansible_ssh_common_args"]
    assert "StrictHostKeyChecking=yes" in common
    assert f"UserKnownHostsFile={config.known_hosts}" in common
    assert "StrictHostKeyChecking=no" not in text


def test_host_files():
    config = LabConfig()
    blue1 = config.host("blue1")
    unit = network_unit(blue1, config)
    assert "Name=host0" in unit and "Address=10.231.0.11/24" in unit
    etc_hosts = hosts_file(blue1, config)
    assert "127.0.1.1\tblue1" in etc_hosts and "10.231.0.32\tgreen2" in etc_hosts
    keys = {h.name: f"ssh-ed25519 AAAA{h.name} root@{h.name}" for h in config.hosts()}
    known = known_hosts_lines(keys, config).splitlines()
    assert known[0] == "10.231.0.2 ssh-ed25519 AAAAlb1"
    assert "StrictHostKeyChecking yes" in ssh_config_text(config)


def test_find_mirror_deb822_and_one_line_formats(tmp_path: Path):
    deb822 = ("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm "
              "bookworm-updates\nComponents: main\n\nTypes: deb\n"
              "URIs: http://mirror.example/debian-security\nSuites: bookworm-security\n")
    assert base.find_mirror(text=deb822) == "http://mirror.example/debian"
    one_line = "deb [arch=amd64] http://other.example/debian bookworm main\n"
    assert base.find_mirror(text=one_line) == "http://other.example/debian"
    with pytest.raises(InputError, match="TURNOUT_LAB_MIRROR"):
        base.find_mirror(text="deb http://x/debian bullseye main\n")


def test_recipe_hash_is_stable():
    assert base.recipe_hash() == base.recipe_hash()
    assert len(base.recipe_hash()) == 16


def test_a_lab_with_a_deploy_user_connects_as_it_with_become_and_its_own_key(tmp_path):
    config = LabConfig(name="u", subnet="10.231.77.0/24", state_root=tmp_path, user="deploy")
    data = inventory(config)["all"]["vars"]
    assert data["ansible_user"] == "deploy" and data["ansible_become"] is True
    assert data["ansible_ssh_private_key_file"] == str(tmp_path / "u" / "deploy_ed25519")
    assert config.user_key_file != config.key_file  # the root key is the lab's, not turnout's
    assert "StrictHostKeyChecking=yes" in data["ansible_ssh_common_args"]
    assert sudoers_line("deploy") == "deploy ALL=(ALL:ALL) NOPASSWD: ALL\n"
    root = inventory(LabConfig(state_root=tmp_path))["all"]["vars"]
    assert root["ansible_user"] == "root" and "ansible_become" not in root
    assert root["ansible_ssh_private_key_file"] == str(tmp_path / "lab" / "id_ed25519")


@pytest.mark.parametrize("user", ["", "Deploy", "de ploy", "x;id", "a" * 33, 7])
def test_bad_lab_users(user):
    with pytest.raises(InputError, match="invalid lab user"):
        LabConfig(user=user)
