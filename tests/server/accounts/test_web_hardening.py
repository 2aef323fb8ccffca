"""Framework-level protections of the console: CSRF, XSS escaping, SQL injection, headers, roles."""

from __future__ import annotations

import pytest
from django.db import connection

from garrison.server.accounts import actions
from tests.conftest import https_client, signed_in_client
from tests.factories import Person, make_person

pytestmark = pytest.mark.django_db

SQLI = [
    "' OR 1=1 --",
    "admin'; DROP TABLE accounts_user; --",
    '" OR ""="',
    "%' UNION SELECT password FROM accounts_user --",
    "\x00",
    "%",
    "_",
    "x" * 5000,
]


def test_post_without_csrf_token_is_refused(admin: Person) -> None:
    """A state-changing POST without the CSRF token gets 403 and changes nothing."""
    client = https_client(enforce_csrf_checks=True)
    client.force_login(admin.user, backend="django.contrib.auth.backends.ModelBackend")
    r = client.post("/tokens/", {"name": "stolen", "days": 10})
    assert r.status_code == 403
    assert b"could not be accepted" in r.content
    assert not admin.user.tokens.exists()


def test_sign_in_form_needs_csrf_token(admin: Person) -> None:
    """Even the sign-in form is CSRF-protected (no login CSRF)."""
    client = https_client(enforce_csrf_checks=True)
    r = client.post("/login/", {"username": admin.user.username, "password": admin.password})
    assert r.status_code == 403


def test_cross_origin_post_refused_even_with_token(admin: Person) -> None:
    """A POST whose Origin is another site is refused."""
    client = https_client(enforce_csrf_checks=True)
    page = client.get("/login/")
    token = page.context["csrf_token"]
    r = client.post(
        "/login/",
        {"username": "x", "password": "y", "csrfmiddlewaretoken": str(token)},
        HTTP_ORIGIN="https://evil.example",
    )
    assert r.status_code == 403


def test_script_in_display_name_is_escaped(admin: Person) -> None:
    """A display name with markup renders as text in every page that shows it."""
    evil = make_person("developer", display_name='<script>alert("x")</script><img src=x onerror=1>')
    console = signed_in_client(admin)
    page = console.get("/users/").content
    assert b"<script>alert" not in page
    assert b"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    own = signed_in_client(evil).get("/").content
    assert b"<script>alert" not in own
    assert b"<img src=x" not in own


@pytest.mark.parametrize("payload", SQLI)
def test_sqli_in_console_search(admin: Person, payload: str) -> None:
    """Injection payloads in the user search return a normal page, never a 500."""
    console = signed_in_client(admin)
    r = console.get("/users/", {"q": payload})
    assert r.status_code in {200, 400}
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM accounts_user")
        assert cursor.fetchone()[0] >= 1


def test_security_headers_on_every_page(admin: Person) -> None:
    """CSP without unsafe-inline, HSTS, nosniff, referrer policy and no framing."""
    console = signed_in_client(admin)
    for path in ("/", "/login/", "/account/", "/users/", "/tokens/", "/findings/"):
        r = console.get(path)
        csp = r["Content-Security-Policy"]
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp
        assert "default-src 'none'" in csp
        assert r["Strict-Transport-Security"].startswith("max-age=")
        assert r["X-Content-Type-Options"] == "nosniff"
        assert r["Referrer-Policy"] == "same-origin"
        assert r["X-Frame-Options"] == "DENY"
        assert "no-store" in r["Cache-Control"]


def test_pages_have_no_inline_script_or_style(admin: Person) -> None:
    """Nothing on the pages needs unsafe-inline: no <script>, <style> or style= attributes."""
    console = signed_in_client(admin)
    for path in ("/", "/login/", "/account/", "/users/", "/tokens/", "/audit/"):
        body = console.get(path).content
        assert b"<script" not in body
        assert b"<style" not in body
        assert b" style=" not in body


def test_console_is_closed_by_default() -> None:
    """Every console page redirects an anonymous visitor to sign-in."""
    client = https_client()
    for path in (
        "/",
        "/findings/",
        "/logs/",
        "/hosts/",
        "/access/",
        "/backups/",
        "/trust/",
        "/audit/",
        "/account/",
        "/users/",
        "/tokens/",
    ):
        r = client.get(path)
        assert r.status_code == 302, path
        assert r["Location"].startswith("/login/")
    assert client.get("/healthz").status_code == 200


def test_roles_in_the_console(admin: Person) -> None:
    """Developers cannot list people; auditors can list but not invite or change people."""
    developer = signed_in_client(make_person("developer"))
    assert developer.get("/users/").status_code == 403
    auditor = signed_in_client(make_person("auditor"))
    assert auditor.get("/users/").status_code == 200
    assert auditor.post("/users/", {"username": "mallory", "role": "admin"}).status_code == 403
    target = make_person("operator")
    r = auditor.post(f"/users/{target.user.username}/", {"action": "deactivate"})
    assert r.status_code == 403
    target.user.refresh_from_db()
    assert target.user.is_active


def test_admin_invites_and_sees_link_once(admin: Person) -> None:
    """An admin invites a person; the setup link is shown on that response only."""
    console = signed_in_client(admin)
    r = console.post("/users/", {"username": "carol", "role": "operator"})
    assert b"/setup/" in r.content
    assert b"/setup/" not in console.get("/users/").content


def test_token_secret_shown_once_in_console(admin: Person) -> None:
    """A token created in the console is displayed once and stored only as a hash."""
    console = signed_in_client(admin)
    r = console.post("/tokens/", {"name": "laptop", "days": 30})
    secret = r.context["secret"]
    assert secret.startswith("grs_")
    assert secret.encode() not in console.get("/tokens/").content
    token = admin.user.tokens.get()
    assert token.token_hash == actions.sha256(secret)


def test_auditor_tokens_are_read_only(db: None) -> None:
    """An auditor may create a read token but never a write token."""
    auditor = signed_in_client(make_person("auditor"))
    r = auditor.post("/tokens/", {"name": "report", "days": 30, "write": "on"})
    assert b"read-only" in r.content
    r = auditor.post("/tokens/", {"name": "report", "days": 30})
    assert r.context["secret"]


def test_static_assets_served_without_login() -> None:
    """The stylesheet is served (no CDN) and path traversal is refused."""
    client = https_client()
    r = client.get("/static/console/garrison.css")
    assert r.status_code == 200
    assert r["Content-Type"].startswith("text/css")
    assert client.get("/static/../settings.py").status_code == 404
    assert client.get("/static/console/../../settings.py").status_code == 404


def test_reset_link_shown_once_not_kept_in_session(admin: Person) -> None:
    """An access-reset link is shown on its response only, never stored in the session."""
    target = make_person("developer")
    console = signed_in_client(admin)
    r = console.post(f"/users/{target.user.username}/", {"action": "reset"})
    assert r.status_code == 200
    link = r.context["link"]
    assert "/setup/" in link
    from garrison.server.accounts.models import UserSession  # noqa: PLC0415

    for row in UserSession.objects.all():
        assert link.split("/setup/")[1] not in str(row.get_decoded())
