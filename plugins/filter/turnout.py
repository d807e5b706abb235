"""turnout filters: thin adapters over turnout.haproxy (Runtime API parsing, map rendering),
turnout.plan (promote check) and turnout.artifact (release notes)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from ansible.errors import AnsibleFilterError

from turnout import artifact, haproxy, hooks, httpcheck, plan
from turnout.errors import InputError

DOCUMENTATION = r"""
name: turnout
short_description: Parse HAProxy Runtime API output for blue-green flips
description:
  - C(turnout_parse_show_map) turns C(show map <file>) output into a dict {key: value}.
  - C(turnout_active_pool) returns the pool (blue/green) the C(active) map entry routes to, or None.
  - C(turnout_render_map) returns the map file content for a pool (C(active be_<pool>)).
  - C(turnout_parse_show_stat) turns C(show stat) CSV into {backends, servers}.
  - C(turnout_error_counters) returns {hrsp_5xx, eresp, econ} of one backend, or of every pool
    backend when no backend is given.
  - C(turnout_servers_up) is true when every server (or every listed server) of a backend is UP.
  - C(turnout_server_states) returns {server: status} of one backend.
  - C(turnout_split_map_stat) splits one C(show map <file>; show stat) reply into {map, stat}.
  - C(turnout_curl_argv) is the argv of one curl run that GETs a URL N times;
    C(turnout_curl_batch) parses its output into [{status, seconds, version, body}].
  - C(turnout_canary_counters) returns a backend's canary counters (errors, retries, redispatches,
    health-check downs); C(turnout_canary_check) judges a step against such a baseline.
  - C(turnout_promote_check) returns the staged release a promote may flip to, or fails with
    one line saying why not (nothing awaiting approval, release changed, smoke results too old).
  - C(turnout_release_notes) returns RELEASE_NOTES.md from inside an artifact (empty if none).
  - C(turnout_hook_path) / C(turnout_hooks_check) resolve and check hook task files.
  - C(turnout_canary_steps) checks canary steps (rising percentages 1-99).
  - The logic lives in the turnout Python package (src/turnout/haproxy.py) with unit tests.
options:
  _input:
    description: Runtime API output text, a pool name, or parsed stats, depending on the filter.
    required: true
"""

EXAMPLES = r"""
- name: pool_switch | read live pool
  ansible.builtin.set_fact:
    pool_switch_live_pool: "{{ pool_switch_map_result.stdout | turnout_active_pool }}"

- name: pool_switch | idle servers up
  ansible.builtin.set_fact:
    __up: "{{ pool_switch_stat_result.stdout | turnout_parse_show_stat
              | turnout_servers_up('be_green', ['green1', 'green2']) }}"
"""

RETURN = r"""
_value:
  description: See each filter in the description.
  type: raw
"""


def _wrap(func):
    def call(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except InputError as error:
            raise AnsibleFilterError(str(error)) from error

    call.__name__ = func.__name__
    call.__doc__ = func.__doc__
    return call


def error_counters(stats, backend=None):
    """{hrsp_5xx, eresp, econ} of ``backend``, or {backend: counters} for every pool backend."""
    if backend is None:
        return haproxy.all_error_counters(stats)
    return haproxy.error_counters(stats, backend)


def promote_check(manifest, live_pool, host_releases, max_age_s):
    """The staged release a promote flips to (turnout.plan.check_promote, now = UTC now)."""
    return plan.check_promote(manifest or {}, live_pool, host_releases or {},
                              datetime.now(UTC), float(max_age_s))


def release_notes(path):
    """RELEASE_NOTES.md from inside the artifact at ``path``, or an empty string."""
    return artifact.release_notes(Path(str(path))) or ""


def canary_steps(value):
    """turnout_canary as a list of rising percentages ([] for none; turnout.plan.parse_canary)."""
    if value in (None, "", []):
        return []
    if isinstance(value, list | tuple):
        value = ",".join(str(step) for step in value)
    return plan.parse_canary(str(value))


def hook_path(path, inventory_dir, project_dir):
    """The absolute path of one hook task file (turnout.hooks.resolve)."""
    return str(hooks.resolve(path, inventory_dir, project_dir))


def hooks_check(value, inventory_dir, project_dir):
    """turnout_hooks checked: {hook name: absolute path} (turnout.hooks.validate)."""
    return hooks.validate(value, inventory_dir, project_dir)


def curl_argv(url, count, timeout):
    """argv of one curl run that GETs ``url`` ``count`` times (turnout.httpcheck.curl_argv)."""
    try:
        return httpcheck.curl_argv(url, count, timeout)
    except ValueError as error:
        raise InputError(str(error)) from error


class FilterModule:
    """turnout filters."""

    def filters(self):
        return {
            "turnout_parse_show_map": _wrap(haproxy.parse_show_map),
            "turnout_active_pool": _wrap(haproxy.active_pool),
            "turnout_render_map": _wrap(haproxy.render_map),
            "turnout_parse_show_stat": _wrap(haproxy.parse_show_stat),
            "turnout_error_counters": _wrap(error_counters),
            "turnout_servers_up": _wrap(haproxy.servers_up),
            "turnout_server_states": _wrap(haproxy.server_states),
            "turnout_curl_argv": _wrap(curl_argv),
            "turnout_curl_batch": _wrap(httpcheck.parse_batch),
            "turnout_split_map_stat": _wrap(haproxy.split_map_stat),
            "turnout_canary_counters": _wrap(haproxy.canary_counters),
            "turnout_canary_check": _wrap(haproxy.canary_check),
            "turnout_promote_check": _wrap(promote_check),
            "turnout_release_notes": _wrap(release_notes),
            "turnout_hook_path": _wrap(hook_path),
            "turnout_canary_steps": _wrap(canary_steps),
            "turnout_hooks_check": _wrap(hooks_check),
        }
