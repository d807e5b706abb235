"""Documentation stub for the turnout_manifest action plugin (plugins/action/)."""

DOCUMENTATION = r"""
module: turnout_manifest
short_description: Record a deploy or rollback event in the turnout manifest
description:
  - Appends one event to the history of the manifest beside the inventory
    (C(inventories/<env>/manifest.yml)) and updates the pool state. A successful deploy sets
    the target pool's version and hosts and the live pool; a failed or flipped-back deploy
    marks the hosts it staged; a noop only adds history.
  - Runs on the controller as an action plugin; the logic is C(turnout.manifest.record_event)
    (validated, locked, written atomically). Recording the same event twice changes nothing.
  - Keys outside the manifest schema are dropped, so nothing else that rides along is written.
options:
  path:
    description: Path of the manifest file on the controller; a missing file starts a new one.
    type: path
    required: true
  event:
    description:
      - The event. Required keys C(id), C(action) (deploy|rollback), C(result)
        (success|failed|noop|flipped_back), C(env), C(by), C(started_at), C(finished_at).
      - >-
        Optional C(duration_s), C(from) and C(to) ({pool, version, sha256}), C(phase)
        (stage|smoke|flip|verify|record or null), C(message), C(smoke) ({host: {result,
        latency_ms, checks}}), C(hosts) ({host: {version, sha256, smoke}}),
        C(lb_errors) ({before, after, delta}), C(release_notes).
    type: dict
  validate_only:
    description:
      - Only read and check the manifest (a preflight step) and return C(manifest) with its
        live pool and each pool's version and sha256; write nothing. One of C(event) or
        C(validate_only) is required.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: In check mode the event is validated and applied in memory; nothing is written.
author:
  - turnout
"""

EXAMPLES = r"""
- name: deploy | record the deploy in the manifest
  turnout_manifest:
    path: "{{ turnout_manifest_path }}"
    event:
      id: 20261122T140000Z-1a2b3c
      action: deploy
      result: success
      env: lab
      by: alice@ws1
      started_at: "2026-11-22T14:00:00Z"
      finished_at: "2026-11-22T14:01:10Z"
      from: {pool: blue, version: 1.0.0, sha256: null}
      to: {pool: green, version: 2.0.0, sha256: "{{ sha }}"}
      phase: null
      message: traffic moved to green
"""

RETURN = r"""
path:
  description: The manifest file written.
  type: str
  returned: always
entry:
  description: The history entry as stored (normalized).
  type: dict
  returned: success
live_pool:
  description: The manifest's live pool after the event.
  type: str
  returned: success
manifest:
  description: With validate_only, the manifest's live_pool and pools ({version, sha256}).
  type: dict
  returned: validate_only
history_length:
  description: Number of history entries after the event.
  type: int
  returned: success and not check mode
"""
