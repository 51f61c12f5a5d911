"""Processes a CLI test left behind: those of a run whose command line names the test's home."""

from __future__ import annotations

import psutil

from rbee_props.stack._processes import RUN_ENV


def leftover_processes(env: dict[str, str]) -> list[psutil.Process]:
    """Live processes of any rbee-props run started under ``env["RBEE_PROPS_HOME"]``."""
    home = env["RBEE_PROPS_HOME"]
    found = []
    for proc in psutil.process_iter():
        try:
            if RUN_ENV in proc.environ() and home in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            pass
    return found
