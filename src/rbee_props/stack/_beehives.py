"""Register a stack's hives as beehives at its queen (contract §5.1), as a backend does at start.

The queen reaches a hive at the ``ssh_host:hive_port`` of its beehive entry (D3), so each backend
names the address the *queen* sees: the local backend its fault-proxy link, the compose backend
the hive's alias on the network it shares with the queen. 409 (already there) is fine: a
restarted queen keeps its beehive registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx

from rbee_props.errors import ComponentDidNotStart

__all__ = ["register_beehives"]


def register_beehives(
    queen_url: str,
    token: str,
    hives: Mapping[str, tuple[str, int]],
    *,
    describe: Callable[[str], str],
) -> None:
    """Add each hive ``name -> (host, port)`` as a beehive at the queen.

    Raises:
        ComponentDidNotStart: the queen did not answer, or refused an entry.
    """
    headers = {"Authorization": f"Bearer {token}"}
    for hive, (host, port) in hives.items():
        body = {
            "node_name": hive,
            "ssh_host": host,
            "ssh_user": "rbee",
            "git_repo_url": "https://github.com/veighnsche/llama-orch.git",
            "git_branch": "main",
            "install_path": "/opt/rbee",
            "hive_port": port,
        }
        try:
            response = httpx.post(
                queen_url + "/v2/registry/beehives/add", json=body, headers=headers, timeout=10
            )
        except httpx.HTTPError as exc:
            msg = f"the queen did not accept beehive {hive}: {type(exc).__name__}"
            raise ComponentDidNotStart(msg, component="queen") from exc
        if response.status_code not in (200, 201, 409):
            msg = (
                f"the queen answered {response.status_code} to adding beehive {hive}; "
                f"expected 200 (contract §5.1); {describe('queen')}"
            )
            raise ComponentDidNotStart(msg, component="queen")
