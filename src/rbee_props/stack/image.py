"""The stack image of the compose backend: built offline, cached by the hash of its inputs.

Two images, each tagged with a content hash of what went into it and labelled with the whole
hash (``rbee-props.inputs``), so that a second build with nothing changed only looks them up:

``rbee-props/base:<hash>``
    A minimal Debian with python3, made by ``debootstrap`` from the host's apt mirror and
    ``docker import`` (``_debootstrap.py``): no registry needed. Skipped when ``base_image``
    names an image the user has (e.g. ``python:3.11-slim`` where images can be pulled).
``rbee-props/stack:<hash>``
    ``compose/Dockerfile`` on that base, with rbee-props and its dependencies installed from
    wheels built on the host (``_wheels.py``) and ``pip install --no-index``. Its hash covers
    the Dockerfile, the base image id and every source file of rbee-props, so any change to the
    reference stack rebuilds it (only the last layers: the dependencies' layer is cached).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from rbee_props.errors import StackError
from rbee_props.stack._debootstrap import BASE_PACKAGES, build_base_image, host_apt_source
from rbee_props.stack._docker import docker_client
from rbee_props.stack._wheels import build_wheels, project_root, sources_digest

if TYPE_CHECKING:
    import docker

__all__ = [
    "IMAGE_ENV",
    "INPUTS_LABEL",
    "BuiltImage",
    "cache_root",
    "compose_dir",
    "ensure_stack_image",
    "stack_image",
]

INPUTS_LABEL = "rbee-props.inputs"
#: names an image to run instead of the one built for the current sources
IMAGE_ENV = "RBEE_PROPS_STACK_IMAGE"
_SEEN: dict[str, str] = {}


def cache_root() -> Path:
    """Where wheels and downloaded packages are cached (``RBEE_PROPS_CACHE`` or ~/.cache)."""
    base = os.environ.get("RBEE_PROPS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rbee-props"
    )
    return Path(base) / "image"


def compose_dir() -> Path:
    """``compose/`` of the source checkout: the reference compose file and the Dockerfile."""
    return project_root() / "compose"


@attrs.frozen
class BuiltImage:
    """The stack image: its tag, whether this call built anything, and where time went."""

    tag: str
    base: str
    built: bool
    seconds: float
    steps: dict[str, float] = attrs.field(factory=dict)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _find(client: docker.DockerClient, tag: str, inputs: str) -> str | None:
    """The id of image ``tag`` when it was built from ``inputs``, else None."""
    import docker.errors

    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    labels = image.attrs.get("Config", {}).get("Labels") or {}
    return str(image.id) if labels.get(INPUTS_LABEL) == inputs else None


def _ensure_base(
    client: docker.DockerClient, prefix: str, cache: Path, steps: dict[str, float]
) -> tuple[str, str]:
    """The debootstrapped base image (built now if missing): its tag and id."""
    source = host_apt_source()
    inputs = _digest(source.suite, source.mirror, ",".join(BASE_PACKAGES), platform.machine())
    tag = f"{prefix}/base:{inputs[:12]}"
    found = _find(client, tag, inputs)
    if found is None:
        started = time.monotonic()
        build_base_image(
            client, tag=tag, source=source, cache_dir=cache, labels={INPUTS_LABEL: inputs}
        )
        steps["base image (debootstrap + import)"] = time.monotonic() - started
        found = _find(client, tag, inputs)
        assert found is not None, f"{tag} missing right after its import"
    return tag, found


def _user_base(client: docker.DockerClient, name: str) -> str:
    import docker.errors

    try:
        return str(client.images.get(name).id)
    except docker.errors.ImageNotFound:
        pass
    try:
        return str(client.images.pull(name).id)
    except docker.errors.APIError as exc:
        msg = (
            f"base image {name!r} is not on this machine and cannot be pulled "
            f"({exc.explanation}); omit --base-image to build one from Debian's packages"
        )
        raise StackError(msg) from exc


def _prune(client: docker.DockerClient, repository: str, keep: str) -> None:
    """Remove older images of ``repository`` (those in use by a container stay)."""
    import docker.errors

    for image in client.images.list(name=repository):
        if image.id != keep:
            for tag in image.tags:
                with contextlib.suppress(docker.errors.APIError):
                    client.images.remove(tag, noprune=False)


def ensure_stack_image(
    *,
    client: docker.DockerClient | None = None,
    base_image: str | None = None,
    force: bool = False,
    prefix: str = "rbee-props",
    on_progress: Callable[[str], None] | None = None,
) -> BuiltImage:
    """Return the stack image for the current sources, building what is missing.

    Args:
        base_image: an image with python3 to build on; None makes one with debootstrap.
        force: rebuild the stack image even when one with the same inputs exists.
        prefix: repository prefix of both images (benchmarks use their own).

    Raises:
        DockerUnavailable: no engine answers.
        StackError: an image could not be built; the message names the step and its log.
    """
    import docker.errors

    started = time.monotonic()
    client = client or docker_client(timeout=600)
    progress = on_progress or (lambda _: None)
    cache = cache_root()
    steps: dict[str, float] = {}
    root = project_root()
    dockerfile = (root / "compose" / "Dockerfile").read_text()
    if base_image is None:
        progress("base image: a minimal Debian made by debootstrap (cached once built)")
        base_name, base_id = _ensure_base(client, prefix, cache, steps)
    else:
        base_name, base_id = base_image, _user_base(client, base_image)
    inputs = _digest(dockerfile, base_id, sources_digest(root))
    tag = f"{prefix}/stack:{inputs[:12]}"
    if not force and _find(client, tag, inputs):
        return BuiltImage(tag, base_name, False, time.monotonic() - started, steps)
    progress(f"building {tag} on {base_name}")
    with tempfile.TemporaryDirectory(prefix="context-", dir=_mkdir(cache)) as tmp:
        context = Path(tmp)
        shutil.copy2(root / "compose" / "Dockerfile", context / "Dockerfile")
        step = time.monotonic()
        build_wheels(root, cache / "wheels", context / "wheels")
        steps["wheels (pip wheel)"] = time.monotonic() - step
        step = time.monotonic()
        try:
            image, _ = client.images.build(
                path=str(context), tag=tag, buildargs={"BASE_IMAGE": base_name},
                labels={INPUTS_LABEL: inputs}, rm=True, forcerm=True, pull=False,
            )  # fmt: skip
        except docker.errors.BuildError as exc:
            lines = [str(c.get("stream") or c.get("error") or "").strip() for c in exc.build_log]
            tail = " | ".join(line for line in lines if line)[-300:]
            msg = f"docker build of {tag} failed: {exc.msg}; last output: {tail}"
            raise StackError(msg) from exc
        except docker.errors.APIError as exc:
            msg = f"docker build of {tag} failed: {exc.explanation}"
            raise StackError(msg) from exc
        steps["stack image (docker build)"] = time.monotonic() - step
    image.tag(f"{prefix}/stack", "latest")
    _prune(client, f"{prefix}/stack", keep=str(image.id))
    return BuiltImage(tag, base_name, True, time.monotonic() - started, steps)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def stack_image(client: docker.DockerClient) -> str:
    """The image a compose run uses: ``$RBEE_PROPS_STACK_IMAGE``, else the one for the sources
    as this process first saw them (built once per process at most: the reference programs in
    the containers then match the rbee-props this process imported).

    Raises:
        StackError: the named image does not exist, or none can be built.
    """
    import docker.errors

    named = os.environ.get(IMAGE_ENV)
    if named:
        try:
            client.images.get(named)
        except docker.errors.ImageNotFound as exc:
            msg = f"{IMAGE_ENV}={named} names no image on this machine; unset it or build it"
            raise StackError(msg) from exc
        return named
    seen = _SEEN.get("tag")
    if seen is not None:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.get(seen)
            return seen
    _SEEN["tag"] = ensure_stack_image(client=client).tag
    return _SEEN["tag"]
