"""Config loading: defaults, lookup order, overrides and the errors a user sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from rbee_props.config import Config, Timings, load_config, parse_config
from rbee_props.errors import ConfigError, ExitCode

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_no_config_is_the_reference_stack_with_one_queen_and_two_hives(tmp_path):
    config = load_config(cwd=tmp_path)
    assert config.backend == "local"
    assert config.hive.count == 2
    assert config.is_reference
    assert "{port}" in config.queen.command


def test_grace_follows_the_contract_formula_and_can_be_overridden():
    timings = Timings(health_interval=0.5, health_failures=3, kill_grace=2.0)
    assert timings.grace == pytest.approx((3 + 1) * 0.5 + 2.0 + 1.0)
    assert Config(timings=timings, grace=9.0).grace_seconds == 9.0


def test_timings_become_rbee_env_vars():
    env = Timings(health_interval=0.25).as_env()
    assert env["RBEE_HEALTH_INTERVAL"] == "0.25"
    assert env["RBEE_KILL_GRACE"] == "1"


def test_rbee_props_toml_wins_over_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.rbee-props.stack.hive]\ncount = 5\n")
    assert load_config(cwd=tmp_path).hive.count == 5
    (tmp_path / "rbee-props.toml").write_text("[stack.hive]\ncount = 3\n")
    assert load_config(cwd=tmp_path).hive.count == 3


def test_cli_overrides_apply_after_the_file(tmp_path):
    (tmp_path / "rbee-props.toml").write_text("[stack]\nbugs = ['dup-register']\n")
    config = load_config(cwd=tmp_path, overrides={"bugs": ["ghost-after-kill"], "hives": 1})
    assert config.bugs == ("ghost-after-kill",)
    assert config.hive.count == 1


def test_the_upstream_example_parses():
    config = load_config(EXAMPLES / "upstream-rbee.toml")
    assert config.queen.command[0] == "queen-rbee"
    assert config.hive.command[:2] == ("rbee-hive", "daemon")
    assert config.queen.env["LLORCH_API_TOKEN"] == "{token}"
    assert not config.is_reference
    assert "S02:register_worker,register_duplicate" in config.known


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stack": {"bakend": "local"}}, "unknown key stack.bakend (did you mean 'backend'?)"),
        ({"stack": {"backend": "k8s"}}, "stack.backend must be one of local, compose, external"),
        ({"stak": {}}, "unknown key (top level).stak (did you mean 'stack'?)"),
        ({"stack": {"hive": {"count": 0}}}, "stack.hive.count must be an integer >= 1, got 0"),
        ({"stack": {"timings": {"kill_grace": "1s"}}}, "stack.timings.kill_grace must be a number"),
        ({"stack": {"queen": {"command": "queen-rbee"}}}, "stack.queen.command must be a list"),
        ({"stack": {"queen": {"command": ["q", "{prot}"]}}}, "unknown placeholder {prot}"),
        ({"stack": {"queen": {"command": ["q", "{port"]}}}, "malformed placeholder"),
        ({"stack": {"queen": {"env": {"T": "{tokn}"}}}}, "(did you mean 'token'?)"),
        ({"stack": {"queen": {"health": "health"}}}, "a path starting with '/'"),
        ({"stack": {"queen": {"count": 2}}}, "unknown key stack.queen.count"),
        ({"stack": {"ports": "9-8"}}, "stack.ports must be"),
        ({"stack": {"bugs": ["dup-registr"]}}, "did you mean 'dup-register'"),
    ],
)
def test_each_mistake_names_the_key_and_what_was_expected(data, message):
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="rbee-props.toml")
    assert message in str(info.value)
    assert info.value.exit_code == ExitCode.USAGE
    assert "\n" not in str(info.value)


def test_a_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_invalid_toml_is_a_config_error(tmp_path):
    bad = tmp_path / "rbee-props.toml"
    bad.write_text("[stack\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
