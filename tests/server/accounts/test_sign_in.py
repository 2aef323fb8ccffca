"""Console sign-in: password then TOTP, replay refused, recovery codes, throttling, timeouts."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from garrison.server.accounts import throttle
from garrison.server.accounts.middleware import AUTH_AT
from garrison.server.accounts.models import AuthFailure, UserSession
from tests.conftest import https_client, signed_in_client
from tests.factories import Person, make_person

pytestmark = pytest.mark.django_db


def _password_step(client: Client, person: Person, password: str | None = None) -> int:
    r = client.post(
        "/login/", {"username": person.user.username, "password": password or person.password}
    )
    return r.status_code


def test_full_sign_in_and_out(admin: Person) -> None:
    """Password then TOTP signs in; sign-out ends the session."""
    client = signed_in_client(admin)
    assert client.get("/").status_code == 200
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_password_alone_does_not_sign_in(admin: Person) -> None:
    """After the password step the console is still closed until the code is entered."""
    client = https_client()
    assert _password_step(client, admin) == 302
    r = client.get("/")
    assert r.status_code == 302
    assert r["Location"].startswith("/login/")


def test_wrong_code_refused_and_replay_refused(admin: Person) -> None:
    """A wrong code is refused; a code that was already accepted can never be used again."""
    client = https_client()
    _password_step(client, admin)
    wrong = "000000" if admin.code() != "000000" else "111111"
    r = client.post("/login/verify/", {"code": wrong})
    assert r.status_code == 401
    assert b"wrong or has already been used" in r.content
    code = admin.code()
    assert client.post("/login/verify/", {"code": code}).status_code == 302
    client.post("/logout/")
    again = https_client()
    _password_step(again, admin)
    assert again.post("/login/verify/", {"code": code}).status_code == 401
    older = admin.code(-1)
    assert again.post("/login/verify/", {"code": older}).status_code == 401


def test_window_accepts_previous_step(db: None) -> None:
    """A code from the previous 30 s step is still accepted (clock skew of one step)."""
    person = make_person("operator")
    client = https_client()
    _password_step(client, person)
    assert client.post("/login/verify/", {"code": person.code(-1)}).status_code == 302


def test_code_two_steps_old_refused(db: None) -> None:
    """Codes outside the +-1 step window are refused."""
    person = make_person("operator")
    client = https_client()
    _password_step(client, person)
    assert client.post("/login/verify/", {"code": person.code(-3)}).status_code == 401


def test_recovery_code_works_once(admin: Person) -> None:
    """A recovery code replaces the TOTP code, once."""
    recovery = admin.recovery_codes[0]
    client = https_client()
    _password_step(client, admin)
    assert client.post("/login/verify/", {"code": recovery.upper()}).status_code == 302
    client.post("/logout/")
    _password_step(client, admin)
    assert client.post("/login/verify/", {"code": recovery}).status_code == 401


def test_wrong_password_message_and_no_user_enumeration(admin: Person) -> None:
    """Wrong password and unknown user get the same answer."""
    a = https_client().post("/login/", {"username": admin.user.username, "password": "nope"})
    b = https_client().post("/login/", {"username": "ghost", "password": "nope"})
    assert a.status_code == b.status_code == 401
    assert b"Wrong username or password." in a.content
    assert b"Wrong username or password." in b.content


def test_account_lockout_with_clear_message(admin: Person) -> None:
    """After the account limit, even the right password is refused with a wait time."""
    for _ in range(throttle.ACCOUNT_LIMIT):
        assert _password_step(https_client(), admin, "wrong password") == 401
    r = https_client().post(
        "/login/", {"username": admin.user.username, "password": admin.password}
    )
    assert r.status_code == 429
    assert b"Too many failed sign-in attempts for this account" in r.content
    assert b"minutes" in r.content


def test_source_lockout_across_accounts(db: None) -> None:
    """Guessing across many accounts from one address hits the per-source limit."""
    client = https_client(REMOTE_ADDR="203.0.113.9")
    for i in range(throttle.SOURCE_LIMIT):
        r = client.post("/login/", {"username": f"user{i}", "password": "guess"})
        assert r.status_code == 401
    r = client.post("/login/", {"username": "another", "password": "guess"})
    assert r.status_code == 429
    assert b"your network address" in r.content
    other = https_client(REMOTE_ADDR="198.51.100.7")
    assert other.post("/login/", {"username": "x", "password": "y"}).status_code == 401


def test_ipv6_sources_share_their_64() -> None:
    """Addresses in one IPv6 /64 count as one source; IPv4-mapped count as IPv4."""
    assert throttle.source_key("2001:db8:1:2::1") == throttle.source_key("2001:db8:1:2:ffff::9")
    assert throttle.source_key("2001:db8:1:3::1") != throttle.source_key("2001:db8:1:2::1")
    assert throttle.source_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert throttle.source_key("not an ip") == "unknown"


def test_totp_guessing_is_throttled(admin: Person) -> None:
    """Wrong TOTP codes count against the account like wrong passwords."""
    client = https_client()
    _password_step(client, admin)
    wrong = "000000" if admin.code() != "000000" else "111111"
    for _ in range(throttle.ACCOUNT_LIMIT):
        assert client.post("/login/verify/", {"code": wrong}).status_code == 401
    r = client.post("/login/verify/", {"code": admin.code()})
    assert r.status_code == 429


def test_success_does_not_count_as_failure(admin: Person) -> None:
    """A successful sign-in leaves no failure rows behind."""
    signed_in_client(admin)
    assert not AuthFailure.objects.filter(key=admin.user.username).exists()


def test_machine_identity_cannot_sign_in(admin: Person) -> None:
    """Machine identities have no password: the console refuses them."""
    from garrison.server.accounts import actions  # noqa: PLC0415

    actions.do_create_machine(admin.user, username="ci-bot", role="operator")
    r = https_client().post("/login/", {"username": "ci-bot", "password": "anything"})
    assert r.status_code == 401


def test_session_list_and_sign_out_everywhere(admin: Person) -> None:
    """Each browser is a session in the list; 'sign out everywhere' ends them all."""
    first = signed_in_client(admin, HTTP_USER_AGENT="Browser-One")
    second = https_client(HTTP_USER_AGENT="Browser-Two")
    second.post("/login/", {"username": admin.user.username, "password": admin.password})
    second.post("/login/verify/", {"code": admin.code(1)})
    assert UserSession.objects.filter(user=admin.user).count() == 2
    page = first.get("/account/")
    assert b"Browser-One" in page.content
    assert b"Browser-Two" in page.content
    assert first.session.session_key.encode() not in page.content
    assert first.post("/account/sessions/end-all/").status_code == 302
    assert UserSession.objects.filter(user=admin.user).count() == 0
    assert second.get("/").status_code == 302


def test_end_one_other_session(admin: Person) -> None:
    """Ending another session by its opaque id signs that browser out."""
    first = signed_in_client(admin)
    second = https_client()
    second.post("/login/", {"username": admin.user.username, "password": admin.password})
    second.post("/login/verify/", {"code": admin.code(1)})
    other = UserSession.objects.exclude(session_key=first.session.session_key).get()
    first.post(f"/account/sessions/{other.public_id}/end/")
    assert second.get("/").status_code == 302
    assert first.get("/").status_code == 200


def test_absolute_timeout(admin: Person) -> None:
    """A session older than the absolute limit is signed out even if active."""
    client = signed_in_client(admin)
    session = client.session
    session[AUTH_AT] = time.time() - 13 * 3600
    session.save()
    assert client.get("/").status_code == 302


def test_cookies_are_hardened(admin: Person) -> None:
    """Session and CSRF cookies are __Host-, Secure, HttpOnly and SameSite=Lax."""
    client = https_client()
    client.get("/login/")
    client.post("/login/", {"username": admin.user.username, "password": admin.password})
    client.post("/login/verify/", {"code": admin.code()})
    for name in ("__Host-garrison-session", "__Host-garrison-csrf"):
        morsel = client.cookies[name]
        assert morsel["secure"]
        assert morsel["httponly"]
        assert morsel["samesite"] == "Lax"
        assert morsel["path"] == "/"
        assert not morsel["domain"]


def test_open_redirect_refused(admin: Person) -> None:
    """`next` pointing to another site is ignored after sign-in."""
    client = https_client()
    client.post(
        "/login/?next=https://evil.example/",
        {"username": admin.user.username, "password": admin.password},
    )
    r = client.post("/login/verify/?next=https://evil.example/", {"code": admin.code()})
    assert r["Location"] == "/"


def test_half_finished_sign_in_dies_with_a_password_change(admin: Person) -> None:
    """A session past the password step cannot finish once the password has changed."""
    from garrison.server.accounts import actions  # noqa: PLC0415

    client = https_client()
    _password_step(client, admin)
    actions.do_change_password(admin.user, current=admin.password, new="brand new passphrase 77")
    r = client.post("/login/verify/", {"code": admin.code()})
    assert r.status_code == 302
    assert r["Location"].startswith("/login/")
    assert client.get("/").status_code == 302
