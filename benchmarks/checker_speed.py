"""Speed and memory of the linearizability checker on synthetic concurrent histories.

What is measured (clock: ``time.perf_counter``; memory: ``tracemalloc`` peak, in a second run,
since tracing slows Python down several times; neither counts building the input entries):

(a) Histories of 1k, 10k and 100k ops on 8 lanes against the rbee model: ``RegisterWorker`` and
    ``ShutdownWorker`` on a pool of ``n/20`` worker ids, partitioned by worker id. Each lane
    issues ops back to back (1-3 ms each, mean 2 ms, gaps of 0-0.2 ms), so 8 ops are in flight;
    1% are timeouts (Indeterminate, recorded 5-10 ms long, maybe applied). Outcomes come from
    running the model in the order of a random point inside each op's interval, so every
    history is linearizable. "+1 violation" is the same history with one outcome flipped
    (register Ok <-> 409, shutdown Ok <-> 404), chosen so that brute force on the op's
    partition confirms no order explains it. "1 key" rows put every op on one worker id: no
    partitioning helps, the search itself faces all 8 lanes.
(b) Checking time vs recording time: recording time is taken as the sum over lanes of the
    recorded op durations (about 2 ms per HTTP op, an assumption: the synthetic durations),
    and the ratio is printed at 10k ops; the target is under 0.1.
(c) Small histories (6-8 ops, 1-2 worker ids, heavy overlap, about half with one flipped
    outcome): the checker against the brute-force reference (every real-time-respecting order
    of the ops, ``rbee_props.checker.brute_force``). Both must agree; the speed-up is the ratio
    of total times.

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

from rbee_props.checker import Entry, LinearizabilityChecker, NotLinearizable, brute_force
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


RBEE = Model("rbee", step, ClusterState(), rbee_call, rbee_outcomes)
REGISTER = Model("register", reg_step, 0, reg_call, reg_outcomes)


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
    if memory:
        tracemalloc.start()
        check()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {"seconds": seconds, "peak_bytes": peak, "result": result}


def large(rng: random.Random, budget: float) -> list[dict[str, Any]]:
    plan = [(RBEE, n, "by worker id") for n in (1_000, 10_000, 100_000)]
    plan += [(REGISTER, n, "1 key") for n in (1_000, 10_000, 100_000)]
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for model, n, split in plan:
        row0 = {"model": model.name, "n": n, "split": split}
        if time.perf_counter() - started > budget:
            rows.append(row0 | {"skipped": f"time budget of {budget:g}s spent"})
            continue
        checker = LinearizabilityChecker(model.step, model.initial, max_states=2_000_000)
        valid = generate(rng, model, n, max(n // 20, 1))
        broken, wrong = inject(rng, model, valid)
        recording = sum(e.complete - e.invoke for e in valid)
        for label, entries in (("valid", valid), ("+1 violation", broken)):
            got = measure(lambda entries=entries: checker.check(entries), memory=n <= 10_000)
            result = got.pop("result")
            row = row0 | {"history": label, **got, "verdict": result.verdict}
            row |= {"recording_seconds": recording, "partitions": len({e.key for e in entries})}
            row["indeterminate"] = sum(e.indeterminate for e in entries)
            if isinstance(result, NotLinearizable):
                row |= {"window": len(result.window), "window_has_wrong_op": wrong in result.window}
            rows.append(row)
    return rows


def small(rng: random.Random, count: int) -> dict[str, Any]:
    checker = LinearizabilityChecker(RBEE.step, RBEE.initial)
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


def report(rows: list[dict[str, Any]], cmp: dict[str, Any]) -> dict[str, Any]:
    table = []
    for r in rows:
        head = [r["model"], f"{r['n']:,}", r["split"]]
        if "skipped" in r:
            table.append([*head, "-", "skipped", "-", "-", "-", "-"])
            continue
        peak = "-" if r["peak_bytes"] is None else f"{r['peak_bytes'] / 2**20:.1f}"
        window = str(r.get("window", "-")) + ("" if r.get("window_has_wrong_op", True) else " (!)")
        rate = f"{r['n'] / r['seconds']:,.0f}"
        table.append(
            [*head, r["history"], r["verdict"], _bench.s(r["seconds"]), rate, peak, window]
        )
    _bench.table(
        f"(a) {LANES} lanes, 1% timeouts; peak memory by tracemalloc (runs up to 10k ops only)",
        [
            "model",
            "ops",
            "partitioned",
            "history",
            "verdict",
            "check s",
            "ops/s",
            "peak MiB",
            "window",
        ],
        table,
    )
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
            f"({LANES} lanes in parallel, ~{wall:.1f} s) the ratio is {at_10k['seconds'] / wall:.3f}."
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
