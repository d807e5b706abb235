"""awx/ against the real awx.awx collection: the one ci/awx-collection.txt pins (`make tools`).

No AWX here. Each awx.awx module's argument spec is read from the collection itself: its
``main()`` runs with ``AnsibleModule.__init__`` replaced by a function that records what the
module passed and stops it, so the spec is exactly what the module validates against. Then:

- every option awx/configure.yml gives a module, and every option in the definition files under
  awx/job_templates/ and awx/workflows/, is one that module accepts, with valid literal values;
- every option a definition file sets reaches the module (configure.yml passes it on);
- configure.yml runs against stand-in modules that declare those real specs and record what
  they were given, which checks the templated values too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

REPO = Path(__file__).resolve().parents[2]
AWX = REPO / "awx"
COLLECTIONS = REPO / ".cache/ci/collections"  # the Makefile's AWX_COLLECTIONS
COLLECTION = COLLECTIONS / "ansible_collections/awx/awx"
CHECK_KWARGS = ("mutually_exclusive", "required_together", "required_one_of", "required_if",
                "required_by")

SPEC_RECORDER = '''
import importlib, json, sys
from ansible.module_utils import basic
from ansible.plugins.loader import init_plugin_loader, module_loader


class Recorded(Exception):
    """The module built its AnsibleModule: everything after that would talk to AWX."""


def record(self, argument_spec, **kwargs):
    raise Recorded({"argument_spec": argument_spec, **kwargs})


init_plugin_loader([sys.argv[1]])
basic.AnsibleModule.__init__ = record
specs = {}
for name in sys.argv[2:]:
    found = module_loader.find_plugin_with_context(name)
    if not found.resolved:
        sys.exit(f"{name}: not found in {sys.argv[1]}")
    try:
        importlib.import_module(found.plugin_resolved_name).main()
    except Recorded as recorded:
        specs[name] = {"path": found.plugin_resolved_path, **recorded.args[0]}
    else:
        sys.exit(f"{name}: main() never created an AnsibleModule")
json.dump(specs, sys.stdout, default=lambda value: getattr(value, "__name__", repr(value)))
'''

STUB_MODULE = '''#!/usr/bin/python
# Stand-in for {name} (tests only): the real module's argument spec, no AWX.
import json
import os

from ansible.module_utils.basic import AnsibleModule

SPEC = json.loads({spec!r})


def main():
    module = AnsibleModule(argument_spec=SPEC["argument_spec"], **SPEC["checks"])
    given = {{k: v for k, v in module.params.items() if v is not None}}
    if "inputs" in given:
        given["inputs"] = sorted(given["inputs"])  # secrets: record the keys only
    with open(os.environ["TURNOUT_STUB_LOG"], "a") as log:
        log.write(json.dumps({{"module": {short!r}, "params": given}}) + "\\n")
    module.exit_json(changed=True)


if __name__ == "__main__":
    main()
'''


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _name(path: Path) -> str:
    return path.name


def _configure_tasks() -> list[tuple[str, str, dict[str, Any]]]:
    """(task name, module, options) of every awx.awx task in awx/configure.yml."""
    (play,) = _yaml(AWX / "configure.yml")
    found = []
    for task in play["tasks"]:
        modules = [key for key in task if key.startswith("awx.awx.")]
        if modules:
            (module,) = modules
            found.append((task["name"], module, task[module]))
    return found


TASKS = _configure_tasks()


@cache
def _specs() -> dict[str, dict[str, Any]]:
    """The real argument spec (and its checks) of every awx.awx module configure.yml uses."""
    if not (COLLECTION / "MANIFEST.json").is_file():
        pytest.fail(f"the awx.awx collection is not installed in {COLLECTIONS}: run make tools")
    modules = sorted({module for _, module, _ in TASKS})
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS)}
    proc = subprocess.run([sys.executable, "-c", SPEC_RECORDER, str(COLLECTIONS), *modules],
                          env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    specs = json.loads(proc.stdout)
    for module, spec in specs.items():
        assert Path(spec["path"]).is_relative_to(COLLECTION), (module, spec["path"])
        for option in spec["argument_spec"].values():
            option.pop("fallback", None)  # CONTROLLER_* environment variables: a callable
    return specs


def _templated(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_templated(item) for item in value.values())
    if isinstance(value, list):
        return any(_templated(item) for item in value)
    return False


def _problems(module: str, options: dict[str, Any], *, partial: bool = False) -> list[str]:
    """What the real module would refuse in these options (ArgumentSpecValidator's messages).

    partial: the options are a task's, some of them Jinja templates. Their names must all be
    accepted; values are checked where they are literal, and required options must be given.
    """
    spec = _specs()[module]
    argument_spec = spec["argument_spec"]
    checks = {key: spec[key] for key in CHECK_KWARGS if key in spec}
    if not partial:
        return ArgumentSpecValidator(argument_spec, **checks).validate(options).error_messages
    accepted = set(argument_spec)
    for option in argument_spec.values():
        accepted.update(option.get("aliases", []))
    problems = [f"unsupported option {name!r}" for name in sorted(set(options) - accepted)]
    problems += [f"missing required option {name!r}" for name, option in argument_spec.items()
                 if option.get("required") and name not in options]
    literal = {name: value for name, value in options.items()
               if name in accepted and not _templated(value)}
    optional = {name: {**option, "required": False} for name, option in argument_spec.items()}
    return problems + ArgumentSpecValidator(optional).validate(literal).error_messages


def _with_survey(definition: dict[str, Any]) -> dict[str, Any]:
    """A definition file as configure.yml passes it on: survey_spec names a JSON file."""
    options = dict(definition)
    if "survey_spec" in options:
        options["survey_spec"] = json.loads((AWX / options["survey_spec"]).read_text())
    return options


def _passed_on(module: str, prefix: str) -> set[str]:
    """Keys of the loop item (item.<key>, item.1.<key>) configure.yml hands to a module."""
    pattern = re.compile(re.escape(prefix) + r"\.(\w+)")
    return {key for _, name, options in TASKS if name == module
            for value in options.values() for key in pattern.findall(json.dumps(value))}


# ------------------------------------------------------------------------- the collection


def test_collection_is_the_pinned_awx_awx() -> None:
    lock = (REPO / "ci/awx-collection.txt").read_text()
    assert re.search(r"(?m)^ansible==\d+\.\d+\.\d+ \\\n\s+--hash=sha256:[0-9a-f]{64}$", lock)
    manifest = json.loads((COLLECTION / "MANIFEST.json").read_text())["collection_info"]
    assert (manifest["namespace"], manifest["name"]) == ("awx", "awx")
    pins = {entry["name"]: entry["version"]
            for entry in _yaml(REPO / "collections/requirements.yml")["collections"]}
    assert manifest["version"] == pins["awx.awx"], (
        "the awx.awx make lint checks against is not the one the EE installs")


def test_a_wrong_option_is_refused() -> None:
    """The checks below can fail: a bad name, type, choice or missing name is reported."""
    module = "awx.awx.job_template"
    problems = " ".join(_problems(module, {"name": "x", "verbosity": 9, "timeout": "long",
                                           "playbok": "playbooks/deploy.yml"}))
    assert "playbok" in problems and "verbosity" in problems and "timeout" in problems
    partial = _problems(module, {"playbok": "{{ item.playbook }}", "verbosity": 9}, partial=True)
    assert len(partial) == 3, partial  # unsupported playbok, missing name, bad verbosity
    assert _problems(module, {"name": "{{ item.name }}", "verbosity": 0}, partial=True) == []


# ------------------------------------------------------------------------ awx/configure.yml


@pytest.mark.parametrize(("name", "module", "options"), TASKS, ids=[task[0] for task in TASKS])
def test_configure_task_options_are_the_modules(name: str, module: str,
                                                options: dict[str, Any]) -> None:
    assert _problems(module, options, partial=True) == []


@pytest.mark.parametrize("path", sorted((AWX / "job_templates").glob("*.yml")), ids=_name)
def test_job_template_files_are_job_template_options(path: Path) -> None:
    definition = _yaml(path)
    assert _problems("awx.awx.job_template", _with_survey(definition)) == []
    dropped = set(definition) - _passed_on("awx.awx.job_template", "item")
    assert not dropped, f"configure.yml never passes {sorted(dropped)} from {path.name}"


@pytest.mark.parametrize("path", sorted((AWX / "workflows").glob("*.yml")), ids=_name)
def test_workflow_files_are_workflow_options(path: Path) -> None:
    definition = _yaml(path)
    workflow = {key: value for key, value in definition.items() if key != "nodes"}
    assert _problems("awx.awx.workflow_job_template", _with_survey(workflow)) == []
    dropped = set(workflow) - _passed_on("awx.awx.workflow_job_template", "item")
    assert not dropped, f"configure.yml never passes {sorted(dropped)} from {path.name}"
    node_keys = _passed_on("awx.awx.workflow_job_template_node", "item.1")
    for node in definition["nodes"]:
        options = {**node, "workflow_job_template": definition["name"]}
        assert _problems("awx.awx.workflow_job_template_node", options) == [], node
        dropped = set(node) - node_keys
        assert not dropped, f"configure.yml never passes {sorted(dropped)} of a node"


def _stub_collection(root: Path) -> None:
    """awx.awx with the real metadata and routing, and stand-ins declaring the real specs."""
    stub = root / "ansible_collections/awx/awx"
    (stub / "plugins/modules").mkdir(parents=True)
    (stub / "meta").mkdir()
    shutil.copy(COLLECTION / "MANIFEST.json", stub)
    shutil.copy(COLLECTION / "meta/runtime.yml", stub / "meta")
    for module, spec in _specs().items():
        checks = {key: spec[key] for key in (*CHECK_KWARGS, "supports_check_mode") if key in spec}
        short = module.rsplit(".", 1)[1]
        (stub / "plugins/modules" / f"{short}.py").write_text(STUB_MODULE.format(
            name=module, short=short,
            spec=json.dumps({"argument_spec": spec["argument_spec"], "checks": checks})))


def test_configure_playbook_against_the_real_specs(tmp_path: Path) -> None:
    _stub_collection(tmp_path / "collections")
    log = tmp_path / "calls.jsonl"
    key = tmp_path / "id_deploy"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n")
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "collections"),
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_INVENTORY": "localhost,",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "TURNOUT_STUB_LOG": str(log),
    }
    argv = [str(bin_dir / "ansible-playbook"), str(AWX / "configure.yml"),
            "-e", "turnout_awx_scm_url=https://git.example.test/ops/turnout.git",
            "-e", "turnout_awx_ee_image=registry.example.test/ops/turnout-ee:1.0.0",
            "-e", "turnout_awx_ssh_user=deploy", "-e", f"turnout_awx_ssh_key_file={key}",
            "-e", "ansible_python_interpreter=" + sys.executable]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    by_module: dict[str, list[dict[str, Any]]] = {}
    for call in calls:
        by_module.setdefault(call["module"], []).append(call["params"])

    assert [c["name"] for c in by_module["credential"]] == ["turnout deploy key"]  # no vault pw
    assert by_module["credential"][0]["inputs"] == ["ssh_key_data", "username"]
    assert [c["name"] for c in by_module["inventory"]] == [
        "turnout-lab", "turnout-staging", "turnout-prod"]
    assert [c["source_path"] for c in by_module["inventory_source"]] == [
        "inventories/lab/hosts.yml", "inventories/staging/hosts.yml",
        "inventories/prod/hosts.yml"]
    project = by_module["project"][0]
    assert project["scm_url"] == "https://git.example.test/ops/turnout.git"
    assert "credential" not in project  # none given: omitted, not ""

    templates = {c["name"]: c for c in by_module["job_template"]}
    assert set(templates) == {"turnout deploy", "turnout rollback", "turnout promote"}
    deploy = templates["turnout deploy"]
    assert deploy["survey_spec"] == json.loads((AWX / "surveys/deploy.json").read_text())
    assert deploy["organization"] == "Default" and deploy["verbosity"] == 0
    assert deploy["ask_variables_on_launch"] is True
    assert templates["turnout rollback"]["playbook"] == "playbooks/rollback.yml"

    (workflow,) = by_module["workflow_job_template"]
    assert workflow["survey_spec"]["spec"][1]["variable"] == "turnout_version"
    nodes = by_module["workflow_job_template_node"]
    created = [n for n in nodes if "success_nodes" not in n]
    linked = [n for n in nodes if "success_nodes" in n]
    assert [n["identifier"] for n in created] == ["stage-and-smoke", "approve-flip", "promote"]
    assert created[1]["approval_node"]["timeout"] == 14400
    assert created[0]["extra_data"] == {"turnout_approval": True}
    assert {n["identifier"]: n["success_nodes"] for n in linked} == {
        "stage-and-smoke": ["approve-flip"], "approve-flip": ["promote"]}
    assert nodes.index(created[-1]) < nodes.index(linked[0])  # nodes exist before links
