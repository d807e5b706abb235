"""The turnout_release module on this machine's own files (ansible's local connection, a
temporary app root): what stage takes from an artifact and what it refuses. No systemd is
touched: only the ops that do not start units are run here; activation runs in the lab."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")


PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: run turnout_release once
      turnout_release: "{{ module_args }}"
      check_mode: "{{ check | default(false) }}"
      register: result
      ignore_errors: true
    - name: hand the result to the test
      ansible.builtin.copy:
        content: "{{ result | to_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
"""


def module(root: Path, check: bool = False, **args: object) -> tuple[bool, dict]:
    """Run turnout_release once on localhost (in check mode with ``check``) and return
    (failed, its result)."""
    work = root.parent
    (work / "play.yml").write_text(PLAY)
    extra = {"module_args": {"root": str(root), **args}, "check": check,
             "result_file": str(work / "result.json"),
             "ansible_python_interpreter": sys.executable}
    (work / "extra.json").write_text(json.dumps(extra))
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", str(work / "play.yml"),
         "-e", f"@{work / 'extra.json'}"],
        cwd=REPO, env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads((work / "result.json").read_text())
    return bool(result.get("failed")), result


def artifact(root: Path, members: dict[str, str], name: str = "app-1.0.0.tar.gz") -> str:
    """Write an artifact into root/artifacts and return its sha256."""
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    path = root / "artifacts" / name
    with tarfile.open(path, "w:gz") as tar:
        for member, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "srv-app"


def test_a_wrong_sha256_is_refused_before_anything_is_unpacked(root: Path) -> None:
    artifact(root, {"app-1.0.0/VERSION": "1.0.0\n", "app-1.0.0/app.py": "print(1)\n"})
    failed, result = module(root, op="stage", version="1.0.0", sha256="0" * 64,
                        artifact="app-1.0.0.tar.gz")
    assert failed and "sha256" in result["msg"] and "expected " + "0" * 64 in result["msg"]
    assert not (root / "releases" / "1.0.0").exists()
    assert list((root / "releases").iterdir()) == []


def test_one_top_level_directory_is_stripped_and_the_release_is_marked(root: Path) -> None:
    sha = artifact(root, {"app-1.0.0/VERSION": "1.0.0\n", "app-1.0.0/bin/app": "x\n"})
    failed, result = module(root, op="stage", version="1.0.0", sha256=sha,
                        artifact="app-1.0.0.tar.gz")
    assert not failed, result
    assert result["changed"] and result["steps"][:2] == [
        "sha256", "extract (top-level directory stripped)"]
    release = root / "releases" / "1.0.0"
    assert (release / "bin" / "app").read_text() == "x\n"
    assert (release / ".artifact-sha256").read_text().strip() == sha
    failed, again = module(root, op="stage", version="1.0.0", sha256=sha,
                       artifact="app-1.0.0.tar.gz")
    assert not failed and not again["changed"] and "already built" in again["steps"]


def test_a_flat_artifact_is_taken_as_it_is(root: Path) -> None:
    sha = artifact(root, {"index.html": "<p>hi</p>\n", "VERSION": "2.0.0\n"},
                   name="site-2.0.0.tar.gz")
    failed, result = module(root, op="stage", version="2.0.0", sha256=sha,
                        artifact="site-2.0.0.tar.gz")
    assert not failed, result
    assert (root / "releases" / "2.0.0" / "index.html").read_text() == "<p>hi</p>\n"


def test_a_member_outside_the_release_is_refused_and_nothing_is_left(root: Path) -> None:
    sha = artifact(root, {"ok.txt": "1\n", "../escape.txt": "2\n"})
    failed, result = module(root, op="stage", version="1.0.0", sha256=sha,
                        artifact="app-1.0.0.tar.gz")
    assert failed and "outside its release" in result["msg"], result
    assert not (root / "escape.txt").exists() and not (root / "releases" / "1.0.0").exists()
    assert [p.name for p in (root / "releases").iterdir()] == []


def test_an_artifact_of_another_version_is_refused_and_removed(root: Path) -> None:
    sha = artifact(root, {"app/VERSION": "9.9.9\n", "app/x": "1\n"})
    failed, result = module(root, op="stage", version="1.0.0", sha256=sha,
                        artifact="app-1.0.0.tar.gz")
    assert failed and result["msg"] == "the artifact holds version 9.9.9, not 1.0.0"
    assert not (root / "releases" / "1.0.0").exists()


def test_a_failing_build_step_removes_the_release(root: Path) -> None:
    sha = artifact(root, {"app/VERSION": "1.0.0\n"})
    failed, result = module(root, op="stage", version="1.0.0", sha256=sha,
                        artifact="app-1.0.0.tar.gz", build="echo no wheels >&2; exit 3")
    assert failed and result["msg"] == "the build step failed (exit 3): no wheels", result
    assert not (root / "releases" / "1.0.0").exists()


def test_the_build_step_runs_in_the_release_directory(root: Path) -> None:
    sha = artifact(root, {"app/VERSION": "1.0.0\n"})
    failed, result = module(root, op="stage", version="1.0.0", sha256=sha,
                        artifact="app-1.0.0.tar.gz", build="pwd > built-in")
    assert not failed and result["steps"][-1] == "build", result
    release = root / "releases" / "1.0.0"
    assert (release / "built-in").read_text().strip() == str(release)


def test_probe_reads_the_artifact_by_sha256(root: Path) -> None:
    sha = artifact(root, {"a": "1\n"})
    assert module(root, op="probe", artifact="app-1.0.0.tar.gz", sha256=sha)[1]["present"]
    assert not module(root, op="probe", artifact="app-1.0.0.tar.gz",
                      sha256="f" * 64)[1]["present"]
    assert not module(root, op="probe", artifact="missing.tar.gz", sha256=sha)[1]["present"]


def test_the_secrets_file_is_0600_and_its_text_is_never_returned(root: Path) -> None:
    env_file = root / "secrets.env"
    root.mkdir(parents=True)
    failed, result = module(root, op="secrets", env_file=str(env_file),
                        env_text='DB_PASSWORD="s3cret-value"\n')
    assert not failed and result["changed"], result
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert "s3cret-value" not in json.dumps(result)


def test_activate_in_check_mode_says_a_secrets_change_and_never_returns_it(root: Path) -> None:
    # activate writes the secrets env file itself (one module run per host on a deploy); in
    # check mode it only says whether anything would change (no systemd touched here)
    env_file = root / "secrets.env"
    (root / "releases" / "1.0.0").mkdir(parents=True)
    args = {"op": "activate", "version": "1.0.0", "unit_name": "turnout-unit-test.service",
            "unit": "[Service]\n", "record": "{}", "env_file": str(env_file)}
    failed, result = module(root, check=True, env_text='DB_PASSWORD="s3cret-value"\n', **args)
    assert not failed and result["changed"], result
    assert not env_file.exists()
    assert "s3cret-value" not in json.dumps(result)
    env_file.write_text('DB_PASSWORD="s3cret-value"\n')
    (root / "current").symlink_to("releases/1.0.0")
    failed, result = module(root, check=True, env_text='DB_PASSWORD="s3cret-value"\n', **args)
    assert not failed and not result["changed"], result  # same link, same secrets
    failed, result = module(root, check=True, env_text='DB_PASSWORD="other"\n', **args)
    assert not failed and result["changed"], result
    assert "other" not in json.dumps(result["diff"])


def test_read_says_the_base_is_ready_only_with_user_dirs_writable_and_unit(root: Path) -> None:
    """A deploy skips provisioning's base when read finds it in place; any missing part (the
    user, a directory, a writable path owned by the user, the unit) means run the base."""
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    writable = root / "var-data"
    unit = "turnout-test-never-installed.service"
    for directory in ("artifacts", "releases", "shared"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    writable.mkdir()
    ready = module(root, op="read", user=me, writable=[str(writable)])[1]
    assert ready["base_ready"] is True and ready["steps"] == ["read"], ready
    assert module(root, op="read", user=me, writable=[str(writable)],
                  unit_name=unit)[1]["base_ready"] is False  # no unit file yet
    assert module(root, op="read", user="turnout-no-such-user")[1]["base_ready"] is False
    assert module(root, op="read", user=me, writable=[str(root / "absent")])[1][
        "base_ready"] is False
    assert module(root, op="read")[1]["base_ready"] is False  # no user given: cannot tell
    (root / "shared").rmdir()
    assert module(root, op="read", user=me)[1]["base_ready"] is False


def test_a_version_or_sha256_that_could_name_another_path_is_refused(root: Path) -> None:
    """The module checks its inputs on the host (the role no longer asserts them first)."""
    root.mkdir(parents=True)
    failed, result = module(root, op="stage", version="../../etc", sha256="a" * 64,
                            artifact="app.tar.gz")
    assert failed and "bad deploy inputs (version '../../etc')" in result["msg"], result
    failed, result = module(root, op="probe", artifact="app.tar.gz", sha256="A" * 64)
    assert failed and "sha256 'AAAA" in result["msg"], result
    assert not (root / "releases").exists() and not (root.parent / "etc").exists()
