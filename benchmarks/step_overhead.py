"""Overhead of a state machine step: the machine's HTTP rate against a plain httpx loop.

What is measured (one run, one stack: ``LocalStack(default_config())``, no planted bug; clocks
are ``time.perf_counter`` for the phases and the ops' own ``time.monotonic`` stamps):

(a) Machine: ``hunt(RegistryMachine, ...)`` (``--machine stack`` for ``StackMachine``, whose
    faults are not HTTP) for ``--examples`` examples of ``--steps`` steps with a fixed
    ``--seed``, no shrinking. A subclass of the machine times every ``converge()`` call,
    ``snapshot()`` and invariant check, and keeps, per example, its whole ``history`` (every
    HTTP request of a rule and of a snapshot), its ``convergence`` list and which ops the
    snapshots issued; ``MachineContext.resets`` gives the resets. Machine wall time W is the
    ``hunt`` call. Reported: steps/s (rules run, the initial spawn included, / W), HTTP
    requests/s (history ops other than faults / W), and W split into: resets; ``converge()``
    calls (after every rule: list requests of the snapshots, the worker-process scan, checking
    every possible model, backoff sleeps between polls; after a fault only one immediate check,
    and teardown converges once more); rules (their HTTP requests, deliberate sleeps of
    ``let_time_pass``, (N + 1) x health interval each, faults, the rest: model steps, the port
    scan of ``spawn``, Hypothesis draws, closing clients); per-example setup (clients, the
    beehive list the model starts from); what Hypothesis does between examples. The machines'
    own ``convergence`` lists (converge calls that polled to a result) are summarised apart.
(b) Plain loop: the same requests (method, service URL, path with query, JSON body,
    Authorization header with the token put back where the history shows ``<token>``) sent
    again, example by example, in recorded order, one after another through one
    ``httpx.Client`` on the same stack. Between two examples the stack is reset exactly as the
    machine resets it (``MachineContext.reset()``, not timed), so every replayed example starts
    from the empty stack its original started from. Only the loop itself is timed.

How to read it: ratio = machine requests/s / plain requests/s. 1.0 would mean the machine
costs nothing beyond its requests; the project's aim is >= 0.8. The split of W says where the
rest goes. Two more ratios take waiting out of W: without the deliberate ``let_time_pass``
sleeps, and "active" (also without the backoff sleeps of the convergence polls and without the
resets): what is left is the machine's own work (its client, snapshots, process scans, model,
per-example setup) next to the same requests. Most of what is left is still the stack's: a
request to a paused worker waits out the queen's timeout, a spawn waits for the hive, a fault
starts a component. So the report also adds up rbee-props' *own* work (process scans, model
checks, draws, setup, Hypothesis, the client's extra latency per request) and gives the ratio a
machine would reach on this stack if that cost nothing (the ceiling), and the measured ratio as a
fraction of that ceiling. The replay is blind: it sends the same bytes,
not the same conversation, so state-changing requests may get other answers than the machine
got (a shutdown of an id the machine got back from a spawn is a 404 now; an inference sent
before the freshly spawned worker is ready is a 503 instead of a stream); "same status" counts
how many answers matched. That changes what the stack has to do, not how many requests there
are, so the rates stay comparable, but a replayed request can be cheaper or dearer than its
original. Loopback requests sent right after another on the same connection can pay ~40 ms of
Nagle + delayed ACK at the reference programs (see reference_throughput.py), in both runs (the
p99 latencies). Figures vary by machine and load; compare runs on the same machine. The last
stdout line is the same figures as JSON (``--json FILE`` also writes them); JSON times are
seconds.

Run: ``.venv/bin/python benchmarks/step_overhead.py [--examples N] [--steps N] [--seed S]
[--machine registry|stack] [--json FILE]``. Every process it starts is stopped on exit, on
error and on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import _bench
import attrs
import httpx
from hypothesis.reporting import with_reporter
from hypothesis.stateful import invariant

from rbee_props.config import default_config
from rbee_props.history import Op
from rbee_props.hunt import hunt, machine_settings
from rbee_props.machines import MACHINES, MachineContext, StackMachineBase
from rbee_props.redact import MASK
from rbee_props.snapshot import Snapshot
from rbee_props.stack import LocalStack


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@attrs.define
class Example:
    """What one machine example did, kept at its teardown."""

    began: float
    ready: float
    ended: float = 0.0
    ops: list[Op] = attrs.field(factory=list)
    snapshot_ops: set[int] = attrs.field(factory=set)
    convergence: list[float] = attrs.field(factory=list)
    converge_seconds: float = 0.0
    converge_calls: int = 0
    snapshot_seconds: float = 0.0
    check_seconds: float = 0.0
    program: list[str] = attrs.field(factory=list)


class RecordingContext(MachineContext):
    """A context that also keeps every example the machine ran."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.examples_kept: list[Example] = []


def recording(machine: type[StackMachineBase]) -> type[StackMachineBase]:
    """``machine`` that times its converge calls and stashes its history in the context."""

    class Recording(machine):  # type: ignore[valid-type,misc]
        def __init__(self) -> None:
            began = time.perf_counter()
            super().__init__()
            self._kept = Example(began, time.perf_counter())
            self.ctx.examples_kept.append(self._kept)  # type: ignore[attr-defined]

        @invariant()  # replaces the base class's invariant of the same name (one invariant)
        def converge(self) -> None:
            start = time.perf_counter()
            try:
                super().converge()
            finally:
                self._kept.converge_seconds += time.perf_counter() - start
                self._kept.converge_calls += 1

        def snapshot(self) -> Snapshot:
            first = len(self.history)
            start = time.perf_counter()
            try:
                return super().snapshot()  # type: ignore[no-any-return]
            finally:
                self._kept.snapshot_seconds += time.perf_counter() - start
                self._kept.snapshot_ops.update(range(first, len(self.history)))

        def _violations(self) -> Any:
            start = time.perf_counter()
            try:
                return super()._violations()
            finally:
                self._kept.check_seconds += time.perf_counter() - start

        def teardown(self) -> None:
            try:
                super().teardown()  # may converge once more (after a trailing fault)
            finally:
                kept = self._kept
                kept.ops = list(self.history)
                kept.convergence = list(self.convergence)
                kept.program = [entry["rule"] for entry in self.program]
                kept.ended = time.perf_counter()

    Recording.__name__ = machine.__name__
    return Recording


def http_ops(example: Example) -> list[Op]:
    """The ops of an example that are HTTP requests (faults are recorded with method FAULT)."""
    return [op for op in example.ops if op.method != "FAULT"]


# -- (a) machine ----------------------------------------------------------------------------------
def run_machine(context: RecordingContext, args: Any) -> dict[str, Any]:
    machine = recording(MACHINES[args.machine])
    config = machine_settings(max_examples=args.examples, steps=args.steps)
    progress(f"(a) {args.machine} machine: {args.examples} examples x {args.steps} steps ...")
    with with_reporter(progress):  # Hypothesis' own reports go to stderr
        wall, result = _bench.timed(
            lambda: hunt(
                machine, context, config=config, seed=args.seed, shrink_budget=0, attempts=0
            )
        )
    examples = context.examples_kept
    ops = [op for ex in examples for op in http_ops(ex)]
    snapshot_ops = [op for ex in examples for op in http_ops(ex) if op.index in ex.snapshot_ops]
    rule_ops = [op for ex in examples for op in http_ops(ex) if op.index not in ex.snapshot_ops]
    fault_ops = [op for ex in examples for op in ex.ops if op.method == "FAULT"]
    timings = context.config.timings
    sleep_each = (timings.health_failures + 1) * timings.health_interval
    sleeps = sum(ex.program.count("let_time_pass") for ex in examples)

    def busy(group: list[Op]) -> float:
        return sum(op.complete - op.invoke for op in group)

    resets = sum(context.resets)
    converge = sum(ex.converge_seconds for ex in examples)
    snapshot = sum(ex.snapshot_seconds for ex in examples)
    check = sum(ex.check_seconds for ex in examples)
    spans = sum(ex.ended - ex.began for ex in examples)
    setup = sum(ex.ready - ex.began for ex in examples) - resets
    rules = spans - resets - setup - converge
    split = {
        "resets": resets,
        "converge": converge,
        "converge_snapshot_http": busy(snapshot_ops),
        "converge_process_scan": snapshot - busy(snapshot_ops),
        "converge_model_checks": check - snapshot,
        "converge_backoff_sleeps": converge - check,
        "rules": rules,
        "rules_http": busy(rule_ops),
        "rules_let_time_pass_sleeps": sleeps * sleep_each,
        "rules_faults": busy(fault_ops),
        "rules_other": rules - busy(rule_ops) - sleeps * sleep_each - busy(fault_ops),
        "example_setup": setup,
        "hypothesis_between_examples": wall - spans,
    }
    waits = [w for ex in examples for w in ex.convergence]
    calls = sum(ex.converge_calls for ex in examples)
    failure = result.failure
    return {
        "machine": args.machine,
        "seed": args.seed,
        "examples": result.examples,
        "steps": result.steps,
        "wall": wall,
        "http_requests": len(ops),
        "rule_requests": len(rule_ops),
        "convergence_requests": len(snapshot_ops),
        "converge_calls": calls,
        # the machine's own ``convergence`` lists: converge() calls that polled to a result
        "convergence_waits": _bench.summary(waits),
        "convergence_waits_total": sum(waits),
        "convergence_waits_share": sum(waits) / wall,
        "faults": len(fault_ops),
        "let_time_pass": sleeps,
        "steps_per_s": result.steps / wall,
        "requests_per_s": len(ops) / wall,
        "requests_per_s_without_sleeps": len(ops) / (wall - sleeps * sleep_each),
        # without every wait: deliberate sleeps, backoff between polls, resets
        "requests_per_s_active": len(ops)
        / (wall - sleeps * sleep_each - (converge - check) - resets),
        "request_latency": _bench.summary([op.complete - op.invoke for op in ops]),
        "split": split,
        "share": {k: v / wall for k, v in split.items()},
        "resets_n": len(context.resets),
        "full_restarts": context.full_restarts,
        "failure": None if failure is None else failure.violation.summary,
    }


# -- (b) plain loop -------------------------------------------------------------------------------
def replay(context: RecordingContext) -> dict[str, Any]:
    stack = context.stack
    token = stack.token
    examples = context.examples_kept
    latencies: list[float] = []
    loop_seconds = 0.0
    same = differ = errors = 0
    with httpx.Client(timeout=15.0, trust_env=False) as http:
        for number, example in enumerate(examples, start=1):
            ops = http_ops(example)
            if number % 5 == 1:
                progress(f"(b) plain loop, example {number}/{len(examples)} ({len(ops)} requests)")
            context.reset()  # the same clean start the machine had; not timed
            requests = []
            for op in ops:
                headers = {k: v.replace(MASK, token) for k, v in op.headers.items()}
                body = op.request
                requests.append(
                    http.build_request(
                        op.method,
                        stack.urls[op.service] + op.path,
                        json=None if isinstance(body, str) else body,
                        content=body.encode() if isinstance(body, str) else None,
                        headers=headers,
                    )
                )
            start = time.perf_counter()
            for op, request in zip(ops, requests, strict=True):
                sent = time.perf_counter()
                try:
                    response = http.send(request)
                    status: int | None = response.status_code
                except httpx.HTTPError:
                    status = None
                    errors += 1
                latencies.append(time.perf_counter() - sent)
                if status == op.status:
                    same += 1
                else:
                    differ += 1
            loop_seconds += time.perf_counter() - start
    n = len(latencies)
    return {
        "requests": n,
        "loop_seconds": loop_seconds,
        "requests_per_s": n / loop_seconds if loop_seconds else None,
        "request_latency": _bench.summary(latencies),
        "same_status": same,
        "other_status": differ,
        "transport_errors": errors,
    }


# -- the machine's own work ----------------------------------------------------------------------
OWN_WORK = (
    "converge_process_scan",
    "converge_model_checks",
    "rules_other",
    "example_setup",
    "hypothesis_between_examples",
)


def own_work(machine: dict[str, Any], plain: dict[str, Any]) -> dict[str, Any]:
    """What of W is rbee-props' own work, and the ratio a machine without any would reach.

    Own work: the process scans, the checks of every model, the rules' model steps and draws,
    example setup, Hypothesis between examples, and the client's cost per request (median
    machine latency - median plain latency, times the requests). Everything else in W is time
    the stack takes: its answers (a request to a paused worker waits for the queen's timeout, a
    spawn for the hive), its convergence after each step, the starts of components, resets,
    and the deliberate let_time_pass sleeps. A machine whose own work cost nothing, waiting
    for this stack as this one does, would reach ``ceiling``; ``of_ceiling`` = ratio / ceiling.
    """
    n = machine["http_requests"]
    client = max(machine["request_latency"]["median"] - plain["request_latency"]["median"], 0.0)
    own = sum(machine["split"][key] for key in OWN_WORK) + client * n
    wall = machine["wall"]
    ceiling = (n / (wall - own)) / plain["requests_per_s"]
    ratio = machine["requests_per_s"] / plain["requests_per_s"]
    return {
        "own_work": own,
        "own_work_client": client * n,
        "own_work_share": own / wall,
        "ratio_ceiling": ceiling,
        "ratio_of_ceiling": ratio / ceiling,
    }


# -- report ---------------------------------------------------------------------------------------
def report(result: dict[str, Any]) -> None:
    m, p = result["machine"], result["plain"]
    rows = [
        ["machine (" + m["machine"] + ")", m["steps"], m["http_requests"], _bench.s(m["wall"]),
         f"{m['steps_per_s']:.2f}", f"{m['requests_per_s']:.1f}",
         _bench.ms(m["request_latency"]["median"]), _bench.ms(m["request_latency"]["p99"])],
        ["plain httpx loop", "", p["requests"], _bench.s(p["loop_seconds"]), "",
         f"{p['requests_per_s']:.1f}", _bench.ms(p["request_latency"]["median"]),
         _bench.ms(p["request_latency"]["p99"])],
    ]  # fmt: skip
    _bench.table(
        f"Throughput: {m['examples']} examples, seed {m['seed']} (latency = one request, ms)",
        ["run", "steps", "requests", "seconds", "steps/s", "req/s", "lat p50", "lat p99"],
        rows,
    )
    labels = {
        "resets": "resets between examples (MachineContext.reset)",
        "converge": "converge() calls (after every rule, teardown)",
        "converge_snapshot_http": "  of which: list requests of the snapshots",
        "converge_process_scan": "  of which: worker-process scan (psutil)",
        "converge_model_checks": "  of which: invariant checks on every model",
        "converge_backoff_sleeps": "  of which: backoff sleeps between polls",
        "rules": "rules (and teardown)",
        "rules_http": "  of which: rule HTTP requests",
        "rules_let_time_pass_sleeps": "  of which: let_time_pass sleeps (deliberate)",
        "rules_faults": "  of which: faults (controller)",
        "rules_other": "  of which: model steps, port scans, draws, close",
        "example_setup": "example setup (clients, beehive list)",
        "hypothesis_between_examples": "Hypothesis between examples",
    }
    rows = [
        [label, _bench.s(m["split"][key]), f"{100 * m['share'][key]:.1f}"]
        for key, label in labels.items()
    ]
    rows.append(["machine wall time W", _bench.s(m["wall"]), "100.0"])
    _bench.table("Where the machine's time goes (s, % of W)", ["part", "seconds", "% of W"], rows)
    waits = m["convergence_waits"]
    print(
        f"requests: {m['rule_requests']} by rules, {m['convergence_requests']} by "
        f"{m['converge_calls']} converge() calls; {m['faults']} faults; "
        f"{m['let_time_pass']} let_time_pass; {m['resets_n']} resets "
        f"({m['full_restarts']} full restarts)"
    )
    print(
        f"convergence waits (the machines' convergence lists): {waits['n']}, total "
        f"{_bench.s(m['convergence_waits_total'])} s = "
        f"{100 * m['convergence_waits_share']:.1f}% of W, median {_bench.ms(waits['median'])} ms, "
        f"p99 {_bench.ms(waits['p99'])} ms, max {_bench.ms(waits['max'])} ms; resets "
        f"{100 * m['share']['resets']:.1f}% of W"
    )
    print(
        f"replay: {p['same_status']} answers with the machine's status, {p['other_status']} "
        f"with another (blind replay of state-changing requests), "
        f"{p['transport_errors']} transport errors"
    )
    if m["failure"]:
        print(f"the machine failed (a finding on the correct stack?): {m['failure']}")
    busy = m["share"]["rules_http"] + m["share"]["converge_snapshot_http"]
    print(
        f"the machine spends {100 * busy:.1f}% of W waiting for HTTP answers; its median request "
        f"takes {result['request_latency_ratio_p50']:.2f}x the plain loop's"
    )
    print(
        f"ratio machine req/s / plain req/s = {result['ratio']:.3f} "
        f"(without let_time_pass sleeps: {result['ratio_without_sleeps']:.3f}; without those, "
        f"backoff sleeps and resets: {result['ratio_active']:.3f}); aim >= 0.8"
    )
    print(
        f"rbee-props' own work (process scans, model checks, draws, setup, Hypothesis, client "
        f"{_bench.s(result['own_work_client'])} s): {_bench.s(result['own_work'])} s = "
        f"{100 * result['own_work_share']:.1f}% of W; the rest is the stack's time. A machine "
        f"whose own work cost nothing would reach ratio {result['ratio_ceiling']:.3f} here; this "
        f"one reaches {result['ratio_of_ceiling']:.2f} of that (aim >= 0.8)"
    )
    print(f"total wall time: {result['wall_seconds']:.1f} s")


def main() -> None:
    p = _bench.parser(__doc__)
    p.add_argument("--examples", type=int, default=20, help="machine examples (20)")
    p.add_argument("--steps", type=int, default=15, help="steps per example (15)")
    p.add_argument("--seed", type=int, default=20261125, help="Hypothesis seed (20261125)")
    p.add_argument("--machine", choices=sorted(MACHINES), default="registry", help="(registry)")
    args = p.parse_args()
    wall = time.perf_counter()
    result: dict[str, Any] = {"benchmark": "step_overhead", "env": _bench.environment()}
    config = default_config()
    stack = LocalStack(config)
    context: RecordingContext | None = None
    try:
        progress("starting the stack ...")
        stack.start()
        context = RecordingContext(stack, config)
        result["machine"] = run_machine(context, args)
        result["plain"] = replay(context)
    finally:
        if context is not None:
            context.close()
        stack.stop()
    machine, plain = result["machine"], result["plain"]
    result["ratio"] = machine["requests_per_s"] / plain["requests_per_s"]
    without_sleeps = machine["requests_per_s_without_sleeps"]
    result["ratio_without_sleeps"] = without_sleeps / plain["requests_per_s"]
    result["ratio_active"] = machine["requests_per_s_active"] / plain["requests_per_s"]
    result["request_latency_ratio_p50"] = (
        machine["request_latency"]["median"] / plain["request_latency"]["median"]
    )
    result.update(own_work(machine, plain))
    result["wall_seconds"] = time.perf_counter() - wall
    report(result)
    _bench.emit(_bench.rounded(result), args.json)


if __name__ == "__main__":
    _bench.run(main)
