"""The randomized operator drill's pure logic: draw a reproducible sequence of operator steps
and faults from a seed, and judge what the fleet and the load client saw against turnout's
promise.

The promise, as an invariant over any sequence (issue 17):

* every response through every LB comes from a release that passed its smoke test and went
  live through the normal path (a deploy, promote or rollback that flipped to it);
* a request never fails except while HAProxy itself restarts (counted apart);
* after each step the LBs route to the same pool, ``status`` exits 0 or names drift that a
  step since the last clean status explains, and no lock is left by a command that exited.

This module draws and judges; src/turnout/chaos_runner.py runs the steps on a lab.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from turnout.artifact import BROKEN_VARIANTS
from turnout.errors import DeployFailed, InputError

# kind -> weight. Deploys dominate, as in real life; faults come often enough that a 20-step
# run meets most of them.
WEIGHTS: dict[str, int] = {
    "deploy": 6,
    "deploy_broken": 3,
    "deploy_approval": 2,
    "canary_host_dies": 1,
    "rollback": 3,
    "rollback_to": 1,
    "provision": 1,
    "kill": 4,
    "haproxy_reload": 2,
    "haproxy_restart": 1,
    "host_power_cycle": 1,
    "manifest_lost": 1,
    "manifest_corrupt": 1,
}

# commands a SIGKILL can interrupt (the command a kill step starts, then kills)
KILLABLE = ("deploy", "rollback", "provision", "promote")

# steps after which `status` may report drift (exit 3) until a later step clears it: the
# idle pool runs a release that failed, a killed run left a half-staged pool, a host is off
DRIFT_CAUSES = frozenset({"deploy_broken", "canary_host_dies", "kill", "host_power_cycle",
                          "deploy_approval"})

# steps whose failed requests are HAProxy's own restart, not turnout's
RESTART_STEPS = frozenset({"haproxy_restart"})

# an idle host powered off stays off for at most this many steps, then comes back at the start
# of the next one (or earlier, at the next host_power_cycle): before this, a host stayed off
# until that draw, and 126 of seed 3's 200 steps met a host missing (only refusals)
POWER_OFF_STEPS = 3


def power_back_due(off_at: int | None, index: int, steps_off: int = POWER_OFF_STEPS) -> bool:
    """Whether a host powered off by step ``off_at`` comes back before step ``index`` (pure)."""
    return off_at is not None and index - off_at > steps_off


class ChaosError(InputError):
    """A bad chaos option (steps, seed, weights): exit 2."""


class InvariantBroken(DeployFailed):
    """A chaos run saw a violation of the invariant (exit 1)."""


@dataclass(frozen=True)
class Step:
    index: int
    kind: str
    args: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        extra = " ".join(f"{key}={value}" for key, value in sorted(self.args.items()))
        return f"#{self.index} {self.kind}" + (f" ({extra})" if extra else "")


def parse_weights(text: str) -> dict[str, int]:
    """``deploy=5,kill=0`` over the defaults; a kind not known or a weight not >= 0 is refused."""
    weights = dict(WEIGHTS)
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, value = part.partition("=")
        if kind not in WEIGHTS:
            raise ChaosError(f"--weights: unknown step {kind!r}; known: {', '.join(WEIGHTS)}")
        if not value.isdigit():
            raise ChaosError(f"--weights: {kind}={value!r} is not a whole number >= 0")
        weights[kind] = int(value)
    if not any(weights.values()):
        raise ChaosError("--weights: every weight is 0; give at least one step a weight")
    return weights


def draw(seed: int, steps: int, weights: Mapping[str, int] | None = None) -> list[Step]:
    """The sequence a seed means: same seed, same steps, same arguments (pure).

    Arguments that depend on the fleet at run time (which version, which host) are drawn as
    numbers here and resolved by the runner against the state the step starts from, so a
    replay from the same starting fleet runs exactly the same commands."""
    if steps < 1:
        raise ChaosError(f"--steps must be at least 1 (got {steps})")
    weights = dict(weights or WEIGHTS)
    kinds = [kind for kind, weight in weights.items() if weight > 0]
    rng = random.Random(seed)
    drawn: list[Step] = []
    for index in range(1, steps + 1):
        kind = rng.choices(kinds, [weights[k] for k in kinds])[0]
        drawn.append(Step(index, kind, _args(kind, rng)))
    return drawn


def then_steps(seed: int, after: int, kinds: tuple[str, ...]) -> list[Step]:
    """Scripted steps numbered after the drawn ones, each kind's arguments drawn from the seed
    (pure): a kind that appears twice gets the same arguments, every kind gets some."""
    unknown = [kind for kind in kinds if kind not in WEIGHTS]
    if unknown:
        raise ChaosError(f"unknown step {unknown[0]!r}: one of {', '.join(WEIGHTS)}")
    rng = random.Random(seed)
    args = {kind: _args(kind, rng) for kind in dict.fromkeys(kinds)}
    return [Step(after + n, kind, args[kind]) for n, kind in enumerate(kinds, 1)]


def _args(kind: str, rng: random.Random) -> dict[str, Any]:
    if kind == "deploy":
        return {"pick": rng.randrange(1000)}
    if kind == "deploy_broken":
        return {"broken": rng.choice(BROKEN_VARIANTS)}
    if kind == "deploy_approval":
        return {"pick": rng.randrange(1000), "promote": rng.random() < 0.6}
    if kind == "canary_host_dies":
        return {"pick": rng.randrange(1000), "host": rng.randrange(1000)}
    if kind == "rollback_to":
        return {"pick": rng.randrange(1000)}
    if kind == "kill":
        command = rng.choice(KILLABLE)
        # the moment: a fraction of how long that command last took here
        return {"command": command, "at": round(rng.uniform(0.05, 0.95), 2),
                "pick": rng.randrange(1000), "rerun": rng.random() < 0.5}
    if kind in ("haproxy_reload", "haproxy_restart"):
        return {"lb": rng.randrange(1000)}
    if kind == "host_power_cycle":
        return {"host": rng.randrange(1000)}
    return {}


def pick(options: Sequence[str], number: int) -> str:
    """The option a drawn number names (stable for the same options in the same order)."""
    if not options:
        raise ChaosError("nothing to pick from")
    return options[number % len(options)]


# ------------------------------------------------------------------ the judge

@dataclass
class Violation:
    step: int
    what: str

    def __str__(self) -> str:
        return f"after step #{self.step}: {self.what}"


@dataclass
class Served:
    """What the load client saw through one LB during one step."""

    lb: str
    versions: Counter[str]
    failures: Counter[str]  # error text (or "HTTP <status>") -> count


def judge_traffic(step: Step, served: Iterable[Served], proven: set[str], broken: set[str],
                  restarting: bool) -> tuple[list[Violation], Counter[str]]:
    """Violations in what users got during a step, and failed requests counted by cause.

    ``proven``: releases that passed their smoke test and went live through the normal path,
    up to the end of this step. ``restarting``: HAProxy was restarted in this step, so refused
    connections through that LB are its restart's, not turnout's."""
    violations: list[Violation] = []
    causes: Counter[str] = Counter()
    for seen in served:
        for version, count in sorted(seen.versions.items()):
            if version in broken:
                violations.append(Violation(step.index, f"{seen.lb} served {count} responses "
                                                        f"from the broken release {version}"))
            elif version not in proven:
                violations.append(Violation(step.index, f"{seen.lb} served {count} responses "
                                                        f"from {version}, which never passed "
                                                        "its smoke test and went live"))
        for error, count in sorted(seen.failures.items()):
            if restarting and error.startswith(("ConnectionRefusedError", "ConnectionResetError",
                                                "RemoteDisconnected", "BadStatusLine",
                                                "HTTP 503")):
                causes["haproxy restart"] += count
            else:
                causes[f"{seen.lb}: {error}"] += count
                violations.append(Violation(step.index, f"{seen.lb}: {count} failed requests "
                                                        f"({error})"))
    return violations, causes


def judge_fleet(step: Step, *, pools: Mapping[str, str], status_code: int, status_says: str,
                drift_explained_by: int | None, lock: str, command_running: bool
                ) -> list[Violation]:
    """Violations in the fleet after a step: LBs that disagree, unexplained drift, a lock left.

    ``pools``: LB -> the pool its map routes to. ``drift_explained_by``: the index of the step
    since the last clean status whose fault explains drift (None: nothing does)."""
    violations: list[Violation] = []
    if len(set(pools.values())) > 1:
        violations.append(Violation(step.index, "the LBs disagree: " + ", ".join(
            f"{lb} routes to {pool}" for lb, pool in sorted(pools.items()))))
    if status_code == 3 and drift_explained_by is None:
        violations.append(Violation(step.index, "status names drift no step explains: "
                                                + status_says[:300]))
    elif status_code not in (0, 3):
        violations.append(Violation(step.index, f"status exited {status_code}: "
                                                + status_says[:300]))
    if lock and not command_running:
        violations.append(Violation(step.index, f"the deploy lock is held with no command "
                                                f"running: {lock[:200]}"))
    return violations


# ------------------------------------------------------------------ results

@dataclass
class StepResult:
    step: Step
    commands: list[dict[str, Any]]  # {"argv": [...], "exit": n, "seconds": s}
    seconds: float
    live_before: str
    live_after: str
    requests: int
    failures_by_cause: dict[str, int]
    status: int
    violations: list[str]
    state_before: dict[str, Any] = field(default_factory=dict)
    state_after: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["step"] = {"index": self.step.index, "kind": self.step.kind, "args": self.step.args}
        return data


def summarize(seed: int, results: Sequence[StepResult], seconds: float) -> dict[str, Any]:
    """The run's totals: steps by kind, requests served and failed by cause, violations, and
    the first step after which the invariant broke (with the fleet before and after it)."""
    failed: Counter[str] = Counter()
    for result in results:
        failed.update(result.failures_by_cause)
    violations = [v for result in results for v in result.violations]
    first = next((r for r in results if r.violations), None)
    return {
        "seed": seed,
        "steps": len(results),
        "steps_by_kind": dict(Counter(r.step.kind for r in results)),
        "requests": sum(r.requests for r in results),
        "failed_requests_by_cause": dict(failed),
        "failed_outside_haproxy_restarts": sum(
            count for cause, count in failed.items() if cause != "haproxy restart"),
        "violations": violations,
        "first_violation": None if first is None else {
            "step": first.step.describe(), "violations": first.violations,
            "before": first.state_before, "after": first.state_after},
        "seconds": round(seconds, 1),
    }


def render_markdown(runs: Sequence[Mapping[str, Any]], when: str, machine: str) -> str:
    lines = [f"# Randomized operator drill — {when}", "",
             f"Machine: {machine}. Command: `invoke chaos` (see docs/chaos.md).", "",
             "| seed | steps | requests | failed (HAProxy restarts) | failed (other) | "
             "violations | time |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        failed = run["failed_requests_by_cause"]
        lines.append(f"| {run['seed']} | {run['steps']} | {run['requests']} | "
                     f"{failed.get('haproxy restart', 0)} | "
                     f"{run['failed_outside_haproxy_restarts']} | {len(run['violations'])} | "
                     f"{run['seconds']:.0f} s |")
    lines += ["", "Steps by kind:", ""]
    for run in runs:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(run["steps_by_kind"].items()))
        lines.append(f"- seed {run['seed']}: {kinds}")
    for run in runs:
        if run.get("note"):
            lines += ["", f"Seed {run['seed']}: {run['note']}"]
    for run in runs:
        if run["first_violation"]:
            first = run["first_violation"]
            lines += ["", f"## Seed {run['seed']}: first violation after {first['step']}", ""]
            lines += [f"- {v}" for v in first["violations"]]
    return "\n".join(lines) + "\n"
