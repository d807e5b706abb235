"""The deploy manifest: what each pool runs, which pool is live, and the history of runs.

The manifest lives beside the inventory (``inventories/<env>/manifest.yml``, or
``turnout_manifest_path``) and is written by the ``turnout_manifest`` action plugin at the end
of every deploy, rollback, promote, unlock and reconcile through :func:`record_event`.

One module per noun: ``schema`` (keys and validation), ``events`` (applying a run's event),
``reconcile`` (rebuilt from the fleet), ``queries`` (questions asked of it) and ``store`` (the
file: the package's only I/O). docs/manifest.md is the user-facing reference for the format.
"""

from turnout.contracts import format_timestamp, other_pool
from turnout.manifest.events import apply_event
from turnout.manifest.queries import SmokeRecord, host_entry, latest_smoke, run_entry
from turnout.manifest.reconcile import reconciled
from turnout.manifest.schema import (
    ACTIONS,
    HISTORY_KEYS,
    HISTORY_REQUIRED,
    PHASES,
    RESULTS,
    SCHEMA_VERSION,
    TOP_KEYS,
    ManifestCorrupt,
    empty,
    empty_pool,
    validate,
)
from turnout.manifest.store import dump, load, record_event, write_atomic
from turnout.run import new_run_id

__all__ = [
    "ACTIONS", "HISTORY_KEYS", "HISTORY_REQUIRED", "PHASES", "RESULTS", "SCHEMA_VERSION",
    "TOP_KEYS", "ManifestCorrupt", "SmokeRecord", "apply_event", "dump", "empty", "empty_pool",
    "format_timestamp", "host_entry", "latest_smoke", "load", "new_run_id", "other_pool",
    "reconciled", "record_event", "run_entry", "validate", "write_atomic",
]
