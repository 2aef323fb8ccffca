"""The health file: what it builds, and mistakes refused with the place and what to write."""

from __future__ import annotations

from pathlib import Path

import pytest

from garrison.core.errors import ConfigError
from garrison.host import config
from garrison.host.alerts import DEFAULT_RULES
from garrison.host.checks import CertificateCheck, HTTPCheck
from garrison.host.cleanup import Cleanup
from garrison.host.remediate import RestartProcess, SystemdAction

TCP = "{name: c, tcp: 'h:1'}"
BAD_BUDGET = "command: x, budget: lot"


def _load(tmp_path: Path, text: str) -> config.HealthConfig:
    path = tmp_path / "health.yml"
    path.write_text(text)
    return config.load(path)


def test_services_rules_and_runbooks(tmp_path: Path) -> None:
    loaded = _load(
        tmp_path,
        """
dry_run: true
services:
  - name: web
    zone: fsn1
    checks:
      - {name: http, http: "http://127.0.0.1:8080/health", body_contains: ok, interval: 10s,
         timeout: 3s, failures: 2, of: 4, max_latency: 500ms}
      - {name: tls, certificate: "127.0.0.1:8443", min_days: 21}
    remediation: {restart_unit: nginx.service, budget: 5/30m, backoff: 2s, grace: 20s}
  - name: worker
    zone: fsn1
    checks: [{name: proc, process: gunicorn}]
    remediation:
      restart_process:
        {match: "gunicorn app:wsgi", start: "/usr/bin/gunicorn app:wsgi", user: www-data}
alerts:
  - name: disk-high
    remediation: {cleanup: {rotate: ["/var/log/app/*.log"]}}
  - {name: load-high, enabled: false}
  - {name: swap, metric: swap_used_percent, op: ">", value: 50, for: 10m, severity: critical}
""",
    )
    assert loaded.dry_run
    web, worker = loaded.services
    (http, http_verdict), (tls, _) = web.checks
    assert isinstance(http, HTTPCheck)
    assert http.max_seconds == 0.5
    assert (http_verdict.failures, http_verdict.of) == (2, 4)
    assert isinstance(tls, CertificateCheck)
    assert tls.min_days == 21
    assert web.remediation is not None
    assert web.remediation.action == SystemdAction("restart", "nginx.service")
    assert (web.remediation.limits.budget, web.remediation.limits.window_s) == (5, 1800)
    assert worker.remediation is not None
    assert isinstance(worker.remediation.action, RestartProcess)
    assert worker.remediation.action.user == "www-data"
    rules = {r.name: r for r in loaded.rules}
    assert "load-high" not in rules
    assert isinstance(rules["disk-high"].remediation.action, Cleanup)
    assert rules["disk-high"].for_s == 300, "the default's condition is kept"
    assert rules["swap"].severity == 9.0
    assert len(rules) == len(DEFAULT_RULES) - 1 + 1


def test_no_file_means_the_defaults() -> None:
    loaded = config.load(None)
    assert loaded.services == []
    assert loaded.rules == DEFAULT_RULES


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "services: [{name: a, zone: z, checks: []}]",
            r"\$.services\[0\] \(a\): a service has at least one check",
        ),
        (
            "services: [{name: a, checks: [{name: c, tcp: 'x:1'}]}]",
            r"missing required field `zone`",
        ),
        (
            "services: [{name: a, zone: z, checks: [{name: c}]}]",
            r"checks\[0\] \(c\): a check is exactly one",
        ),
        (
            "services: [{name: a, zone: z, checks: [{name: c, tcp: 'h:1', interval: soon}]}]",
            r"duration 'soon'",
        ),
        (
            "services: [{name: a, zone: z, checks: [{name: c, tcp: 'h:1', failures: 4, of: 2}]}]",
            r"1 <= N <= M",
        ),
        (
            "services: [{name: a, zone: z, checks: [{name: c, http: 'http://192.0.2.1/'}]}]",
            r"https://, or http:// to loopback",
        ),
        (
            f"services: [{{name: a, zone: z, checks: [{TCP}], remediation: {{budget: 3/1h}}}}]",
            r"remediation: a remediation is exactly one",
        ),
        (
            f"services: [{{name: a, zone: z, checks: [{TCP}], remediation: {{{BAD_BUDGET}}}}}]",
            r"budget 'lot'",
        ),
        (
            "alerts: [{name: service-down, remediation: {command: x}}]",
            r"runbook goes under the service",
        ),
        ("alerts: [{name: x, metric: cpu_percent, value: 1, op: '~'}]", r"op is one of"),
        ("alerts: [{name: x, metric: cpu_percent, value: 1, severity: dire}]", r"severity 'dire'"),
        ("alerts: [{name: x}]", r"names a metric and a value"),
        ("whatever: 1", r"unknown field `whatever`"),
        ("services: {", r"health.yml"),
    ],
)
def test_mistakes_are_refused_with_the_place(tmp_path: Path, text: str, said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        _load(tmp_path, text)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the health file"):
        config.load(tmp_path / "missing.yml")
