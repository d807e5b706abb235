"""Environment loading from inventories/<env>/ (pure file reading, no Ansible)."""

import stat
from pathlib import Path

import pytest
import yaml

from turnout.errors import InputError
from turnout.inventory import control_dir, load_environment, private_dir_problem, ssh_argv

HOSTS = {
    "all": {
        "vars": {"ansible_user": "deploy",
                 "ansible_ssh_common_args": "-o StrictHostKeyChecking=yes"},
        "children": {
            "lb": {"hosts": {"lb1": {"ansible_host": "192.0.2.10"}}},
            "app": {"children": {
                "blue": {"hosts": {"b1": {"ansible_host": "192.0.2.11"}, "b2": None}},
                "green": {"hosts": {"g1": {"ansible_host": "192.0.2.21", "ansible_port": 2222}},
                          "vars": {"app_release_root": "/opt/app"}},
            }},
        },
    }
}


def make_env(root: Path, name: str = "prod", hosts: dict | None = None) -> Path:
    directory = root / name
    (directory / "group_vars").mkdir(parents=True)
    (directory / "hosts.yml").write_text(yaml.safe_dump(hosts or HOSTS))
    return directory


def test_groups_pools_and_connection_vars(tmp_path):
    directory = make_env(tmp_path)
    (directory / "group_vars" / "all.yml").write_text("ansible_user: ops\napp_port: 9000\n")
    (directory / "host_vars").mkdir()
    (directory / "host_vars" / "b2.yml").write_text("ansible_host: 192.0.2.12\n")
    env = load_environment("prod", tmp_path)
    assert env.manifest_path == directory / "manifest.yml"
    assert [h.name for h in env.lb] == ["lb1"]
    assert env.pool_names() == {"blue": ["b1", "b2"], "green": ["g1"]}
    b2 = env.pools["blue"][1]
    assert b2.address == "192.0.2.12"
    # inventory 'all: vars' beats group_vars/all (Ansible precedence)
    assert b2.user == "deploy" and b2.vars["app_port"] == 9000
    g1 = env.pools["green"][0]
    assert g1.port == 2222 and g1.vars["app_release_root"] == "/opt/app"
    assert env.pool_of("g1") == "green" and env.pool_of("lb1") is None
    argv = ssh_argv(g1, "true", "/home/ci/.ansible/cp")
    assert argv[-2:] == ["deploy@192.0.2.21", "true"] and "-p" in argv
    assert "StrictHostKeyChecking=yes" in argv


def test_vault_values_are_not_needed_to_read_hosts(tmp_path):
    directory = make_env(tmp_path)
    (directory / "group_vars" / "all.yml").write_text(
        "db_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n")
    (directory / "group_vars" / "secrets.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n6162\n")
    env = load_environment("prod", tmp_path)
    assert env.pools["blue"][0].vars["db_password"] == "<vault>"


def test_unknown_env_lists_known(tmp_path):
    make_env(tmp_path, "staging")
    with pytest.raises(InputError, match="unknown environment 'prod'.*known: staging"):
        load_environment("prod", tmp_path)


@pytest.mark.parametrize("name", ["Prod", "../etc", "a;b", "", "x" * 40])
def test_bad_env_names(tmp_path, name):
    with pytest.raises(InputError, match="invalid environment name"):
        load_environment(name, tmp_path)


def test_missing_pool_group(tmp_path):
    hosts = {"all": {"children": {"lb": {"hosts": {"lb1": None}},
                                  "blue": {"hosts": {"b1": None}}}}}
    make_env(tmp_path, hosts=hosts)
    with pytest.raises(InputError, match="group 'green' has no hosts"):
        load_environment("prod", tmp_path)


def test_host_in_both_pools(tmp_path):
    hosts = {"all": {"children": {"lb": {"hosts": {"lb1": None}},
                                  "blue": {"hosts": {"x": None}},
                                  "green": {"hosts": {"x": None}}}}}
    make_env(tmp_path, hosts=hosts)
    with pytest.raises(InputError, match="x is in both blue and green"):
        load_environment("prod", tmp_path)


def test_corrupt_yaml(tmp_path):
    directory = tmp_path / "prod"
    directory.mkdir()
    (directory / "hosts.yml").write_text("all: [unclosed\n")
    with pytest.raises(InputError, match="hosts.yml.*is not valid YAML"):
        load_environment("prod", tmp_path)


DIR, FILE = stat.S_IFDIR, stat.S_IFREG


@pytest.mark.parametrize(("mode", "owner", "parent_mode", "parent_owner", "problem"), [
    (DIR | 0o700, 1000, DIR | 0o755, 1000, None),
    (DIR | 0o700, 1000, DIR | 0o1777, 0, None),  # in /tmp: sticky, nobody can rename it away
    (DIR | 0o755, 1000, DIR | 0o755, 1000, None),  # readable is fine, writable is not
    (DIR | 0o777, 1000, DIR | 0o755, 1000, "writable by other users (mode 0777)"),
    (DIR | 0o770, 1000, DIR | 0o755, 1000, "writable by other users (mode 0770)"),
    (DIR | 0o700, 1001, DIR | 0o755, 1000, "belongs to uid 1001, not to you (uid 1000)"),
    (DIR | 0o700, 1000, DIR | 0o777, 0, "other users can write (mode 0777, not sticky)"),
    (DIR | 0o700, 1000, DIR | 0o755, 1001, "inside a directory of uid 1001"),
    (FILE | 0o600, 1000, DIR | 0o755, 1000, "is not a directory"),
])
def test_a_control_socket_directory_must_be_writable_by_its_user_only(
        mode, owner, parent_mode, parent_owner, problem):
    found = private_dir_problem(mode, owner, 1000, parent_mode, parent_owner)
    assert found == problem if problem is None else problem in found


def test_control_dir_is_created_private_and_an_open_one_is_refused(tmp_path):
    mine = tmp_path / "home" / ".ansible" / "cp"
    assert control_dir({"ANSIBLE_SSH_CONTROL_PATH_DIR": str(mine)}) == str(mine)
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700
    assert control_dir({"HOME": "/nonexistent", "ANSIBLE_SSH_CONTROL_PATH_DIR":
                        str(mine)}) == str(mine)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(InputError, match="writable by other users") as error:
        control_dir({"ANSIBLE_SSH_CONTROL_PATH_DIR": str(shared)})
    assert "\n" not in str(error.value) and "ANSIBLE_SSH_CONTROL_PATH_DIR" in str(error.value)
