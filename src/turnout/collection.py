"""Build the Ansible collection turnout.bluegreen from the checkout's content.

The checkout's playbooks and roles call turnout's modules, roles, filters and tests by short
name (ansible.cfg puts plugins/ and roles/ on Ansible's paths). An installed collection is
found only by fully qualified names, so the build copies the content into
``<out>/ansible_collections/turnout/bluegreen`` and rewrites, by position and nothing else:

- in YAML, a task's action key (``turnout_lb:`` → ``turnout.bluegreen.turnout_lb:``), the
  role an ``include_role``/``import_role`` or a play's ``roles:`` names, found with PyYAML's
  node marks so formatting and comments stay as they are and a fact that happens to share a
  module's name (``turnout_run`` under ``set_fact``) is not touched;
- in Jinja (YAML and templates), turnout's filters after ``|`` and its tests after ``is``;
- in plugins, ``ansible.module_utils.turnout_*`` imports and the module an action plugin runs.

The Python the action and filter plugins import is the ``turnout`` package: the collection
declares it in ``requirements.txt`` at the project's own version (the wheel), which is what
an execution environment or ``pip install`` reads. ``galaxy.yml`` takes its version from
pyproject.toml, so the collection's version is the project's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import yaml

from turnout.errors import TurnoutError

NAMESPACE, NAME = "turnout", "bluegreen"
FQ = f"{NAMESPACE}.{NAME}"
CONTENT = ("playbooks", "roles", "plugins")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "molecule", ".molecule")
ROLE_ACTIONS = {"include_role", "import_role", "ansible.builtin.include_role",
                "ansible.builtin.import_role"}
TASK_LISTS = ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always")
# where the checkout's playbooks find dist/ and hooks/ by default (the checkout's root); an
# installed collection's default is the team repository: the directory of its ansible.cfg
CHECKOUT_ROOT = "playbook_dir | dirname | dirname"
TEAM_ROOT = "(ansible_config_file | default(playbook_dir ~ '/ansible.cfg', true) | dirname)"


class CollectionError(TurnoutError):
    """The content cannot be turned into a collection (a name it cannot resolve)."""


@dataclass(frozen=True)
class Names:
    """turnout's plugin and role names, each to be qualified with FQ."""
    actions: frozenset[str]  # modules and action plugins
    roles: frozenset[str]
    filters: frozenset[str]
    tests: frozenset[str]

    @classmethod
    def of(cls, root: Path) -> Names:
        plugins = root / "plugins"
        actions = {p.stem for kind in ("modules", "action") for p in (plugins / kind).glob("*.py")}
        roles = {p.name for p in (root / "roles").iterdir() if (p / "tasks").is_dir()}
        return cls(frozenset(actions), frozenset(roles),
                   frozenset(_plugin_names(plugins / "filter", "filters")),
                   frozenset(_plugin_names(plugins / "test", "tests")))


def _plugin_names(directory: Path, method: str) -> set[str]:
    """The names a FilterModule/TestModule file returns, read from its text (no import)."""
    names: set[str] = set()
    for path in directory.glob("*.py"):
        text = path.read_text()
        body = text[text.index(f"def {method}("):]
        names.update(re.findall(r'"(turnout_\w+)"\s*:', body))
    return names


# ---- YAML: positions of names to qualify ------------------------------------------------------

def _edits_in_tasks(node: yaml.Node, names: Names, out: list[tuple[int, str, str]]) -> None:
    if not isinstance(node, yaml.SequenceNode):
        return
    for item in node.value:
        if isinstance(item, yaml.MappingNode):
            _edits_in_task(item, names, out)


def _edits_in_task(task: yaml.MappingNode, names: Names,
                   out: list[tuple[int, str, str]]) -> None:
    for key, value in task.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        if key.value in names.actions:
            out.append((key.start_mark.index, key.value, f"{FQ}.{key.value}"))
        elif key.value in ROLE_ACTIONS and isinstance(value, yaml.MappingNode):
            for arg, role in value.value:
                if arg.value == "name" and isinstance(role, yaml.ScalarNode):
                    _role_edit(role, names, out)
        elif key.value == "roles" and isinstance(value, yaml.SequenceNode):
            for entry in value.value:
                if isinstance(entry, yaml.ScalarNode):
                    _role_edit(entry, names, out)
                elif isinstance(entry, yaml.MappingNode):
                    for arg, role in entry.value:
                        if arg.value in ("role", "name") and isinstance(role, yaml.ScalarNode):
                            _role_edit(role, names, out)
        elif key.value in TASK_LISTS:
            _edits_in_tasks(value, names, out)


def _role_edit(node: yaml.ScalarNode, names: Names, out: list[tuple[int, str, str]]) -> None:
    if node.value in names.roles:
        quote = 1 if node.style is not None else 0  # a quoted name starts after its quote
        out.append((node.start_mark.index + quote, node.value, f"{FQ}.{node.value}"))


def qualify_yaml(text: str, names: Names, where: str = "<yaml>") -> str:
    """A playbook or task file with turnout's actions and roles fully qualified."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise CollectionError(f"{where}: not YAML: {exc}") from exc
    edits: list[tuple[int, str, str]] = []
    _edits_in_tasks(root, names, edits)
    for index, old, new in sorted(edits, reverse=True):
        if text[index:index + len(old)] != old:
            raise CollectionError(f"{where}: expected {old!r} at offset {index}")
        text = text[:index] + new + text[index + len(old):]
    return qualify_jinja(text, names)


def qualify_jinja(text: str, names: Names) -> str:
    """turnout's filters (after '|') and tests (after 'is [not]') fully qualified."""
    def filt(match: re.Match[str]) -> str:
        name = match.group(2)
        return f"{match.group(1)}{FQ}.{name}" if name in names.filters else match.group(0)

    def test(match: re.Match[str]) -> str:
        name = match.group(2)
        return f"{match.group(1)}{FQ}.{name}" if name in names.tests else match.group(0)

    text = re.sub(r"(\|\s*)(turnout_\w+)\b", filt, text)
    return re.sub(r"(\bis\s+(?:not\s+)?)(turnout_\w+)\b", test, text)


def qualify_python(text: str, names: Names) -> str:
    """A plugin with its module_utils imports and the modules it runs fully qualified."""
    text = re.sub(r"\bansible\.module_utils\.(turnout_\w+)",
                  rf"ansible_collections.{NAMESPACE}.{NAME}.plugins.module_utils.\1", text)

    def module(match: re.Match[str]) -> str:
        name = match.group(2)
        return f"{match.group(1)}{FQ}.{name}{match.group(3)}" if name in names.actions \
            else match.group(0)

    return re.sub(r"""(module_name=["'])(turnout_\w+)(["'])""", module, text)


# ---- the build -----------------------------------------------------------------------------------

def project_version(root: Path) -> str:
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]


def galaxy_yml(version: str) -> str:
    return f"""---
# generated by turnout's collection build (src/turnout/collection.py) from pyproject.toml
namespace: {NAMESPACE}
name: {NAME}
version: {version}
readme: README.md
authors:
  - turnout contributors
description: Blue-green deploys behind HAProxy, all-or-nothing flips, instant rollback.
license:
  - Apache-2.0
tags: [deployment, haproxy, bluegreen, rollback]
dependencies: {{}}
repository: https://github.com/turnout-dev/turnout
build_ignore:
  - "*.pyc"
  - __pycache__
"""


README = """# turnout.bluegreen

turnout's playbooks, roles and plugins as an Ansible collection. Its action and filter
plugins import the `turnout` Python package ({requirement}; see requirements.txt), so install
both on the controller (or in the execution environment):

```sh
pip install turnout-{version}-py3-none-any.whl      # or: pip install 'turnout=={version}'
ansible-galaxy collection install turnout-bluegreen-{version}.tar.gz -p ./collections
```

Use the playbooks by their fully qualified names from your own repository:

```yaml
# deploy.yml
- name: Deploy with turnout
  ansible.builtin.import_playbook: turnout.bluegreen.deploy
```

```sh
ansible-playbook -i inventories/prod/hosts.yml deploy.yml -e turnout_version=1.4.2
```

Playbooks: deploy, rollback, promote, reconcile, smoke, site (provision). Roles: {roles}.
`dist/` (artifacts, `app-<version>.tar.gz` and its `.sha256`) and hooks are looked up under
`turnout_project_dir`, by default the directory of your `ansible.cfg`.
"""


def build_tree(root: Path, out: Path) -> Path:
    """Write the collection's source tree under out; returns its directory."""
    names = Names.of(root)
    version = project_version(root)
    dest = out / "ansible_collections" / NAMESPACE / NAME
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for part in CONTENT:
        shutil.copytree(root / part, dest / part, ignore=IGNORE)
    for path in sorted(dest.rglob("*")):
        rel = path.relative_to(dest)
        if path.suffix in (".yml", ".yaml") and rel.parts[0] in ("playbooks", "roles") \
                and (rel.parts[0] == "playbooks" or rel.parts[2] in ("tasks", "handlers")):
            text = qualify_yaml(path.read_text(), names, str(rel))
            path.write_text(text.replace(CHECKOUT_ROOT, TEAM_ROOT))
        elif path.suffix in (".yml", ".yaml", ".j2") and rel.parts[0] == "roles":  # defaults, vars
            path.write_text(qualify_jinja(path.read_text(), names))
        elif path.suffix == ".py" and rel.parts[0] == "plugins":
            path.write_text(qualify_python(path.read_text(), names))
    (dest / "meta").mkdir()
    (dest / "meta" / "runtime.yml").write_text("---\nrequires_ansible: \">=2.16.0\"\n")
    (dest / "galaxy.yml").write_text(galaxy_yml(version))
    (dest / "requirements.txt").write_text(f"turnout=={version}\n")
    (dest / "README.md").write_text(README.format(
        requirement=f"turnout=={version}", version=version, roles=", ".join(sorted(names.roles))))
    return dest


def build(root: Path, out: Path, ansible_galaxy: str = "ansible-galaxy") -> Path:
    """Build the tarball with ansible-galaxy; returns its path."""
    tree = build_tree(root, out / "src")
    proc = subprocess.run([ansible_galaxy, "collection", "build", "--force", "--output-path",
                           str(out), str(tree)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise CollectionError(f"ansible-galaxy collection build failed: {last}")
    tarball = out / f"{NAMESPACE}-{NAME}-{project_version(root)}.tar.gz"
    if not tarball.is_file():
        raise CollectionError(f"ansible-galaxy did not write {tarball}")
    return tarball
