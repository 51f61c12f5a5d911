"""Churn rules: spawn workers, send ready callbacks, run inference, let time pass (S05-S15)."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from rbee_props.findings import Violation
from rbee_props.invariants import explain
from rbee_props.machines._bundles import hive_index, spawned
from rbee_props.machines._core import passes_time, recorded
from rbee_props.machines._spawning import MODEL_REF, Spawner
from rbee_props.model import Inference, ReadyCallback
from rbee_props.snapshot import listed_from
from rbee_props.stack._ports import port_is_free

__all__ = ["ChurnRules", "stream_problems"]


def stream_problems(events: list[object], max_tokens: int) -> list[str]:
    """What is wrong with an inference stream (S15): numbering, count, the end, ``[DONE]``."""
    problems = []
    tokens = [e for e in events if isinstance(e, dict) and e.get("type") == "token"]
    ends = [e for e in events if isinstance(e, dict) and e.get("type") == "end"]
    if [t.get("i") for t in tokens] != list(range(len(tokens))):
        problems.append(f"token indices {[t.get('i') for t in tokens]} are not 0..n-1")
    if len(tokens) > max_tokens:
        problems.append(f"{len(tokens)} tokens for max_tokens={max_tokens}")
    if len(ends) != 1 or ends[0].get("tokens_out") != len(tokens):
        problems.append(f"end event {ends} does not report tokens_out={len(tokens)}")
    if not events or events[-1] != "[DONE]":
        problems.append("the stream does not end with [DONE]")
    return problems


class ChurnRules(Spawner):
    """Workers come and go through the hives; inference goes through the queen."""

    @initialize(target=spawned, hive=hive_index)
    @recorded
    def first_worker(self, hive: int) -> str:
        """Every example starts with one worker: most faults need a worker to act on."""
        return self._spawn(hive)

    @precondition(lambda self: self.room_to_spawn())
    @rule(target=spawned, hive=hive_index)
    @recorded
    def spawn(self, hive: int) -> str:
        """S08/S09: a spawn answers 200 loading on a port no other process holds."""
        return self._spawn(hive)

    @precondition(lambda self: bool(self.stack.worker_ports))
    @rule(hive=hive_index)
    @recorded
    def occupy_port(self, hive: int) -> None:
        """S09: hold the lowest free port of a hive's worker range from the test process.

        A foreign listener (or an orphan) holds that port now; the hive must skip it. Ports the
        hive has already handed to a live worker are left alone even while free: a worker that
        is still loading may not have bound its port yet, and taking it would kill the worker
        at start-up, which is the test's doing, not the hive's.
        """
        low, high = self.stack.worker_ports[self.target("hive", hive)]
        handed_out = {
            urlsplit(w.url).port for s in self.models for w in s.workers.values() if w.alive
        }
        for port in range(low, high + 1):
            if port not in handed_out and port_is_free(port) and self.ctx.hold_port(port):
                return

    @rule(hive=hive_index)
    @recorded
    def ready_unknown(self, hive: int) -> None:
        """S05: a ready callback for an id the hive never spawned is 404."""
        name = self.target("hive", hive)
        worker_id = self.fresh_id("stray")
        op = self.hive_clients[name].ready(
            worker_id, url="http://127.0.0.1:9", model_ref=MODEL_REF, timeout=2.0
        )
        self.call(ReadyCallback(name, worker_id), op)

    @rule(worker_id=spawned)
    @recorded
    def ready_again(self, worker_id: str) -> None:
        """S05: a second ready callback for an idle worker is 409 (nothing returns to loading)."""
        worker = self.model.workers.get(worker_id)
        name = worker.node if worker else self.stack.hives[0]
        if not self.model.hives[name].up or self._still_loading(name, worker_id):
            return
        op = self.hive_clients[name].ready(
            worker_id, url=worker.url if worker else "http://127.0.0.1:9", model_ref=MODEL_REF,
            timeout=2.0,
        )  # fmt: skip
        self.call(ReadyCallback(name, worker_id), op)

    def _still_loading(self, hive: str, worker_id: str) -> bool:
        """Whether ``hive`` lists the worker as loading: its own ready callback is still on its
        way (e.g. the hive is registering it at a paused queen), so a ready now is the first one
        and 200 is right. The rule is about a worker that is no longer loading: it waits."""
        op = self.hive_clients[hive].list_workers(timeout=self.patience(hive, 2.0))
        listed = listed_from(op.body, id_key="id", node=hive) if op.ok else None
        return any(e.worker_id == worker_id and e.state == "loading" for e in listed or ())

    @rule(max_tokens=st.integers(min_value=1, max_value=6))
    @recorded
    def inference(self, max_tokens: int) -> None:
        """S13/S15: inference reaches an idle registered worker and streams a well-formed answer."""
        op = self.queen.inference(
            prompt="hello rbee", max_tokens=max_tokens, timeout=self.patience("queen", 10.0)
        )
        self.call(Inference(max_tokens), op)
        if op.ok:
            events = op.body.get("events", []) if isinstance(op.body, dict) else []
            problems = stream_problems(events, max_tokens)
            if problems:
                self.fail(
                    Violation(
                        "S15",
                        explains=explain("S15"),
                        expected="tokens 0..n-1, tokens_out = n <= max_tokens, then [DONE]",
                        observed="; ".join(problems),
                    )
                )

    @rule()
    @recorded
    @passes_time
    def let_time_pass(self) -> None:
        """S18/S03: after (N + 1) health intervals, the monitors have acted; nothing changed.

        The quiet period starts once the stack shows what the last fault left (``settle_first``):
        after ``crash_restart`` the hive's new worker may still be loading, and its monitor only
        starts probing it once it is ready, so a wait counted from the fault could end before
        the N sweeps an eviction takes, and the convergence after it would pass before they do.
        """
        self.settle_first()
        timings = self.ctx.config.timings
        # the operation *is* the passage of time: the monitors must not evict served workers
        time.sleep((timings.health_failures + 1) * timings.health_interval)
