"""ExternalStack: a stack someone else runs, known by URLs and a token, with no faults."""

from __future__ import annotations

import pytest

from rbee_props.config import ExternalConfig, default_config
from rbee_props.errors import ComponentDidNotStart, ConfigError, UnsupportedFault
from rbee_props.stack import ExternalStack, Fault

pytestmark = pytest.mark.stack


def external_config(stack, **extra):
    import attrs

    ext = ExternalConfig(
        queen_url=stack.urls["queen"], hive_urls=(stack.urls["hive1"], stack.urls["hive2"])
    )
    return attrs.evolve(
        default_config(), backend="external", external=ext, token_file=str(stack.token_file),
        **extra,
    )  # fmt: skip


def test_external_stack_reads_urls_and_token_and_injects_no_fault(make_local_stack):
    running = make_local_stack()
    stack = ExternalStack(external_config(running)).start()
    assert dict(stack.urls) == dict(running.urls)
    assert stack.token == running.token
    assert stack.capabilities == frozenset()
    for fault in Fault:
        assert not stack.supports(fault)
    with pytest.raises(UnsupportedFault, match="cannot inject 'kill'"):
        stack.kill("queen")
    stack.stop()  # nothing to stop: the stack belongs to someone else
    assert running.is_healthy("queen")


def test_external_stack_that_does_not_answer_is_a_clear_error(make_local_stack, tmp_path):
    running = make_local_stack()
    import attrs

    config = external_config(running, startup_timeout=1.0)
    config = attrs.evolve(config, external=ExternalConfig(queen_url="http://127.0.0.1:9"))
    with pytest.raises(ComponentDidNotStart, match="queen did not answer its health route"):
        ExternalStack(config).start()


def test_external_stack_needs_a_queen_url():
    import attrs

    with pytest.raises(ConfigError, match=r"needs \[stack.external\] queen_url"):
        ExternalStack(attrs.evolve(default_config(), backend="external"))
