"""The CI and AWX files: Jenkinsfile, awx/, collections/requirements.yml, the EE definition.

No Jenkins or AWX here, so the checks are structural, plus a real Groovy compile of the
Jenkinsfile. What awx/ passes to the awx.awx modules is checked against the real collection
in test_awx_content.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
AWX = REPO / "awx"
JENKINSFILE = REPO / "Jenkinsfile"
PLAYBOOKS = REPO / "playbooks"


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
    assert (AWX / workflow["survey_spec"]).is_file()
    nodes = {node["identifier"]: node for node in workflow["nodes"]}
    for node in nodes.values():
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
