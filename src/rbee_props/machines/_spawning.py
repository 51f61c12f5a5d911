"""Spawning a worker through a hive, shared by the churn rules and the crash-restart fault."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

from rbee_props.findings import Violation
from rbee_props.invariants import explain
from rbee_props.machines._core import StackMachineBase
from rbee_props.model import Spawn

__all__ = ["MODEL_REF", "Spawner"]

MODEL_REF = "hf:rbee/tiny-model"


class Spawner(StackMachineBase):
    """``_spawn``: ask a hive for a worker, step the model, check the port it got (S08/S09)."""

    #: spawned workers alive at once: each is a process, and on a small host dozens of them
    #: starve each other past the health timeout, which the queen rightly answers by evicting
    #: them (a false alarm of the load the test itself made, not of the stack)
    max_live_spawned: ClassVar[int] = 6

    def room_to_spawn(self) -> bool:
        live = sum(w.alive and w.origin == "spawned" for w in self.model.workers.values())
        return live < self.max_live_spawned

    def _ports_in_use(self, worker_id: str) -> set[int]:
        """Ports held by the test's own listeners and by every other process the stack sees."""
        ports = set(self.ctx.held_ports())
        if self.stack.sees_processes:
            ports |= self.stack.ports_held_besides(worker_id)
        return ports

    def _spawn(self, hive: int | str) -> str:
        name = self.target("hive", hive)
        op = self.hive_clients[name].spawn(model_ref=MODEL_REF, timeout=self.patience(name, 5.0))
        body = op.body if op.ok and isinstance(op.body, dict) else {}
        worker_id, url = str(body.get("worker_id", "")), str(body.get("url", ""))
        self.call(Spawn(name, MODEL_REF, worker_id, url), op)
        if not op.ok or not worker_id:
            return self.fresh_id("unspawned")  # keeps the bundle independent of the outcome
        port = urlsplit(url).port
        if port is not None and port in self._ports_in_use(worker_id):
            self.fail(
                Violation(
                    "S09",
                    explains=explain("S09"),
                    expected="a port that no other process holds",
                    observed=f"{worker_id} got port {port}, which another process holds",
                )
            )
        return worker_id
