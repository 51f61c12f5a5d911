"""The watchdog of a local run: when the controlling process dies, kill the whole run.

``python -m rbee_props.stack.watchdog --run-id RUN`` reads its stdin, a pipe whose write end
only the controlling process holds. End of file means the controller is gone (a normal stop, a
crash, or SIGKILL): the watchdog then kills every process of the run, orphaned workers
included, and exits. It runs in its own session so that a Ctrl-C meant for the controller does
not reach it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys

from rbee_props.stack._processes import reap_run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rbee-watchdog", description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        while sys.stdin.buffer.read(4096):
            pass
    reap_run(args.run_id, exclude=(os.getpid(),))


if __name__ == "__main__":
    main()
