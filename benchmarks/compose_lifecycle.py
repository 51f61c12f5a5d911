"""Lifecycle costs of the compose backend, side by side with the local backend, in one run.

What is measured (clocks are ``time.perf_counter``):

(a) Image build (``rbee-props image build``): "cold" builds both images under a prefix of their
    own (``rbee-props-bench/...``) with an empty cache directory, so debootstrap downloads every
    .deb from the mirror, pip builds the rbee-props wheel and collects the dependency wheels
    (pip's own HTTP cache of this machine is *not* emptied), and docker builds without a layer
    cache; "cached" is the same call again with nothing changed (the inputs are hashed and two
    images looked up). The bench images are removed at the end. ``--skip-cold`` leaves it out.
(b) Start: ``stack.start()`` until every component answered its health route, on fresh stacks,
    ``--reps`` times per backend: ComposeStack of ``compose/docker-compose.yml`` (the stack image
    given, so no build is timed) and LocalStack of the same reference programs; ``stop()`` too.
(c) Fault to detected for a killed worker: spawn a worker on hive1, wait until the queen lists
    it, ``stack.kill_worker(id)`` (local: SIGKILL by pid; compose: ``pkill`` through
    ``docker exec`` in the hive container), then poll until hive1 and the queen no longer list
    it. Times count from the start of the ``kill_worker`` call. ``--reps`` times per backend.
(d) Compose only, fault to detected for a killed hive container: ``docker kill`` of hive1 (its
    worker dies with it), then poll until the queen no longer lists the worker; the contract's
    bound is the grace window G (health failures x interval + kill grace + 1 s).

How to read it: (b) is what a session pays once; (c) and (d) should stay below G, and the gap
between the backends in (c) is the cost of reaching processes through the engine. Figures vary
by machine and load (2 shared cores here); compare runs on the same machine. The last stdout
line is the figures as JSON (``--json FILE`` also writes them); JSON times are seconds.

Run: ``.venv/bin/python benchmarks/compose_lifecycle.py [--reps N] [--skip-cold] [--json FILE]``.
Needs a Docker Engine; every container, network, volume and process it starts is removed on
exit, on error and on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

import _bench
import httpx

from rbee_props.config import default_config
from rbee_props.stack import LocalStack, Stack, poll_until
from rbee_props.stack._docker import docker_client
from rbee_props.stack.compose import ComposeStack
from rbee_props.stack.image import IMAGE_ENV, ensure_stack_image, stack_image

SPAWN_BODY = {"model_ref": "hf:rbee/tiny-model", "backend": "cpu", "device": 0}
BENCH_PREFIX = "rbee-props-bench"
LABELS = {
    "hive": "hive1 drops it",
    "queen": "queen drops it",
    "queen_after_hive_kill": "queen drops it (hive container killed)",
}


def progress(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


def make(backend: str) -> Stack:
    import attrs

    config = attrs.evolve(default_config(), backend=backend)
    return ComposeStack(config) if backend == "compose" else LocalStack(config)


def bench_image(client: Any, skip_cold: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    saved = os.environ.get("RBEE_PROPS_CACHE")
    with tempfile.TemporaryDirectory(prefix="rbee-bench-cache-") as cache:
        try:
            if not skip_cold:
                os.environ["RBEE_PROPS_CACHE"] = cache
                progress("cold image build (debootstrap, wheels, docker build)")
                took, built = _bench.timed(
                    lambda: ensure_stack_image(client=client, prefix=BENCH_PREFIX)
                )
                out["cold"] = {"seconds": took, "steps": built.steps}
                took, again = _bench.timed(
                    lambda: ensure_stack_image(client=client, prefix=BENCH_PREFIX)
                )
                out["cached"] = {"seconds": took, "built": again.built}
            else:
                took, again = _bench.timed(lambda: ensure_stack_image(client=client))
                out["cached"] = {"seconds": took, "built": again.built}
        finally:
            if saved is None:
                os.environ.pop("RBEE_PROPS_CACHE", None)
            else:
                os.environ["RBEE_PROPS_CACHE"] = saved
            for image in client.images.list(name=f"{BENCH_PREFIX}/stack") + client.images.list(
                name=f"{BENCH_PREFIX}/base"
            ):
                for tag in image.tags:
                    client.images.remove(tag, force=True)
    return out


def bench_start(backend: str, reps: int) -> dict[str, Any]:
    starts, stops = [], []
    for rep in range(reps):
        progress(f"{backend} start {rep + 1}/{reps}")
        stack = make(backend)
        try:
            took, _ = _bench.timed(stack.start)
            starts.append(took)
        finally:
            took, _ = _bench.timed(stack.stop)
            stops.append(took)
    return {"start": _bench.summary(starts), "stop": _bench.summary(stops)}


def listed(stack: Stack, component: str) -> set[str]:
    route, key = (
        ("/v2/workers/list", "worker_id") if component == "queen" else ("/v1/workers/list", "id")
    )
    headers = {"Authorization": f"Bearer {stack.token}"}
    body = httpx.get(stack.urls[component] + route, headers=headers, timeout=2).json()
    return {w[key] for w in body["workers"]}


def spawn(stack: Stack) -> str:
    headers = {"Authorization": f"Bearer {stack.token}"}
    response = httpx.post(
        stack.urls["hive1"] + "/v1/workers/spawn", json=SPAWN_BODY, headers=headers, timeout=10
    )
    worker_id = str(response.json()["worker_id"])
    poll_until(lambda: worker_id in listed(stack, "queen"), 30, what="queen lists the worker")
    return worker_id


def bench_detection(backend: str, reps: int) -> dict[str, Any]:
    stack = make(backend)
    hive, queen, hive_kill = [], [], []
    try:
        stack.start()
        grace = stack.config.grace_seconds
        for rep in range(reps):
            progress(f"{backend} kill_worker {rep + 1}/{reps}")
            worker_id = spawn(stack)
            start = time.perf_counter()
            stack.kill_worker(worker_id)
            poll_until(lambda w=worker_id: w not in listed(stack, "hive1"), 30)
            hive.append(time.perf_counter() - start)
            poll_until(lambda w=worker_id: w not in listed(stack, "queen"), 30)
            queen.append(time.perf_counter() - start)
        if backend == "compose":
            for rep in range(reps):
                progress(f"compose kill of the hive1 container {rep + 1}/{reps}")
                worker_id = spawn(stack)
                start = time.perf_counter()
                stack.kill("hive1")
                poll_until(lambda w=worker_id: w not in listed(stack, "queen"), 30)
                hive_kill.append(time.perf_counter() - start)
                stack.start_component("hive1")
    finally:
        stack.stop()
    out = {"grace": grace, "hive": _bench.summary(hive), "queen": _bench.summary(queen)}
    if hive_kill:
        out["queen_after_hive_kill"] = _bench.summary(hive_kill)
    return out


def report(result: dict[str, Any]) -> None:
    image = result["image"]
    rows = []
    if "cold" in image:
        rows.append(["cold (nothing cached)", _bench.s(image["cold"]["seconds"])])
        rows += [[f"  {step}", _bench.s(sec)] for step, sec in image["cold"]["steps"].items()]
    rows.append(["cached (nothing changed)", _bench.s(image["cached"]["seconds"])])
    _bench.table("(a) stack image build, seconds", ["build", "seconds"], rows)
    rows = []
    for backend in ("local", "compose"):
        for what in ("start", "stop"):
            fig = result["start"][backend][what]
            rows.append(
                [f"{backend} {what}", fig["n"], _bench.s(fig["median"]), _bench.s(fig["max"])]
            )
    _bench.table("(b) stack start until healthy / stop, seconds", ["", "n", "median", "max"], rows)
    rows = []
    for backend in ("local", "compose"):
        fig = result["detection"][backend]
        for key, label in LABELS.items():
            if key in fig:
                rows.append([f"{backend}: {label}", fig[key]["n"], _bench.s(fig[key]["median"]),
                             _bench.s(fig[key]["max"]), _bench.s(fig["grace"])])  # fmt: skip
    _bench.table("(c, d) fault to detected, seconds", ["", "n", "median", "max", "G"], rows)


def main() -> None:
    p = _bench.parser(__doc__)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--skip-cold", action="store_true", help="leave out the cold image build")
    args = p.parse_args()
    client = docker_client()
    result: dict[str, Any] = {"environment": _bench.environment(), "reps": args.reps}
    result["image"] = bench_image(client, args.skip_cold)
    os.environ[IMAGE_ENV] = stack_image(client)  # (b)-(d) time no image build
    result["start"] = {b: bench_start(b, args.reps) for b in ("local", "compose")}
    result["detection"] = {b: bench_detection(b, args.reps) for b in ("local", "compose")}
    report(result)
    _bench.emit(_bench.rounded(result), args.json)


if __name__ == "__main__":
    _bench.run(main)
