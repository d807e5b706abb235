"""turnout Jinja tests: the syntaxes of turnout.contracts, so no YAML file carries a regex.

    when: turnout_version is turnout_version
    when: app_release_sha256 is turnout_sha256
"""

from __future__ import annotations

from turnout import contracts

DOCUMENTATION = r"""
name: turnout
short_description: turnout's syntaxes as Jinja tests
description:
  - C(turnout_version) is true for a release version (letters, digits, '.', '_', '+', '-', at
    most 64, no '..'); C(turnout_sha256) for 64 lowercase hex digits; C(turnout_pool) for blue
    or green. The rules are turnout.contracts, unit-tested.
options:
  _input:
    description: The value to test.
    required: true
"""

EXAMPLES = r"""
- name: check the version
  ansible.builtin.assert:
    that: turnout_version is turnout_version
"""

RETURN = r"""
_value:
  description: Whether the value passes.
  type: bool
"""


class TestModule:
    """turnout tests."""

    def tests(self):
        return {
            "turnout_version": contracts.is_version,
            "turnout_sha256": contracts.is_sha256,
            "turnout_pool": contracts.is_pool,
        }
