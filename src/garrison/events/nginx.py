"""nginx and Apache access logs (combined and common formats) and nginx error logs.

Access lines become ``http_activity`` (outcome from the status: below 400 success, else
failure). Error lines keep nginx's trailing context (``client``, ``server``, ``request``,
``host``, ``referrer``, ``upstream``); the *last* well-formed ``, client: ...`` context is
used, so text injected through a user name cannot move the client address. Basic-auth and
PAM refusals are ``authentication`` failures; ``limit_req`` / ``limit_conn``, forbidden by
rule and missing files are ``http_activity`` failures; TLS handshake errors are
``network_activity`` failures. Error and access lines wrapped in a syslog or journal header
(``host nginx[pid]: ...``) are unwrapped, keeping the logging host.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote

from garrison.events.schema import Event, raw_event, set_source
from garrison.events.syslog import Clock, application_event, parse_header

_QUOTED = r"[^\"\\]*(?:\\.[^\"\\]*)*"
_ACCESS = re.compile(
    r"(?P<addr>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] "
    r"\"(?P<request>" + _QUOTED + r")\" (?P<status>\d{3}|-) (?P<bytes>\d+|-)"
    r"(?: \"(?P<referrer>" + _QUOTED + r")\" \"(?P<ua>" + _QUOTED + r")\")?(?P<extra>.*)",
    re.DOTALL,
)
_REQUEST = re.compile(r"(?P<method>[A-Za-z_-]+) (?P<path>\S+)(?: (?P<protocol>[A-Za-z]+/[\d.]+))?")
_ERROR = re.compile(
    r"(?P<y>\d{4})/(?P<mo>\d\d)/(?P<d>\d\d) (?P<hms>\d\d:\d\d:\d\d) \[(?P<level>\w+)\] "
    r"(?P<pid>\d{1,10})#(?P<tid>\d{1,10}): (?:\*(?P<conn>\d{1,20}) )?(?P<msg>.*)",
    re.DOTALL,
)
_CONTEXT = re.compile(
    r"(?P<msg>.*), client: (?P<client>[^,\s]+)"
    r"(?P<ctx>(?:, [a-z_]+: (?:\"" + _QUOTED + r"\"|[^,\"]*))*)",
    re.DOTALL,
)
_CTX_FIELD = re.compile(r", ([a-z_]+): (?:\"(" + _QUOTED + r")\"|([^,\"]*))")
_ZONE = re.compile(r"by zone \"([^\"]*)\"")
_EXCESS = re.compile(r"excess: ([\d.]+)")
_BASIC_USER = re.compile(
    r"user \"(?P<user>.*)\":? ?(?:was not found in \"[^\"]*\"|password mismatch)"
)
_PAM_USER = re.compile(r"PAM: user '(?P<user>[^']*)' - not authenticated: .*")
_WRAPPED = re.compile(r"[^\s:\[\]]+ [^\s:\[\]]+(?:\[\d{1,10}\])?: (?=\d{4}/)")

_CONTEXT_KEYS: Final = {
    "server": "server",
    "host": "http_host",
    "referrer": "referrer",
    "upstream": "upstream",
    "subrequest": "subrequest",
}


_REQUEST_CACHE_MAX: Final = 16384
_request_cache: dict[str, Event] = {}


def _request_items(request: str) -> Event:
    fields: Event = {"request": request}
    if m := _REQUEST.fullmatch(request):
        path = m["path"]
        fields["method"] = m["method"]
        fields["path"] = path
        fields["path_decoded"] = unquote(path, errors="replace") if "%" in path else path
        if m["protocol"]:
            fields["protocol"] = m["protocol"]
    if len(_request_cache) >= _REQUEST_CACHE_MAX:
        _request_cache.clear()
    _request_cache[request] = fields
    return fields


def _request_fields(event: Event, request: str) -> None:
    fields = _request_cache.get(request)
    event.update(fields if fields is not None else _request_items(request))


def _access(m: re.Match[str], line: str, clock: Clock) -> Event:
    time = clock.clf(m["time"])
    event: Event = {"time": time or clock.reference_iso, "class": "http_activity"}
    if time is None:
        event["time_inferred"] = True
    set_source(event, m["addr"])
    user = m["user"]
    if user != "-":
        event["user"] = user.strip('"')
    status = m["status"]
    if status != "-":
        code = int(status)
        event["outcome"] = "success" if code < 400 else "failure"
        event["status"] = code
    else:
        event["outcome"] = "unknown"
    _request_fields(event, m["request"])
    size = m["bytes"]
    if size != "-":
        event["bytes"] = int(size)
    referrer = m["referrer"]
    if referrer and referrer != "-":
        event["referrer"] = referrer
    agent = m["ua"]
    if agent and agent != "-":
        event["user_agent"] = agent
    event["raw"] = line
    return event


def _classify_error(msg: str, event: Event) -> None:
    if msg.startswith(("limiting requests", "delaying request", "limiting connections")):
        event["class"] = "http_activity"
        event["outcome"] = "failure"
        event["action"] = "delayed" if msg.startswith("delaying") else "limited"
        if zone := _ZONE.search(msg):
            event["limit_zone"] = zone[1]
        if excess := _EXCESS.search(msg):
            event["limit_excess"] = float(excess[1])
    elif msg.startswith("access forbidden by rule"):
        event["class"] = "http_activity"
        event["outcome"] = "failure"
        event["status"] = 403
    elif msg.startswith('user "') and (m := _BASIC_USER.fullmatch(msg)):
        event["class"] = "authentication"
        event["outcome"] = "failure"
        event["auth_method"] = "basic"
        event["user"] = m["user"]
        event["invalid_user"] = "was not found" in msg[-200:]
    elif msg.startswith("no user/password was provided for basic authentication"):
        event["class"] = "authentication"
        event["outcome"] = "failure"
        event["auth_method"] = "basic"
    elif msg.startswith("PAM: ") and (m := _PAM_USER.fullmatch(msg)):
        event["class"] = "authentication"
        event["outcome"] = "failure"
        event["auth_method"] = "pam"
        event["user"] = m["user"]
    elif "(2: No such file or directory)" in msg:
        event["class"] = "http_activity"
        event["outcome"] = "failure"
        event["status"] = 404
    elif msg.startswith(("SSL_do_handshake() failed", "SSL_read() failed")):
        event["class"] = "network_activity"
        event["outcome"] = "failure"
    elif "request" in event or "src_ip" in event or "src_host" in event:
        event["class"] = "http_activity"
        event["outcome"] = "unknown"


def _error(m: re.Match[str], line: str, clock: Clock, host: str | None) -> Event:
    time = clock.numeric(m["y"], m["mo"], m["d"], m["hms"])
    event: Event = {"time": time or clock.reference_iso, "class": "application_log"}
    if time is None:
        event["time_inferred"] = True
    if host is not None:
        event["host"] = host
    event["level"] = m["level"]
    event["pid"] = int(m["pid"])
    if m["conn"]:
        event["connection"] = int(m["conn"])
    msg = m["msg"]
    if ", client: " in msg and (ctx := _CONTEXT.fullmatch(msg)):
        msg = ctx["msg"]
        set_source(event, ctx["client"])
        for key, quoted, plain in _CTX_FIELD.findall(ctx["ctx"]):
            value = quoted or plain
            if key == "request":
                _request_fields(event, value)
            elif value and key in _CONTEXT_KEYS:
                event[_CONTEXT_KEYS[key]] = value
    event["message"] = msg
    _classify_error(msg, event)
    event["raw"] = line
    return event


def parse(line: str, clock: Clock) -> Event:
    """One nginx/Apache access or nginx error line as a normalized event."""
    if line[4:5] == "/" and (m := _ERROR.match(line)):
        return _error(m, line, clock, None)
    if m := _ACCESS.match(line):
        return _access(m, line, clock)
    header = parse_header(line, clock)
    if header is None:
        return raw_event(
            line, "not an access, error or syslog line", clock.reference_iso, time_inferred=True
        )
    time, host, program, pid, msg, inferred = header
    if w := _WRAPPED.match(msg):
        msg = msg[w.end() :]
    if (m := _ERROR.match(msg)) or (m := _ACCESS.match(msg)):
        event = _error(m, msg, clock, host) if m.re is _ERROR else _access(m, msg, clock)
        if host is not None:
            event["host"] = host
        event["raw"] = line
        return event
    event = application_event(time, host, program, pid, msg, inferred)
    event["raw"] = line
    return event
