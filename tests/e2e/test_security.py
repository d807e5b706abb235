"""Security by default, checked on the lab: the Runtime API socket, the stats page, the app's
user, and a vault-encrypted secret that must appear in no manifest, output, report or
leftover runner file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, invoke
from tests.e2e.test_bluegreen import lb_address, ssh

pytestmark = pytest.mark.e2e

V1, V2 = "1.0.0-sec", "2.0.0-sec"
SECRET = "s3cr3t-Plaintext-7f9d2a-do-not-leak"
FILE_SECRET = "file-s3cr3t-91c0e4-do-not-leak"
BIN = Path(sys.executable).parent
SCAN_DIRS = (Path("/tmp"), Path("/var/tmp"))


@pytest.fixture(scope="module")
def secure(lab):
    for version in (V1, V2):
        invoke("build", "--version", version, check=True)
    invoke("provision", "--env", lab.env_name, env=lab.environ, check=True)
    invoke("deploy", "--env", lab.env_name, "--version", V1, env=lab.environ, check=True)
    return lab


def test_runtime_api_socket_is_admin_only(secure):
    mode, owner = ssh(secure, "lb1", "stat -c '%a %U' /run/haproxy/admin.sock").split()
    assert mode == "600" and owner in ("root", "haproxy"), (mode, owner)
    # an unprivileged user on the LB cannot talk to it
    out = ssh(secure, "lb1", "su -s /bin/sh nobody -c 'echo show info | socat stdio "
              "/run/haproxy/admin.sock' 2>&1; echo rc=$?")
    assert "Permission denied" in out and "rc=0" not in out, out


def test_stats_page_is_not_on_a_public_interface(secure):
    listeners = ssh(secure, "lb1", "ss -Hltn")
    stats = [line for line in listeners.splitlines() if ":8404" in line]
    assert stats and all("127.0.0.1:8404" in line for line in stats), listeners
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{lb_address(secure)}:8404/stats", timeout=3)


def test_app_runs_as_an_unprivileged_user(secure):
    for host in ("blue1", "blue2"):
        user = ssh(secure, host, "ps -o user= -p $(systemctl show -p MainPID --value "
                                 "app.service)").strip()
        uid = ssh(secure, host, f"id -u {user}").strip()
        groups = ssh(secure, host, f"id -Gn {user}").split()
        assert user == "app" and uid != "0" and "sudo" not in groups and "root" not in groups
        # the release files it runs are not writable by it
        owner = ssh(secure, host, "stat -Lc %U /srv/app/current/app.py").strip()
        assert owner == "root"


def _files_containing(needle: bytes, roots, since: float) -> list[str]:
    hits = []
    for root in roots:
        for dirpath, _dirs, files in os.walk(root, onerror=lambda e: None):
            for name in files:
                path = Path(dirpath) / name
                try:
                    if path.stat().st_mtime < since or path.stat().st_size > 20_000_000:
                        continue
                    if needle in path.read_bytes():
                        hits.append(str(path))
                except OSError:
                    continue
    return hits


def test_vault_secret_never_leaks(secure, tmp_path):
    lab = secure
    password = tmp_path / "vault-pass"
    password.write_text("correct horse battery staple\n")
    password.chmod(0o600)
    env = lab.inventories / "vaulted"
    if env.exists():
        shutil.rmtree(env)
    (env / "group_vars" / "all").mkdir(parents=True)
    shutil.copy(lab.hosts_file, env / "hosts.yml")
    shutil.copy(REPO / "inventories/lab/group_vars/all.yml", env / "group_vars/all/main.yml")
    # no manifest copied: a manifest belongs to its environment (it records its env name)
    encrypted = subprocess.run(
        [str(BIN / "ansible-vault"), "encrypt_string",
         "--vault-password-file", str(password), SECRET, "--name", "turnout_db_password"],
        capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert SECRET not in encrypted
    (env / "group_vars/all/vault.yml").write_text("---\n" + encrypted)
    # and a whole encrypted vars file, which Ansible must decrypt to load the inventory
    whole = env / "group_vars/all/vault_file.yml"
    whole.write_text(f"---\nturnout_api_token: {FILE_SECRET}\n")
    subprocess.run([str(BIN / "ansible-vault"), "encrypt", "--vault-password-file",
                    str(password), str(whole)], capture_output=True, check=True, cwd=REPO)
    assert FILE_SECRET not in whole.read_text()
    # the secrets are really usable by the run (this output is not one of those checked)
    shown = subprocess.run([str(BIN / "ansible"), "blue1", "-i", str(env / "hosts.yml"), "-m",
                            "ansible.builtin.debug", "-a",
                            'msg="{{ turnout_db_password }} {{ turnout_api_token }}"'],
                           capture_output=True, text=True, cwd=REPO, timeout=120,
                           env={**os.environ, "ANSIBLE_VAULT_PASSWORD_FILE": str(password)})
    assert SECRET in shown.stdout and FILE_SECRET in shown.stdout, shown.stdout + shown.stderr
    # a variable that uses it, so Ansible really decrypts it during the run
    with (env / "group_vars/all/main.yml").open("a") as handle:
        handle.write("app_db_url: \"postgres://app:{{ turnout_db_password }}@db/app\"\n")
    vault_env = {**lab.environ, "ANSIBLE_VAULT_PASSWORD_FILE": str(password)}
    started = time.time() - 1
    before = set(Path("/tmp").glob("turnout-run-*"))
    deploy = invoke("deploy", "--env", "vaulted", "--version", V2, "--verbose", env=vault_env)
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    outputs = [deploy.stdout, deploy.stderr]
    for fmt in ("table", "json", "html", "junit", "prometheus"):
        out = tmp_path / f"report.{fmt}"
        proc = invoke("report", "--env", "vaulted", "--format", fmt, "--output", str(out),
                      env=vault_env)
        assert proc.returncode == 0, proc.stderr
        outputs += [proc.stdout, proc.stderr, out.read_text()]
    status = invoke("status", "--env", "vaulted", env=vault_env)
    outputs += [status.stdout, status.stderr]
    bare = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(env / "hosts.yml"),
         "playbooks/deploy.yml", "-e", f"turnout_version={V2}", "-v"],
        cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "ANSIBLE_VAULT_PASSWORD_FILE": str(password)})
    assert bare.returncode == 0, bare.stdout[-3000:]
    outputs += [bare.stdout, bare.stderr]
    # the secrets are nowhere: outputs, manifest, reports, runner dirs, anything new in /tmp
    for secret in (SECRET, FILE_SECRET):
        assert all(secret not in text for text in outputs), secret
        assert secret not in (env / "manifest.yml").read_text()
    assert set(Path("/tmp").glob("turnout-run-*")) == before, "runner left a private_data_dir"
    for secret in (SECRET, FILE_SECRET):
        hits = _files_containing(secret.encode(), [*SCAN_DIRS, lab.inventories, REPO / "dist"],
                                 started)
        hits = [h for h in hits if not h.startswith(str(tmp_path))]  # the test's own files
        assert hits == [], hits
        for host in ("lb1", "blue1", "green1"):
            # a fixed-string search of whole trees: slow on a busy machine, so no 30 s cap
            leaked = ssh(lab, host, f"grep -rlF '{secret}' /srv /etc /var/lib/turnout /tmp "
                                    "/var/log 2>/dev/null || true", timeout=300).strip()
            assert leaked == "", f"{host}: {leaked}"
