"""The collection build's rewriting (turnout.collection): names qualified by position only."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import REPO
from turnout import collection
from turnout.collection import CollectionError, Names, qualify_jinja, qualify_python, qualify_yaml

NAMES = Names(actions=frozenset({"turnout_lb", "turnout_run"}),
              roles=frozenset({"pool_switch", "smoke_test"}),
              filters=frozenset({"turnout_path", "turnout_collect"}),
              tests=frozenset({"turnout_version"}))


def test_a_task_action_is_qualified_and_a_fact_of_the_same_name_is_not():
    text = """---
# turnout_run: a comment stays
- name: turnout | start   # turnout_lb: in a comment too
  turnout_run:
    action: deploy
- name: keep the run
  ansible.builtin.set_fact:
    turnout_run: "{{ turnout_run | combine({'failed': true}) }}"
  vars:
    turnout_lb: 1
"""
    out = qualify_yaml(text, NAMES)
    assert "  turnout.bluegreen.turnout_run:\n    action: deploy" in out
    assert '    turnout_run: "{{ turnout_run | combine' in out  # set_fact's key untouched
    assert "    turnout_lb: 1" in out and "# turnout_run: a comment stays" in out
    assert out.count("turnout.bluegreen.") == 1


def test_roles_in_include_role_and_in_a_plays_roles_list_quoted_or_not():
    text = """---
- name: a play
  hosts: lb
  roles:
    - pool_switch
    - role: "smoke_test"
    - other_role
  tasks:
    - name: block
      block:
        - name: inc
          ansible.builtin.include_role:
            name: 'pool_switch'
            tasks_from: discover
      rescue:
        - name: lb
          turnout_lb: {op: read}
"""
    out = qualify_yaml(text, NAMES)
    loaded = yaml.safe_load(out)[0]
    assert loaded["roles"] == ["turnout.bluegreen.pool_switch",
                               {"role": "turnout.bluegreen.smoke_test"}, "other_role"]
    block = loaded["tasks"][0]
    assert block["block"][0]["ansible.builtin.include_role"]["name"] == \
        "turnout.bluegreen.pool_switch"
    assert "turnout.bluegreen.turnout_lb" in block["rescue"][0]


def test_filters_and_tests_are_qualified_other_names_are_not():
    text = ("{{ 'a' | turnout_path(x) }} {{ groups.lb |turnout_collect(h) | turnout_other }}"
            " {% if v is turnout_version %}{% endif %}{{ v is not turnout_version }}"
            " {{ turnout_path }}")
    out = qualify_jinja(text, NAMES)
    assert out == ("{{ 'a' | turnout.bluegreen.turnout_path(x) }} {{ groups.lb "
                   "|turnout.bluegreen.turnout_collect(h) | turnout_other }}"
                   " {% if v is turnout.bluegreen.turnout_version %}{% endif %}"
                   "{{ v is not turnout.bluegreen.turnout_version }} {{ turnout_path }}")


def test_plugins_import_module_utils_from_the_collection_and_run_its_modules():
    text = ("from ansible.module_utils.basic import AnsibleModule\n"
            "from ansible.module_utils.turnout_lock import apply\n"
            "self._execute_module(module_name=\"turnout_lb\", x=1)\n"
            "self._execute_module(module_name='ping')\n")
    out = qualify_python(text, NAMES)
    assert "from ansible.module_utils.basic import AnsibleModule" in out
    assert ("from ansible_collections.turnout.bluegreen.plugins.module_utils.turnout_lock "
            "import apply") in out
    assert 'module_name="turnout.bluegreen.turnout_lb"' in out
    assert "module_name='ping'" in out


def test_not_yaml_is_a_clear_error():
    with pytest.raises(CollectionError, match="x.yml: not YAML"):
        qualify_yaml("- a: [", NAMES, "x.yml")


def test_the_checkouts_names_are_read_from_its_plugins_and_roles():
    names = Names.of(REPO)
    assert {"turnout_lb", "turnout_plan", "turnout_run"} <= names.actions
    assert {"pool_switch", "smoke_test", "haproxy", "app_release"} <= names.roles
    assert {"turnout_path", "turnout_collect"} <= names.filters
    assert names.tests == {"turnout_version", "turnout_sha256", "turnout_pool"}


def _included_roles(node):
    if isinstance(node, list):
        for item in node:
            yield from _included_roles(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in collection.ROLE_ACTIONS and isinstance(value, dict):
                yield value["name"]
            else:
                yield from _included_roles(value)


def test_the_tree_has_no_short_name_left_and_the_projects_version(tmp_path):
    tree = collection.build_tree(REPO, tmp_path)
    names = Names.of(REPO)
    galaxy = yaml.safe_load((tree / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"]) == ("turnout", "bluegreen")
    assert galaxy["version"] == collection.project_version(REPO)
    assert (tree / "requirements.txt").read_text() == f"turnout=={galaxy['version']}\n"
    included: set[str] = set()
    for path in tree.rglob("*.yml"):
        text = path.read_text()
        if path.parts[-2] == "meta" or path.name == "galaxy.yml":
            continue
        for line in text.splitlines():
            code = line.split(" #")[0]
            for name in names.filters:
                assert f"| {name}(" not in code and f"| {name} " not in code, (path, line)
        for role in _included_roles(yaml.safe_load(text)):
            included.add(role)
            assert role.startswith("turnout.bluegreen.") or role not in names.roles, (path, role)
    assert {"turnout.bluegreen.pool_switch", "turnout.bluegreen.smoke_test"} <= included
    for path in (tree / "plugins").rglob("*.py"):
        assert "ansible.module_utils.turnout_" not in path.read_text(), path
    assert "playbook_dir | dirname | dirname" not in \
        (tree / "playbooks" / "phases" / "tasks" / "start.yml").read_text()
