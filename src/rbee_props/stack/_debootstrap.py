"""A base image without a registry: a minimal Debian root filesystem made by ``debootstrap``.

No image can be pulled on a machine without a container registry, but Debian's packages can be
installed. ``build_base_image`` bootstraps the suite and mirror the host's apt already uses
(``/etc/os-release``, ``/etc/apt/sources.list(.d)``) with python3 and the tools the compose
backend needs inside a container (``iproute2`` for ``tc``, ``procps`` for ``pkill``), then
imports the tree with ``docker import``. The downloaded packages are kept in a cache directory,
so a rebuild does not download them again.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from rbee_props.errors import StackError

if TYPE_CHECKING:
    import docker

__all__ = ["BASE_PACKAGES", "AptSource", "build_base_image", "host_apt_source"]

#: python3 and venv (pip comes with ensurepip), tc and ip, ps and pkill
BASE_PACKAGES = ("python3", "python3-venv", "iproute2", "procps")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@attrs.frozen
class AptSource:
    """Where Debian's packages come from: the suite (``bookworm``) and its mirror URL."""

    suite: str
    mirror: str


def _os_release(path: Path) -> dict[str, str]:
    out = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                out[key.strip()] = value.strip().strip('"')
    return out


def _mirrors(apt_dir: Path) -> list[tuple[str, list[str]]]:
    """(URI, suites) of every ``deb`` source, one-line and deb822 formats alike."""
    found: list[tuple[str, list[str]]] = []
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for file in files:
        try:
            text = file.read_text()
        except OSError:
            continue
        if file.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(
                    (k.strip().lower(), v.strip())
                    for k, _, v in (line.partition(":") for line in stanza.splitlines())
                    if not k.startswith("#") and v
                )
                if "deb" in fields.get("types", "").split() and "uris" in fields:
                    suites = fields.get("suites", "").split()
                    found += [(uri, suites) for uri in fields["uris"].split()]
        else:
            for line in text.splitlines():
                parts = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
                if len(parts) >= 3 and parts[0] == "deb":
                    found.append((parts[1], [parts[2]]))
    return found


def host_apt_source(*, root: Path = Path("/")) -> AptSource:
    """The host's Debian suite and the mirror its apt uses for that suite.

    Raises:
        StackError: the host is not Debian, or no apt source serves its suite.
    """
    release = _os_release(root / "etc/os-release")
    suite = release.get("VERSION_CODENAME", "")
    if release.get("ID") != "debian" or not suite:
        msg = (
            f"building a base image needs a Debian host (found {release.get('PRETTY_NAME', '?')}); "
            "pass --base-image NAME of an image with python3 instead"
        )
        raise StackError(msg)
    for uri, suites in _mirrors(root / "etc/apt"):
        if suite in suites:
            return AptSource(suite=suite, mirror=uri)
    msg = f"no apt source in /etc/apt serves {suite}; add one, or pass --base-image NAME"
    raise StackError(msg)


def _unmount_below(target: Path) -> None:
    """Undo mounts an interrupted debootstrap left inside ``target`` (proc, sys)."""
    with contextlib.suppress(OSError):
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted(mounts, key=len, reverse=True):
            if mount.startswith(str(target) + "/"):
                subprocess.run(["umount", "-l", mount], check=False, capture_output=True)


def _debootstrap(source: AptSource, target: Path, cache: Path, log: Path) -> None:
    exe = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None
    )
    if exe is None:
        msg = (
            "debootstrap is not installed, so no base image can be made here; install it "
            "(apt-get install -y debootstrap) or pass --base-image NAME of an image you have"
        )
        raise StackError(msg)
    if os.geteuid() != 0:
        msg = (
            "debootstrap needs root to make the base image; run `rbee-props image build` once "
            "as root, or pass --base-image NAME of an image you have"
        )
        raise StackError(msg)
    cache.mkdir(parents=True, exist_ok=True)
    argv = [
        exe, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
        f"--cache-dir={cache}", source.suite, str(target), source.mirror,
    ]  # fmt: skip
    with log.open("wb") as out:
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        msg = (
            f"debootstrap of {source.suite} from {source.mirror} failed (exit {done.returncode}): "
            f"{tail}; full log in {log}"
        )
        raise StackError(msg)


def _slim(root: Path) -> None:
    """Drop what a container never needs: package lists, downloaded .debs, docs."""
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
        path = root / sub
        if path.is_dir():
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                elif child.name != "lock":
                    child.unlink(missing_ok=True)


def build_base_image(
    client: docker.DockerClient,
    *,
    tag: str,
    source: AptSource,
    cache_dir: Path,
    labels: dict[str, str],
) -> None:
    """Bootstrap ``source`` into a temporary directory and import it as image ``tag``.

    Raises:
        StackError: debootstrap is missing, not root, the mirror failed, or the import failed.
    """
    import docker.errors

    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache_dir))
    target = work / "rootfs"
    try:
        _debootstrap(source, target, cache_dir / "debs", cache_dir / "debootstrap.log")
        _slim(target)
        tarball = work / "rootfs.tar"
        subprocess.run(
            ["tar", "-C", str(target), "--numeric-owner", "-cf", str(tarball), "."],
            check=True,
            capture_output=True,
        )
        changes = [f"ENV PATH={PATH}", 'CMD ["python3"]']
        changes += [f"LABEL {key}={value}" for key, value in labels.items()]
        repository, _, version = tag.rpartition(":")
        try:
            client.api.import_image_from_file(
                str(tarball), repository=repository, tag=version, changes=changes
            )
        except docker.errors.APIError as exc:
            msg = f"docker import of the {source.suite} root filesystem failed: {exc.explanation}"
            raise StackError(msg) from exc
    except subprocess.CalledProcessError as exc:
        msg = f"packing the root filesystem failed: {exc.stderr.decode(errors='replace')[:200]}"
        raise StackError(msg) from exc
    finally:
        _unmount_below(target)
        shutil.rmtree(work, ignore_errors=True)
