"""Console page SSH: my certificates (issue with a fresh TOTP code, revoke), who holds live
certificates, who is connected through the bastion, recent connections and logins."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from garrison.core.errors import GarrisonError
from garrison.events.bastion import PROGRAM as BASTION_PROGRAM
from garrison.server.accounts.actions import verify_second_factor
from garrison.server.accounts.middleware import client_ip
from garrison.server.accounts.roles import OPERATE, READ_ALL, SELF_SERVICE
from garrison.server.accounts.views import console_user
from garrison.server.logs.queries import MAX_LIMIT, recent
from garrison.server.ssh import actions, queries
from garrison.server.ssh.api import ssh_config
from garrison.ssh.ca import parse_user_key

RECENT = 20
RECENT_DAYS = 7
CONNECTED = 200  # open connections shown at most


class IssueForm(forms.Form):
    """A certificate for one's own key."""

    public_key = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=16384,
        help_text="The line of your id_ed25519.pub",
    )
    hours = forms.FloatField(min_value=0.01, required=False, help_text="Empty: the default")
    code = forms.RegexField(
        r"^\s*\d{3}\s?\d{3}\s*$", label="TOTP code", help_text="A fresh code from your app"
    )


def _recent(
    actor: Any, stream: str, text: str, *, since: str = "", limit: int = RECENT
) -> list[dict[str, Any]]:
    since = since or (timezone.now() - dt.timedelta(days=RECENT_DAYS)).isoformat()
    return recent(actor, stream, text, since=since, limit=limit)


def _connection(event: dict[str, Any]) -> tuple[Any, ...]:
    return (event.get("host"), event.get("src_ip"), event.get("src_port"), event.get("start"))


def _bastion_connections(actor: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(open now, recently ended) connections through the bastion, from its records: a
    connection is open when its ``open`` record of the last day has no ``close`` after it."""
    bastion = f'process="{BASTION_PROGRAM}"'
    ended = _recent(actor, "ssh", f"{bastion} AND activity=close AND outcome=success")
    day = (timezone.now() - dt.timedelta(days=1)).isoformat()
    opened = _recent(actor, "ssh", f"{bastion} AND activity=open", since=day, limit=CONNECTED)
    if not opened:
        return [], ended
    closes = _recent(  # only authenticated connections have an open record
        actor,
        "ssh",
        f"{bastion} AND activity=close AND outcome=success",
        since=opened[-1]["time"],
        limit=MAX_LIMIT,
    )
    closed = {_connection(e) for e in closes}
    return [e for e in opened if _connection(e) not in closed], ended


@require_http_methods(["GET", "POST"])
def page(request: HttpRequest) -> HttpResponse:
    """The SSH page; POST issues a certificate for the signed-in person."""
    actor = console_user(request)
    issued = None
    form = IssueForm(request.POST or None)
    if request.method == "POST":
        if actor.role not in SELF_SERVICE:
            return render(request, "console/denied.html", status=403)
        if form.is_valid():
            data = form.cleaned_data
            try:
                actions.user_lifetime(
                    data["hours"], actor.role
                )  # bad input must not spend the code
                parse_user_key(data["public_key"])
                verify_second_factor(actor, data["code"], client_ip(request))
                issued = actions.do_issue_for_person(actor, data["public_key"], data["hours"])
            except GarrisonError as exc:
                form.add_error(None, exc.message)
            else:
                form = IssueForm()
    readers = actor.role in READ_ALL
    connected, connections = _bastion_connections(actor) if readers else ([], [])
    context = {
        "form": form,
        "issued": issued,
        "ssh_config": ssh_config() if issued else "",
        "mine": queries.visible_to(actor).filter(kind="user", key_id=actor.username)[:50],
        "live": queries.live_certificates()[:200] if readers else [],
        "logins": _recent(actor, "ssh", 'cert_key_id!="" AND outcome=success') if readers else [],
        "bastion": _recent(actor, "audit", "action=ssh.bastion.second-factor") if readers else [],
        "connected": connected,
        "connections": connections,
        "can_issue": actor.role in SELF_SERVICE,
        "can_revoke_any": actor.role in OPERATE,
    }
    return render(request, "ssh/page.html", context, status=400 if form.errors else 200)


@require_POST
def revoke(request: HttpRequest, serial: str) -> HttpResponse:
    """Revoke a certificate (one's own; operators and admins: anyone's)."""
    try:
        if not serial.isdigit() or int(serial) >= 2**63:
            raise GarrisonError(f"no SSH certificate with serial {serial[:40]!r}")
        actions.do_revoke(console_user(request), int(serial))
    except GarrisonError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Certificate {serial} is revoked; hosts refuse it from now on.")
    return redirect("ssh:page")
