"""The operator's health file (YAML, kept under version control): this host's services, their
checks and runbooks, and alert rules added to or replacing the defaults.

```yaml
dry_run: false              # true: every runbook says what it would do, and does nothing
services:
  - name: web
    zone: zone-a            # this instance's failure domain (required)
    checks:
      - {name: http, http: "http://127.0.0.1:8080/health", status: 200, body_contains: ok,
         interval: 10s, timeout: 3s, failures: 3, of: 5}
      - {name: tls, certificate: "127.0.0.1:443", min_days: 14, interval: 1h}
    remediation:
      restart_unit: web.service          # or restart_process, reload, command, failover
      budget: 3/1h                       # at most 3 attempts an hour, then the breaker opens
      backoff: 10s                       # doubled after each recent attempt ...
      backoff_max: 10m                   # ... up to this
      grace: 15s                         # then verified
      lease: true                        # false: act even when the collector cannot be asked
alerts:
  - name: disk-high                      # a default's name: replaces it
    metric: disk_used_percent
    op: ">"
    value: 80
    for: 5m
    severity: medium
    remediation:
      cleanup: {rotate: ["/var/log/app/*.log"], clear: ["/var/cache/app"], keep: 2}
  - {name: load-high, enabled: false}    # a default turned off
```

Errors name the file and the place in it (``$.services[0].checks[1]``) and say what to write.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import msgspec.yaml

from garrison.core.durations import duration
from garrison.core.errors import ConfigError
from garrison.host.alerts import DEFAULT_RULES, SEVERITIES, AlertRule
from garrison.host.checks import (
    CertificateCheck,
    Check,
    CommandCheck,
    HTTPCheck,
    ProcessCheck,
    SystemdCheck,
    TCPCheck,
    Verdict,
)
from garrison.host.cleanup import Cleanup
from garrison.host.guard import Limits
from garrison.host.monitor import Runbook, Service
from garrison.host.remediate import Action, CommandAction, RestartProcess, SystemdAction

Text = str | float


class _CheckSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    tcp: str = ""
    http: str = ""
    status: int = 200
    body_contains: str = ""
    max_latency: Text = ""
    ca_file: str = ""
    certificate: str = ""
    server_name: str = ""
    min_days: float = 14.0
    process: str = ""
    systemd: str = ""
    command: list[str] | str = ""
    interval: Text = "30s"
    timeout: Text = "5s"
    failures: int = 3
    of: int = 5


class _ProcessSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    match: str
    start: list[str] | str
    cwd: str = ""
    log_file: str = ""
    user: str = ""


class _CleanupSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    rotate: list[str] = msgspec.field(default_factory=list)
    clear: list[str] = msgspec.field(default_factory=list)
    keep: int = 2


class _RunbookSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    restart_unit: str = ""
    reload: str = ""
    restart_process: _ProcessSpec | None = None
    cleanup: _CleanupSpec | None = None
    failover: list[str] | str = ""
    command: list[str] | str = ""
    budget: str = "3/1h"
    backoff: Text = "10s"
    backoff_max: Text = "10m"
    grace: Text = "15s"
    dry_run: bool = False
    lease: bool = True


class _ServiceSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    zone: str
    checks: list[_CheckSpec]
    remediation: _RunbookSpec | None = None


class _AlertSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    enabled: bool = True
    metric: str = ""
    op: str = ">"
    value: float | bool | None = None
    for_: Text = msgspec.field(default="0s", name="for")
    severity: str | float = "medium"
    description: str = ""
    mount: str = ""
    remediation: _RunbookSpec | None = None


class _File(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    dry_run: bool = False
    services: list[_ServiceSpec] = msgspec.field(default_factory=list)
    alerts: list[_AlertSpec] = msgspec.field(default_factory=list)


class HealthConfig(msgspec.Struct, frozen=True):
    """What the monitor runs."""

    services: list[Service]
    rules: tuple[AlertRule, ...]
    dry_run: bool


def _argv(value: list[str] | str) -> tuple[str, ...]:
    return tuple(shlex.split(value) if isinstance(value, str) else value)


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{value!r}: write HOST:PORT")
    return host.strip("[]"), int(port)


def _check(spec: _CheckSpec) -> Check:
    interval, timeout = duration(spec.interval), duration(spec.timeout)
    kinds = [k for k in ("tcp", "http", "certificate", "process", "systemd", "command")
             if getattr(spec, k)]  # fmt: skip
    if len(kinds) != 1:
        raise ValueError(
            "a check is exactly one of tcp, http, certificate, process, systemd, command"
        )
    common: dict[str, Any] = {"name": spec.name, "interval_s": interval, "timeout_s": timeout}
    if spec.tcp:
        return TCPCheck(host=_host_port(spec.tcp)[0], port=_host_port(spec.tcp)[1], **common)
    if spec.http:
        return HTTPCheck(
            url=spec.http,
            status=spec.status,
            body_contains=spec.body_contains,
            max_seconds=duration(spec.max_latency) if spec.max_latency else None,
            ca_file=spec.ca_file or None,
            **common,
        )
    if spec.certificate:
        host, port = _host_port(spec.certificate)
        return CertificateCheck(
            host=host, port=port, min_days=spec.min_days, server_name=spec.server_name, **common
        )
    if spec.process:
        return ProcessCheck(process=spec.process, **common)
    if spec.systemd:
        return SystemdCheck(unit=spec.systemd, **common)
    return CommandCheck(argv=_argv(spec.command), **common)


def _limits(spec: _RunbookSpec) -> Limits:
    count, sep, window = spec.budget.partition("/")
    if not sep or not count.strip().isdigit():
        raise ValueError(f"budget {spec.budget!r}: write COUNT/DURATION, e.g. 3/1h")
    return Limits(
        budget=int(count),
        window_s=duration(window),
        backoff_s=duration(spec.backoff),
        backoff_max_s=duration(spec.backoff_max),
    )


def _action(spec: _RunbookSpec, protected: tuple[Path, ...]) -> Action:
    given: list[Action] = []
    if spec.restart_unit:
        given.append(SystemdAction("restart", spec.restart_unit))
    if spec.reload:
        given.append(SystemdAction("reload", spec.reload))
    if spec.restart_process is not None:
        p = spec.restart_process
        given.append(
            RestartProcess(
                p.match, _argv(p.start), p.cwd or None, p.log_file or None, p.user or None
            )
        )
    if spec.cleanup is not None:
        c = spec.cleanup
        given.append(Cleanup(tuple(c.rotate), tuple(c.clear), c.keep, protected))
    if spec.failover:
        given.append(CommandAction(_argv(spec.failover), kind="failover"))
    if spec.command:
        given.append(CommandAction(_argv(spec.command)))
    if len(given) != 1:
        raise ValueError(
            "a remediation is exactly one of restart_unit, reload, restart_process, cleanup, "
            "failover, command"
        )
    return given[0]


def _runbook(spec: _RunbookSpec, protected: tuple[Path, ...]) -> Runbook:
    return Runbook(
        _action(spec, protected), _limits(spec), duration(spec.grace), spec.dry_run, spec.lease
    )


def _severity(value: str | float) -> float:
    if isinstance(value, str):
        if value not in SEVERITIES:
            raise ValueError(f"severity {value!r}: write low, medium, high, critical or 1-10")
        return SEVERITIES[value]
    return float(value)


def _rules(
    specs: list[_AlertSpec], protected: tuple[Path, ...], where: str
) -> tuple[AlertRule, ...]:
    rules = {r.name: r for r in DEFAULT_RULES}
    for i, spec in enumerate(specs):
        place = f"{where}: $.alerts[{i}] ({spec.name})"
        try:
            if not spec.enabled:
                rules.pop(spec.name, None)
                continue
            base = rules.get(spec.name)
            if base is not None and not spec.metric:  # a default given a runbook or new limits
                rule = replace(
                    base,
                    remediation=_runbook(spec.remediation, protected) if spec.remediation else None,
                    mount=spec.mount or base.mount,
                )
            else:
                if not spec.metric or spec.value is None:
                    raise ValueError("an alert names a metric and a value (or a default's name)")
                rule = AlertRule(
                    name=spec.name,
                    metric=spec.metric,
                    op=spec.op,
                    value=spec.value,
                    for_s=duration(spec.for_),
                    severity=_severity(spec.severity),
                    description=spec.description,
                    mount=spec.mount,
                    remediation=_runbook(spec.remediation, protected) if spec.remediation else None,
                )
        except ValueError as exc:
            raise ConfigError(f"{place}: {exc}") from None
        rules[spec.name] = rule
    return tuple(rules.values())


def load(path: Path | None, *, protected: Iterable[Path] = ()) -> HealthConfig:
    """The health file at `path` (None: no services, the default alert rules); `protected`
    are paths no cleanup may touch beyond the built-in ones (Garrison's data dir)."""
    guarded = tuple(protected)
    if path is None:
        return HealthConfig([], DEFAULT_RULES, dry_run=False)
    try:
        raw = msgspec.yaml.decode(path.read_bytes(), type=_File)
    except OSError as exc:
        raise ConfigError(
            f"cannot read the health file {path}: {exc.strerror or exc}",
            hint="set agent_health to a readable YAML file, or empty for none",
        ) from None
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ConfigError(f"{path}: {exc}", hint="see docs/health.md for the format") from None
    services = []
    names: set[str] = set()
    for i, spec in enumerate(raw.services):
        place = f"{path}: $.services[{i}] ({spec.name})"
        if spec.name in names:
            raise ConfigError(f"{place}: a second service named {spec.name}")
        names.add(spec.name)
        checks = []
        for j, check in enumerate(spec.checks):
            try:
                checks.append((_check(check), Verdict(check.failures, check.of)))
            except ValueError as exc:
                raise ConfigError(f"{place}.checks[{j}] ({check.name}): {exc}") from None
        if not checks:
            raise ConfigError(f"{place}: a service has at least one check")
        try:
            runbook = _runbook(spec.remediation, guarded) if spec.remediation else None
        except ValueError as exc:
            raise ConfigError(f"{place}.remediation: {exc}") from None
        services.append(Service(spec.name, spec.zone, checks, runbook))
    return HealthConfig(services, _rules(raw.alerts, guarded, str(path)), dry_run=raw.dry_run)
