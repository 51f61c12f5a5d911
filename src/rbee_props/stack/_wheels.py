"""The wheels the stack image installs with no package index: rbee-props and its dependencies.

Both are built on the host with ``pip wheel`` (which may use the host's index and pip cache),
into a cache directory: the dependencies once per set of requirements, rbee-props itself from a
copy of its sources (so nothing is written into the working tree) whenever they change. Inside
the image build, ``pip install --no-index`` sees only these files.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from rbee_props.errors import StackError

__all__ = ["SOURCE_FILES", "build_wheels", "project_root", "sources_digest"]

#: what goes into the rbee-props wheel (and so into the image's content hash)
SOURCE_FILES = ("pyproject.toml", "README.md", "src/rbee_props")


def project_root() -> Path:
    """The source checkout rbee-props runs from.

    Raises:
        StackError: rbee-props is installed without its sources (no ``pyproject.toml``).
    """
    root = Path(__file__).resolve().parents[3]
    if not (root / "pyproject.toml").is_file() or not (root / "src" / "rbee_props").is_dir():
        msg = (
            f"the stack image is built from a source checkout of rbee-props, and {root} is none; "
            "install rbee-props from its repository (pip install -e .) to build images"
        )
        raise StackError(msg)
    return root


def _files(root: Path) -> list[Path]:
    out = []
    for name in SOURCE_FILES:
        path = root / name
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            out += sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            )
    return out


def sources_digest(root: Path) -> str:
    """sha256 over the relative path and content of every file the rbee-props wheel holds."""
    digest = hashlib.sha256()
    for path in _files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _requirements_digest(root: Path) -> str:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    text = "\n".join(sorted(project.get("dependencies", [])))
    return hashlib.sha256(f"{sys.version_info[:2]}\n{text}".encode()).hexdigest()[:16]


def _pip(args: list[str], log: Path, what: str) -> None:
    with log.open("ab") as out:
        done = subprocess.run(
            [sys.executable, "-m", "pip", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        msg = f"pip wheel of {what} failed (exit {done.returncode}): {tail}; full log in {log}"
        raise StackError(msg)


def build_wheels(root: Path, cache: Path, context: Path) -> None:
    """Put the dependency wheels in ``context/deps`` and the rbee-props wheel in ``context/app``.

    Raises:
        StackError: pip is missing or a wheel could not be built (the log names why).
    """
    cache.mkdir(parents=True, exist_ok=True)
    log = cache / "pip-wheel.log"
    log.write_text("")
    with tempfile.TemporaryDirectory(prefix="src-", dir=cache) as tmp:
        src = Path(tmp) / "rbee-props"
        for path in _files(root):
            dest = src / path.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
        deps = cache / f"deps-{_requirements_digest(root)}"
        if not (deps / ".complete").is_file():
            shutil.rmtree(deps, ignore_errors=True)
            _pip(["wheel", "--quiet", "--wheel-dir", str(deps), str(src)], log, "the dependencies")
            for wheel in deps.glob("rbee_props-*.whl"):
                wheel.unlink()
            (deps / ".complete").write_text("")
        app = context / "app"
        _pip(
            ["wheel", "--quiet", "--no-deps", "--wheel-dir", str(app), str(src)], log, "rbee-props"
        )
    shutil.copytree(deps, context / "deps", ignore=shutil.ignore_patterns(".complete"))
