"""One typed settings object, read from `garrison.toml` and `GARRISON_*` environment variables.

Precedence, lowest first: built-in defaults, the TOML file (``--config``, ``GARRISON_CONFIG`` or
``./garrison.toml`` when present), then ``GARRISON_<KEY>`` environment variables. Anything unknown
or out of range raises `ConfigError` naming the key, the bad value, where it came from and what is
allowed; the CLI turns that into exit code 2.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec

from garrison.core.errors import ConfigError
from garrison.core.redact import redact_url
from garrison.core.roles import ROLE_NAMES
from garrison.core.urls import https_or_loopback

ENV_PREFIX = "GARRISON_"
#: Environment variables with the prefix that are not settings keys.
ENV_NOT_SETTINGS = frozenset({"GARRISON_CONFIG"})

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Minutes = Annotated[int, msgspec.Meta(ge=1, le=7 * 24 * 60)]
Hours = Annotated[int, msgspec.Meta(ge=1, le=24 * 30)]
Days = Annotated[int, msgspec.Meta(ge=1, le=3650)]
CertMinutes = Annotated[int, msgspec.Meta(ge=5, le=1440)]
LogLevel = Literal["debug", "info", "warning", "error"]


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every operator-facing setting of Garrison, with its default."""

    data_dir: str = "garrison-data"
    host: str = "127.0.0.1"
    port: Port = 8443
    public_url: str = ""
    database_url: str = ""
    log_level: LogLevel = "info"
    session_idle_minutes: Minutes = 30
    session_absolute_hours: Hours = 12
    setup_link_minutes: Minutes = 60
    retention_audit_days: Days = 400
    retention_days: Days = 90
    digest_export_dir: str = ""
    digest_webhook_url: str = ""
    host_cert_minutes: CertMinutes = 60
    collector_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    agent_watch: list[str] = msgspec.field(default_factory=list)
    syslog_tls_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    detect_rules: list[str] = msgspec.field(default_factory=list)
    detect_allowlist: list[str] = msgspec.field(default_factory=list)
    detect_ip_lists: str = ""
    notify_routes: list[str] = msgspec.field(default_factory=list)
    notify_smtp_url: str = ""
    notify_email_from: str = ""
    notify_max_per_minute: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    respond_command: str = ""
    respond_min_severity: Annotated[float, msgspec.Meta(ge=1, le=10)] = 7.0
    respond_dry_run: bool = True
    respond_block_seconds: Annotated[int, msgspec.Meta(ge=60, le=30 * 86400)] = 3600
    ssh_cert_hours: Annotated[int, msgspec.Meta(ge=1, le=168)] = 8
    ssh_cert_max_hours: Annotated[int, msgspec.Meta(ge=1, le=168)] = 24
    ssh_host_cert_days: Annotated[int, msgspec.Meta(ge=1, le=365)] = 30
    ssh_role_hours: list[str] = msgspec.field(default_factory=list)
    ssh_principals: list[str] = msgspec.field(default_factory=lambda: ["root:role-admin"])
    agent_manage_ssh: bool = False
    agent_metrics_listen: Annotated[
        str, msgspec.Meta(pattern=r"^$|^(\[[0-9A-Fa-f:]+\]|[0-9.]+):\d{1,5}$")
    ] = "127.0.0.1:9108"
    ssh_bastion: Annotated[str, msgspec.Meta(pattern=r"^$|^[A-Za-z0-9.-]+(:\d{1,5})?$")] = ""
    agent_health: str = ""
    agent_silent_minutes: Annotated[int, msgspec.Meta(ge=1, le=1440)] = 5

    @property
    def collector_listen_port(self) -> int:
        """The collector's port: `collector_port`, or the console's port + 1."""
        return self.collector_port or self.port + 1

    @property
    def data_path(self) -> Path:
        """The data directory, absolute."""
        return Path(self.data_dir).resolve()

    @property
    def console_url(self) -> str:
        """Base URL people use to reach the console (no trailing slash)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"


#: What each key accepts, in words, for error messages and `garrison config show`.
ALLOWED: dict[str, str] = {
    "data_dir": "a directory path",
    "host": "an IP address or host name to listen on",
    "port": "an integer from 1 to 65535",
    "public_url": "an https:// URL, or empty to derive it from host and port",
    "database_url": "empty for SQLite in the data dir, or postgresql://user:pass@host:port/db",
    "log_level": "one of debug, info, warning, error",
    "session_idle_minutes": "an integer from 1 to 10080",
    "session_absolute_hours": "an integer from 1 to 720",
    "setup_link_minutes": "an integer from 1 to 10080",
    "retention_audit_days": "days to keep the audit stream, 1 to 3650",
    "retention_days": "days to keep every other log stream, 1 to 3650",
    "digest_export_dir": "empty, or a directory outside the store host's disk (a mount) where "
    "the digest public key and every new digest are copied",
    "digest_webhook_url": "empty, or an https:// URL that receives every new digest as JSON",
    "host_cert_minutes": "lifetime of host client certificates in minutes, 5 to 1440",
    "collector_port": "the collector's port for agents (mTLS), 1 to 65535, or 0 for port + 1",
    "agent_watch": "a list of FORMAT:STREAM:PATH the local agent follows (in the environment: "
    "comma-separated); empty for the auth and nginx logs",
    "syslog_tls_port": "0 (off), or the port of the syslog-over-TLS listener (RFC 5425)",
    "detect_rules": "a list of folders of Sigma rules the detector adds to its catalog "
    "(in the environment: comma-separated)",
    "detect_allowlist": "a list of addresses or CIDRs whose events never produce findings "
    "(your offices, monitoring; in the environment: comma-separated)",
    "detect_ip_lists": "empty, or a folder of IP lists (NAME.txt or NAME.csv, one address or "
    "CIDR per line) that tag events with threat_lists",
    "notify_routes": "a list of KIND:MIN_SEVERITY:TARGET where new findings go: "
    "webhook:4:https://..., slack:7:https://..., email:4:ops@example.com "
    "(in the environment: comma-separated)",
    "notify_smtp_url": "empty, or smtps://user:password@host:465 or smtp://...:587 (STARTTLS) "
    "for e-mail routes",
    "notify_email_from": "the From address of notification mails (empty: garrison@ this host)",
    "notify_max_per_minute": "messages per route and minute before a digest, 1 to 1000",
    "respond_command": "empty, or the command (and arguments) that blocks a finding's source",
    "respond_min_severity": "the lowest severity responded to, 1 to 10 (7: high and above)",
    "respond_dry_run": "true (say what would be done) or false (run respond_command)",
    "respond_block_seconds": "how long a block lasts, passed to the command, 60 to 2592000",
    "ssh_cert_hours": "default lifetime of SSH user certificates in hours, 1 to 168",
    "ssh_cert_max_hours": "the longest SSH user certificate anyone may get, 1 to 168 hours",
    "ssh_host_cert_days": "lifetime of SSH host certificates in days, 1 to 365",
    "ssh_role_hours": "a list of ROLE:HOURS, the longest SSH certificate each role may hold "
    "(within ssh_cert_max_hours; in the environment: comma-separated)",
    "ssh_principals": "a list of ACCOUNT:PRINCIPAL: who may log in as which account on hosts "
    "(in the environment: comma-separated)",
    "agent_manage_ssh": "true: the agent keeps the host's sshd trusting Garrison's certificates",
    "agent_metrics_listen": "ADDRESS:PORT on loopback where the agent serves /metrics "
    "(Prometheus text format), or empty for none",
    "ssh_bastion": "empty, or HOST[:PORT] of the SSH bastion that ssh_config snippets jump through",
    "agent_health": "empty (metrics and the default alert rules only), or the health file (YAML) "
    "of this host's services, checks, runbooks and alert rules; see docs/health.md",
    "agent_silent_minutes": "minutes without metrics from a host before it is reported silent, "
    "1 to 1440",
}

_FIELDS = {f.name: f.type for f in msgspec.structs.fields(Settings)}


def _convert(key: str, value: object, source: str) -> object:
    try:
        return msgspec.convert(value, _FIELDS[key], strict=False)
    except msgspec.ValidationError:
        raise ConfigError(
            f"invalid setting {key}={value!r} (from {source}): expected {ALLOWED[key]}"
        ) from None


def _check_semantics(values: Mapping[str, object], sources: Mapping[str, str]) -> None:
    url = str(values.get("database_url", ""))
    if url and urlsplit(url).scheme not in {"postgres", "postgresql"}:
        raise ConfigError(
            f"invalid setting database_url={redact_url(url)!r} (from {sources['database_url']}): "
            f"expected {ALLOWED['database_url']}"
        )
    hook = str(values.get("digest_webhook_url", ""))
    if hook and not https_or_loopback(hook):
        raise ConfigError(
            f"invalid setting digest_webhook_url={hook!r} "
            f"(from {sources['digest_webhook_url']}): expected {ALLOWED['digest_webhook_url']}"
        )
    from garrison.detect.notify import Route, smtp_parts  # noqa: PLC0415  # their own checks
    from garrison.ssh.hosts import parse_principals  # noqa: PLC0415

    checks: tuple[tuple[str, Callable[[str], object]], ...] = (
        ("notify_routes", Route.parse),
        ("notify_smtp_url", smtp_parts),
        ("ssh_principals", lambda spec: parse_principals([spec])),
        ("ssh_role_hours", _role_hours_check),
    )
    for key, check in checks:
        specs = values.get(key) or []
        for spec in specs if isinstance(specs, list) else [specs]:
            try:
                check(str(spec))
            except ConfigError as exc:
                raise ConfigError(
                    f"invalid setting {key} (from {sources[key]}): {exc.message}",
                    hint=exc.hint or f"expected {ALLOWED[key]}",
                ) from None
    default_hours = values.get("ssh_cert_hours", Settings.ssh_cert_hours)
    max_hours = values.get("ssh_cert_max_hours", Settings.ssh_cert_max_hours)
    if isinstance(default_hours, int) and isinstance(max_hours, int) and default_hours > max_hours:
        raise ConfigError(
            f"ssh_cert_hours={default_hours} is longer than ssh_cert_max_hours={max_hours}",
            hint="the default lifetime must be within the maximum",
        )
    public = str(values.get("public_url", ""))
    if public and urlsplit(public).scheme != "https":
        raise ConfigError(
            f"invalid setting public_url={public!r} (from {sources['public_url']}): "
            f"expected {ALLOWED['public_url']}"
        )


def _role_hours_check(spec: str) -> None:
    role, _, hours = spec.partition(":")
    if role not in ROLE_NAMES or not hours.isdigit() or not 1 <= int(hours) <= 168:
        raise ConfigError(
            f"ssh_role_hours entry {spec!r} is not ROLE:HOURS",
            hint=f"a role of {', '.join(ROLE_NAMES)} and 1 to 168 hours, e.g. developer:4",
        )


def load(config_file: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read defaults, the TOML file and the environment into a validated `Settings`."""
    env = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    sources: dict[str, str] = {}

    path = config_file or (Path(env["GARRISON_CONFIG"]) if env.get("GARRISON_CONFIG") else None)
    if path is None and Path("garrison.toml").is_file():
        path = Path("garrison.toml")
    if path is not None:
        for key, value in _read_toml(path).items():
            if key not in _FIELDS:
                raise ConfigError(
                    f"unknown setting {key!r} in {path}",
                    hint=f"allowed keys: {', '.join(sorted(_FIELDS))}",
                )
            raw[key], sources[key] = value, f"{path}"

    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_SETTINGS:
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in _FIELDS:
            raise ConfigError(
                f"unknown setting in environment variable {name}",
                hint=f"allowed: {', '.join(ENV_PREFIX + k.upper() for k in sorted(_FIELDS))}",
            )
        if _FIELDS[key] == list[str]:  # an environment variable holds a comma-separated list
            raw[key] = [item.strip() for item in value.split(",") if item.strip()]
        else:
            raw[key] = value
        sources[key] = f"environment variable {name}"

    values = {key: _convert(key, value, sources[key]) for key, value in raw.items()}
    _check_semantics(values, sources)
    return Settings(**values)  # type: ignore[arg-type]  # keys checked against the struct above


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist", hint="check --config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def as_dict(settings: Settings) -> dict[str, object]:
    """Settings as plain values with secrets redacted, for display."""
    out = msgspec.to_builtins(settings)
    for key in ("database_url", "notify_smtp_url"):
        if out.get(key):
            out[key] = redact_url(str(out[key]))
    out["notify_routes"] = [_redact_route(str(spec)) for spec in out.get("notify_routes", [])]
    return dict(out)


def _redact_route(spec: str) -> str:
    """A route with its URL's path hidden (a Slack or webhook URL's path is its secret)."""
    kind, _, rest = spec.partition(":")
    severity, _, target = rest.partition(":")
    parts = urlsplit(target)
    if parts.scheme and parts.netloc and parts.path not in {"", "/"}:
        target = f"{parts.scheme}://{parts.netloc}/***"
    return f"{kind}:{severity}:{target}"
