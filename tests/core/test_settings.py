"""Typed settings: defaults, file and environment precedence, and clear errors for bad values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from garrison.core.errors import ConfigError
from garrison.core.settings import load


def test_defaults() -> None:
    """With nothing set, the embedded default listens on loopback with SQLite."""
    s = load(environ={})
    assert (s.host, s.port, s.database_url) == ("127.0.0.1", 8443, "")
    assert s.console_url == "https://127.0.0.1:8443"


def test_environment_overrides_file(tmp_path: Path) -> None:
    """GARRISON_* variables win over garrison.toml, which wins over defaults."""
    cfg = tmp_path / "garrison.toml"
    cfg.write_text('port = 9443\nhost = "::1"\nlog_level = "debug"\n')
    s = load(cfg, environ={"GARRISON_PORT": "10443"})
    assert (s.port, s.host, s.log_level) == (10443, "::1", "debug")
    assert s.console_url == "https://[::1]:10443"


def test_agent_watch_is_a_list_in_toml_and_comma_separated_in_the_environment(
    tmp_path: Path,
) -> None:
    """A TOML array can hold any source (commas in a regex too); the environment splits on ','."""
    cfg = tmp_path / "garrison.toml"
    cfg.write_text("agent_watch = ['regex:(?P<n>\\d{1,3}),x:app:/var/log/a.log']\n")
    assert load(cfg, environ={}).agent_watch == [r"regex:(?P<n>\d{1,3}),x:app:/var/log/a.log"]
    env = {"GARRISON_AGENT_WATCH": "sshd:ssh:/var/log/auth.log, jsonl:app:/srv/app.log"}
    assert load(environ=env).agent_watch == ["sshd:ssh:/var/log/auth.log", "jsonl:app:/srv/app.log"]
    cfg.write_text('agent_watch = "sshd:ssh:/var/log/auth.log"\n')
    with pytest.raises(ConfigError, match=r"agent_watch.*a list of FORMAT:STREAM:PATH"):
        load(cfg, environ={})


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"GARRISON_PORT": "abc"}, ["port", "'abc'", "GARRISON_PORT", "1 to 65535"]),
        ({"GARRISON_PORT": "70000"}, ["port", "70000", "1 to 65535"]),
        ({"GARRISON_LOG_LEVEL": "loud"}, ["log_level", "loud", "debug, info"]),
        ({"GARRISON_PROT": "1"}, ["GARRISON_PROT", "GARRISON_PORT"]),
        ({"GARRISON_DATABASE_URL": "mysql://u:hunter2@h/db"}, ["database_url", "postgresql://"]),
        ({"GARRISON_PUBLIC_URL": "http://example.test"}, ["public_url", "https://"]),
    ],
)
def test_bad_environment_is_named(env: dict[str, str], words: list[str]) -> None:
    """A wrong value names the key, the value, where it came from and what is allowed."""
    with pytest.raises(ConfigError) as info:
        load(environ=env)
    for word in words:
        assert word in str(info.value)
    assert "hunter2" not in str(info.value)


def test_unknown_key_in_file(tmp_path: Path) -> None:
    """A typo in garrison.toml stops start-up and lists the allowed keys."""
    cfg = tmp_path / "garrison.toml"
    cfg.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'prot'.*allowed keys: .*port"):
        load(cfg, environ={})


def test_invalid_toml(tmp_path: Path) -> None:
    """A file that is not TOML is reported with the parser's position."""
    cfg = tmp_path / "garrison.toml"
    cfg.write_text("port = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(cfg, environ={})


def test_cli_exits_2_naming_the_key(tmp_path: Path) -> None:
    """`GARRISON_PORT=abc garrison config check` exits 2 and says which key is wrong."""
    env = {"PATH": "/usr/bin:/bin", "GARRISON_PORT": "abc", "GARRISON_DATA_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "garrison", "config", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "port" in proc.stderr
    assert "abc" in proc.stderr
