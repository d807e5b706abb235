"""`invoke init --env NAME`: a new environment to fill in, never over an existing one.

Writes ``<inventories>/<name>/hosts.yml`` (the groups turnout needs, example addresses from
the documentation range 192.0.2.0/24) and ``group_vars/all.yml`` (the app definition, every
key commented with its default, docs/app.md). Pure text plus two file writes.
"""

from __future__ import annotations

import os
from pathlib import Path

from turnout import appdef
from turnout.errors import InputError
from turnout.inventory import validate_env_name

HOSTS = """\
---
# Written by 'invoke init --env {name}'. Replace the example addresses (192.0.2.x, a range
# reserved for documentation) with your servers; keep the group names.
all:
  vars:
    # connect as a deploy user with passwordless sudo, as production does
    ansible_user: deploy
    ansible_become: true
  children:
    lb:            # every HAProxy host; each deploy, rollback and promote moves all of them
      hosts:
        lb1: {{ansible_host: 192.0.2.10}}
    app:
      children:
        blue:      # one pool ...
          hosts:
            blue1: {{ansible_host: 192.0.2.21}}
        green:     # ... and the other, the same size
          hosts:
            green1: {{ansible_host: 192.0.2.31}}
        # Hosts that get their pool's releases but no traffic (workers), optional:
        # blue_workers:
        #   hosts:
        #     blue-worker1: {{ansible_host: 192.0.2.22}}
        # green_workers:
        #   hosts:
        #     green-worker1: {{ansible_host: 192.0.2.32}}
"""

GROUP_VARS = """\
---
# The app definition of environment {name}: docs/app.md lists every key. The keys left
# commented take the default shown. Secrets come from ansible-vault or the controller's
# environment, never from plain text here.
turnout_app:
  # the unit, the user and /srv/<name> are derived from it
  name: {name_value}
  # the start command, relative to the release directory (a foreground process)
  start: bin/server --port ${{APP_PORT}}
  # the port the app listens on; HAProxy and the smoke test use it
  port: 8080
  # user: <name>                  # the unprivileged user the app runs as
  # root: /srv/<name>             # where releases live on each host
  # workdir: .                    # relative to the release directory
  # bind: 0.0.0.0                 # APP_BIND
  # env: {{}}                       # plain environment variables, written in the unit
  # secrets:                      # NAME: value, into a 0600 root-owned env file
  #   API_TOKEN: "{{{{ lookup('ansible.builtin.env', 'API_TOKEN') }}}}"
  # templates: []                 # [{{src: templates/x.j2, dest: x.conf, mode: "0644"}}]
  # health: {{path: /healthz, status: 200, timeout_s: 5}}
  # version: {{kind: json, path: /version, key: version}}
  #   or {{kind: header, path: /, header: X-Version}}
  #   or {{kind: regex, path: /, pattern: 'release ([0-9.]+)'}}
  #   or {{kind: command, command: bin/server --version}}
  # stop: {{signal: SIGTERM, timeout_s: 30}}
  # drain_s: 0                    # seconds requests in flight get before a pool is restaged
  # build: ""                     # run in each new release before activation
  # writable: []                  # directories the app may write, e.g. /var/lib/<name>
  # artifact: "{{name}}-{{version}}.tar.gz"
  # keep: 3                       # releases kept on each host
  # workers: {{start: bin/worker, check: bin/worker --check}}
  # checks: []                    # [{{name: home, path: /, status: 200, contains: Welcome}}]

# Require an approval (invoke promote) before a deploy moves traffic:
# turnout_approval_required: true
"""


def init_env(name: str, root: Path, app_name: str = "") -> list[Path]:
    """Write the new environment's files under ``root``; InputError (nothing written) when
    the name is bad or the environment already exists. Returns the files written."""
    validate_env_name(name)
    app = appdef.validate({"name": app_name or appdef.DEFAULT_NAME, "start": "bin/server"})
    directory = root / name
    if directory.exists():
        raise InputError(f"environment {name!r} already exists at {directory}: pick another "
                         f"name, or edit that one (invoke init never overwrites)")
    hosts = HOSTS.format(name=name)
    group_vars = GROUP_VARS.format(name=name, name_value=app.name)
    (directory / "group_vars").mkdir(parents=True)
    written = []
    for path, text in ((directory / "hosts.yml", hosts),
                       (directory / "group_vars" / "all.yml", group_vars)):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written


def next_steps(name: str, files: list[Path]) -> str:
    """What to do after init: the addresses, the host keys, the definition, the first run."""
    return "\n".join([
        f"init: wrote {', '.join(str(p) for p in files)}",
        "next:",
        f"  1. put your servers' addresses in {files[0]}",
        "  2. add their host keys (host key checking stays on), after checking the fingerprints:",
        "       ssh-keyscan -t ed25519 <each address> >> ~/.ssh/known_hosts",
        f"  3. describe your service in {files[1]} (docs/app.md)",
        f"  4. invoke provision --env {name}",
        f"  5. invoke deploy --env {name} --version <version> [--artifact PATH_OR_URL "
        "--sha256 HEX]",
    ])
