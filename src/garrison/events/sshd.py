"""OpenSSH (7.x to 9.x, ``sshd`` and ``sshd-session``) messages as authentication events.

Authentication attempts, refusals and connections ended before authentication
(``[preauth]``) are class ``authentication``; connection and protocol events (kex, banner,
identification, negotiation, ``Connection from``) are ``network_activity``. Other lines of
the syslog stream are ``application_log``; lines without a syslog header are ``raw``.

Patterns anchor at the end of the message so that a user name carrying ``from 10.0.0.1``
cannot move the source address (the injection cases of fail2ban's test suite).
The Garrison bastion's connection records (program ``garrison-bastion``) in the same log are
read by `garrison.events.bastion`.
`SshdParser` also remembers each connection's address by (host, pid) and fills it into
later lines of the same connection that carry none (``src_inferred``), as fail2ban's
multi-line matching does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from garrison.events import bastion
from garrison.events.schema import Event, raw_event, set_source
from garrison.events.syslog import Clock, application_event, parse_header

Handler = Callable[["re.Match[str]", Event], None]

_SESSIONS_MAX: Final = 65536
_TIMES_MAX: Final = 16384
_PREAUTH: Final = " [preauth]"
_COMMON_HEADER = re.compile(
    r"([A-Z][a-z]{2}) +(\d{1,2}) (\d\d:\d\d:\d\d) ([^\s\[\]:]+) ([^\s\[\]:]+)\[(\d{1,10})\]: ?(.*)",
    re.DOTALL,
)
_LEVELS: Final = ("error: ", "fatal: ", "warning: ")
_SOLARIS = re.compile(r"\[ID \d+ [\w.]+\] ")
_KERNEL = re.compile(r"kernel: ?\[ *[\d.]+\]:? ?")
_PAM_KV = re.compile(r"(\w+)=(\S*)")
_USER_TAIL = re.compile(r"for (?:(?:invalid|illegal) user )?(\S+)$")
#: sshd's description of the key (VERBOSE adds a certificate's key id, serial and CA).
_KEY_INFO = re.compile(
    r"(?P<type>[A-Z0-9-]+) (?P<fingerprint>SHA256:[A-Za-z0-9+/=]+)"
    r"(?: ID (?P<key_id>.*) \(serial (?P<serial>\d+)\) CA \S+ (?P<ca>SHA256:[A-Za-z0-9+/=]+))?$"
)
_INVALID = frozenset({"invalid", "illegal"})
_PREFIX_START = frozenset("[kefwP")
_VERB_OUTCOME: Final = {"Failed": "failure", "Accepted": "success", "Partial": "partial"}
#: What a certificate accepted as a first method tells the method that completes the login.
_CERT_FIELDS: Final = (
    "cert_key_id",
    "cert_serial",
    "ca_fingerprint",
    "key_type",
    "key_fingerprint",
)


def _port(event: Event, value: str | None, key: str = "src_port") -> None:
    if value:
        event[key] = int(value)


def _user(event: Event, user: str | None, kind: str | None) -> None:
    if user is not None:
        if user == "<invalid username>":
            event["invalid_user"] = True
            return
        event["user"] = user
    if kind:
        if kind.split(" ", 1)[0] in _INVALID:
            event["invalid_user"] = True
        elif kind == "authenticating":
            event["auth_stage"] = "authenticating"


def _auth(event: Event, outcome: str) -> None:
    event["class"] = "authentication"
    event["outcome"] = outcome


def _net(event: Event, outcome: str) -> None:
    event["class"] = "network_activity"
    event["outcome"] = outcome


def _attempt(m: re.Match[str], event: Event) -> None:
    verb, method, kind, user, addr, port, proto, info = m.groups()
    event["class"] = "authentication"
    event["outcome"] = _VERB_OUTCOME.get(verb, "unknown")
    event["auth_method"] = method
    _user(event, user, kind)
    set_source(event, addr)
    if port:
        event["src_port"] = int(port)
    if proto:
        event["protocol"] = proto
    if info:
        event["auth_info"] = info
        key = _KEY_INFO.match(info)
        if key is not None:
            event["key_type"], event["key_fingerprint"] = key["type"], key["fingerprint"]
            if key["key_id"] is not None:  # an OpenSSH certificate: who it names, its serial
                event["cert_key_id"] = key["key_id"]
                event["cert_serial"] = int(key["serial"])
                event["ca_fingerprint"] = key["ca"]


def _invalid_user(m: re.Match[str], event: Event) -> None:
    user, addr, port = m.groups()
    event["class"] = "authentication"
    event["outcome"] = "failure"
    event["user"] = user
    event["invalid_user"] = True
    set_source(event, addr)
    if port:
        event["src_port"] = int(port)


def _not_allowed(m: re.Match[str], event: Event) -> None:
    _auth(event, "failure")
    event["user"] = m["user"]
    set_source(event, m["addr"])
    event["reason"] = m["why"]


def _root_refused(m: re.Match[str], event: Event) -> None:
    _auth(event, "failure")
    event["user"] = "root"
    set_source(event, m["addr"])
    _port(event, m["port"])


def _pam_failure(m: re.Match[str], event: Event) -> None:
    _auth(event, "failure")
    event["auth_method"] = "pam"
    _user(event, m["user"], m["kind"])
    set_source(event, m["addr"])
    if m["via"]:
        set_source(event, m["via"], "dst")


def _pam_module(m: re.Match[str], event: Event) -> None:
    module, text = m.groups()
    event["class"] = "authentication"
    event["pam_module"] = module
    if "failure" in text:
        event["outcome"] = "failure"
        if (known := _PAM_UNIX_FAILURE.fullmatch(text)) is not None:
            ruser, rhost, user = known.groups()
        else:
            fields = dict(_PAM_KV.findall(text))
            ruser, rhost, user = fields.get("ruser"), fields.get("rhost"), fields.get("user")
        set_source(event, rhost)
        if user:
            event["user"] = user
        if ruser:
            event["ruser"] = ruser
    elif text.startswith("session opened for user "):
        event["outcome"] = "success"
        event["activity"] = "logon"
        event["user"] = text[24:].split(" ", 1)[0].split("(", 1)[0]
    elif text.startswith("session closed for user "):
        event["outcome"] = "success"
        event["activity"] = "logoff"
        event["user"] = text[24:].split(" ", 1)[0]
    else:
        event["outcome"] = "unknown"


def _closed(m: re.Match[str], event: Event) -> None:
    kind, user, addr, port = m.groups()
    _user(event, user, kind)
    if kind or event.get("preauth"):
        _auth(event, "failure")
    elif user is not None:
        _auth(event, "success")
        event["activity"] = "logoff"
    else:
        _net(event, "unknown")
    set_source(event, addr)
    if port:
        event["src_port"] = int(port)


def _received_disconnect(m: re.Match[str], event: Event) -> None:
    addr, port, addr2, code_text, desc = m.groups()
    set_source(event, addr or addr2)
    if port:
        event["src_port"] = int(port)
    code = int(code_text)
    event["disconnect_code"] = code
    event["disconnect_reason"] = desc
    if event.get("preauth") or code == 14 or "auth" in desc.lower():
        _auth(event, "failure")
    else:
        _net(event, "unknown")


def _disconnecting(m: re.Match[str], event: Event) -> None:
    _auth(event, "failure")
    _user(event, m["user"], m["kind"])
    set_source(event, m["addr"])
    _port(event, m["port"])
    desc = m["desc"]
    event["disconnect_reason"] = desc
    if "user" not in event and (tail := _USER_TAIL.search(desc)):
        event["user"] = tail[1]


def _connection_from(m: re.Match[str], event: Event) -> None:
    _net(event, "unknown")
    event["activity"] = "open"
    set_source(event, m["addr"])
    _port(event, m["port"])
    set_source(event, m["dst"], "dst")
    _port(event, m["dport"], "dst_port")


def _net_failure(m: re.Match[str], event: Event) -> None:
    _net(event, "failure")
    groups = m.groupdict()
    set_source(event, groups.get("addr"))
    _port(event, groups.get("port"))
    if groups.get("desc"):
        event["reason"] = groups["desc"]


def _net_failure_user(m: re.Match[str], event: Event) -> None:
    _net_failure(m, event)
    _user(event, m["user"], m["kind"])


def _net_info(m: re.Match[str], event: Event) -> None:
    _net(event, "unknown")
    set_source(event, m["addr"])
    groups = m.groupdict()
    _port(event, groups.get("port"))
    if groups.get("name"):
        event["src_host"] = groups["name"]


def _auth_failure(m: re.Match[str], event: Event) -> None:
    _auth(event, "failure")
    groups = m.groupdict()
    if "user" in groups:
        _user(event, groups["user"], groups["kind"])
    set_source(event, groups.get("addr") or groups.get("addr2"))
    _port(event, groups.get("port"))
    if groups.get("proto"):
        event["protocol"] = groups["proto"]


_ADDR = r"(?P<addr>\S+)"
_PORT = r"(?: port (?P<port>\d{1,5}))?"
_WHO = r"(?:(?P<kind>invalid|illegal|authenticating) )?user (?P<user>.*?) "
_ATTEMPT = re.compile(
    r"(?P<verb>Failed|Accepted|Postponed|Partial) (?P<method>\S+) for "
    r"(?:(?P<kind>invalid user|illegal user) )?(?P<user>.*?) from "
    + _ADDR
    + _PORT
    + r"(?: (?P<proto>ssh\d?))?(?:: (?P<info>.*))?"
)
_RULES: dict[str, list[tuple[re.Pattern[str], Handler]]] = {
    "Failed": [(_ATTEMPT, _attempt)],
    "Accepted": [(_ATTEMPT, _attempt)],
    "Postponed": [(_ATTEMPT, _attempt)],
    "Partial": [(_ATTEMPT, _attempt)],  # one of several AuthenticationMethods passed
    "Invalid": [(re.compile(r"Invalid user (?P<user>.*?) from " + _ADDR + _PORT), _invalid_user)],
    "Illegal": [(re.compile(r"Illegal user (?P<user>.*?) from " + _ADDR + _PORT), _invalid_user)],
    "User": [
        (
            re.compile(r"User (?P<user>\S+) from " + _ADDR + r" not allowed because (?P<why>.*)"),
            _not_allowed,
        ),
        (
            re.compile(r"User (?P<user>\S+)(?P<addr>) not allowed because (?P<why>.*)"),
            _not_allowed,
        ),
        (
            re.compile(
                r"User not known to the underlying authentication module for "
                r"(?:(?P<kind>invalid|illegal) user )?(?P<user>.*?) from "
                + _ADDR
                + r"(?: via (?P<via>\S+))? *"
            ),
            _pam_failure,
        ),
    ],
    "ROOT": [(re.compile(r"ROOT LOGIN REFUSED FROM " + _ADDR + _PORT), _root_refused)],
    "Authentication": [],
    "authentication": [],
    "Connection": [
        (
            re.compile(r"Connection (?:closed|reset) by (?:" + _WHO + r")?" + _ADDR + _PORT),
            _closed,
        ),
        (
            re.compile(
                r"Connection from "
                + _ADDR
                + _PORT
                + r"(?: on (?P<dst>\S+) port (?P<dport>\d{1,5}))?(?: rdomain \"[^\"]*\")?"
            ),
            _connection_from,
        ),
    ],
    "Disconnected": [
        (re.compile(r"Disconnected from (?:" + _WHO + r")?" + _ADDR + _PORT), _closed),
    ],
    "Disconnecting": [
        (
            re.compile(
                r"Disconnecting(?: " + _WHO + _ADDR + r" port (?P<port>\d{1,5}))?: (?P<desc>.*)"
            ),
            _disconnecting,
        ),
    ],
    "Received": [
        (
            re.compile(
                r"Received disconnect from (?:(?P<addr>\S+) port (?P<port>\d{1,5}): ?"
                r"|(?P<addr2>\S+): )(?P<code>\d+): (?P<desc>.*)"
            ),
            _received_disconnect,
        ),
    ],
    "Did": [
        (
            re.compile(r"Did not receive identification string from " + _ADDR + _PORT),
            _net_failure,
        ),
    ],
    "Bad": [
        (
            re.compile(r"Bad protocol version identification '(?P<desc>.*)' from " + _ADDR + _PORT),
            _net_failure,
        ),
    ],
    "Unable": [
        (
            re.compile(
                r"Unable to negotiate with " + _ADDR + r" port (?P<port>\d{1,5}): (?P<desc>.*)"
            ),
            _net_failure,
        ),
        (re.compile(r"Unable to negotiate (?P<desc>.*)"), _net_failure),
    ],
    "banner": [
        (
            re.compile(
                r"banner exchange: Connection from "
                + _ADDR
                + r" port (?P<port>\d{1,5}): (?P<desc>.*)"
            ),
            _net_failure,
        ),
    ],
    "kex_exchange_identification:": [
        (re.compile(r"kex_exchange_identification: (?P<desc>.*)"), _net_failure)
    ],
    "ssh_dispatch_run_fatal:": [
        (
            re.compile(
                r"ssh_dispatch_run_fatal: Connection from (?:"
                + _WHO
                + r")?"
                + _ADDR
                + r" port (?P<port>\d{1,5}): (?P<desc>.*)"
            ),
            _net_failure_user,
        ),
    ],
    "Read": [(re.compile(r"Read from socket failed: (?P<desc>.*)"), _net_failure)],
    "no": [(re.compile(r"(?P<desc>no matching .*)"), _net_failure)],
    "Timeout": [
        (
            re.compile(
                r"Timeout before authentication for "
                r"(?:connection from (?P<addr2>\S+) to \S+?,.*|" + _ADDR + _PORT + r")"
            ),
            _auth_failure,
        ),
    ],
    "maximum": [
        (
            re.compile(
                r"maximum authentication attempts exceeded for "
                r"(?:(?P<kind>invalid|illegal) user )?(?P<user>.*?) from "
                + _ADDR
                + _PORT
                + r"(?: (?P<proto>ssh\d?))?"
            ),
            _auth_failure,
        ),
    ],
    "input_userauth_request:": [
        (
            re.compile(r"input_userauth_request: (?P<kind>invalid|illegal) user (?P<user>.*)"),
            _auth_failure,
        ),
    ],
    "SSH:": [
        (
            re.compile(r"SSH: Server;Ltype: \w+;Remote: (?P<addr>[^;]+?)-(?P<port>\d{1,5});.*"),
            _net_info,
        ),
    ],
    "Address": [
        (
            re.compile(r"Address (?P<addr>\S+) maps to (?P<name>\S+), but this does not map .*"),
            _net_info,
        ),
    ],
    "refused": [
        (
            re.compile(r"refused connect from \S*? ?\((?P<addr>[^)\s]+)\)"),
            _net_failure,
        ),
    ],
}
_PAM_FAIL = re.compile(
    r"[Aa]uthentication (?:failure|error) for "
    r"(?:(?P<kind>invalid|illegal) user )?(?P<user>.*?) from " + _ADDR + r"(?: via (?P<via>\S+))? *"
)
_RULES["Authentication"].append((_PAM_FAIL, _pam_failure))
_RULES["authentication"].append((_PAM_FAIL, _pam_failure))
_RULES["Disconnecting:"] = _RULES["Disconnecting"]
_PAM_LINE = re.compile(r"(?P<module>pam_\w+)\([^)]*\): (?P<text>.*)")
_PAM_UNIX_FAILURE = re.compile(
    r"authentication failure; logname=\S* uid=\d* euid=\d* tty=\S* ruser=(\S*) rhost=(\S*)"
    r"(?:\s+user=(\S*))?"
)


def parse_message(msg: str, event: Event) -> bool:
    """Fill `event` from an sshd message; False when the message is not one we know."""
    if msg.endswith(_PREAUTH):
        msg = msg[: -len(_PREAUTH)]
        event["preauth"] = True
    if msg[:1] in _PREFIX_START:
        if msg.startswith("[ID ") and (m := _SOLARIS.match(msg)):
            msg = msg[m.end() :]
        if msg.startswith("kernel:") and (m := _KERNEL.match(msg)):
            msg = msg[m.end() :]
        for level in _LEVELS:
            if msg.startswith(level):
                event["level"] = level[:-2]
                msg = msg[len(level) :]
                break
        msg = msg.removeprefix("PAM: ")
    head = msg.split(" ", 1)[0]
    rules = _RULES.get(head)
    if rules:
        for pattern, handler in rules:
            if m := pattern.fullmatch(msg):
                handler(m, event)
                return True
    elif head.startswith("pam_") and (m := _PAM_LINE.fullmatch(msg)):
        _pam_module(m, event)
        return True
    return False


class SshdParser:
    """Parses sshd syslog or journal lines; remembers connection addresses by (host, pid)."""

    def __init__(self, clock: Clock, *, correlate: bool = True) -> None:
        self.clock = clock
        self.correlate = correlate
        self._sessions: dict[tuple[str | None, int], tuple[str, Any, int | None]] = {}
        self._partial: dict[tuple[str | None, Any, Any], dict[str, Any]] = {}
        self._times: dict[tuple[str, str, str], str | None] = {}

    def parse(self, line: str) -> Event:
        """One line as a normalized event (``raw`` with a reason when not understood)."""
        event: Event | None = None
        if (m := _COMMON_HEADER.match(line)) is not None:
            # The usual ``Mon dd HH:MM:SS host prog[pid]: msg``: what `parse_header` gives it.
            mon, day, hms, host, program, pid_text, msg = m.groups()
            stamp = (mon, day, hms)
            try:
                time = self._times[stamp]
            except KeyError:
                if len(self._times) >= _TIMES_MAX:
                    self._times.clear()
                time = self._times[stamp] = self.clock.bsd(mon, day, hms)
            if time is not None:
                pid: int | None = int(pid_text)
                event = {
                    "time": time,
                    "class": "application_log",
                    "host": host,
                    "process": program,
                    "pid": pid,
                    "message": msg,
                }
        if event is None:
            header = parse_header(line, self.clock)
            if header is None:
                return raw_event(
                    line,
                    "not a syslog or journal line",
                    self.clock.reference_iso,
                    time_inferred=True,
                )
            time, host, program, pid, msg, inferred = header
            event = application_event(time, host, program, pid, msg, inferred)
        if program == bastion.PROGRAM:
            bastion.parse_message(msg, event)
        elif (
            program is not None
            and program.startswith("sshd")
            and parse_message(msg, event)
            and self.correlate
            and pid is not None
        ):
            self._correlate(event, host, pid)
            if event.get("class") == "authentication":
                self._second_method(event, host)
        event["raw"] = line
        return event

    def _second_method(self, event: Event, host: str | None) -> None:
        """A login that took two methods (the bastion: a certificate, then a TOTP code): the
        certificate of the first (``Partial``) goes on the event of the one that completes it,
        from the same address and port."""
        key = (host, event.get("src_ip"), event.get("src_port"))
        outcome = event.get("outcome")
        if outcome == "partial" and "cert_key_id" in event:
            if key not in self._partial and len(self._partial) >= _SESSIONS_MAX:
                del self._partial[next(iter(self._partial))]
            self._partial[key] = {f: event[f] for f in _CERT_FIELDS if f in event}
        elif outcome in {"success", "failure"} and "cert_key_id" not in event:
            found = self._partial.get(key)
            if found is not None:  # a wrong code names the person too; a retry may follow
                event.update(found)
                if outcome == "success":
                    del self._partial[key]

    def _correlate(self, event: Event, host: str | None, pid: int) -> None:
        key = (host, pid)
        if (address := event.get("src_ip")) is not None:
            self._remember(key, ("src_ip", address, event.get("src_port")))
        elif (name := event.get("src_host")) is not None:
            self._remember(key, ("src_host", name, event.get("src_port")))
        elif (known := self._sessions.get(key)) is not None:
            field, value, port = known
            event[field] = value
            if port is not None:
                event["src_port"] = port
            event["src_inferred"] = True

    def _remember(self, key: tuple[str | None, int], value: tuple[str, Any, int | None]) -> None:
        sessions = self._sessions
        if key not in sessions and len(sessions) >= _SESSIONS_MAX:
            del sessions[next(iter(sessions))]
        sessions[key] = value
