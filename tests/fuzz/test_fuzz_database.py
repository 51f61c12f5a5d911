"""The example database shared through a real Redis server: two worker processes, then a replay.

The test starts its own ``redis-server`` on a free loopback port (no persistence, its files in
the test's directory) and stops it; without the binary it is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest
import redis

from rbee_props.fuzz.database import KEY_PREFIX
from rbee_props.stack import poll_until
from tests.fuzz._cli import free_port, processes_of, rbee_props

pytestmark = pytest.mark.stack


@pytest.fixture
def redis_server(tmp_path) -> Iterator[tuple[str, redis.Redis]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(
            "redis-server is not installed (Debian: apt-get install redis-server), so the "
            "example database shared through Redis is not tested"
        )
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.exceptions.RedisError:
            return False

    try:
        poll_until(answers, 10, what="redis-server answers PING")
        yield f"redis://127.0.0.1:{port}/0", client
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=10)


def test_two_workers_share_a_redis_database_and_the_next_campaign_replays_it(
    tmp_path, redis_server
):
    url, client = redis_server
    env = dict(os.environ, RBEE_PROPS_HOME=str(tmp_path / "home"))
    common = ["--bugs", "text-errors", "--service", "queen", "--db", url, "--examples", "3"]
    first = rbee_props(
        "fuzz", *common, "--workers", "2", "--budget", "12s", "--seed", "9",
        "--out", str(tmp_path / "first"), env=env, cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 1, first.stdout + first.stderr
    assert "2 worker(s)" in first.stdout
    found = [line for line in first.stdout.splitlines() if line.startswith("FOUND")]
    directories = list((tmp_path / "first").iterdir())
    # one directory per signature, and each signature reported once, whichever worker found it
    assert len(found) == len(directories) > 0
    assert list(client.scan_iter(match=KEY_PREFIX + b"*", count=100))

    second = rbee_props(
        "fuzz", *common, "--budget", "1s", "--seed", "10", "--out", str(tmp_path / "second"),
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert second.returncode == 1, second.stdout + second.stderr
    replayed = [line for line in second.stdout.splitlines() if line.startswith("FOUND")]
    assert replayed and "replayed from the database" in replayed[0], second.stdout
    assert processes_of(env["RBEE_PROPS_HOME"]) == []
