"""Console pages: the fleet's hosts (adding one, its join token shown once; revoking), a host's
charts, checks, alerts and remediation, and the services by zone."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from garrison.core.errors import GarrisonError, NotFoundError
from garrison.server.accounts.roles import OPERATE, READ_ALL
from garrison.server.accounts.views import console_user, role_required
from garrison.server.fleet import actions, charts, queries


class HostForm(forms.Form):
    """Add a host."""

    name = forms.CharField(max_length=253, help_text="DNS-style name, e.g. web-1.eu.example")
    zone = forms.CharField(max_length=32, help_text="Failure domain, e.g. fsn1 or dc2")


@role_required(READ_ALL)
@require_http_methods(["GET", "POST"])
def hosts(request: HttpRequest) -> HttpResponse:
    """List hosts; operators add one and see its join command once."""
    actor = console_user(request)
    form = HostForm(request.POST or None)
    token = None
    if request.method == "POST":
        if actor.role not in OPERATE:
            return render(request, "console/denied.html", status=403)
        if form.is_valid():
            try:
                _, token = actions.do_add_host(
                    actor,
                    name=form.cleaned_data["name"],
                    zone=form.cleaned_data["zone"],
                    minutes=settings.GARRISON.setup_link_minutes,
                )
            except GarrisonError as exc:
                form.add_error(None, exc.message)
            else:
                form = HostForm()
    views = queries.fleet_view(actor)
    end = timezone.now()
    start = end - dt.timedelta(hours=1)
    spark = queries.sparkline_values([v.host.name for v in views])
    rows = [
        (
            v,
            [
                charts.line(title, "%", spark[v.host.name].get(key, []), start, end, top=100.0,
                            width=120, height=28)
                for key, title in (("cpu_percent", "CPU"), ("mem_used_percent", "Memory"),
                                   ("disk_used_percent", "Disk"))
            ],
        )
        for v in views
    ]  # fmt: skip
    context = {
        "form": form,
        "token": token,
        "hosts": rows,
        "console_url": settings.GARRISON.console_url,
        "can_operate": actor.role in OPERATE,
    }
    return render(request, "fleet/hosts.html", context)


@role_required(OPERATE)
@require_POST
def revoke(request: HttpRequest, name: str) -> HttpResponse:
    """Revoke a host."""
    actor = console_user(request)
    try:
        host = actions.do_revoke_host(actor, queries.access_host(actor, name))
    except GarrisonError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{host.name} is revoked: the collector refuses it from now on.")
    return redirect("fleet:hosts")


@role_required(READ_ALL)
@require_http_methods(["GET"])
def host(request: HttpRequest, name: str) -> HttpResponse:
    """One host: charts of its metrics (last hour, day or month), its services' checks, its
    alerts and its remediation history."""
    actor = console_user(request)
    try:
        found = queries.access_host(actor, name)
    except NotFoundError as exc:
        raise Http404(exc.message) from None
    chosen = request.GET.get("range", "hour")
    if chosen not in queries.RANGES:
        chosen = "hour"
    back, step = queries.RANGES[chosen]
    end = timezone.now()
    start = end - back
    history = queries.metric_history(found.name, start, step)
    context = {
        "host": found,
        "range": chosen,
        "ranges": list(queries.RANGES),
        "charts": [
            charts.line(title, unit, history.get(key, []), start, end, top=top)
            for key, title, unit, top in queries.CHARTED
        ],
        **queries.host_health(found.name),
    }
    return render(request, "fleet/host.html", context)


@role_required(READ_ALL)
@require_http_methods(["GET"])
def services(request: HttpRequest) -> HttpResponse:
    """Every service: its instances by zone, and how many zones are healthy (claim P1)."""
    return render(
        request, "fleet/services.html", {"services": queries.services_view(console_user(request))}
    )
