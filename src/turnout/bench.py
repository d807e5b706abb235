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
TARGET_TRAFFIC_MOVED_S = 1.5     # a rollback's traffic on the old pool, after the command's start
TARGET_SCALING_RATIO = 1.5
TARGET_ROLLING_SPEEDUP = 3.0
TARGET_CPU_PER_HOST_S = 2.0      # CPU-s per extra host per pool (controller + lab hosts)
TARGET_WALL_PER_HOST_S = 1.0     # wall seconds per extra host per pool
TARGET_TASKS_PER_HOST = 8        # task executions per target host (profile callback)
TARGET_MODULES_PER_HOST = 5      # module runs (SSH commands) per target host
TARGET_PROJECTED_S = 300.0       # projected 1000+1000 deploy on the reference controller
REFERENCE_CONTROLLER = {"cores": 8, "forks": 50}
PROJECTION_HOSTS = (100, 1000)
PROJECTION_CONTROLLERS = ({"cores": 2, "forks": 25}, {"cores": 8, "forks": 50},
                          {"cores": 16, "forks": 100})


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


def seconds_after(started_epoch: float, stamp: str | None) -> float | None:
    """Seconds from a wall-clock start (epoch) to an ISO 8601 time such as a manifest entry's
    ``traffic_moved_at`` (``2026-11-22T14:00:01.234Z``); None when there is no such time."""
    if not stamp:
        return None
    moved = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    if moved.tzinfo is None:
        raise ValueError(f"{stamp!r} has no time zone")
    return round(moved.timestamp() - started_epoch, 3)


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

def task_records(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The per-task records of a profile (the playbook's own rusage record left out)."""
    return [r for r in records if "task" in r]


def main_process_cpu_s(records: Iterable[Mapping[str, Any]]) -> float | None:
    """CPU seconds of the ansible-playbook process itself (user + system), from the
    callback's rusage record at the end of the playbook; None if it did not get that far."""
    usage = [r["rusage"] for r in records if "rusage" in r]
    if not usage:
        return None
    return round(float(usage[-1]["user_s"]) + float(usage[-1]["system_s"]), 3)


def per_host_tasks(records: Iterable[Mapping[str, Any]], hosts: Iterable[str]) -> dict[str, int]:
    """Task executions per host (results that were not skipped), for the given hosts."""
    counts = {host: 0 for host in hosts}
    for record in task_records(records):
        if record.get("host") in counts and record.get("status") != "skipped":
            counts[str(record["host"])] += 1
    return counts


SSH_KINDS = (("module", ("python",)), ("tmpdir", ("mkdir",)), ("home", ("echo ~",)),
             ("chmod", ("chmod",)), ("cleanup", ("rm -f -r", "rm -rf")))


def ssh_kind(command: str) -> str:
    """What one ssh call did, from its command line: a module run (pipelined python), the
    steps around a file transfer (home dir, tmp dir, chmod, cleanup) or something else."""
    for kind, needles in SSH_KINDS:
        if any(needle in command for needle in needles):
            return kind
    return "other"


def per_host_ssh(lines: Iterable[str], addresses: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """SSH calls per host from the bench's ssh/sftp wrapper log ("<tool> <argv...>" per call):
    {host: {"ssh": n, "sftp": m, "module": k, "tmpdir": ..., ...}}. With pipelining a module
    run is one ssh call ("module"); an action that uploads a file adds the others."""
    by_address = {address: host for host, address in addresses.items()}
    counts = {host: {"ssh": 0, "sftp": 0} for host in addresses}
    for line in lines:
        tool, _, rest = line.partition(" ")
        if tool not in ("ssh", "sftp"):
            continue
        for token in rest.split():
            host = by_address.get(token.strip("'\"[]"))
            if host is not None:
                counts[host][tool] += 1
                if tool == "ssh":
                    kind = ssh_kind(rest)
                    counts[host][kind] = counts[host].get(kind, 0) + 1
                break
    return counts


def fit_line(points: Iterable[tuple[float, float]]) -> dict[str, float | int] | None:
    """Least-squares y = a + b*x over the points; None with fewer than two distinct x."""
    pts = [(float(x), float(y)) for x, y in points if y is not None]
    if len({x for x, _ in pts}) < 2:
        return None
    n = len(pts)
    mean_x = sum(x for x, _ in pts) / n
    mean_y = sum(y for _, y in pts) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in pts)
    b = sum((x - mean_x) * (y - mean_y) for x, y in pts) / sxx
    a = mean_y - b * mean_x
    ss_tot = sum((y - mean_y) ** 2 for _, y in pts)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in pts)
    return {"a": round(a, 3), "b": round(b, 3), "n": n,
            "r2": round(1 - ss_res / ss_tot, 3) if ss_tot > 0 else 1.0}


def _at(model: Mapping[str, float] | None, n: float) -> float | None:
    return None if model is None else float(model["a"]) + float(model["b"]) * n


MODEL_TEXT = (
    "Deploy of N hosts per pool on a controller with K cores and F forks: "
    "T(N) = max(M(N), C(N)/K) + S*ceil(N/F). M(N) = a+b*N is the CPU of the ansible-playbook "
    "process itself (one thread: no core count makes it faster), C(N) = a+b*N all controller "
    "CPU (that process, its forks, ssh and the ControlPersist masters: one cgroup), both fitted "
    "on the lab; S is the part of the 1+1 deploy's wall time that the lab controller's CPU "
    "does not explain (host-side work and waits, which a host does in parallel with the "
    "others of its wave of F). Hosts' own CPU is theirs on a real fleet, so it is left out; "
    "CPU-bound phases and waves are assumed not to overlap (conservative). Network latency "
    "beyond the lab's (sub-millisecond) adds per wave and is not modelled.")


def scaling_model(rows: Iterable[Mapping[str, Any]], lab_cores: int) -> dict[str, Any]:
    """Fits CPU and wall = a + b*N over the deploy_scaling runs, per-host counts, and the
    projection for PROJECTION_HOSTS on PROJECTION_CONTROLLERS (MODEL_TEXT states the model)."""
    rows = [r for r in rows if r.get("rc") == 0]

    def fit(key: str) -> dict[str, float | int] | None:
        return fit_line((r["hosts_per_pool"], r[key]) for r in rows if r.get(key) is not None)

    fits = {key: fit(key) for key in ("deploy_s", "controller_cpu_s", "main_cpu_s",
                                      "lab_cpu_s", "total_cpu_s")}

    def worst(key: str) -> float | None:
        values = [r[key] for r in rows if r.get(key) is not None]
        return max(values) if values else None

    model: dict[str, Any] = {"fits": fits, "model": MODEL_TEXT,
                             "tasks_per_target_host": worst("tasks_per_target_host"),
                             "ssh_per_target_host": worst("ssh_per_target_host"),
                             "modules_per_target_host": worst("modules_per_target_host"),
                             "sftp_per_target_host": worst("sftp_per_target_host"),
                             "projection": []}
    wall, controller, main = fits["deploy_s"], fits["controller_cpu_s"], fits["main_cpu_s"]
    if wall is None or controller is None or main is None:
        return model
    latency = max(0.0, _at(wall, 1) - _at(controller, 1) / max(1, lab_cores))
    model["wave_latency_s"] = round(latency, 3)
    for spec in PROJECTION_CONTROLLERS:
        for hosts in PROJECTION_HOSTS:
            waves = -(-hosts // spec["forks"])
            seconds = max(_at(main, hosts), _at(controller, hosts) / spec["cores"]) \
                + latency * waves
            model["projection"].append({"hosts_per_pool": hosts, **spec,
                                        "seconds": round(seconds, 1)})
    return model


def top_tasks(records: Iterable[Mapping[str, Any]], limit: int = 10) -> list[dict[str, Any]]:
    """Wall time per task name from profile records {task, host, start, end}: hosts running
    the same task in parallel count once (overlapping spans merge); a task that runs several
    times (e.g. discovery before and after a flip) adds up its separate runs."""
    spans: dict[str, list[tuple[float, float]]] = {}
    hosts: dict[str, set[str]] = {}
    for record in task_records(records):
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
    records = task_records(records)
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
    """(hosts per pool, median seconds of its blue-green deploys) from deploy_scaling, sorted
    (a size measured several times counts once, at its median)."""
    runs: dict[int, list[float]] = {}
    for row in results.get("deploy_scaling") or []:
        if row.get("deploy_s") is not None:
            runs.setdefault(int(row["hosts_per_pool"]), []).append(float(row["deploy_s"]))
    return [(size, round(statistics.median(values), 3)) for size, values in sorted(runs.items())]


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
    moved_s = _get(results, "rollback", "traffic_moved_s", "median")
    targets.append(Target("rollback: traffic on the old pool after the command's start "
                          "(manifest traffic_moved_at)", f"<= {TARGET_TRAFFIC_MOVED_S:g} s",
                          f"{moved_s:g} s" if moved_s is not None else "not measured",
                          None if moved_s is None else moved_s <= TARGET_TRAFFIC_MOVED_S))

    scaling = ratios["scaling_ratio"]
    targets.append(Target(
        f"deploy {ratios['scaling_to']}+{ratios['scaling_to']} vs "
        f"{ratios['scaling_from']}+{ratios['scaling_from']}",
        f"<= {TARGET_SCALING_RATIO:g}x", f"{scaling:g}x" if scaling is not None else "not measured",
        None if scaling is None else scaling <= TARGET_SCALING_RATIO))

    model = results.get("scaling_model") or {}
    fits = model.get("fits") or {}

    def slope(key: str) -> float | None:
        return (fits.get(key) or {}).get("b")

    def add(name: str, value: float | None, limit: float, unit: str) -> None:
        targets.append(Target(name, f"<= {limit:g}{unit}",
                              f"{value:g}{unit}" if value is not None else "not measured",
                              None if value is None else value <= limit))

    add("CPU per extra host per pool (controller + lab hosts, fitted slope)",
        slope("total_cpu_s"), TARGET_CPU_PER_HOST_S, " CPU-s")
    add("wall time per extra host per pool (fitted slope)", slope("deploy_s"),
        TARGET_WALL_PER_HOST_S, " s")
    add("task executions per target host (deploy, profile callback)",
        model.get("tasks_per_target_host"), TARGET_TASKS_PER_HOST, "")
    add("module runs per target host (deploy; pipelined ssh calls running python)",
        model.get("modules_per_target_host"), TARGET_MODULES_PER_HOST, "")
    projected = [p["seconds"] for p in model.get("projection") or []
                 if p["hosts_per_pool"] == 1000 and p["cores"] == REFERENCE_CONTROLLER["cores"]
                 and p["forks"] == REFERENCE_CONTROLLER["forks"]]
    add(f"projected 1000+1000 deploy, {REFERENCE_CONTROLLER['cores']} cores, "
        f"{REFERENCE_CONTROLLER['forks']} forks (model)",
        projected[0] if projected else None, TARGET_PROJECTED_S, " s")

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
        lines += ["", "## Deploy cost vs hosts per pool", "",
                  "| hosts per pool | run | deploy (s) | controller CPU-s | ansible-playbook "
                  "CPU-s | lab hosts CPU-s | CPU pressure (s) | tasks / target host | "
                  "module runs / target host | ssh calls / target host | sftp / target host |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row in results["deploy_scaling"]:
            lines.append(
                f"| {row['hosts_per_pool']} | {row.get('run', '-')} | "
                f"{_fmt(row.get('deploy_s'))} | {_fmt(row.get('controller_cpu_s'))} | "
                f"{_fmt(row.get('main_cpu_s'))} | {_fmt(row.get('lab_cpu_s'))} | "
                f"{_fmt(row.get('pressure_some_s'))} | {_fmt(row.get('tasks_per_target_host'))} "
                f"| {_fmt(row.get('modules_per_target_host'))} "
                f"| {_fmt(row.get('ssh_per_target_host'))} | "
                f"{_fmt(row.get('sftp_per_target_host'))} |")
        model = results.get("scaling_model") or {}
        fits = model.get("fits") or {}
        if any(fits.values()):
            lines += ["", "Fitted y = a + b·N (N hosts per pool):", "",
                      "| quantity | a | b (per extra host) | r² | runs |",
                      "| --- | --- | --- | --- | --- |"]
            for key, fit in fits.items():
                if fit:
                    lines.append(f"| {key} | {fit['a']} | {fit['b']} | {fit['r2']} | "
                                 f"{fit['n']} |")
        if model.get("projection"):
            lines += ["", f"Projection ({model.get('model')}; S = "
                      f"{model.get('wave_latency_s')} s):", "",
                      "| hosts per pool | cores | forks | projected deploy (s) |",
                      "| --- | --- | --- | --- |"]
            for row in model["projection"]:
                lines.append(f"| {row['hosts_per_pool']} | {row['cores']} | {row['forks']} | "
                             f"{row['seconds']} |")
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
                  f"- traffic on the old pool (the manifest's `traffic_moved_at`) after the "
                  f"command's start: median {_fmt(_get(rollback, 'traffic_moved_s', 'median'))} s",
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
