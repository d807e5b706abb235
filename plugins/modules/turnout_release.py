#!/usr/bin/python
"""Module turnout_release: one release on one app host, staged and activated in named steps.

A thin adapter: the host's files, tar and systemd, with every decision in turnout.release
(shipped as module_utils/turnout_release). Usually called through the turnout_release action
plugin, which uploads the artifact first unless the host already has it.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: turnout_release
short_description: Read, stage, activate or restore one release of the app on this host
description:
  - C(read) returns release.json, where C(current) points and whether the unit is active.
  - C(probe) says whether C(artifacts/<file>) already holds the artifact (by sha256).
  - C(stage) checks the artifact's sha256, unpacks it into C(releases/<version>) (a single
    top-level directory is stripped; members outside the release are refused), checks its
    VERSION file when it has one, and runs the app's build command in it. A release directory
    already built from this artifact is kept as it is.
  - C(activate) writes the secrets env file when C(env_file) is given (0600, root; its content
    is never logged), the systemd unit when it changed, points C(current) at the release
    (atomic rename), restarts the unit, writes release.json and prunes old releases (never the
    current one).
  - C(unit) writes the unit (provisioning) and restarts it when it changed (or C(restart)) and
    a release is current; C(secrets) writes the secrets env file (0600, root).
  - C(restore) puts C(current) back where it pointed before a failed activation, restarts it,
    and removes the release when it was never activated.
  - Every op returns C(steps), the named steps it took, and supports check mode; C(activate)
    supports diff mode (the unit, the current link).
options:
  op: {description: What to do., type: str, required: true,
       choices: [read, probe, stage, activate, restore, unit, secrets]}
  root: {description: The app root (artifacts/, releases/, current, release.json)., type: path,
         required: true}
  version: {description: The release., type: str}
  sha256: {description: The artifact's sha256., type: str}
  artifact: {description: File name of the artifact in artifacts/., type: str}
  upload: {description: A just uploaded copy of the artifact, moved into artifacts/., type: path}
  build: {description: Command run in the release directory after unpacking (stage)., type: str}
  unit_name: {description: The systemd unit., type: str}
  unit: {description: Its content (activate)., type: str}
  env_file: {description: The secrets env file's path (secrets; activate when given)., type: path}
  env_text: {description: Its content (secrets, activate; never logged)., type: str, no_log: true}
  restart: {description: Restart the unit even if it did not change (unit)., type: bool,
            default: false}
  record: {description: release.json's content (activate)., type: str}
  keep: {description: Releases to keep (activate)., type: int, default: 3}
  previous: {description: Where current pointed before (restore)., type: str}
  user: {description: The app user (read; to tell whether the base is in place)., type: str}
  writable: {description: The app's writable directories (read; for base_ready)., type: list,
             elements: path}
author:
  - turnout
"""

EXAMPLES = r"""
- name: app_release | read the release on this host
  turnout_release:
    op: read
    root: /srv/app
    unit_name: app.service
"""

RETURN = r"""
steps: {description: The steps taken, in order., type: list, returned: always}
release: {description: release.json (read)., type: dict, returned: success}
current: {description: Where current points (read, stage)., type: str, returned: success}
active: {description: The unit's state (read)., type: str, returned: success}
base_ready: {description: "Provisioning's base is in place: the user, the app root and its
               directories, the writable ones, the unit (read).", type: bool, returned: success}
present: {description: The artifact is already on the host (probe)., type: bool, returned: success}
already_active: {description: This release is what current runs (stage)., type: bool,
                 returned: success}
"""

import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.turnout_contracts import is_sha256, is_version  # noqa: E402
from ansible.module_utils.turnout_release import (  # noqa: E402
    MARKER,
    ReleaseError,
    members_plan,
    prune,
    pruned_artifact,
)


def sha256_of(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_if_changed(path: str, text: str, mode: int) -> bool:
    if read_text(path) == text:
        current = os.stat(path)
        if current.st_mode & 0o777 == mode and current.st_uid == 0:
            return False
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".turnout.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fchmod(handle.fileno(), mode)
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return True


def link(root: str, target: str) -> None:
    """``current`` -> ``target``, atomically (a temporary link renamed over it)."""
    tmp = os.path.join(root, ".current.turnout")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, os.path.join(root, "current"))


def systemctl(module, *args: str) -> None:
    proc = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        module.fail_json(msg=f"systemctl {' '.join(args)}: {proc.stderr.strip() or proc.stdout}")


def op_read(module, p) -> dict:
    text = read_text(os.path.join(p["root"], "release.json"))
    try:
        release = json.loads(text) if text else {}
    except ValueError:
        module.fail_json(msg=f"{p['root']}/release.json is not valid JSON: fix or remove it")
    current = os.readlink(os.path.join(p["root"], "current")) \
        if os.path.islink(os.path.join(p["root"], "current")) else ""
    active = ""
    if p["unit_name"]:
        active = subprocess.run(["systemctl", "is-active", p["unit_name"]], capture_output=True,
                                text=True, check=False).stdout.strip()
    return {"release": release, "current": current, "active": active,
            "base_ready": base_ready(p), "steps": ["read"]}


def base_ready(p) -> bool:
    """Whether provisioning's base is in place for this app: its user, the app root with
    artifacts/, releases/ and shared/, every writable directory (the user's) and the unit. A
    deploy skips the base when it is (False when the user is not given: nothing to check)."""
    user = p.get("user")
    if not user:
        return False
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        return False
    root = p["root"]
    if not all(os.path.isdir(os.path.join(root, d)) for d in ("", "artifacts", "releases",
                                                              "shared")):
        return False
    for directory in p.get("writable") or []:
        try:
            if os.stat(directory).st_uid != uid:
                return False
        except FileNotFoundError:
            return False
    return not p["unit_name"] or os.path.exists(unit_path(p))


def op_probe(module, p) -> dict:
    path = os.path.join(p["root"], "artifacts", p["artifact"])
    return {"present": sha256_of(path) == p["sha256"], "steps": ["probe"]}


def op_stage(module, p) -> dict:
    root, version = p["root"], p["version"]
    release_dir = os.path.join(root, "releases", version)
    artifact = os.path.join(root, "artifacts", p["artifact"])
    steps = []
    current = os.readlink(os.path.join(root, "current")) \
        if os.path.islink(os.path.join(root, "current")) else ""
    marker = read_text(os.path.join(release_dir, MARKER))
    built = marker is not None and marker.strip() == p["sha256"]
    active = built and current in (f"releases/{version}", release_dir)
    if module.check_mode:
        return {"changed": not built, "already_active": active, "current": current,
                "steps": ["check: would unpack"] if not built else ["check: already built"]}
    for directory in (root, os.path.join(root, "artifacts"), os.path.join(root, "releases")):
        os.makedirs(directory, mode=0o755, exist_ok=True)
    if p["upload"]:
        shutil.move(p["upload"], artifact)
        os.chmod(artifact, 0o644)
        steps.append("upload")
    found = sha256_of(artifact)
    if found != p["sha256"]:
        module.fail_json(msg=f"the artifact on this host has sha256 {found}, expected "
                         f"{p['sha256']}: rebuild or re-upload it", steps=steps)
    steps.append("sha256")
    if not built:
        if os.path.exists(release_dir):
            shutil.rmtree(release_dir)
            steps.append("remove a release built from another artifact")
        tmp = tempfile.mkdtemp(dir=os.path.join(root, "releases"), prefix=f".{version}.")
        try:
            with tarfile.open(artifact) as tar:
                members = tar.getmembers()
                strip = members_plan([m.name for m in members])
                for member in members:
                    if member.issym() or member.islnk():
                        if member.linkname.startswith("/") or ".." in member.linkname.split("/"):
                            raise ReleaseError(f"the artifact links outside its release: "
                                               f"{member.name!r}")
                    parts = member.name.removeprefix("./").strip("/").split("/")[strip:]
                    if not parts or parts == [""]:
                        continue
                    member.name = "/".join(parts)
                    member.uid = member.gid = 0
                    member.uname = member.gname = "root"
                    try:  # the stdlib's own safety filter where this Python has it
                        tar.extract(member, tmp, set_attrs=True, filter="tar")
                    except TypeError:
                        tar.extract(member, tmp, set_attrs=True)
            os.chmod(tmp, 0o755)
            os.replace(tmp, release_dir)
        except (ReleaseError, tarfile.TarError, OSError) as error:
            shutil.rmtree(tmp, ignore_errors=True)
            module.fail_json(msg=f"cannot unpack the artifact: {error}", steps=steps)
        steps.append("extract" + (" (top-level directory stripped)" if strip else ""))
        if p["build"]:
            proc = subprocess.run(["/bin/sh", "-c", p["build"]], cwd=release_dir,
                                  capture_output=True, text=True, check=False,
                                  env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root",
                                       "APP_RELEASE_DIR": release_dir, "LANG": "C.UTF-8"})
            if proc.returncode != 0:
                shutil.rmtree(release_dir, ignore_errors=True)
                tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
                module.fail_json(msg=f"the build step failed (exit {proc.returncode}): "
                                 f"{' / '.join(tail)[:400]}", steps=steps)
            steps.append("build")
        # written last: a release whose unpack or build was interrupted has no marker and is
        # unpacked and built again by the next run
        with open(os.path.join(release_dir, MARKER), "w", encoding="utf-8") as handle:
            handle.write(p["sha256"] + "\n")
    else:
        steps.append("already built")
    version_file = read_text(os.path.join(release_dir, "VERSION"))
    if version_file is not None and version_file.strip() != version:
        if not active:
            shutil.rmtree(release_dir, ignore_errors=True)
        module.fail_json(msg=f"the artifact holds version {version_file.strip()}, not {version}",
                         steps=steps)
    return {"changed": not built, "already_active": active, "current": current,
            "steps": steps}


def op_activate(module, p) -> dict:
    root, version = p["root"], p["version"]
    steps, changed = [], False
    current = os.readlink(os.path.join(root, "current")) \
        if os.path.islink(os.path.join(root, "current")) else ""
    target = f"releases/{version}"
    diff = {"before": f"current -> {current}\n{read_text(unit_path(p)) or ''}",
            "after": f"current -> {target}\n{p['unit']}"}
    if module.check_mode:
        secrets = bool(p["env_file"]) and secrets_differ(p)
        return {"changed": current != target or secrets, "steps": ["check: would activate"],
                "diff": diff}
    # the secrets first: the restart below is what makes the app read them
    if p["env_file"] and write_secrets(p):
        steps.append("secrets env file")
        changed = True
    unit_changed = write_if_changed(unit_path(p), p["unit"], 0o644)
    if unit_changed:
        steps.append("unit")
        systemctl(module, "daemon-reload")
    if current != target:
        link(root, target)
        steps.append("link current")
        changed = True
    systemctl(module, "enable", p["unit_name"])
    if changed or unit_changed or subprocess.run(
            ["systemctl", "is-active", "--quiet", p["unit_name"]], check=False).returncode:
        systemctl(module, "restart", p["unit_name"])
        steps.append("restart")
        changed = True
    if write_if_changed(os.path.join(root, "release.json"), p["record"], 0o644):
        steps.append("release.json")
        changed = True
    releases_dir = os.path.join(root, "releases")
    mtimes = {name: os.stat(os.path.join(releases_dir, name)).st_mtime
              for name in os.listdir(releases_dir) if not name.startswith(".")}
    artifacts = os.path.join(root, "artifacts")
    for name in prune(mtimes, version, p["keep"]):
        shutil.rmtree(os.path.join(releases_dir, name), ignore_errors=True)
        pruned = pruned_artifact(p["artifact"], version, name)
        if pruned and os.path.exists(os.path.join(artifacts, pruned)):  # its artifact
            os.unlink(os.path.join(artifacts, pruned))
        steps.append(f"prune {name}")
    return {"changed": changed, "steps": steps, "diff": diff}


def op_restore(module, p) -> dict:
    root, version = p["root"], p["version"]
    steps = []
    current = os.readlink(os.path.join(root, "current")) \
        if os.path.islink(os.path.join(root, "current")) else ""
    if module.check_mode:
        return {"changed": True, "steps": ["check: would restore"]}
    previous = p["previous"] or ""
    if previous and current != previous:
        link(root, previous)
        systemctl(module, "restart", p["unit_name"])
        steps += ["link current back", "restart"]
    if previous not in (f"releases/{version}", os.path.join(root, "releases", version)):
        shutil.rmtree(os.path.join(root, "releases", version), ignore_errors=True)
        steps.append("remove the release that never went live here")
    return {"changed": bool(steps), "steps": steps}


def op_unit(module, p) -> dict:
    if module.check_mode:
        return {"changed": read_text(unit_path(p)) != p["unit"], "steps": ["check: unit"]}
    steps = []
    changed = write_if_changed(unit_path(p), p["unit"], 0o644)
    if changed:
        systemctl(module, "daemon-reload")
        steps.append("unit")
    systemctl(module, "enable", p["unit_name"])
    if (changed or p["restart"]) and os.path.exists(os.path.join(p["root"], "current")):
        systemctl(module, "restart", p["unit_name"])
        steps.append("restart")
    return {"changed": changed, "steps": steps}


def secrets_differ(p) -> bool:
    return read_text(p["env_file"]) != (p["env_text"] or "")


def write_secrets(p) -> bool:
    """Write the secrets env file (0600, root) when its content changed; whether it did."""
    return write_if_changed(p["env_file"], p["env_text"] or "", 0o600)


def op_secrets(module, p) -> dict:
    if module.check_mode:
        return {"changed": secrets_differ(p), "steps": ["check: secrets"]}
    changed = write_secrets(p)
    return {"changed": changed, "steps": ["secrets env file"] if changed else []}


def bad_inputs(p) -> str:
    """What is wrong with the version and sha256 given (they name paths under root), or ''."""
    problems = []
    if p.get("version") is not None and not is_version(p["version"]):
        problems.append(f"version {p['version']!r}")
    if p.get("sha256") is not None and not is_sha256(p["sha256"]):
        problems.append(f"sha256 {p['sha256']!r}")
    return ", ".join(problems)


def unit_path(p) -> str:
    return f"/etc/systemd/system/{p['unit_name']}"


OPS = {"read": op_read, "probe": op_probe, "stage": op_stage, "activate": op_activate,
       "restore": op_restore, "unit": op_unit, "secrets": op_secrets}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "op": {"type": "str", "required": True, "choices": list(OPS)},
            "root": {"type": "path", "required": True},
            "version": {"type": "str"}, "sha256": {"type": "str"}, "artifact": {"type": "str"},
            "upload": {"type": "path"}, "build": {"type": "str", "default": ""},
            "unit_name": {"type": "str", "default": ""}, "unit": {"type": "str"},
            "env_file": {"type": "path"}, "env_text": {"type": "str", "no_log": True},
            "record": {"type": "str"}, "keep": {"type": "int", "default": 3},
            "previous": {"type": "str"}, "restart": {"type": "bool", "default": False},
            "user": {"type": "str"}, "writable": {"type": "list", "elements": "path"},
        },
        required_if=[("op", "probe", ("artifact", "sha256")),
                     ("op", "stage", ("version", "sha256", "artifact")),
                     ("op", "activate", ("version", "unit_name", "unit", "record")),
                     ("op", "restore", ("version", "unit_name")),
                     ("op", "unit", ("unit_name", "unit")),
                     ("op", "secrets", ("env_file",))],
        supports_check_mode=True,
    )
    bad = bad_inputs(module.params)
    if bad:
        module.fail_json(msg=f"turnout_release: bad deploy inputs ({bad}): a version of letters, "
                         "digits, '.', '_', '+', '-' and a sha256 of 64 lowercase hex digits")
    result = OPS[module.params["op"]](module, module.params)
    result.setdefault("changed", False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
