"""Lifecycle costs of the local reference stack: start, restart, fault detection, reset.

What is measured (all clocks are ``time.perf_counter``; the stack is
``LocalStack(default_config())``: fault proxy, queen, two hives, default fast timings):

(a) Start: ``LocalStack.start()`` until every component answered its health route, 5 times on
    fresh stacks; median and max (``stop()`` is timed too).
(b) Restart of one component: ``stack.restart("queen")`` and ``stack.restart("hive1")``, 5 times
    each on one stack; the call returns once the component is healthy again, so the time is
    SIGTERM + graceful exit + new process healthy.
(c) Fault to detected: spawn a worker on hive1, wait until the queen lists it, then call
    ``stack.kill_worker(id)`` and, once it returns, poll with ``stack.wait_until`` until hive1's
    ``/v1/workers/list`` and the queen's ``/v2/workers/list`` no longer list it. Times count from
    the start of the ``kill_worker`` call (it finds the pid by scanning the machine's processes,
    ~15 ms, then SIGKILLs it and waits until the process is gone, which for the hive's child means
    until the hive reaps it). 5 repetitions; each registry's time is that of the first poll that
    saw the worker gone, and "poll gap" is the widest interval between that poll and the last
    moment it was known to be listed (the resolution: detection happened within the gap before
    the time shown). Compared with the grace window G = ``stack.config.grace_seconds``, within
    which the contract says both must have dropped it.
(d) Reset between two examples, each measured 5 times right after spawning 2 workers (one per
    hive, listed by the queen): a full restart (``stop()`` + ``start()``), and an API reset
    (``POST /v2/workers/shutdown {worker_id}`` on the queen for every listed worker, wait until
    the queen and every hive list no worker, then ``heal()``). Both are set against a "typical
    example": 10 steps of a stateful test (spawn on hive1, list queen, list hive1, list hive2,
    inference, spawn on hive2, inference, kill_worker + wait for eviction, list queen,
    kill_worker + wait for eviction), timed 5 times; the ratio is median reset / median example.

How to read it: (a) and (b) bound how fast a fresh or restarted component can be tested; (c)
should stay below G (a max above G means a registry kept a dead worker longer than the contract
allows); in (d) a ratio near or above 1 means resetting costs as much as the example itself. The
API reset is only sound when it also leaves no worker process behind: "left" counts worker
processes of the run still alive right after it. A request sent right after the previous one
on the same connection currently costs about 44 ms at any reference program (Nagle + delayed
ACK; see reference_throughput.py), one sent after a pause of 50 ms or more only 1-4 ms: that is
why "list queen" (its connection was just polled by the spawn step) is slow and "list hive"
fast. Figures vary by machine; compare runs on the same machine. The last stdout line is the
same figures as JSON (``--json FILE`` also writes them); JSON times are seconds.

Run: ``.venv/bin/python benchmarks/stack_lifecycle.py [--reps N] [--json FILE]``.
Every process it starts is stopped on exit, on error and on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import _bench
import httpx

from rbee_props.config import default_config
from rbee_props.stack import LocalStack

SPAWN_BODY = {"model_ref": "hf:demo/model", "backend": "cpu", "device": 0}
INFERENCE_BODY = {"prompt": "hello rbee", "max_tokens": 4}


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Driver:
    """An HTTP client for one stack; follows the stack's URLs and token across restarts."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.http = httpx.Client(timeout=15.0, trust_env=False)
        self.wait_timeout = max(3 * stack.config.grace_seconds, 10.0)

    def close(self) -> None:
        self.http.close()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.stack.token}"}

    def get(self, component: str, path: str) -> httpx.Response:
        return self.http.get(self.stack.urls[component] + path, headers=self._headers())

    def post(self, component: str, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(self.stack.urls[component] + path, json=body, headers=self._headers())

    def queen_states(self) -> dict[str, str]:
        workers = self.get("queen", "/v2/workers/list").json()["workers"]
        return {w["worker_id"]: w.get("state", "") for w in workers}

    def hive_ids(self, hive: str) -> set[str]:
        return {w["id"] for w in self.get(hive, "/v1/workers/list").json()["workers"]}

    def spawn(self, hive: str) -> str:
        """Spawn a worker on ``hive`` and wait until the queen lists it idle; return its id."""
        response = self.post(hive, "/v1/workers/spawn", SPAWN_BODY)
        response.raise_for_status()
        worker_id: str = response.json()["worker_id"]
        self.stack.wait_until(
            lambda: self.queen_states().get(worker_id) == "idle",
            self.wait_timeout,
            what=f"{worker_id} listed idle at the queen",
        )
        return worker_id

    def inference(self) -> bool:
        response = self.post("queen", "/v1/inference", INFERENCE_BODY)
        return response.status_code == 200 and "data: [DONE]" in response.text

    def kill_and_watch(self, worker_id: str, hive: str) -> dict[str, float]:
        """SIGKILL the worker; time until ``hive`` and the queen stop listing it."""
        start = time.perf_counter()
        self.stack.kill_worker(worker_id)
        kill_seconds = time.perf_counter() - start
        gone: dict[str, float] = {}
        last_listed = {"hive": 0.0, "queen": 0.0}
        checks: dict[str, Callable[[], bool]] = {
            "hive": lambda: worker_id not in self.hive_ids(hive),
            "queen": lambda: worker_id not in self.queen_states(),
        }

        def both_gone() -> bool:
            for name, absent in checks.items():
                if name in gone:
                    continue
                if absent():
                    gone[name] = time.perf_counter() - start
                else:
                    last_listed[name] = time.perf_counter() - start
            return len(gone) == len(checks)

        self.stack.wait_until(both_gone, self.wait_timeout, what=f"{worker_id} evicted")
        return {
            "kill_worker_call": kill_seconds,
            "hive": gone["hive"],
            "queen": gone["queen"],
            "hive_poll_gap": gone["hive"] - last_listed["hive"],
            "queen_poll_gap": gone["queen"] - last_listed["queen"],
        }

    def all_empty(self) -> bool:
        if self.queen_states():
            return False
        return all(not self.hive_ids(hive) for hive in self.stack.hives)


# -- (a) start -----------------------------------------------------------------------------------
def bench_start(reps: int) -> dict[str, Any]:
    starts, stops = [], []
    for rep in range(reps):
        progress(f"(a) start, repetition {rep + 1}/{reps} ...")
        stack = LocalStack(default_config())
        try:
            took, _ = _bench.timed(stack.start)
            starts.append(took)
        finally:
            took, _ = _bench.timed(stack.stop)
            stops.append(took)
    return {
        "start": _bench.summary(starts),
        "stop": _bench.summary(stops),
        "start_runs": starts,
    }


# -- (b) restart ---------------------------------------------------------------------------------
def bench_restart(stack: LocalStack, reps: int) -> dict[str, Any]:
    out = {}
    for component in ("queen", "hive1"):
        runs = []
        for rep in range(reps):
            progress(f"(b) restart {component}, repetition {rep + 1}/{reps} ...")
            took, _ = _bench.timed(lambda c=component: stack.restart(c))
            runs.append(took)
        stack.wait_healthy(30.0)
        out[component] = {**_bench.summary(runs), "runs": runs}
    return out


# -- (c) fault to detected -------------------------------------------------------------------------
def bench_detection(driver: Driver, reps: int) -> dict[str, Any]:
    runs = []
    for rep in range(reps):
        progress(f"(c) kill_worker to evicted, repetition {rep + 1}/{reps} ...")
        worker_id = driver.spawn("hive1")
        runs.append(driver.kill_and_watch(worker_id, "hive1"))
    grace = driver.stack.config.grace_seconds
    out: dict[str, Any] = {"grace_seconds": grace, "runs": runs}
    for key in ("hive", "queen", "kill_worker_call"):
        out[key] = _bench.summary([r[key] for r in runs])
    for key in ("hive", "queen"):
        out[f"{key}_max_poll_gap"] = max(r[f"{key}_poll_gap"] for r in runs)
        out[f"{key}_over_grace"] = sum(r[key] > grace for r in runs)
    return out


# -- (d) reset vs example ------------------------------------------------------------------------
def typical_example(driver: Driver) -> tuple[float, list[tuple[str, float]], int]:
    """The 10 steps; return (total seconds, (step, seconds) each, failed inferences)."""
    steps: list[tuple[str, float]] = []
    failed = 0
    ids: dict[str, str] = {}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        took, out = _bench.timed(fn)
        steps.append((name, took))
        return out

    start = time.perf_counter()
    ids["hive1"] = step("spawn (until listed idle)", lambda: driver.spawn("hive1"))
    step("list queen", lambda: driver.get("queen", "/v2/workers/list"))
    step("list hive", lambda: driver.get("hive1", "/v1/workers/list"))
    step("list hive", lambda: driver.get("hive2", "/v1/workers/list"))
    failed += not step("inference", driver.inference)
    ids["hive2"] = step("spawn (until listed idle)", lambda: driver.spawn("hive2"))
    failed += not step("inference", driver.inference)
    step("kill_worker + eviction", lambda: driver.kill_and_watch(ids["hive1"], "hive1"))
    step("list queen", lambda: driver.get("queen", "/v2/workers/list"))
    step("kill_worker + eviction", lambda: driver.kill_and_watch(ids["hive2"], "hive2"))
    return time.perf_counter() - start, steps, failed


def spawn_two(driver: Driver) -> None:
    for hive in driver.stack.hives[:2]:
        driver.spawn(hive)


def api_reset(driver: Driver) -> int:
    """Shut every worker down through the queen, wait for empty registries, heal; non-200s."""
    refused = 0
    for worker_id in driver.queen_states():
        response = driver.post("queen", "/v2/workers/shutdown", {"worker_id": worker_id})
        refused += response.status_code != 200
    driver.stack.wait_until(driver.all_empty, driver.wait_timeout, what="registries empty")
    driver.stack.heal()
    return refused


def bench_reset(driver: Driver, reps: int) -> dict[str, Any]:
    stack = driver.stack
    examples, step_times, failed_inferences = [], {}, 0
    for rep in range(reps):
        progress(f"(d) typical example, repetition {rep + 1}/{reps} ...")
        total, steps, failed = typical_example(driver)
        examples.append(total)
        failed_inferences += failed
        for name, took in steps:
            step_times.setdefault(name, []).append(took)

    api_runs, api_left, api_refused = [], [], 0
    for rep in range(reps):
        progress(f"(d) API reset, repetition {rep + 1}/{reps} ...")
        spawn_two(driver)
        took, refused = _bench.timed(lambda: api_reset(driver))
        api_runs.append(took)
        api_refused += refused
        api_left.append(len(stack.workers()))
    if any(api_left):  # do not let leftovers of the API reset leak into the next measurement
        stack.wait_until(lambda: not stack.workers(), driver.wait_timeout, what="no workers")

    full_runs, full_stop, full_start = [], [], []
    for rep in range(reps):
        progress(f"(d) full restart, repetition {rep + 1}/{reps} ...")
        spawn_two(driver)
        t0 = time.perf_counter()
        stack.stop()
        t1 = time.perf_counter()
        stack.start()
        t2 = time.perf_counter()
        full_runs.append(t2 - t0)
        full_stop.append(t1 - t0)
        full_start.append(t2 - t1)

    example = _bench.summary(examples)
    api = _bench.summary(api_runs)
    full = _bench.summary(full_runs)
    return {
        "example": {**example, "runs": examples, "failed_inferences": failed_inferences},
        "example_steps": {name: _bench.summary(v) for name, v in step_times.items()},
        "api_reset": {
            **api,
            "runs": api_runs,
            "shutdown_refused": api_refused,
            "worker_processes_left": api_left,
            "ratio_to_example": api["median"] / example["median"],
        },
        "full_restart": {
            **full,
            "runs": full_runs,
            "stop": _bench.summary(full_stop),
            "start": _bench.summary(full_start),
            "ratio_to_example": full["median"] / example["median"],
        },
    }


# -- report --------------------------------------------------------------------------------------
def report(result: dict[str, Any]) -> None:
    a, b = result["start"], result["restart"]
    rows = [
        ["stack start (proxy+queen+2 hives)", a["start"]["n"], _bench.s(a["start"]["median"]),
         _bench.s(a["start"]["max"])],
        ["stack stop", a["stop"]["n"], _bench.s(a["stop"]["median"]), _bench.s(a["stop"]["max"])],
        ["restart queen", b["queen"]["n"], _bench.s(b["queen"]["median"]),
         _bench.s(b["queen"]["max"])],
        ["restart hive1", b["hive1"]["n"], _bench.s(b["hive1"]["median"]),
         _bench.s(b["hive1"]["max"])],
    ]  # fmt: skip
    _bench.table("(a)+(b) Start, stop and restart (seconds)", ["what", "n", "median", "max"], rows)

    c = result["detection"]
    grace = c["grace_seconds"]
    rows = [
        [
            f"{label} no longer lists it",
            c[key]["n"],
            _bench.s(c[key]["median"]),
            _bench.s(c[key]["max"]),
            _bench.s(c[f"{key}_max_poll_gap"]),
            f"{c[key]['max'] / grace:.2f}",
            c[f"{key}_over_grace"],
        ]
        for key, label in (("hive", "hive1"), ("queen", "queen"))
    ]
    rows.append(
        [
            "kill_worker() call itself",
            c["kill_worker_call"]["n"],
            _bench.s(c["kill_worker_call"]["median"]),
            _bench.s(c["kill_worker_call"]["max"]),
            "",
            "",
            "",
        ]
    )
    _bench.table(
        f"(c) kill_worker() to eviction, from the start of the call (s); G = {grace:.2f} s",
        ["registry", "n", "median", "max", "poll gap", "max/G", "> G"],
        rows,
    )

    d = result["reset"]
    rows = [
        [name, v["n"], _bench.s(v["median"]), _bench.s(v["max"])]
        for name, v in d["example_steps"].items()
    ]
    _bench.table("(d) Steps of the typical example (s)", ["step", "n", "median", "max"], rows)
    ex, api, full = d["example"], d["api_reset"], d["full_restart"]
    rows = [
        ["typical example (10 steps)", ex["n"], _bench.s(ex["median"]), _bench.s(ex["max"]),
         "1.00", ""],
        ["full restart (stop+start)", full["n"], _bench.s(full["median"]), _bench.s(full["max"]),
         f"{full['ratio_to_example']:.2f}",
         f"stop {_bench.s(full['stop']['median'])} + start {_bench.s(full['start']['median'])}"],
        ["API reset (shutdown+heal)", api["n"], _bench.s(api["median"]), _bench.s(api["max"]),
         f"{api['ratio_to_example']:.2f}",
         f"left {api['worker_processes_left']}, refused {api['shutdown_refused']}"],
    ]  # fmt: skip
    _bench.table(
        "(d) Reset between examples vs one example (s; ratio = median / median example)",
        ["what", "n", "median", "max", "ratio", "notes"],
        rows,
    )
    if ex["failed_inferences"]:
        print(f"failed inferences in the examples: {ex['failed_inferences']}")
    print(f"total wall time: {result['wall_seconds']:.1f} s")


def main() -> None:
    p = _bench.parser(__doc__)
    p.add_argument("--reps", type=int, default=5, help="repetitions of every measurement (5)")
    args = p.parse_args()
    wall = time.perf_counter()
    result: dict[str, Any] = {"benchmark": "stack_lifecycle", "env": _bench.environment()}
    result["start"] = bench_start(args.reps)
    with LocalStack(default_config()) as stack:
        assert isinstance(stack, LocalStack)
        driver = Driver(stack)
        try:
            result["restart"] = bench_restart(stack, args.reps)
            result["detection"] = bench_detection(driver, args.reps)
            result["reset"] = bench_reset(driver, args.reps)
        finally:
            driver.close()
    result["wall_seconds"] = time.perf_counter() - wall
    report(result)
    _bench.emit(_bench.rounded(result), args.json)


if __name__ == "__main__":
    _bench.run(main)
