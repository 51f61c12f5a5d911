"""Free ports for a local run, chosen by the controller before anything starts.

Ports come from ``stack.ports`` when the config gives a range, else from 10000-32000, below
Linux's ephemeral range so that outgoing connections never take a port the stack was promised.
"""

from __future__ import annotations

import random
import socket

from rbee_props.errors import PortInUse

__all__ = ["PortPlan", "port_is_free"]

AUTO_RANGE = (10000, 32000)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``port`` can be bound on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class PortPlan:
    """Hands out free ports and contiguous blocks from one range, never the same port twice."""

    def __init__(self, port_range: tuple[int, int] | None, *, seed: int | None = None) -> None:
        self.explicit = port_range is not None
        self.low, self.high = port_range or AUTO_RANGE
        rng = random.Random(seed)
        self.next = self.low if self.explicit else rng.randrange(self.low, self.high - 2000)
        self.taken: set[int] = set()

    def _exhausted(self, need: int) -> PortInUse:
        where = f"stack.ports {self.low}-{self.high}" if self.explicit else "10000-32000"
        msg = (
            f"no {need} free port(s) left in {where}; widen stack.ports in rbee-props.toml or "
            "stop what holds those ports"
        )
        return PortInUse(msg, low=self.low, high=self.high)

    def take(self) -> int:
        """One free port."""
        return self.block(1)[0]

    def block(self, size: int) -> list[int]:
        """``size`` consecutive free ports."""
        start = self.next
        while start + size - 1 <= self.high:
            ports = list(range(start, start + size))
            bad = [p for p in ports if p in self.taken or not port_is_free(p)]
            if not bad:
                self.taken.update(ports)
                self.next = start + size
                return ports
            start = bad[-1] + 1
        raise self._exhausted(size)
