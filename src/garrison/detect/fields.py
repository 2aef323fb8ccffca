"""Which rules see which events (Sigma logsources), and Sigma's field names in Garrison events.

Every event belongs to one source, told from its shape (`source_of`); a rule's logsource names
the sources it reads (`sources_for`). SigmaHQ's webserver fields (``cs-uri-query``,
``sc-status``, ...) are mapped onto the normalized HTTP fields, a URI field matching both the
raw and the decoded path; CloudTrail rules read the original record (``eventName``,
``userIdentity.type``, ``requestParameters.x``), so SigmaHQ's rules run unchanged. Any other
field name is a Garrison field, dotted names reaching into nested values; ``src`` is the
event's source however it was logged (``src_ip``, else ``src_host``: a name, or an ambiguous
address kept as written; ``source_ip`` in audit events), what correlations group attackers by.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from sigma.rule import SigmaLogSource

from garrison.backup.report import PROCESS as BACKUP_PROCESS
from garrison.events.schema import Event

SSHD: Final = "sshd"
SYSLOG: Final = "syslog"
WEB: Final = "webserver"
CLOUDTRAIL: Final = "cloudtrail"
FIREWALL: Final = "firewall"
VPCFLOW: Final = "vpcflow"
AUDIT: Final = "audit"
APPLICATION: Final = "application"
BACKUP: Final = "backup"
SOURCES: Final = (SSHD, SYSLOG, WEB, CLOUDTRAIL, FIREWALL, VPCFLOW, AUDIT, APPLICATION, BACKUP)

_MISSING = object()
_BY_PROCESS: Final = {BACKUP_PROCESS: BACKUP}
Getter = Callable[[Event], Any]


def source_of(event: Event) -> str:
    """The source an event comes from, by the fields its parser gives it."""
    cls = event.get("class")
    if cls == "http_activity" or "connection" in event:  # also nginx's error log (auth, TLS)
        return WEB
    process = event.get("process")
    if process is not None:
        return _BY_PROCESS.get(process) or (SSHD if str(process).startswith("sshd") else SYSLOG)
    if cls == "network_activity":
        return VPCFLOW if "log_status" in event else FIREWALL
    if cls == "api_activity":
        return CLOUDTRAIL
    if event.get("category") == "api_activity" and isinstance(event.get("actor"), dict):
        return AUDIT
    return APPLICATION


_BY_PRODUCT: Final[dict[tuple[str | None, str | None], frozenset[str]]] = {
    ("linux", "sshd"): frozenset({SSHD}),
    ("linux", None): frozenset({SSHD, SYSLOG}),
    ("linux", "auth"): frozenset({SSHD, SYSLOG}),
    ("linux", "syslog"): frozenset({SSHD, SYSLOG}),
    ("aws", "cloudtrail"): frozenset({CLOUDTRAIL}),
    ("aws", "vpcflow"): frozenset({VPCFLOW}),
    ("garrison", None): frozenset(SOURCES),
    ("garrison", "audit"): frozenset({AUDIT}),
    ("garrison", "application"): frozenset({APPLICATION}),
    ("garrison", "backup"): frozenset({BACKUP}),
}


def sources_for(logsource: SigmaLogSource) -> frozenset[str]:
    """The sources a rule's logsource reads (empty: none Garrison has)."""
    product, service, category = logsource.product, logsource.service, logsource.category
    if category == "webserver" or product in {"nginx", "apache"}:
        return frozenset({WEB})
    if category == "firewall":
        return frozenset({FIREWALL, VPCFLOW})
    if category is not None:
        return frozenset()  # process_creation, file_event, ...: not events Garrison reads
    return _BY_PRODUCT.get((product, service), frozenset())


def dig(value: Any, path: str) -> Any:
    """`value[a][b]` for ``a.b`` (a key holding the dot itself wins), or `_MISSING`."""
    if not isinstance(value, dict):
        return _MISSING
    if path in value:
        return value[path]
    head, dot, rest = path.partition(".")
    if not dot or head not in value:
        return _MISSING
    return dig(value[head], rest)


def _stem(text: Any) -> str:
    return str(text).split("?", 1)[0]


def _uri(field: str, stem: bool = False) -> Getter:
    def get(event: Event) -> Any:
        value = event.get(field, _MISSING)
        return _stem(value) if stem and value is not _MISSING else value

    return get


_WEB_FIELDS: Final[dict[str, tuple[Getter, ...]]] = {
    "c-ip": (_uri("src_ip"),),
    "cs-method": (_uri("method"),),
    "cs-uri-query": (_uri("path"), _uri("path_decoded")),
    "cs-uri": (_uri("path"), _uri("path_decoded")),
    "cs-uri-stem": (_uri("path", stem=True), _uri("path_decoded", stem=True)),
    "sc-status": (_uri("status"),),
    "cs-user-agent": (_uri("user_agent"),),
    "cs-referer": (_uri("referrer"),),
    "cs-version": (_uri("protocol"),),
    "cs-username": (_uri("user"),),
    "cs-bytes": (_uri("bytes"),),
}


class _Record:
    """The last CloudTrail event's original record, decoded once for all rules and fields."""

    def __init__(self) -> None:
        self.raw: object = None
        self.record: Any = None

    def of(self, event: Event) -> Any:
        raw = event.get("raw")
        if raw is not self.raw:
            self.raw = raw
            try:
                self.record = json.loads(raw) if isinstance(raw, str) else None
            except ValueError:
                self.record = None
        return self.record


SRC: Final = "src"


def src(event: Event) -> Any:
    """The virtual ``src`` field: ``src_ip``, else ``src_host``, else an audit event's
    ``source_ip`` (None when none)."""
    return event.get("src_ip") or event.get("src_host") or event.get("source_ip") or None


def is_plain(field: str) -> bool:
    """A field read as is from the event, whatever the source (no mapping, no nesting)."""
    return "." not in field and field not in _WEB_FIELDS and field != SRC


class PlainField:
    """The getter of a field read as is (most fields): the evaluator reads it directly."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, event: Event) -> list[Any]:
        value = event.get(self.name, _MISSING)
        return [] if value is _MISSING else [value]


def _nested(field: str) -> Callable[[Event], list[Any]]:
    def get(event: Event) -> list[Any]:
        value = dig(event, field)
        return [] if value is _MISSING else [value]

    return get


def getters(sources: frozenset[str]) -> Callable[[str], Callable[[Event], list[Any]]]:
    """For a rule reading `sources`: the getter of each Sigma field name it uses."""
    record = _Record()

    def getter(field: str) -> Callable[[Event], list[Any]]:
        mapped = _WEB_FIELDS.get(field)
        if mapped is not None and sources == {WEB}:

            def web(event: Event) -> list[Any]:
                values = [get(event) for get in mapped]
                return [v for v in values if v is not _MISSING]

            return web
        if sources == {CLOUDTRAIL}:

            def cloudtrail(event: Event) -> list[Any]:
                if field in event:
                    return [event[field]]
                value = dig(record.of(event), field)
                return [] if value is _MISSING else [value]

            return cloudtrail
        if field == SRC:
            return lambda event: [] if (value := src(event)) is None else [value]
        return _nested(field) if "." in field else PlainField(field)

    return getter


class FieldResolver:
    """`resolve(event, sigma_field)`: the values a Sigma field has in an event (a list)."""

    def __init__(self) -> None:
        self._record = _Record()

    def __call__(self, event: Event, field: str) -> list[Any]:
        if field == SRC:
            value = src(event)
            return [] if value is None else [value]
        getters = _WEB_FIELDS.get(field)
        if getters is not None and event.get("class") == "http_activity":
            values = [get(event) for get in getters]
            return [v for v in values if v is not _MISSING]
        if field in event:
            return [event[field]]
        if event.get("class") == "api_activity" and "action" in event:
            found = dig(self._record.of(event), field)
            if found is not _MISSING:
                return [found]
        if "." in field:
            found = dig(event, field)
            if found is not _MISSING:
                return [found]
        return []
