"""A finding as the exporter sees it: the violation, its minimal program, its history, its run.

A :class:`Finding` is the bundle that ``rbee-findings/<slug>/`` is written from, and the content
of its ``finding.json``, so that ``rbee-props replay`` and campaign reports can read it back
without the process that found it. Everything in it is plain JSON-like data (the program and
history are the dicts the machines record), already redacted by whoever recorded it; the
exporter redacts once more on the way out.
"""

from __future__ import annotations

import hashlib
import platform
import re
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any, Final, Protocol

import attrs

from rbee_props.findings import Violation

__all__ = ["FORMAT", "Finding", "current_versions", "slug_for"]

#: version of the finding.json layout; bumped when a field changes meaning
FORMAT: Final = 1
#: the longest directory name a slug may have (well under every filesystem's limit)
MAX_SLUG: Final = 80
_PACKAGES: Final = ("rbee-props", "hypothesis", "httpx", "attrs")
_PLAIN_SIGNATURE = re.compile(r"[A-Za-z0-9_]+(:[A-Za-z0-9_]*(,[A-Za-z0-9_]+)*)?")


def current_versions() -> dict[str, str]:
    """The versions a finding was made with: rbee-props, its main dependencies, Python, OS."""
    versions: dict[str, str] = {}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    versions["python"] = platform.python_version()
    versions["platform"] = f"{platform.system()} {platform.machine()}".strip()
    return versions


def slug_for(signature: str) -> str:
    """A filesystem-safe directory name for ``signature``, the same on every run and machine.

    ``S02:register_worker,register_duplicate`` becomes ``S02-register_worker-register_duplicate``.
    A signature with other characters than letters, digits and ``_`` (besides the ``:`` and
    ``,`` separators) is sanitised and gets a short hash of the original, so two odd signatures
    never share a directory; one longer than :data:`MAX_SLUG` is cut and gets the hash too.
    """
    digest = hashlib.sha256(signature.encode("utf-8")).hexdigest()[:8]
    name = re.sub(r"[^A-Za-z0-9_.]+", "-", signature)
    name = re.sub(r"\.{2,}", ".", name).strip("-.")
    plain = bool(_PLAIN_SIGNATURE.fullmatch(signature))
    if not name:
        return f"finding-{digest}"
    if plain and len(name) <= MAX_SLUG:
        return name
    head = name[: MAX_SLUG - len(digest) - 1].rstrip("-.")
    return f"{head}-{digest}" if head else f"finding-{digest}"


def _violation_to_json(violation: Violation) -> dict[str, Any]:
    return {
        "invariant": violation.invariant,
        "explains": violation.explains,
        "expected": violation.expected,
        "observed": violation.observed,
        "op_kinds": list(violation.op_kinds),
        "step": violation.step,
        "waited": violation.waited,
        "details": dict(violation.details),
        "signature": violation.signature,
    }


def _violation_from_json(data: Mapping[str, Any]) -> Violation:
    return Violation(
        data["invariant"],
        explains=data.get("explains", ""),
        expected=data.get("expected", ""),
        observed=data.get("observed", ""),
        op_kinds=data.get("op_kinds", ()),
        step=data.get("step"),
        waited=data.get("waited"),
        details=dict(data.get("details") or {}),
    )


def _dicts(items: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    return tuple(dict(item) for item in items)


class FailureLike(Protocol):
    """What :meth:`Finding.from_failure` reads (``rbee_props.machines.Failure`` has it)."""

    violation: Violation
    program: list[dict[str, Any]]
    history: list[dict[str, Any]]
    seed: int | None


@attrs.frozen(eq=True, hash=False)
class Finding:
    """One violated invariant with its minimal program, its HTTP history and how it was run.

    Attributes:
        violation: what was violated; its ``signature`` names the finding.
        program: the minimal program, one ``{"rule", "args", "at", "binds"?}`` dict per step;
            a worker id bound by an earlier step is ``{"$var": "v1"}``.
        history: the ops of that program's run, as ``Op.to_json()`` dicts (redacted).
        machine: the state machine that ran it (``"stack"``, ``"registry"``...).
        bugs: planted bugs of the reference stack that were switched on.
        config_path: the rbee-props.toml used; None for the built-in reference stack.
        backend: ``local``, ``compose`` or ``external``.
        seed: the Hypothesis seed of the run, when known.
        reproduced, attempts: the program failed ``reproduced`` times out of ``attempts``
            replays (the reproduction rate).
        versions: rbee-props, Hypothesis, Python... at the time (:func:`current_versions`).
        waited: how long an eventual invariant was waited for before it was declared violated.

    Equal when all fields are (the violation by its signature); not hashable, as it holds dicts.
    """

    violation: Violation
    program: tuple[dict[str, Any], ...] = attrs.field(converter=_dicts)
    history: tuple[dict[str, Any], ...] = attrs.field(converter=_dicts)
    machine: str = "stack"
    bugs: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    config_path: str | None = None
    backend: str = "local"
    seed: int | None = None
    reproduced: int = 1
    attempts: int = 1
    versions: Mapping[str, str] = attrs.field(factory=current_versions, converter=dict)
    waited: float | None = None

    @property
    def signature(self) -> str:
        """The violation's signature: ``<invariant>:<rule names of the program>``."""
        return self.violation.signature

    @property
    def slug(self) -> str:
        """The directory name of this finding under ``rbee-findings/`` (see :func:`slug_for`)."""
        return slug_for(self.signature)

    @property
    def rate(self) -> str:
        """The reproduction rate as ``k/n``."""
        return f"{self.reproduced}/{self.attempts}"

    @property
    def wait(self) -> float | None:
        """How long the invariant was waited for: this finding's, else the violation's."""
        return self.waited if self.waited is not None else self.violation.waited

    @classmethod
    def from_failure(cls, failure: FailureLike, **fields: Any) -> Finding:
        """A finding from a machine's recorded failure; ``fields`` give the run's settings."""
        fields.setdefault("seed", failure.seed)
        fields.setdefault("waited", failure.violation.waited)
        return cls(failure.violation, failure.program, failure.history, **fields)

    def to_json(self) -> dict[str, Any]:
        """The content of ``finding.json``."""
        return {
            "format": FORMAT,
            "signature": self.signature,
            "violation": _violation_to_json(self.violation),
            "program": [dict(step) for step in self.program],
            "history": [dict(op) for op in self.history],
            "machine": self.machine,
            "bugs": list(self.bugs),
            "config_path": self.config_path,
            "backend": self.backend,
            "seed": self.seed,
            "reproduced": self.reproduced,
            "attempts": self.attempts,
            "versions": dict(self.versions),
            "waited": self.waited,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        """Read back what :meth:`to_json` wrote."""
        return cls(
            _violation_from_json(data["violation"]),
            data.get("program", ()),
            data.get("history", ()),
            machine=data.get("machine", "stack"),
            bugs=data.get("bugs", ()),
            config_path=data.get("config_path"),
            backend=data.get("backend", "local"),
            seed=data.get("seed"),
            reproduced=data.get("reproduced", 1),
            attempts=data.get("attempts", 1),
            versions=data.get("versions", {}),
            waited=data.get("waited"),
        )
