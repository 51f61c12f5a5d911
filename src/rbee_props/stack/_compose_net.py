"""Network faults between compose services: partitions by network disconnect, slow links by netem.

A partition of ``a`` and ``b`` disconnects one of them (the one that is not the queen) from
every network the two share, except networks where containers cannot reach each other
(``com.docker.network.bridge.enable_icc=false``: they only carry published ports to the test
process). In the reference compose file each hive shares one internal network with the queen,
so exactly that pair is cut while the test still reaches both (C05). ``heal`` reconnects with
the same aliases.

Docker rewrites a container's ``/etc/hosts`` when it leaves or joins a network and drops the
``extra_hosts`` lines on the way (seen on Engine 20.10.24; moby/moby#34044 and #48857). The
reference hive resolves its own alias to 127.0.0.1 that way; cut off, it could no longer reach
its workers and evicted them (a false S03). So after every disconnect and reconnect the missing
``extra_hosts`` lines are written back.

A slow link is ``tc qdisc ... netem delay`` on both ends' interfaces of the shared networks,
where the kernel has netem and the container has NET_ADMIN (C14).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import attrs

from rbee_props.errors import StackError, UsageError

if TYPE_CHECKING:
    from docker.models.containers import Container

    import docker

__all__ = ["Cut", "Links", "keep_extra_hosts", "netem_works"]

NO_ICC = "com.docker.network.bridge.enable_icc"


@attrs.frozen
class Cut:
    """One disconnected (network, container) pair and the aliases to reconnect it with."""

    network: str
    container: str
    aliases: tuple[str, ...]


def _attached(container: Container) -> dict[str, dict[str, object]]:
    container.reload()
    return dict(container.attrs.get("NetworkSettings", {}).get("Networks") or {})


def _exec(container: Container, argv: list[str]) -> tuple[int, str]:
    result = container.exec_run(argv)
    return int(result.exit_code), result.output.decode(errors="replace").strip()


def keep_extra_hosts(container: Container) -> None:
    """Write back the ``extra_hosts`` lines docker dropped from ``container``'s ``/etc/hosts``.

    Best effort: an image without ``sh`` keeps docker's file (its programs then resolve those
    names through DNS, as docker left them).
    """
    import docker.errors

    container.reload()
    wanted = []
    for entry in container.attrs.get("HostConfig", {}).get("ExtraHosts") or ():
        name, _, address = str(entry).partition(":")
        if name and address:
            wanted.append(f"{address}\t{name}")
    if not wanted:
        return
    script = "".join(
        f"grep -qxF '{line}' /etc/hosts || printf '%s\\n' '{line}' >> /etc/hosts; "
        for line in wanted
    )
    with contextlib.suppress(docker.errors.APIError):
        _exec(container, ["sh", "-c", script])


def netem_works(container: Container) -> bool:
    """Whether ``tc netem`` works in ``container`` (kernel module present, NET_ADMIN, tc)."""
    import docker.errors

    try:
        code, _ = _exec(
            container, ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]
        )
        if code == 0:
            _exec(container, ["tc", "qdisc", "del", "dev", "lo", "root"])
    except docker.errors.APIError:
        return False
    return code == 0


class Links:
    """The partitions and slow links in force, and how to undo them."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.cuts: list[Cut] = []
        self.slowed: list[tuple[Container, str]] = []

    def _shared(self, a: Container, b: Container, names: tuple[str, str]) -> list[str]:
        import docker.errors

        nets_a, nets_b = _attached(a), _attached(b)
        cut_already = {c.network for c in self.cuts if c.container in (a.id, b.id)}
        shared = []
        for name in sorted((set(nets_a) | cut_already) & (set(nets_b) | cut_already)):
            try:
                options = self.client.networks.get(name).attrs.get("Options") or {}
            except docker.errors.NotFound:
                continue
            if str(options.get(NO_ICC, "true")).lower() != "false":
                shared.append(name)
        if not shared:
            msg = (
                f"{names[0]} and {names[1]} share no network on which containers reach each "
                "other, so there is no link between them to cut"
            )
            raise UsageError(msg)
        return shared

    def partition(self, a: Container, b: Container, names: tuple[str, str]) -> None:
        """Disconnect ``b`` from every network it shares with ``a`` (see the module docstring)."""
        import docker.errors

        for name in self._shared(a, b, names):
            settings = _attached(b).get(name)
            if settings is None:
                continue  # already cut
            short = (b.id or "")[:12]
            aliases = tuple(x for x in settings.get("Aliases") or () if x != short)  # type: ignore[attr-defined]
            try:
                self.client.networks.get(name).disconnect(b, force=True)
            except docker.errors.APIError as exc:
                msg = f"cannot disconnect {names[1]} from network {name}: {exc.explanation}"
                raise StackError(msg) from exc
            self.cuts.append(Cut(name, str(b.id), aliases))
            keep_extra_hosts(b)

    def slow(self, a: Container, b: Container, names: tuple[str, str], ms: int) -> None:
        """Delay every packet ``a`` and ``b`` send each other on their shared networks."""
        for name in self._shared(a, b, names):
            for container in (a, b):
                settings = _attached(container).get(name) or {}
                address = str(settings.get("IPAddress") or "")
                code, out = _exec(container, ["ip", "-o", "-4", "addr", "show"])
                iface = next(
                    (line.split()[1] for line in out.splitlines() if f" {address}/" in line), None
                )
                if code != 0 or iface is None or not address:
                    continue
                argv = ["tc", "qdisc", "replace", "dev", iface, "root", "netem", "delay", f"{ms}ms"]
                code, out = _exec(container, argv)
                if code != 0:
                    msg = f"tc netem in {container.name} failed: {out[:200]}"
                    raise StackError(msg)
                self.slowed.append((container, iface))

    def heal(self) -> None:
        """Reconnect every cut with its aliases and remove every netem delay."""
        import docker.errors

        for cut in self.cuts:
            with contextlib.suppress(docker.errors.NotFound):
                network = self.client.networks.get(cut.network)
                try:
                    network.connect(cut.container, aliases=list(cut.aliases))
                except docker.errors.APIError as exc:
                    if "already exists" not in str(exc.explanation):
                        msg = f"cannot reconnect to network {cut.network}: {exc.explanation}"
                        raise StackError(msg) from exc
                keep_extra_hosts(self.client.containers.get(cut.container))
        self.cuts.clear()
        for container, iface in self.slowed:
            with contextlib.suppress(docker.errors.APIError):
                _exec(container, ["tc", "qdisc", "del", "dev", iface, "root"])
        self.slowed.clear()
