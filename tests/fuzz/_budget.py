"""The fuzz suites' budget, shared by their modules: small by default, raised by env vars."""

from __future__ import annotations

import os

from rbee_props.fuzz.settings import FuzzSettings

#: where a schema points before a fixture aims it (the discard port: nothing answers)
UNAIMED = "http://127.0.0.1:9"
#: Hypothesis examples per operation (``RBEE_FUZZ_EXAMPLES``)
SETTINGS = FuzzSettings(max_examples=int(os.environ.get("RBEE_FUZZ_EXAMPLES", "25")))
#: scenarios per link-driven state machine (``RBEE_FUZZ_SCENARIOS``)
SCENARIOS = int(os.environ.get("RBEE_FUZZ_SCENARIOS", "12"))
