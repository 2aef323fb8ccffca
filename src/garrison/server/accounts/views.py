"""Console pages for sign-in, setup links, one's own security, tokens and (admins) people."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout, update_session_auth_hash
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from garrison.core.errors import GarrisonError, ThrottledError
from garrison.server.accounts import actions, queries, throttle, totp
from garrison.server.accounts.api import setup_url
from garrison.server.accounts.forms import (
    CodeForm,
    InviteForm,
    PasswordChangeForm,
    SetupForm,
    SignInForm,
    TokenForm,
)
from garrison.server.accounts.middleware import AUTH_AT, client_ip, record_client
from garrison.server.accounts.models import USERNAME_RE, SetupLink, TOTPDevice, User
from garrison.server.accounts.roles import MANAGE_ACCOUNTS, READ_ALL, Role

PENDING = "garrison_pending_2fa"
PENDING_SECONDS = 300
BACKEND = "django.contrib.auth.backends.ModelBackend"

View = Callable[..., HttpResponse]


def console_user(request: HttpRequest) -> User:
    """The signed-in user of a console request."""
    user = request.user
    if not isinstance(user, User):  # LoginRequiredMiddleware admits only signed-in users
        raise PermissionDenied
    return user


def role_required(roles: frozenset[Role]) -> Callable[[View], View]:
    """Refuse (403) console users whose role is not in `roles`."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if console_user(request).role not in roles:
                return render(request, "console/denied.html", status=403)
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def _safe_next(request: HttpRequest) -> str:
    target = request.GET.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, True):
        return target
    return reverse("console:home")


@login_not_required
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    """Step 1: username and password."""
    if request.user.is_authenticated:
        return redirect("console:home")
    form = SignInForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        username = form.cleaned_data["username"].strip().lower()
        try:
            attempt = throttle.begin(username, client_ip(request))
        except ThrottledError as exc:
            form.add_error(None, exc.message)
            return render(request, "accounts/sign_in.html", {"form": form}, status=429)
        user = authenticate(request, username=username, password=form.cleaned_data["password"])
        if not isinstance(user, User):
            form.add_error(None, "Wrong username or password.")
            status = 401
        elif user.is_machine or not user.has_totp:
            attempt.succeeded()
            form.add_error(
                None,
                "This account has no second factor and cannot sign in. "
                "Ask an admin for an access-reset link.",
            )
            status = 403
        else:
            attempt.succeeded()
            request.session.cycle_key()
            request.session[PENDING] = {"uid": user.pk, "at": time.time()}
            target = reverse("accounts:verify")
            if request.GET.get("next"):
                target += f"?next={_safe_next(request)}"
            return HttpResponseRedirect(target)
    return render(request, "accounts/sign_in.html", {"form": form}, status=status)


def _pending_user(request: HttpRequest) -> User | None:
    pending = request.session.get(PENDING)
    if not pending or time.time() - float(pending["at"]) > PENDING_SECONDS:
        return None
    user = User.objects.filter(pk=pending["uid"], is_active=True).first()
    changed = user.password_changed_at if user else None
    if changed is not None and changed.timestamp() > float(pending["at"]):
        return None  # the password changed after this half-finished sign-in: start over
    return user


@login_not_required
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    """Step 2: the TOTP code (or a recovery code)."""
    user = _pending_user(request)
    if user is None:
        messages.info(request, "Sign in with your password first.")
        return redirect("accounts:login")
    form = CodeForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            attempt = throttle.begin(user.username, client_ip(request))
        except ThrottledError as exc:
            form.add_error(None, exc.message)
            return render(request, "accounts/verify.html", {"form": form}, status=429)
        code = form.cleaned_data["code"].strip()
        device = TOTPDevice.objects.get(user=user)
        if len(code.replace(" ", "")) == 6:
            accepted = totp.accept_code(device, code)
        else:
            accepted = totp.accept_recovery_code(user, code)
        if accepted:
            attempt.succeeded()
            del request.session[PENDING]
            login(request, user, backend=BACKEND)
            request.session[AUTH_AT] = time.time()
            record_client(request)
            left = totp.remaining_recovery_codes(user)
            if left <= 3:
                messages.warning(
                    request, f"{left} recovery codes left: make new ones under Account."
                )
            return redirect(_safe_next(request))
        form.add_error(None, "That code is wrong or has already been used. Enter the current code.")
        status = 401
    return render(request, "accounts/verify.html", {"form": form}, status=status)


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    """End this session."""
    logout(request)
    messages.info(request, "You are signed out.")
    return redirect("accounts:login")


def _qr_svg(uri: str) -> str:
    # segno renders from our own otpauth URI (username validated ASCII): nothing user-typed.
    return mark_safe(segno.make(uri, error="m").svg_inline(scale=5, border=2))  # noqa: S308  # nosec B308 B703


@login_not_required
@sensitive_post_parameters("password", "password_again", "code")
@require_http_methods(["GET", "POST"])
def setup(request: HttpRequest, token: str) -> HttpResponse:
    """Use a one-time link: choose a password and enrol TOTP."""
    try:
        link = actions.open_setup_link(token)
    except GarrisonError as exc:
        return render(request, "accounts/setup_invalid.html", {"error": exc}, status=404)
    key = f"garrison_setup_{actions.sha256(token)[:16]}"
    sealed = request.session.get(key)
    secret = totp.unseal_text(sealed) if sealed else totp.new_secret()
    request.session[key] = totp.seal(secret)  # sessions are DB rows: keep the seed sealed
    first = link.purpose == SetupLink.Purpose.FIRST_ADMIN
    form = SetupForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            codes = actions.do_complete_setup(
                token,
                username=form.cleaned_data["username"] if first else "",
                display_name=form.cleaned_data["display_name"],
                password=form.cleaned_data["password"],
                totp_secret=secret,
                code=form.cleaned_data["code"],
            )
        except GarrisonError as exc:
            form.add_error(None, exc.message)
            status = 400
        else:
            del request.session[key]
            return render(request, "accounts/setup_done.html", {"codes": codes})
    elif request.method == "POST":
        status = 400
    typed = str(form.data.get("username", "")).strip().lower()
    if first:
        name = typed if re.fullmatch(USERNAME_RE, typed) else ""
    else:
        name = link.user.username if link.user else ""
    context = {
        "form": form,
        "link": link,
        "first": first,
        "secret": secret,
        "qr": _qr_svg(totp.provisioning_uri(secret, str(name) or "garrison")),
    }
    return render(request, "accounts/setup.html", context, status=status)


@require_http_methods(["GET"])
def account(request: HttpRequest) -> HttpResponse:
    """One's own security: sessions, recovery codes, password."""
    user = console_user(request)
    context = {
        "sessions": queries.sessions_of(user),
        "current_key": request.session.session_key,
        "recovery_left": totp.remaining_recovery_codes(user),
        "password_form": PasswordChangeForm(),
    }
    return render(request, "accounts/account.html", context)


@sensitive_post_parameters()
@require_POST
def change_password(request: HttpRequest) -> HttpResponse:
    """Change one's password; other sessions are ended."""
    user = console_user(request)
    form = PasswordChangeForm(request.POST)
    if form.is_valid():
        try:
            attempt = throttle.begin(user.username, client_ip(request))
            actions.do_change_password(
                user,
                current=form.cleaned_data["current_password"],
                new=form.cleaned_data["new_password"],
            )
        except GarrisonError as exc:
            messages.error(request, exc.message)
        else:
            attempt.succeeded()
            update_session_auth_hash(request, user)
            actions.do_end_all_sessions(user, keep_key=request.session.session_key)
            messages.success(request, "Password changed. Your other sessions were ended.")
    return redirect("accounts:account")


@require_POST
def recovery_codes(request: HttpRequest) -> HttpResponse:
    """Make new recovery codes and show them once."""
    codes = actions.do_regenerate_recovery_codes(console_user(request))
    return render(request, "accounts/recovery_codes.html", {"codes": codes})


@require_POST
def end_session(request: HttpRequest, session_id: str) -> HttpResponse:
    """End one of one's sessions."""
    actor = console_user(request)
    try:
        actions.do_end_session(actor, queries.access_session(actor, session_id))
    except GarrisonError as exc:
        messages.error(request, exc.message)
    return redirect("accounts:account")


@require_POST
def end_all_sessions(request: HttpRequest) -> HttpResponse:
    """Sign out everywhere, this browser included."""
    actions.do_end_all_sessions(console_user(request))
    logout(request)
    messages.info(request, "You are signed out everywhere.")
    return redirect("accounts:login")


@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    """One's API tokens; a new token's secret is shown once."""
    actor = console_user(request)
    form = TokenForm(request.POST or None)
    secret = None
    if request.method == "POST" and form.is_valid():
        try:
            _, secret = actions.do_create_token(
                actor,
                owner=actor,
                name=form.cleaned_data["name"],
                write=form.cleaned_data["write"],
                days=form.cleaned_data["days"],
            )
        except GarrisonError as exc:
            form.add_error(None, exc.message)
        else:
            form = TokenForm()
    context = {"form": form, "secret": secret, "tokens": queries.tokens_visible_to(actor)}
    return render(request, "accounts/tokens.html", context)


@require_POST
def revoke_token(request: HttpRequest, token_id: str) -> HttpResponse:
    """Revoke one of one's tokens."""
    actor = console_user(request)
    try:
        actions.do_revoke_token(actor, queries.access_token(actor, token_id))
    except GarrisonError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Token revoked.")
    return redirect("accounts:tokens")


@role_required(READ_ALL)
@require_http_methods(["GET", "POST"])
def users(request: HttpRequest) -> HttpResponse:
    """People and machine identities; admins invite from here."""
    actor = console_user(request)
    form = InviteForm(request.POST or None)
    link = None
    if request.method == "POST":
        if actor.role not in MANAGE_ACCOUNTS:
            return render(request, "console/denied.html", status=403)
        if form.is_valid():
            try:
                _, token = actions.do_invite_person(
                    actor,
                    username=form.cleaned_data["username"],
                    role=form.cleaned_data["role"],
                    minutes=settings.GARRISON.setup_link_minutes,
                )
            except GarrisonError as exc:
                form.add_error(None, exc.message)
            else:
                link, form = setup_url(token), InviteForm()
    search = request.GET.get("q", "")[:100].replace("\x00", "")
    rows = queries.users_visible_to(actor, search=search)
    context = {"form": form, "link": link, "users": rows, "q": search}
    return render(request, "accounts/users.html", context)


@role_required(MANAGE_ACCOUNTS)
@require_POST
def user_action(request: HttpRequest, username: str) -> HttpResponse:
    """Admin actions on one user: change role, (de)activate, reset access."""
    actor = console_user(request)
    action = request.POST.get("action", "")
    try:
        user = queries.access_user(actor, username)
        if action == "reset":
            token = actions.do_create_setup_link(
                actor,
                purpose=SetupLink.Purpose.RESET,
                minutes=settings.GARRISON.setup_link_minutes,
                role=user.role,
                user=user,
            )
            context = {"person": user, "link": setup_url(token)}
            return render(request, "accounts/reset_link.html", context)
        if action in {"activate", "deactivate"}:
            actions.do_update_user(actor, user, is_active=action == "activate")
            messages.success(request, f"{user.username} {action}d.")
        elif action == "role":
            actions.do_update_user(actor, user, role=request.POST.get("role", ""))
            messages.success(request, f"{user.username} is now {user.get_role_display()}.")
        else:
            messages.error(request, f"Unknown action {action!r}.")
    except GarrisonError as exc:
        messages.error(request, exc.message)
    return redirect("accounts:users")
