"""Benchmark arithmetic: statistics, ratios, targets, load-generator parsing, the results
document, its markdown summary and the data behind its plot. Pure: no I/O, no clocks.

The runner (turnout.bench_runner) measures on the lab and hands its raw numbers here. Every
target is a ratio or a count so that results from a loaded or slower machine stay comparable.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

SCHEMA = 1
PARTS = ("deploy_scaling", "flip", "rollback", "load", "overhead", "tuning", "baselines")
QUICK_PARTS = ("deploy_scaling", "flip", "load", "baselines")  # CI: cheap, correctness
FULL_SIZES = (1, 3, 5, 10)
QUICK_SIZES = (1,)

# The targets.
TARGET_FLIP_MS = 50.0
TARGET_ROLLBACK_S = 2.0
TARGET_SCALING_RATIO = 1.5
TARGET_ROLLING_SPEEDUP = 3.0


# --- statistics -----------------------------------------------------------------------------

def describe(values: Iterable[float]) -> dict[str, float | int | None]:
    """n, min, median, mean, max of a sample (None for an empty one), rounded to 4 places."""
    data = sorted(float(v) for v in values)
    if not data:
        return {"n": 0, "min": None, "median": None, "mean": None, "max": None}
    return {"n": len(data), "min": round(data[0], 4),
            "median": round(statistics.median(data), 4),
            "mean": round(statistics.fmean(data), 4), "max": round(data[-1], 4)}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator rounded to 3 places; None when either is missing or zero."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def flip_latency_s(sample_times: list[tuple[float, bool]], command_at: float) -> float | None:
    """Seconds from `command_at` until every later response carried the new version.

    `sample_times` are (completed_at, is_new) pairs in completion order. A response that
    completed after the command but still carried the old version (or failed) moves the end
    of the flip to its completion time. None when no new response was seen after the command.
    """
    last_other = command_at
    seen_new = False
    for completed_at, is_new in sample_times:
        if completed_at < command_at:
            continue
        if is_new:
            seen_new = True
        else:
            last_other = completed_at
            seen_new = False
    return round(last_other - command_at, 6) if seen_new else None


# --- load generator output ------------------------------------------------------------------

@dataclass
class LoadResult:
    """What the load generator counted while one action ran."""

    tool: str
    requests: int = 0
    status: dict[str, int] = field(default_factory=dict)  # "200" -> count
    errors: dict[str, int] = field(default_factory=dict)  # error text -> count
    seconds: float | None = None
    rate_rps: float | None = None  # the requested fixed rate

    @property
    def failed(self) -> int:
        """Requests that did not get a 200: other statuses plus transport errors."""
        return sum(n for code, n in self.status.items() if code != "200") + sum(
            self.errors.values())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed": self.failed}


_HEY_STATUS = re.compile(r"^\s*\[(\d{3})\]\s+(\d+)\s+responses", re.M)
_HEY_ERROR = re.compile(r"^\s*\[(\d+)\]\s+(.+?)\s*$", re.M)
_HEY_TOTAL = re.compile(r"^\s*Total:\s+([0-9.]+)\s+secs", re.M)


def parse_hey(text: str, rate_rps: float | None = None) -> LoadResult:
    """Parse hey's default report: status code and error distributions, total seconds."""
    status = {code: int(n) for code, n in _HEY_STATUS.findall(text)}
    errors: dict[str, int] = {}
    if "Error distribution:" in text:
        section = text.split("Error distribution:", 1)[1]
        for n, message in _HEY_ERROR.findall(section):
            key = _short_error(message)
            errors[key] = errors.get(key, 0) + int(n)
    total = _HEY_TOTAL.search(text)
    return LoadResult(tool="hey", requests=sum(status.values()) + sum(errors.values()),
                      status=status, errors=errors,
                      seconds=float(total.group(1)) if total else None, rate_rps=rate_rps)


def _short_error(message: str) -> str:
    """hey repeats the URL in every error line; keep the reason after the last ': '."""
    return message.rsplit(": ", 1)[-1][:120]


def hey_argv(url: str, rate_rps: int, workers: int, max_seconds: int,
             timeout_s: int = 5) -> list[str]:
    """hey at a fixed total rate (rate_rps split over `workers`), bounded by max_seconds."""
    if rate_rps < workers or workers < 1:
        raise ValueError("rate_rps must be at least the number of workers (>= 1)")
    per_worker = rate_rps // workers
    return ["hey", "-z", f"{max_seconds}s", "-c", str(workers), "-q", str(per_worker),
            "-t", str(timeout_s), url]


# --- profiles -------------------------------------------------------------------------------

def top_tasks(records: Iterable[Mapping[str, Any]], limit: int = 10) -> list[dict[str, Any]]:
    """Wall time per task name from profile records {task, host, start, end}: hosts running
    the same task in parallel count once (overlapping spans merge); a task that runs several
    times (e.g. discovery before and after a flip) adds up its separate runs."""
    spans: dict[str, list[tuple[float, float]]] = {}
    hosts: dict[str, set[str]] = {}
    for record in records:
        name = str(record.get("task") or "?")
        spans.setdefault(name, []).append((float(record["start"]), float(record["end"])))
        hosts.setdefault(name, set()).add(str(record.get("host")))
    rows = []
    for name, intervals in spans.items():
        total, current_start, current_end = 0.0, None, None
        for begin, finish in sorted(intervals):
            if current_end is None or begin > current_end:
                if current_end is not None:
                    total += current_end - current_start
                current_start, current_end = begin, finish
            else:
                current_end = max(current_end, finish)
        total += current_end - current_start
        rows.append({"task": name, "seconds": round(total, 3), "hosts": len(hosts[name]),
                     "runs": len(intervals)})
    rows.sort(key=lambda row: row["seconds"], reverse=True)
    return rows[:limit]


def profile_total(records: Iterable[Mapping[str, Any]]) -> float:
    """Seconds from the first task start to the last task end in a profile."""
    records = list(records)
    if not records:
        return 0.0
    return round(max(float(r["end"]) for r in records) - min(float(r["start"]) for r in records),
                 3)


# --- targets --------------------------------------------------------------------------------

@dataclass
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None  # None: not measured in this run


def _get(data: Mapping[str, Any], *path: str) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def scaling_points(results: Mapping[str, Any]) -> list[tuple[int, float]]:
    """(hosts per pool, seconds of a blue-green deploy) from deploy_scaling, sorted."""
    points = [(int(row["hosts_per_pool"]), float(row["deploy_s"]))
              for row in results.get("deploy_scaling") or [] if row.get("deploy_s") is not None]
    return sorted(points)


def derived(results: Mapping[str, Any]) -> dict[str, Any]:
    """The ratios the targets are stated in, from a results document."""
    points = scaling_points(results)
    smallest = points[0] if points else None
    largest = points[-1] if points else None
    turnout_deploy = _get(results, "load", "deploy", "seconds")
    rolling = _get(results, "baselines", "rolling", "seconds")
    inplace = _get(results, "baselines", "inplace", "seconds")
    invoke_s = _get(results, "overhead", "invoke_s")
    playbook_s = _get(results, "overhead", "playbook_s")
    return {
        "scaling_ratio": ratio(largest[1], smallest[1]) if smallest and largest
        and largest[0] > smallest[0] else None,
        "scaling_from": smallest[0] if smallest else None,
        "scaling_to": largest[0] if largest else None,
        "rolling_over_turnout": ratio(rolling, turnout_deploy),
        "inplace_over_turnout": ratio(inplace, turnout_deploy),
        "invoke_over_playbook": ratio(invoke_s, playbook_s),
        "invoke_overhead_s": round(invoke_s - playbook_s, 3)
        if invoke_s is not None and playbook_s is not None else None,
    }


def evaluate_targets(results: Mapping[str, Any]) -> list[Target]:
    """Each target of the issue: goal, measured value, met or not (None if not measured)."""
    ratios = derived(results)
    targets: list[Target] = []

    failed = [_get(results, "load", action, "load", "failed") for action in ("deploy", "rollback")]
    if all(f is not None for f in failed):
        targets.append(Target("zero failed requests (turnout deploy + rollback under load)",
                              "0", f"{failed[0]} + {failed[1]}", failed[0] + failed[1] == 0))
    else:
        targets.append(Target("zero failed requests (turnout deploy + rollback under load)",
                              "0", "not measured", None))

    flip_ms = _get(results, "flip", "client_ms", "median")
    targets.append(Target("flip latency (client-observed, median)", f"<= {TARGET_FLIP_MS:g} ms",
                          f"{flip_ms:g} ms" if flip_ms is not None else "not measured",
                          None if flip_ms is None else flip_ms <= TARGET_FLIP_MS))

    rollback_s = _get(results, "rollback", "invoke_s", "median")
    targets.append(Target("rollback wall time (invoke rollback)", f"<= {TARGET_ROLLBACK_S:g} s",
                          f"{rollback_s:g} s" if rollback_s is not None else "not measured",
                          None if rollback_s is None else rollback_s <= TARGET_ROLLBACK_S))

    scaling = ratios["scaling_ratio"]
    targets.append(Target(
        f"deploy {ratios['scaling_to']}+{ratios['scaling_to']} vs "
        f"{ratios['scaling_from']}+{ratios['scaling_from']}",
        f"<= {TARGET_SCALING_RATIO:g}x", f"{scaling:g}x" if scaling is not None else "not measured",
        None if scaling is None else scaling <= TARGET_SCALING_RATIO))

    speedup = ratios["rolling_over_turnout"]
    targets.append(Target("serial rolling update time / turnout deploy time (same hosts)",
                          f">= {TARGET_ROLLING_SPEEDUP:g}x",
                          f"{speedup:g}x" if speedup is not None else "not measured",
                          None if speedup is None else speedup >= TARGET_ROLLING_SPEEDUP))
    return targets


# --- the document ---------------------------------------------------------------------------

def results_name(started: datetime, quick: bool) -> str:
    """File stem of a run: the date (UTC), '-quick' for the quick run."""
    return started.strftime("%Y-%m-%d") + ("-quick" if quick else "")


def new_results(started: datetime, quick: bool, parts: Iterable[str], sizes: Iterable[int],
                machine: Mapping[str, Any]) -> dict[str, Any]:
    return {"schema": SCHEMA, "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "quick": quick, "parts": list(parts), "sizes": list(sizes),
            "machine": dict(machine)}


def validate_results(data: Any) -> list[str]:
    """Problems with a results document (empty list: valid). Checks shape, not speed."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        return ["results are not a mapping"]
    if data.get("schema") != SCHEMA:
        problems.append(f"schema is {data.get('schema')!r}, expected {SCHEMA}")
    for key in ("started_at", "finished_at", "parts", "machine"):
        if key not in data:
            problems.append(f"missing {key}")
    for part in data.get("parts") or []:
        if part not in PARTS:
            problems.append(f"unknown part {part!r}")
        elif part not in data:
            problems.append(f"part {part!r} was asked for but has no results")
    for row in data.get("deploy_scaling") or []:
        if not isinstance(row.get("deploy_s"), int | float) or row.get("rc") != 0:
            problems.append(f"deploy_scaling row {row.get('hosts_per_pool')} failed: {row}")
    for action in ("deploy", "rollback"):
        entry = _get(data, "load", action)
        if "load" in (data.get("parts") or []) and (
                entry is None or not isinstance(_get(entry, "load", "requests"), int)):
            problems.append(f"load.{action} has no request count")
    return problems


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}{unit}" if abs(value) < 100 else f"{value:.0f}{unit}"
    return f"{value}{unit}"


def render_markdown(results: Mapping[str, Any]) -> str:
    """The human summary of one run: machine, targets, each part's numbers."""
    machine = results.get("machine") or {}
    lines = [f"# turnout benchmark {results.get('started_at', '?')}"
             + (" (quick)" if results.get("quick") else ""), ""]
    lines.append(f"- machine: {machine.get('cpus', '?')} CPUs, load average at start "
                 f"{machine.get('loadavg_start', '?')}, at end {machine.get('loadavg_end', '?')}")
    lines.append(f"- ansible-core {machine.get('ansible_core', '?')}, "
                 f"load generator {machine.get('load_tool', '?')}")
    lines.append(f"- command: `{results.get('command', '?')}`")
    lines += ["", "## Targets", "", "| target | goal | measured | met |",
              "| --- | --- | --- | --- |"]
    for target in evaluate_targets(results):
        met = "-" if target.met is None else ("yes" if target.met else "**no**")
        lines.append(f"| {target.name} | {target.goal} | {target.measured} | {met} |")

    if results.get("deploy_scaling"):
        lines += ["", "## Deploy wall time vs hosts per pool", "",
                  "| hosts per pool | first deploy (s) | blue-green deploy (s) |",
                  "| --- | --- | --- |"]
        for row in results["deploy_scaling"]:
            lines.append(f"| {row['hosts_per_pool']} | {_fmt(row.get('first_deploy_s'))} | "
                         f"{_fmt(row.get('deploy_s'))} |")
    flip = results.get("flip")
    if flip:
        lines += ["", "## Flip", "",
                  f"- Runtime API `set map` on the LB (socat round trip): median "
                  f"{_fmt(_get(flip, 'api_ms', 'median'))} ms over {_get(flip, 'api_ms', 'n')}",
                  f"- client-observed (command issued over SSH -> every response new): median "
                  f"{_fmt(_get(flip, 'client_ms', 'median'))} ms, max "
                  f"{_fmt(_get(flip, 'client_ms', 'max'))} ms; failed responses "
                  f"{flip.get('failed', '-')}"]
    rollback = results.get("rollback")
    if rollback:
        lines += ["", "## Rollback", "",
                  f"- `invoke rollback`: median {_fmt(_get(rollback, 'invoke_s', 'median'))} s "
                  f"(n={_get(rollback, 'invoke_s', 'n')})",
                  "- flip alone (Runtime API): see Flip; the rest is Ansible start-up, discovery "
                  "and the smoke test; slowest tasks:"]
        for row in rollback.get("profile_top") or []:
            lines.append(f"  - {row['task']}: {row['seconds']} s")
    load = results.get("load")
    if load:
        lines += ["", "## Failed requests under load", "",
                  "| action | wall time (s) | requests | failed | rate (req/s) |",
                  "| --- | --- | --- | --- | --- |"]
        rows = [("turnout deploy", load.get("deploy")), ("turnout rollback", load.get("rollback"))]
        baselines = results.get("baselines") or {}
        rows += [("naive in-place upgrade", baselines.get("inplace")),
                 ("serial rolling update", baselines.get("rolling"))]
        for label, entry in rows:
            if not entry:
                continue
            load_result = entry.get("load") or {}
            lines.append(f"| {label} | {_fmt(entry.get('seconds'))} | "
                         f"{load_result.get('requests', '-')} | {load_result.get('failed', '-')} | "
                         f"{_fmt(load_result.get('rate_rps'))} |")
    overhead = results.get("overhead")
    if overhead:
        ratios = derived(results)
        lines += ["", "## invoke overhead", "",
                  f"- `invoke deploy` {_fmt(overhead.get('invoke_s'))} s vs bare "
                  f"`ansible-playbook playbooks/deploy.yml` {_fmt(overhead.get('playbook_s'))} s:"
                  f" {_fmt(ratios['invoke_over_playbook'])}x "
                  f"({_fmt(ratios['invoke_overhead_s'])} s)"]
    tuning = results.get("tuning")
    if tuning:
        lines += ["", "## Tuning (bare ansible-playbook deploy)", "",
                  "| variant | seconds | vs tuned |", "| --- | --- | --- |"]
        base = _get(tuning, "variants", "tuned", "seconds")
        for name, entry in (tuning.get("variants") or {}).items():
            lines.append(f"| {name} | {_fmt(entry.get('seconds'))} | "
                         f"{_fmt(ratio(entry.get('seconds'), base))}x |")
        for note in tuning.get("notes") or []:
            lines.append(f"- {note}")
    lines.append("")
    return "\n".join(lines)


def plot_data(results: Mapping[str, Any]) -> dict[str, Any]:
    """What the plot shows: deploy time vs hosts, and wall time / failed requests per method."""
    methods = []
    for label, entry in (("turnout", _get(results, "load", "deploy")),
                         ("in-place", _get(results, "baselines", "inplace")),
                         ("rolling serial:1", _get(results, "baselines", "rolling"))):
        if entry and entry.get("seconds") is not None:
            methods.append({"label": label, "seconds": entry["seconds"],
                            "failed": _get(entry, "load", "failed") or 0})
    points = scaling_points(results)
    return {"scaling": {"hosts": [p[0] for p in points], "seconds": [p[1] for p in points]},
            "methods": methods}
