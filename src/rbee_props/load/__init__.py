"""Load runs against an rbee stack: fixed arrival rate, faults on a schedule, leak check (L01, L02).

``run_load(stack, LoadSpec(route, Load(rate=..., concurrency=..., duration=...), faults))``
drives one queen route from a generator that keeps its schedule whatever the server does (open
model: latency counts from when a request was due, not from when it could be sent), performs the
fault steps at their times, and compares the processes' RSS and descriptors before and after.
``render`` turns the result into tables and a PNG; ``rbee-props load`` is the command line.

Modules: ``schedule`` (durations, fault steps, fault windows), ``routes`` (what is requested),
``generator`` (when), ``stats`` (what it measured), ``resources`` (RSS and fds), ``workers``
(idle workers for inference), ``runner`` (one run), ``render`` (tables and plot).
"""

from rbee_props.load.generator import Load
from rbee_props.load.routes import ROUTES, Route, route_named
from rbee_props.load.runner import LoadResult, LoadSpec, run_load
from rbee_props.load.schedule import FaultWindow, parse_duration, parse_schedule
from rbee_props.load.stats import LoadStats, Percentiles, Series

__all__ = [
    "ROUTES",
    "FaultWindow",
    "Load",
    "LoadResult",
    "LoadSpec",
    "LoadStats",
    "Percentiles",
    "Route",
    "Series",
    "parse_duration",
    "parse_schedule",
    "route_named",
    "run_load",
]
