"""The example database of a fuzz campaign: a directory, or Redis to share one over machines.

Hypothesis keeps every failing example it found (shrunk) in its example database, keyed by test;
a campaign that opens the same database replays them before it generates anything new. ``--db
DIR`` is a ``DirectoryBasedExampleDatabase`` (safe for several processes on one machine);
``--db redis://HOST:PORT[/N]`` a ``RedisExampleDatabase`` that any number of machines share.
Redis is checked with a PING up front, so an unreachable server is one clear error before any
stack starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from rbee_props.errors import UsageError

__all__ = ["DEFAULT_DB", "KEY_PREFIX", "open_database", "use_shared_hypothesis_home"]

#: where examples go without ``--db`` (next to Hypothesis' own ``.hypothesis/examples``)
DEFAULT_DB = Path(".hypothesis") / "rbee-fuzz"
#: prefix of every key rbee-props writes to a shared Redis
KEY_PREFIX = b"rbee-props-fuzz:"
CONNECT_TIMEOUT = 3.0


def use_shared_hypothesis_home() -> Path:
    """Keep Hypothesis' own caches in one place per user, not in the working directory.

    Hypothesis builds its tables of encodable characters once per home directory (``.hypothesis``
    in the working directory by default) and caches them there; a campaign started in a fresh
    directory would spend its first 10-30 s on that instead of fuzzing. The example database is
    not affected: campaigns always pass theirs explicitly. Call it once per process, before the
    first example (the CLI and each worker process do).
    """
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    home = cache / "rbee-props" / "hypothesis"
    set_hypothesis_home_dir(home)
    return home


def _redis(url: str) -> ExampleDatabase:
    try:
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase
    except ImportError:
        msg = (
            f"--db {url} needs the redis package; install it with: "
            "pip install 'rbee-props[redis]' (or pass --db DIR)"
        )
        raise UsageError(msg) from None
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=10.0
        )
    except ValueError as exc:
        msg = f"--db {url!r} is not a Redis URL ({exc}); expected redis://HOST:PORT[/DB]"
        raise UsageError(msg) from None
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        msg = (
            f"cannot reach the example database at {url} ({reason}); start redis-server "
            "there, fix the URL, or pass --db DIR for a local database"
        )
        raise UsageError(msg, url=url) from None
    return RedisExampleDatabase(client, key_prefix=KEY_PREFIX)


def open_database(spec: str | Path | None) -> tuple[ExampleDatabase, str]:
    """The database ``--db`` names, and how to show it.

    Args:
        spec: a directory, ``redis://HOST:PORT[/DB]``, or None for :data:`DEFAULT_DB`.

    Raises:
        UsageError: Redis is unreachable or not installed, or the directory cannot be used.
    """
    text = str(spec) if spec is not None else str(DEFAULT_DB)
    if text.startswith(("redis://", "rediss://", "unix://")):
        return _redis(text), text
    path = Path(text)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        msg = f"cannot use {text!r} as the example database ({reason}); pass a writable directory"
        raise UsageError(msg, path=text) from None
    return DirectoryBasedExampleDatabase(path), str(path)
