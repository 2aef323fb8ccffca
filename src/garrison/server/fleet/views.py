"""Console page: the fleet's hosts, adding one (join token shown once) and revoking."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from garrison.core.errors import GarrisonError
from garrison.server.accounts.roles import OPERATE, READ_ALL
from garrison.server.accounts.views import console_user, role_required
from garrison.server.fleet import actions, queries


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
    context = {
        "form": form,
        "token": token,
        "hosts": queries.fleet_view(actor),
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
