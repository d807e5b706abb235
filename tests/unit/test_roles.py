"""Static checks of the Ansible content: role argument specs match defaults; tasks are named
and call modules by their fully qualified names."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (REPO_ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").exists())
TASK_FILES = sorted(
    [*(REPO_ROOT / "roles").glob("*/tasks/*.yml"), *(REPO_ROOT / "roles").glob("*/handlers/*.yml"),
     *(REPO_ROOT / "playbooks").glob("*.yml"), *(REPO_ROOT / "playbooks").glob("phases/*.yml"),
     *(REPO_ROOT / "playbooks").glob("phases/tasks/*.yml")]
)
# Keywords a task may carry besides its module; everything else is taken as the module.
TASK_KEYWORDS = {
    "name", "when", "loop", "loop_control", "register", "vars", "notify", "listen", "tags",
    "changed_when", "failed_when", "until", "retries", "delay", "delegate_to", "delegate_facts",
    "run_once", "become", "become_user", "no_log", "ignore_errors", "check_mode", "diff",
    "environment", "args", "block", "rescue", "always", "any_errors_fatal", "throttle",
    "timeout", "with_items", "with_dict", "ignore_unreachable", "module_defaults", "collections",
    "debugger", "async", "poll",
}
# Local action plugins and modules of this repository (plugins/), not in any collection.
LOCAL_ACTIONS = {p.stem for p in (REPO_ROOT / "plugins" / "action").glob("*.py")} | \
    {p.stem for p in (REPO_ROOT / "plugins" / "modules").glob("*.py")}
PLAY_TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers")


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(params=ROLES, ids=lambda p: p.name)
def role(request: pytest.FixtureRequest) -> Path:
    return request.param


def test_there_are_roles() -> None:
    assert {p.name for p in ROLES} >= {"haproxy", "app_release", "smoke_test", "pool_switch"}


def test_argument_spec_keys_match_defaults(role: Path) -> None:
    defaults = _load(role / "defaults" / "main.yml") or {}
    specs = _load(role / "meta" / "argument_specs.yml")["argument_specs"]
    options = specs["main"].get("options") or {}
    required = {name for name, spec in options.items() if spec.get("required")}
    assert not required & set(defaults), f"{role.name}: required inputs must not have defaults"
    assert set(options) == set(defaults) | required, (
        f"{role.name}: argument_specs main options and defaults differ: "
        f"only in specs {sorted(set(options) - set(defaults) - required)}, "
        f"only in defaults {sorted(set(defaults) - set(options))}"
    )
    for entry, spec in specs.items():
        extra = set(spec.get("options") or {}) - set(options)
        assert not extra, f"{role.name}: entry point {entry} has options not in main: {extra}"
        for name, option in (spec.get("options") or {}).items():
            assert option.get("description"), f"{role.name}: {entry}.{name} has no description"


def test_defaults_are_prefixed_and_commented(role: Path) -> None:
    lines = (role / "defaults" / "main.yml").read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if line and not line.startswith((" ", "#", "-")) and ":" in line:
            key = line.split(":", 1)[0]
            assert key.startswith(f"{role.name}_"), f"{role.name}: default {key} lacks the prefix"
            assert index > 0 and lines[index - 1].startswith("#"), (
                f"{role.name}: default {key} has no comment on the line above"
            )


def _tasks(items: Any, where: str) -> list[tuple[str, dict]]:
    """Every task (blocks flattened, blocks included) in a list of tasks."""
    found: list[tuple[str, dict]] = []
    for item in items or []:
        if not isinstance(item, dict):
            continue
        found.append((where, item))
        for section in ("block", "rescue", "always"):
            found.extend(_tasks(item.get(section), where))
    return found


def _all_tasks() -> list[tuple[str, dict]]:
    found: list[tuple[str, dict]] = []
    for path in TASK_FILES:
        data = _load(path) or []
        where = str(path.relative_to(REPO_ROOT))
        is_playbook = any(isinstance(p, dict) and "hosts" in p for p in data)
        if is_playbook:
            for play in data:
                for section in PLAY_TASK_LISTS:
                    found.extend(_tasks(play.get(section), where))
        else:
            found.extend(_tasks(data, where))
    return found


ALL_TASKS = _all_tasks()


def test_found_tasks() -> None:
    assert len(ALL_TASKS) > 50


@pytest.mark.parametrize(("where", "task"), ALL_TASKS,
                         ids=lambda v: v if isinstance(v, str) else "")
def test_task_is_named_and_uses_fqcn(where: str, task: dict) -> None:
    assert task.get("name"), f"{where}: task without a name: {task}"
    if any(section in task for section in ("block", "rescue", "always")):
        return
    modules = [key for key in task if key not in TASK_KEYWORDS]
    assert len(modules) == 1, f"{where}: task {task['name']!r} has modules {modules}"
    module = modules[0]
    assert module.count(".") >= 2 or module in LOCAL_ACTIONS, (
        f"{where}: task {task['name']!r} uses {module!r}; use the FQCN (ansible.builtin.*)"
    )
    if module in ("ansible.builtin.command", "ansible.builtin.shell"):
        assert "changed_when" in task, f"{where}: command task {task['name']!r} lacks changed_when"
    assert module != "ansible.builtin.shell", f"{where}: {task['name']!r} uses shell"


def test_role_task_names_say_their_role(role: Path) -> None:
    for path in [*(role / "tasks").glob("*.yml"), *(role / "handlers").glob("*.yml")]:
        for _, task in _tasks(_load(path), str(path)):
            assert str(task.get("name", "")).startswith(f"{role.name} | "), (
                f"{path.relative_to(REPO_ROOT)}: task {task.get('name')!r} must start with "
                f"'{role.name} | '"
            )


def test_playbooks_do_not_gather_facts() -> None:
    playbooks = [*(REPO_ROOT / "playbooks").glob("*.yml"),
                 *(REPO_ROOT / "playbooks").glob("phases/*.yml")]
    for path in sorted(playbooks):
        for play in _load(path):
            if "ansible.builtin.import_playbook" in play:
                continue
            assert play.get("gather_facts") is False, f"{path.name}: play {play.get('name')}"


def _documented_options(path: Path) -> dict[str, dict]:
    """The options a plugin of plugins/ documents in its DOCUMENTATION block ({} if none)."""
    if not path.exists():
        return {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "DOCUMENTATION"
                for target in node.targets):
            return yaml.safe_load(ast.literal_eval(node.value)).get("options") or {}
    return {}


# a module's options, plus those its action plugin of the same name takes on the controller
MODULE_OPTIONS = {p.stem: {**_documented_options(p),
                           **_documented_options(REPO_ROOT / "plugins" / "action" / p.name)}
                  for p in sorted((REPO_ROOT / "plugins" / "modules").glob("*.py"))}
OWN_MODULE_TASKS = [(where, task) for where, task in ALL_TASKS
                    if any(key in MODULE_OPTIONS for key in task)]


def test_own_module_tasks_found() -> None:
    assert {m for _, t in OWN_MODULE_TASKS for m in t if m in MODULE_OPTIONS} >= \
        {"turnout_lb", "turnout_release", "turnout_smoke"}


@pytest.mark.parametrize(("where", "task"), OWN_MODULE_TASKS,
                         ids=lambda v: v if isinstance(v, str) else "")
def test_own_module_tasks_give_every_required_option_and_no_unknown_one(where: str,
                                                                       task: dict) -> None:
    """A task that calls one of turnout's modules with a required option missing fails only
    when it runs — and a play that runs it with ignore_errors would pass over it in silence
    (the drain before a restage once did). Caught here, on the controller, in a second."""
    module = next(key for key in task if key in MODULE_OPTIONS)
    given = set(task[module] or {})
    options = MODULE_OPTIONS[module]
    missing = sorted(k for k, spec in options.items() if spec.get("required") and k not in given)
    unknown = sorted(given - set(options))
    assert not missing, f"{where}: {task['name']!r} lacks required {module} options {missing}"
    assert not unknown, f"{where}: {task['name']!r} passes unknown {module} options {unknown}"
