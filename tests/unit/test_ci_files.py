"""The CI and AWX files: Jenkinsfile, awx/, collections/requirements.yml, the EE definition.

No Jenkins or AWX here, so the checks are structural, plus one real run: awx/configure.yml
is played against stand-in ``awx.awx`` modules that declare the real modules' options and
record what they were given, which proves the playbook templates, loads the definition
files and passes only options the collection accepts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
AWX = REPO / "awx"
JENKINSFILE = REPO / "Jenkinsfile"
PLAYBOOKS = REPO / "playbooks"

# Options of the awx.awx modules used here (awx.awx 24.x), with the types that matter.
JOB_TEMPLATE_OPTIONS = {
    "name", "new_name", "copy_from", "description", "organization", "job_type", "inventory",
    "project", "playbook", "credential", "vault_credential", "credentials",
    "execution_environment", "custom_virtualenv", "instance_groups", "forks", "limit",
    "verbosity", "extra_vars", "job_tags", "force_handlers", "skip_tags", "start_at_task",
    "timeout", "use_fact_cache", "host_config_key", "ask_diff_mode_on_launch",
    "ask_variables_on_launch", "ask_limit_on_launch", "ask_tags_on_launch",
    "ask_skip_tags_on_launch", "ask_job_type_on_launch", "ask_verbosity_on_launch",
    "ask_inventory_on_launch", "ask_credential_on_launch",
    "ask_execution_environment_on_launch", "ask_forks_on_launch",
    "ask_instance_groups_on_launch", "ask_job_slice_count_on_launch", "ask_labels_on_launch",
    "ask_timeout_on_launch", "survey_enabled", "survey_spec", "become_enabled", "diff_mode",
    "allow_simultaneous", "scm_branch", "ask_scm_branch_on_launch", "job_slice_count",
    "webhook_service", "webhook_credential", "labels", "notification_templates_started",
    "notification_templates_success", "notification_templates_error",
    "prevent_instance_group_fallback", "state",
}
WORKFLOW_OPTIONS = {
    "name", "new_name", "copy_from", "description", "extra_vars", "job_tags", "skip_tags",
    "organization", "survey_spec", "survey_enabled", "allow_simultaneous",
    "ask_variables_on_launch", "ask_labels_on_launch", "ask_tags_on_launch",
    "ask_skip_tags_on_launch", "inventory", "limit", "scm_branch", "ask_inventory_on_launch",
    "ask_scm_branch_on_launch", "ask_limit_on_launch", "webhook_service", "webhook_credential",
    "labels", "notification_templates_started", "notification_templates_success",
    "notification_templates_error", "notification_templates_approvals", "workflow_nodes",
    "destroy_current_nodes", "state",
}
NODE_OPTIONS = {
    "identifier", "workflow_job_template", "organization", "extra_data", "inventory",
    "scm_branch", "job_type", "job_tags", "skip_tags", "limit", "diff_mode", "verbosity",
    "unified_job_template", "lookup_organization", "approval_node", "all_parents_must_converge",
    "success_nodes", "always_nodes", "failure_nodes", "credentials", "execution_environment",
    "forks", "instance_groups", "job_slice_count", "labels", "timeout", "state",
}
_BOOL, _INT, _DICT, _LIST = "bool", "int", "dict", "list"
STUB_SPECS: dict[str, dict[str, dict[str, Any]]] = {
    "job_template": {
        **{name: {} for name in JOB_TEMPLATE_OPTIONS},
        **{name: {"type": _BOOL} for name in JOB_TEMPLATE_OPTIONS
           if name.startswith("ask_") or name in (
               "survey_enabled", "become_enabled", "diff_mode", "allow_simultaneous",
               "use_fact_cache", "force_handlers", "prevent_instance_group_fallback")},
        "name": {"required": True},
        "job_type": {"choices": ["run", "check"]},
        "verbosity": {"type": _INT, "choices": [0, 1, 2, 3, 4]},
        "timeout": {"type": _INT}, "forks": {"type": _INT}, "job_slice_count": {"type": _INT},
        "extra_vars": {"type": _DICT}, "survey_spec": {"type": _DICT},
        "credentials": {"type": _LIST, "elements": "str"},
        "labels": {"type": _LIST, "elements": "str"},
        "instance_groups": {"type": _LIST, "elements": "str"},
    },
    "workflow_job_template": {
        **{name: {} for name in WORKFLOW_OPTIONS},
        **{name: {"type": _BOOL} for name in WORKFLOW_OPTIONS
           if name.startswith("ask_") or name in ("survey_enabled", "allow_simultaneous",
                                                   "destroy_current_nodes")},
        "name": {"required": True},
        "extra_vars": {"type": _DICT}, "survey_spec": {"type": _DICT},
        "workflow_nodes": {"type": _LIST, "elements": "dict"},
    },
    "workflow_job_template_node": {
        **{name: {} for name in NODE_OPTIONS},
        "identifier": {"required": True},
        "workflow_job_template": {"required": True},
        "extra_data": {"type": _DICT},
        "approval_node": {"type": _DICT},
        "all_parents_must_converge": {"type": _BOOL},
        "success_nodes": {"type": _LIST, "elements": "str"},
        "failure_nodes": {"type": _LIST, "elements": "str"},
        "always_nodes": {"type": _LIST, "elements": "str"},
    },
    "project": {
        **{name: {} for name in (
            "name", "new_name", "copy_from", "description", "scm_type", "scm_url", "local_path",
            "scm_branch", "scm_refspec", "credential", "custom_virtualenv",
            "default_environment", "organization", "signature_validation_credential", "state")},
        **{name: {"type": _BOOL} for name in (
            "scm_clean", "scm_delete_on_update", "scm_track_submodules", "scm_update_on_launch",
            "allow_override", "wait", "update_project")},
        "name": {"required": True},
        "scm_type": {"choices": ["manual", "git", "svn", "insights", "archive"]},
        "scm_update_cache_timeout": {"type": _INT}, "timeout": {"type": _INT},
        "interval": {"type": "float"},
    },
    "credential": {
        **{name: {} for name in ("name", "new_name", "copy_from", "description", "organization",
                                 "team", "user", "credential_type", "state")},
        "name": {"required": True}, "inputs": {"type": _DICT, "no_log": True},
        "update_secrets": {"type": _BOOL},
    },
    "inventory": {
        **{name: {} for name in ("name", "new_name", "copy_from", "description", "organization",
                                 "kind", "host_filter", "state")},
        "name": {"required": True}, "variables": {"type": _DICT},
    },
    "inventory_source": {
        **{name: {} for name in (
            "name", "new_name", "description", "inventory", "source", "source_path",
            "enabled_var", "enabled_value", "host_filter", "credential",
            "execution_environment", "organization", "custom_virtualenv", "source_project",
            "scm_branch", "state")},
        "name": {"required": True}, "inventory": {"required": True},
        "source_vars": {"type": _DICT},
        "overwrite": {"type": _BOOL}, "overwrite_vars": {"type": _BOOL},
        "update_on_launch": {"type": _BOOL},
        "update_cache_timeout": {"type": _INT}, "timeout": {"type": _INT},
        "verbosity": {"type": _INT},
    },
    "execution_environment": {
        **{name: {} for name in ("name", "new_name", "image", "description", "organization",
                                 "credential", "state")},
        "name": {"required": True},
        "pull": {"choices": ["always", "missing", "never", ""]},
    },
}

STUB_MODULE = '''#!/usr/bin/python
# Stand-in for an awx.awx module (tests only): the real options, no controller.
import json
import os

from ansible.module_utils.basic import AnsibleModule

SPEC = json.loads({spec!r})


def main():
    module = AnsibleModule(argument_spec=SPEC, supports_check_mode=True)
    given = {{k: v for k, v in module.params.items() if v is not None}}
    if "inputs" in given:
        given["inputs"] = sorted(given["inputs"])  # secrets: record the keys only
    with open(os.environ["TURNOUT_STUB_LOG"], "a") as log:
        log.write(json.dumps({{"module": {name!r}, "params": given}}) + "\\n")
    module.exit_json(changed=True)


if __name__ == "__main__":
    main()
'''


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _jenkinsfile() -> str:
    if not JENKINSFILE.is_file():
        pytest.fail("Jenkinsfile is missing")
    text = JENKINSFILE.read_text()
    return re.sub(r"(?m)^\s*//.*$", "", text)  # comments may not satisfy a check


# ----------------------------------------------------------------------------- Jenkinsfile


def test_jenkinsfile_parameters() -> None:
    text = _jenkinsfile()
    assert re.search(r"\bpipeline\s*\{", text) and re.search(r"\bagent\b", text)
    env = re.search(r"choice\(\s*name:\s*'ENVIRONMENT',\s*choices:\s*\[([^\]]*)\]", text)
    assert env and re.findall(r"'(\w+)'", env.group(1)) == ["lab", "staging", "prod"]
    action = re.search(r"choice\(\s*name:\s*'ACTION',\s*choices:\s*\[([^\]]*)\]", text)
    assert action and re.findall(r"'(\w+)'", action.group(1)) == [
        "deploy", "rollback", "promote", "status"]
    assert re.search(r"string\(\s*name:\s*'VERSION'", text)


def test_jenkinsfile_serialises_and_authenticates() -> None:
    text = _jenkinsfile()
    options = re.search(r"\boptions\s*\{([^}]*)\}", text)
    assert options and "disableConcurrentBuilds()" in options.group(1)
    assert re.search(r"timeout\(\s*time:\s*\d+", options.group(1))
    assert 'lock(resource: "turnout-${params.ENVIRONMENT}")' in text
    assert "sshagent(credentials: ['turnout-deploy-key'])" in text
    assert re.search(r"withCredentials\(\[file\(credentialsId:\s*'turnout-vault-pass',\s*"
                     r"variable:\s*'ANSIBLE_VAULT_PASSWORD_FILE'\)\]\)", text)
    assert re.search(r"TURNOUT_BY\s*=\s*\"jenkins:\$\{env\.BUILD_TAG\}\"", text)


def test_jenkinsfile_stages_run_the_invoke_tasks() -> None:
    text = _jenkinsfile()
    stages = re.findall(r"stage\('([^']+)'\)", text)
    for stage in ("Setup", "Build artifact", "Plan", "Deploy", "Rollback", "Promote", "Report"):
        assert stage in stages, f"stage {stage!r} missing"
    assert stages.index("Plan") < stages.index("Approve") < stages.index("Deploy")
    assert "sh 'make deps'" in text
    assert 'invoke build --version "$VERSION"' in text
    assert 'invoke deploy --env "$ENVIRONMENT" --version "$VERSION" --check\'' in text
    assert 'invoke deploy --env "$ENVIRONMENT" --version "$VERSION"\'' in text
    assert 'invoke rollback --env "$ENVIRONMENT"\'' in text
    for fmt, output in (("html", "reports/report.html"), ("json", "reports/report.json"),
                        ("junit", "reports/smoke.xml")):
        assert f'report --env "$ENVIRONMENT" --format {fmt} --output {output}' in text
    assert re.search(r"input\s+message:", text)


def test_jenkinsfile_publishes_reports_always() -> None:
    text = _jenkinsfile()
    post = text[text.index("post {"):]
    always = post[post.index("always {"):]
    assert re.search(r"archiveArtifacts\s+(artifacts:\s*)?'reports/\*'", always)
    assert re.search(r"junit\s+(testResults:\s*)?'reports/smoke\.xml'", always)


def test_jenkinsfile_never_interpolates_parameters_into_shell() -> None:
    """Parameters reach sh as environment variables, never via Groovy "${params.X}"."""
    text = _jenkinsfile()
    for match in re.finditer(r'\bsh\s*\(?\s*(script:\s*)?"([^"]*)"', text):
        assert "params." not in match.group(2), match.group(0)
    assert '"""' not in text  # no interpolating multi-line shell strings


def test_jenkinsfile_is_valid_groovy(tmp_path: Path) -> None:
    """Compile the Jenkinsfile as a Groovy script (pipeline steps resolve at run time).

    Debian 12's groovy is 2.4.21, the Groovy Jenkins itself runs pipelines with (npm-groovy-lint
    in `make lint` parses with Groovy 4). A missing groovy fails here: `make apt` installs it.
    """
    groovy, java = shutil.which("groovy"), shutil.which("java")
    assert groovy and java, "groovy or java is not installed: make apt (apt-get install groovy)"
    parse = tmp_path / "parse.groovy"
    parse.write_text("new GroovyShell().parse(new File(args[0]))\n")
    env = {**os.environ, "JAVA_HOME": str(Path(java).resolve().parents[1])}
    proc = subprocess.run([groovy, str(parse), str(JENKINSFILE)], env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]


# ----------------------------------------------------------------------------------- awx/


def _awx_files(pattern: str) -> list[Path]:
    return sorted(AWX.glob(pattern))


def test_every_awx_file_loads() -> None:
    yaml_files = _awx_files("**/*.yml") + _awx_files("**/*.yaml")
    json_files = _awx_files("**/*.json")
    assert len(yaml_files) >= 5 and json_files
    for path in yaml_files:
        assert _yaml(path) is not None, f"{path} is empty"
    for path in json_files:
        json.loads(path.read_text())


@pytest.mark.parametrize("survey", sorted(p.name for p in (REPO / "awx/surveys").glob("*.json")))
def test_survey_specs(survey: str) -> None:
    spec = json.loads((AWX / "surveys" / survey).read_text())
    assert isinstance(spec["name"], str) and spec["name"]
    assert isinstance(spec["description"], str)
    assert isinstance(spec["spec"], list) and spec["spec"]
    variables = [question["variable"] for question in spec["spec"]]
    assert len(variables) == len(set(variables))
    for question in spec["spec"]:
        assert {"question_name", "variable", "type", "required"} <= set(question)
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", question["variable"])
        assert question["type"] in ("text", "textarea", "password", "integer", "float",
                                    "multiplechoice", "multiselect")
        assert isinstance(question["required"], bool)
        if question["type"] in ("multiplechoice", "multiselect"):
            assert question["choices"] and question.get("default") in question["choices"]
        if question["type"] == "text":
            assert 0 <= question["min"] <= question["max"]


def test_deploy_survey_asks_env_and_version() -> None:
    spec = json.loads((AWX / "surveys/deploy.json").read_text())
    questions = {question["variable"]: question for question in spec["spec"]}
    assert questions["turnout_env"]["choices"] == ["lab", "staging", "prod"]
    version = questions["turnout_version"]
    assert version["type"] == "text" and version["required"] is True
    assert (version["min"], version["max"]) == (1, 64)  # turnout.artifact.VERSION_RE


@pytest.mark.parametrize("name", ["deploy", "rollback", "promote"])
def test_job_templates(name: str) -> None:
    template = _yaml(AWX / "job_templates" / f"{name}.yml")
    assert set(template) <= JOB_TEMPLATE_OPTIONS, set(template) - JOB_TEMPLATE_OPTIONS
    assert template["playbook"] == f"playbooks/{name}.yml"
    assert template["job_type"] == "run" and template["project"] == "turnout"
    assert template["credentials"] == ["turnout deploy key", "turnout vault"]
    assert template["survey_enabled"] is True
    assert (AWX / template["survey_spec"]).is_file()
    assert template["allow_simultaneous"] is False
    assert isinstance(template["extra_vars"], dict)


def test_job_template_playbooks_exist() -> None:
    """Every template's playbook exists (deploy, rollback, promote)."""
    for path in sorted((AWX / "job_templates").glob("*.yml")):
        playbook = _yaml(path)["playbook"]
        assert (REPO / playbook).is_file(), f"{path.name} runs {playbook}, which is missing"


def test_workflow_has_an_approval_between_stage_and_promote() -> None:
    workflow = _yaml(AWX / "workflows/deploy_with_approval.yml")
    assert set(workflow) - {"nodes"} <= WORKFLOW_OPTIONS
    assert (AWX / workflow["survey_spec"]).is_file()
    nodes = {node["identifier"]: node for node in workflow["nodes"]}
    for node in nodes.values():
        assert set(node) <= NODE_OPTIONS, set(node) - NODE_OPTIONS
        assert ("unified_job_template" in node) != ("approval_node" in node)
        for link in ("success_nodes", "failure_nodes", "always_nodes"):
            assert set(node.get(link, [])) <= set(nodes), f"{node['identifier']}: bad link"
    templates = {_yaml(p)["name"] for p in (AWX / "job_templates").glob("*.yml")}
    stage = nodes["stage-and-smoke"]
    assert stage["unified_job_template"] in templates
    assert stage["extra_data"] == {"turnout_approval": True}
    (approval_id,) = stage["success_nodes"]
    approval = nodes[approval_id]["approval_node"]
    assert approval["name"] and isinstance(approval["timeout"], int) and approval["timeout"] > 0
    (promote_id,) = nodes[approval_id]["success_nodes"]
    assert nodes[promote_id]["unified_job_template"] == "turnout promote"
    assert "turnout promote" in templates


def _stub_collection(root: Path) -> None:
    modules = root / "ansible_collections/awx/awx/plugins/modules"
    modules.mkdir(parents=True)
    (root / "ansible_collections/awx/awx/galaxy.yml").write_text(
        "namespace: awx\nname: awx\nversion: 24.6.1\nreadme: README.md\nauthors: [test]\n")
    meta = root / "ansible_collections/awx/awx/meta"
    meta.mkdir()
    (meta / "runtime.yml").write_text("requires_ansible: '>=2.15.0'\n")
    for name, spec in STUB_SPECS.items():
        (modules / f"{name}.py").write_text(STUB_MODULE.format(spec=json.dumps(spec), name=name))


def test_configure_playbook_against_stand_in_modules(tmp_path: Path) -> None:
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


# --------------------------------------------------------------- collections and the EE


def test_collection_requirements_are_pinned() -> None:
    data = _yaml(REPO / "collections/requirements.yml")
    pins = {entry["name"]: entry["version"] for entry in data["collections"]}
    assert {"community.general", "awx.awx"} <= set(pins)
    for name, version in pins.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", str(version)), f"{name} is not pinned exactly"


def test_execution_environment_definition() -> None:
    data = _yaml(REPO / "execution-environment.yml")
    assert data["version"] == 3
    assert data["images"]["base_image"]["name"]
    deps = data["dependencies"]
    assert deps["galaxy"] == "collections/requirements.yml"
    assert (REPO / deps["galaxy"]).is_file()
    assert deps["ansible_runner"]["package_pip"] == "ansible-runner==2.4.3"
    assert deps["ansible_core"]["package_pip"].startswith("ansible-core")
    system = " ".join(deps["system"])
    assert "socat" in system and "openssh-client" in system
    for entry in data["additional_build_files"]:
        assert (REPO / entry["src"]).exists(), entry["src"]
    final = " ".join(data["additional_build_steps"]["append_final"])
    assert "pip install" in final and "/opt/turnout" in final
