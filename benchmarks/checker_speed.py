"""Speed and memory of the linearizability checker on synthetic concurrent histories.

What is measured (clock: ``time.perf_counter``; memory: ``tracemalloc`` peak in a second run,
since tracing slows Python down several times, skipped when the first run took over 5 s;
neither counts building the input entries):

(a) Histories of 1k, 10k and 100k ops on 8 lanes. Each lane issues ops back to back (1-3 ms
    each, mean 2 ms, gaps of 0-0.2 ms), so 8 ops are always in flight; 1% are timeouts
    (Indeterminate, recorded 5-10 ms long, applied or not at random). Outcomes come from
    running the model in the order of a random point inside each op's interval, so every
    history is linearizable; "+1 violation" is the same history with one op in its middle
    third made wrong.
    - rbee: the rbee model, ``RegisterWorker`` (60%) and ``ShutdownWorker`` on ``n/20`` worker
      ids, partitioned by worker id (what a machine's burst looks like). The violation flips
      one outcome (register Ok <-> 409, shutdown Ok <-> 404), chosen so that brute force on
      that op's partition confirms no order explains it. The checker stops at the first
      partition that fails, so a violation is usually found faster than a pass.
    - register: one integer register, unique writes (60%) and reads, all on ONE key: nothing
      to partition, the search faces all 8 lanes at once. A stress case, not the intended
      use. The violation is a read of a value no write wrote. ``max_states`` is lowered for
      the large rows so they stop in seconds; an Unknown row then says how far it got.
    The read-only hint is given (rbee: every Fail; register: reads and Fails).
(b) Checking time vs recording time at 10k ops (rbee): recording time is taken as the sum over
    lanes of the recorded op durations, i.e. about 2 ms per HTTP op (an assumption: these
    are synthetic durations), and the target is a ratio under 0.1.
(c) Small histories (6-8 ops, 1-2 worker ids, 8 lanes, 10% timeouts, about half with one
    flipped outcome): the checker against the brute-force reference (every real-time-
    respecting order, ``rbee_props.checker.brute_force``). Both must agree; the speed-up is
    the ratio of total times.

Figures vary by machine; compare runs made on the same machine. The last stdout line is the
figures as JSON (``--json FILE`` also writes them to a file); times in JSON are seconds, memory
in bytes. Runs in about a minute on two cores.

Run: ``.venv/bin/python benchmarks/checker_speed.py [--seed N] [--json FILE]``.
"""

from __future__ import annotations

import random
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import _bench
import attrs

from rbee_props.checker import (
    Entry,
    LinearizabilityChecker,
    NotLinearizable,
    Unknown,
    brute_force,
)
from rbee_props.history import Fail, Indeterminate, Ok, Outcome
from rbee_props.model import ClusterState, RegisterWorker, ShutdownWorker, step

LANES = 8
TIMEOUT = Indeterminate("timeout")
FLIP = {201: Fail(409), 409: Ok(201), 200: Fail(404), 404: Ok(200)}


@attrs.frozen
class Model:
    """A model for the generator: its step, initial state, a call maker and allowed outcomes."""

    name: str
    step: Callable[[Any, Any, Outcome], tuple[Any, ...]]
    initial: Any
    make_call: Callable[[random.Random, int], tuple[Any, Any]]  # (rng, ids) -> (call, key)
    outcomes: Callable[[Any, Any], list[Outcome]]  # (call, state) -> candidates to try
    read_only: Callable[[Any, Outcome], bool]  # ops that never change the state


def rbee_call(rng: random.Random, ids: int) -> tuple[Any, Any]:
    worker_id = f"w{rng.randrange(ids)}"
    if rng.random() < 0.6:
        call = RegisterWorker(worker_id, "phantom-node", f"http://127.0.0.1:9/{worker_id}")
        return call, worker_id
    return ShutdownWorker(worker_id), worker_id


def rbee_outcomes(call: Any, state: Any) -> list[Outcome]:
    if isinstance(call, RegisterWorker):
        return [Ok(201), Fail(409)]
    return [Ok(200), Fail(404)]


@attrs.frozen
class Write:
    value: int


@attrs.frozen
class Read:
    pass


def reg_step(state: int, call: Any, outcome: Outcome) -> tuple[int, ...]:
    """One integer register: reads must see the current value; a timeout may or may not apply."""
    if isinstance(call, Read):
        if isinstance(outcome, Ok):
            return (state,) if outcome.body == state else ()
        return (state,)
    if isinstance(outcome, Ok):
        return (call.value,)
    if isinstance(outcome, Fail):
        return (state,)
    return (state, call.value)


_values = iter(range(1, 10**9))


def reg_call(rng: random.Random, ids: int) -> tuple[Any, Any]:
    return (Write(next(_values)) if rng.random() < 0.6 else Read()), "r"


def reg_outcomes(call: Any, state: Any) -> list[Outcome]:
    return [Ok(200, state)] if isinstance(call, Read) else [Ok(200)]


def rbee_read_only(call: Any, outcome: Outcome) -> bool:
    return isinstance(outcome, Fail)  # in the rbee model a refused call changes nothing


def reg_read_only(call: Any, outcome: Outcome) -> bool:
    return isinstance(call, Read) or isinstance(outcome, Fail)


RBEE = Model("rbee", step, ClusterState(), rbee_call, rbee_outcomes, rbee_read_only)
REGISTER = Model("register", reg_step, 0, reg_call, reg_outcomes, reg_read_only)


def generate(
    rng: random.Random, model: Model, n: int, ids: int, *, p_timeout: float = 0.01
) -> list[Entry[Any]]:
    """A linearizable history of ``n`` ops on ``LANES`` lanes (``ids`` keys for rbee)."""
    slots: list[tuple[float, float, float, bool]] = []
    for lane in range(LANES):
        t = rng.uniform(0, 0.002)
        for _ in range(n // LANES + (lane < n % LANES)):
            timeout = rng.random() < p_timeout
            length = rng.uniform(0.005, 0.010) if timeout else rng.uniform(0.001, 0.003)
            point = rng.uniform(t, t + length)  # where the op takes effect
            slots.append((point, t, t + length, timeout))
            t += length + rng.uniform(0, 0.0002)
    slots.sort()
    states: dict[Any, Any] = {}  # per key: keys do not interact in these models
    entries: list[Entry[Any]] = []
    for index, (_, invoke, complete, timeout) in enumerate(slots):
        call, key = model.make_call(rng, ids)
        state = states.get(key, model.initial)
        if timeout:
            outcome: Outcome = TIMEOUT
            nexts = model.step(state, call, outcome)
        else:
            tries = [
                (o, s) for o in model.outcomes(call, state) for s in model.step(state, call, o)
            ]
            outcome, nxt = rng.choice(tries)
            nexts = (nxt,)
        states[key] = rng.choice(nexts)
        entries.append(Entry(index, call, outcome, invoke, complete, key))
    entries.sort(key=lambda e: e.invoke)
    return entries


def inject(
    rng: random.Random, model: Model, entries: list[Entry[Any]]
) -> tuple[list[Entry[Any]], Any]:
    """The history with one outcome in its middle third made wrong; returns it and the op id.

    register: a read answers a value no write ever wrote, so no order explains it. rbee: an
    outcome is flipped (register Ok <-> 409, shutdown Ok <-> 404), and brute force on the op's
    partition confirms no order explains it (else another op is tried).
    """
    middle = range(len(entries) // 3, 2 * len(entries) // 3)
    if model is REGISTER:
        pos = next(p for p in middle if isinstance(entries[p].call, Read))
        bad = attrs.evolve(entries[pos], outcome=Ok(200, -1))
        return [bad if p == pos else e for p, e in enumerate(entries)], bad.id
    by_key: dict[Any, list[int]] = {}
    for pos, e in enumerate(entries):
        by_key.setdefault(e.key, []).append(pos)
    for _ in range(500):
        pos = rng.choice(middle)
        old = entries[pos]
        status = getattr(old.outcome, "status", None)
        if old.indeterminate or status not in FLIP:
            continue
        bad = attrs.evolve(old, outcome=FLIP[status])
        part = [bad if p == pos else entries[p] for p in by_key[old.key]]
        verdict = brute_force(part, model.initial, model.step, max_orders=20_000)
        if isinstance(verdict, NotLinearizable):
            return [bad if p == pos else e for p, e in enumerate(entries)], old.id
    msg = "no flipped outcome could be confirmed by brute force; try another --seed"
    raise RuntimeError(msg)


def measure(check: Callable[[], Any], *, memory: bool) -> dict[str, Any]:
    """Time ``check()``; with ``memory``, run it again under tracemalloc for the peak."""
    seconds, result = _bench.timed(check)
    peak = None
    if memory and seconds < MEMORY_RERUN_UNDER:
        tracemalloc.start()
        check()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {"seconds": seconds, "peak_bytes": peak, "result": result}


MEMORY_RERUN_UNDER = 5.0  # seconds: a slower run is not repeated under tracemalloc
# (model, ops, partitioning, max_states, also check the history with one violation?)
PLAN = [
    (RBEE, 1_000, "by worker id", 1_000_000, True),
    (RBEE, 10_000, "by worker id", 1_000_000, True),
    (RBEE, 100_000, "by worker id", 1_000_000, True),
    (REGISTER, 1_000, "1 key", 1_000_000, True),
    (REGISTER, 10_000, "1 key", 100_000, True),
    (REGISTER, 100_000, "1 key", 60_000, False),
]


def large(rng: random.Random, budget: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for model, n, split, max_states, violation in PLAN:
        row0 = {"model": model.name, "n": n, "split": split, "max_states": max_states}
        if time.perf_counter() - started > budget:
            rows.append(row0 | {"skipped": f"time budget of {budget:g}s spent"})
            continue
        checker = LinearizabilityChecker(
            model.step, model.initial, max_states=max_states, read_only=model.read_only
        )
        valid = generate(rng, model, n, max(n // 20, 1))
        broken, wrong = inject(rng, model, valid)
        recording = sum(e.complete - e.invoke for e in valid)
        runs = [("valid", valid)] + ([("+1 violation", broken)] if violation else [])
        for label, entries in runs:
            got = measure(lambda c=checker, h=entries: c.check(h), memory=True)
            result = got.pop("result")
            row = row0 | {"history": label, **got, "verdict": result.verdict}
            row |= {"recording_seconds": recording, "partitions": len({e.key for e in entries})}
            row["indeterminate"] = sum(e.indeterminate for e in entries)
            if label != "valid":
                row["corrupted_op"] = wrong
            if isinstance(result, NotLinearizable):
                row |= {"window": len(result.window), "window_has_wrong_op": wrong in result.window}
            if isinstance(result, Unknown):
                row["reason"] = result.reason
            rows.append(row)
    return rows


def small(rng: random.Random, count: int) -> dict[str, Any]:
    checker = LinearizabilityChecker(RBEE.step, RBEE.initial, read_only=RBEE.read_only)
    fast = slow = 0.0
    agree = invalid = 0
    sizes = []
    for _ in range(count):
        n = rng.randint(6, 8)
        entries = generate(rng, RBEE, n, rng.randint(1, 2), p_timeout=0.1)
        if rng.random() < 0.5:
            pos = rng.randrange(n)
            status = getattr(entries[pos].outcome, "status", None)
            if status is not None:
                entries[pos] = attrs.evolve(entries[pos], outcome=FLIP[status])
        sizes.append(n)
        t_fast, a = _bench.timed(lambda entries=entries: checker.check(entries))
        t_slow, b = _bench.timed(
            lambda entries=entries: brute_force(entries, RBEE.initial, RBEE.step)
        )
        fast, slow = fast + t_fast, slow + t_slow
        agree += a.verdict == b.verdict
        invalid += b.verdict == "invalid"
    return {
        "histories": count,
        "ops": f"{min(sizes)}-{max(sizes)}",
        "invalid": invalid,
        "agree": agree,
        "checker_seconds": fast,
        "brute_force_seconds": slow,
        "speedup": slow / fast if fast else None,
    }


HEADERS = ["model", "ops", "partitioned", "max_states", "history", "verdict", "check s"]
HEADERS += ["ops/s", "peak MiB", "window"]


def report(rows: list[dict[str, Any]], cmp: dict[str, Any]) -> dict[str, Any]:
    table = []
    for r in rows:
        head = [r["model"], f"{r['n']:,}", r["split"], f"{r['max_states']:,}"]
        if "skipped" in r:
            table.append([*head, "-", "skipped", "-", "-", "-", "-"])
            continue
        peak = "-" if r["peak_bytes"] is None else f"{r['peak_bytes'] / 2**20:.1f}"
        window = str(r.get("window", "-")) + ("" if r.get("window_has_wrong_op", True) else " (!)")
        rate = "-" if r["verdict"] == "unknown" else f"{r['n'] / r['seconds']:,.0f}"
        row = [*head, r["history"], r["verdict"], _bench.s(r["seconds"]), rate, peak, window]
        table.append(row)
    _bench.table(
        f"(a) {LANES} lanes, 1% timeouts; peak MiB by tracemalloc in a rerun (none if >"
        f"{MEMORY_RERUN_UNDER:g}s); window = ops in the NotLinearizable window",
        HEADERS,
        table,
    )
    for r in rows:
        if "reason" in r:
            where = f" (corrupted op: {r['corrupted_op']})" if "corrupted_op" in r else ""
            print(f"unknown, {r['model']} {r['n']:,} {r['history']}{where}: {r['reason']}")
        if r.get("skipped"):
            print(f"skipped, {r['model']} {r['n']:,}: {r['skipped']}")
        if r.get("window_has_wrong_op") is False:
            print(f"(!) {r['model']} {r['n']:,}: the window misses the corrupted op")
    print()
    at_10k = next(
        (r for r in rows if r["n"] == 10_000 and r["model"] == "rbee" and "seconds" in r), None
    )
    ratio = None
    if at_10k is not None:
        ratio = at_10k["seconds"] / at_10k["recording_seconds"]
        wall = at_10k["recording_seconds"] / LANES
        print(
            "(b) checking vs recording time, 10k ops, rbee model, valid history. Assumption: an "
            "HTTP op takes ~2 ms, and recording time is the sum over lanes of the recorded op "
            f"durations: {at_10k['recording_seconds']:.1f} s. Checking took "
            f"{at_10k['seconds']:.2f} s: ratio {ratio:.3f} (target < 0.1: "
            f"{'met' if ratio < 0.1 else 'NOT met'}). Against wall-clock recording time "
            f"({LANES} lanes in parallel, ~{wall:.1f} s) it is {at_10k['seconds'] / wall:.3f}."
        )
        print()
    _bench.table(
        "(c) small histories, rbee model: checker vs brute force (all real-time-respecting orders)",
        ["histories", "ops", "invalid", "agree", "checker s", "brute force s", "speed-up"],
        [
            [
                cmp["histories"],
                cmp["ops"],
                cmp["invalid"],
                f"{cmp['agree']}/{cmp['histories']}",
                _bench.s(cmp["checker_seconds"]),
                _bench.s(cmp["brute_force_seconds"]),
                f"{cmp['speedup']:.1f}x",
            ]
        ],
    )
    return {"ratio_check_to_recording_10k": ratio}


def main() -> None:
    p = _bench.parser(__doc__)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--budget", type=float, default=75.0, help="seconds for (a) before skipping")
    args = p.parse_args()
    rng = random.Random(args.seed)
    rows = large(rng, args.budget)
    cmp = small(rng, 200)
    extra = report(rows, cmp)
    result = {"benchmark": "checker_speed", "env": _bench.environment(), "seed": args.seed}
    result |= {"large": rows, "small": cmp, **extra}
    _bench.emit(_bench.rounded(result), args.json)


if __name__ == "__main__":
    _bench.run(main)
