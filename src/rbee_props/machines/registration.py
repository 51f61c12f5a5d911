"""Registration rules: register, duplicate register, shutdown at the queen (S01, S02, S04)."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import rule

from rbee_props.machines._bundles import phantoms, spawned
from rbee_props.machines._core import StackMachineBase, recorded
from rbee_props.model import RegisterWorker, ShutdownWorker

__all__ = ["RegistrationRules"]

PHANTOM_MODEL = "hf:rbee/phantom"
PHANTOM_NODE = "phantom-node"


class RegistrationRules(StackMachineBase):
    """Workers registered by hand at the queen, answered by rbee-props' phantom workers."""

    @rule(target=phantoms)
    @recorded
    def register_worker(self) -> object:
        """S02: a new id is registered (200/201) and listed by the queen.

        Phantoms claim a node that is not a beehive: the queen reconciles the workers of each
        beehive with that hive's own list (D3), and no hive lists a phantom.
        """
        worker_id = self.fresh_id("phantom")
        url = self.ctx.phantoms.lease(worker_id)
        if url is None:
            return worker_id  # pool exhausted: the id stays unknown to the stack
        op = self.queen.register_worker(
            worker_id, url=url, model_ref=PHANTOM_MODEL, node_name=PHANTOM_NODE, timeout=2.0
        )
        self.call(RegisterWorker(worker_id, PHANTOM_NODE, url, PHANTOM_MODEL), op)
        return worker_id

    @rule(worker_id=st.one_of(phantoms, spawned))
    @recorded
    def register_duplicate(self, worker_id: str) -> None:
        """S01/S02: registering a present id again is 409 and changes nothing (D1)."""
        worker = self.model.workers.get(worker_id)
        if worker is None or self.model.presence_at_queen(worker) != "must":
            # not certainly listed now (a spawned worker the queen will list once it is ready
            # is not yet, and may not even listen): nothing to duplicate
            return
        op = self.queen.register_worker(
            worker_id,
            url=worker.url,
            model_ref=worker.model_ref,
            node_name=worker.node,
            timeout=2.0,
        )
        self.call(RegisterWorker(worker_id, worker.node, worker.url, worker.model_ref), op)

    @rule(worker_id=st.one_of(phantoms, spawned))
    @recorded
    def shutdown_worker(self, worker_id: str) -> None:
        """S04: shutdown removes a registered worker (its process exits); unknown ids are 404."""
        op = self.queen.shutdown_worker(worker_id, timeout=self.patience("queen", 3.0))
        self.call(ShutdownWorker(worker_id), op)

    @rule()
    @recorded
    def shutdown_unknown(self) -> None:
        """S04: shutting down an id nobody registered is 404."""
        worker_id = self.fresh_id("ghost")
        op = self.queen.shutdown_worker(worker_id, timeout=2.0)
        self.call(ShutdownWorker(worker_id), op)
