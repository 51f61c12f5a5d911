"""The package's public names, and what starting a reference program costs in imports."""

from __future__ import annotations

import subprocess
import sys

import rbee_props


def test_every_public_name_resolves():
    assert sorted(rbee_props.__all__) == sorted(rbee_props._HOMES)
    for name in rbee_props.__all__:
        assert getattr(rbee_props, name).__name__ == name
    assert set(rbee_props.__all__) <= set(dir(rbee_props))


def test_a_reference_program_does_not_import_the_testing_machinery():
    """Every spawn starts a worker; Hypothesis and the machines cost it 0.4 s of imports."""
    code = (
        "import sys\n"
        "import rbee_props.reference.worker, rbee_props.reference.hive\n"
        "import rbee_props.reference.queen\n"
        "heavy = sorted(m for m in ('hypothesis', 'rbee_props.machines', 'schemathesis')"
        " if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
