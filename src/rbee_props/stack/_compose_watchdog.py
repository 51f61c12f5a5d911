"""The watchdog of a compose run: when the controlling process dies, remove the run's containers.

``python -m rbee_props.stack._compose_watchdog --run-id RUN`` reads its stdin, a pipe whose write
end only the controlling process holds. End of file means the controller is gone (a normal stop,
a crash, or SIGKILL): the watchdog then removes every container, network and volume labelled
with the run and the run directory, and exits. It runs in its own session, so a Ctrl-C meant
for the controller does not reach it.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys

from rbee_props.errors import DockerUnavailable
from rbee_props.stack._docker import docker_client, remove_run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="rbee-compose-watchdog", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--run-dir", help="the run directory, removed last")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        while sys.stdin.buffer.read(4096):
            pass
    with contextlib.suppress(DockerUnavailable):
        remove_run(docker_client(), args.run_id)
    if args.run_dir:
        shutil.rmtree(args.run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
