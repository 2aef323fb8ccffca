"""No default password: first-admin, invitation and reset links; scrypt, bcrypt upgrade, policy."""

from __future__ import annotations

import datetime as dt

import pyotp
import pytest
from django.contrib.auth.hashers import make_password
from django.test import Client
from django.utils import timezone

from garrison.core.errors import ConflictError, ValidationError
from garrison.server.accounts import actions
from garrison.server.accounts.models import SetupLink, TOTPDevice, User
from garrison.server.accounts.views import PENDING
from tests.conftest import https_client, signed_in_client
from tests.factories import PASSWORD, Person, make_person

pytestmark = pytest.mark.django_db


def _first_admin_link(minutes: int = 60) -> str:
    return actions.do_create_setup_link(
        None, purpose=SetupLink.Purpose.FIRST_ADMIN, minutes=minutes
    )


def _complete(client: Client, token: str, **fields: str) -> tuple[int, bytes]:
    page = client.get(f"/setup/{token}/")
    assert page.status_code == 200
    secret = page.context["secret"]
    data = {
        "username": "alice",
        "display_name": "Alice",
        "password": PASSWORD,
        "password_again": PASSWORD,
        "code": pyotp.TOTP(secret).now(),
        **fields,
    }
    r = client.post(f"/setup/{token}/", data)
    return r.status_code, r.content


def test_first_admin_link_creates_admin_once() -> None:
    """The link sets a password and TOTP, shows recovery codes, and cannot be used twice."""
    token = _first_admin_link()
    status, body = _complete(https_client(), token)
    assert status == 200
    assert b"recovery-codes" in body
    alice = User.objects.get(username="alice")
    assert alice.role == "admin"
    assert alice.password.startswith("scrypt$")
    assert TOTPDevice.objects.get(user=alice).confirmed_at is not None
    assert https_client().get(f"/setup/{token}/").status_code == 404
    with pytest.raises(ConflictError):
        _first_admin_link()


def test_setup_page_shows_qr_rendered_server_side() -> None:
    """The enrolment QR is inline SVG from our server; the secret is sealed at rest."""
    page = https_client().get(f"/setup/{_first_admin_link()}/")
    assert b"<svg" in page.content
    assert b"http" not in page.content.split(b"<svg", 1)[1].split(b"</svg>", 1)[0].replace(
        b"http://www.w3.org", b""
    )


def test_expired_link_refused() -> None:
    """An expired link explains itself and does nothing."""
    token = _first_admin_link()
    SetupLink.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    r = https_client().get(f"/setup/{token}/")
    assert r.status_code == 404
    assert b"expired" in r.content


def test_wrong_code_or_weak_password_keeps_link_usable() -> None:
    """A wrong TOTP or a common password is refused and the link still works after."""
    token = _first_admin_link()
    client = https_client()
    status, body = _complete(client, token, code="000000")
    assert status == 400
    assert b"code does not match" in body
    status, body = _complete(client, token, password="password123", password_again="password123")
    assert status == 400
    assert b"too common" in body or b"too short" in body
    assert _complete(client, token)[0] == 200


def test_invitation_and_reset(admin: Person) -> None:
    """An invited person sets their credentials; a reset replaces password and TOTP."""
    bob, token = actions.do_invite_person(admin.user, username="bob", role="developer", minutes=30)
    assert not bob.has_usable_password()
    assert _complete(https_client(), token)[0] == 200
    bob.refresh_from_db()
    assert bob.check_password(PASSWORD)
    old_secret_sealed = TOTPDevice.objects.get(user=bob).secret_sealed
    reset = actions.do_create_setup_link(
        admin.user, purpose=SetupLink.Purpose.RESET, minutes=30, user=bob, role=bob.role
    )
    new_password = "an entirely new passphrase 7"
    status, _ = _complete(https_client(), reset, password=new_password, password_again=new_password)
    assert status == 200
    bob.refresh_from_db()
    assert bob.check_password(new_password)
    assert TOTPDevice.objects.get(user=bob).secret_sealed != old_secret_sealed


def test_new_password_hash_is_scrypt(admin: Person) -> None:
    """Every new password is stored as a salted scrypt hash."""
    assert admin.user.password.startswith("scrypt$")
    assert PASSWORD not in admin.user.password


def test_bcrypt_user_is_upgraded_to_scrypt(admin: Person) -> None:
    """A user imported with a bcrypt hash signs in, and the hash becomes scrypt."""
    User.objects.filter(pk=admin.user.pk).update(password=make_password(PASSWORD, hasher="bcrypt"))
    assert User.objects.get(pk=admin.user.pk).password.startswith("bcrypt$")
    signed_in_client(admin)
    assert User.objects.get(pk=admin.user.pk).password.startswith("scrypt$")


@pytest.mark.parametrize(
    "password",
    ["short1", "password12345", "123456789012", "x" * 257],
)
def test_password_policy(admin: Person, password: str) -> None:
    """Short, common, numeric or huge passwords are refused with a reason."""
    with pytest.raises(ValidationError) as info:
        actions.do_change_password(admin.user, current=PASSWORD, new=password)
    assert str(info.value)


def test_change_password_ends_other_sessions(admin: Person) -> None:
    """Changing one's password keeps this session and ends the others."""
    here = signed_in_client(admin)
    there = https_client()
    there.post("/login/", {"username": admin.user.username, "password": admin.password})
    there.post("/login/verify/", {"code": admin.code(1)})
    new = "another long passphrase 99"
    r = here.post("/account/password/", {"current_password": PASSWORD, "new_password": new})
    assert r.status_code == 302
    assert here.get("/").status_code == 200
    assert there.get("/").status_code == 302


def test_recovery_codes_regenerate(admin: Person) -> None:
    """New recovery codes replace the old ones."""
    client = signed_in_client(admin)
    r = client.post("/account/recovery-codes/")
    assert r.status_code == 200
    old = admin.recovery_codes[0]
    fresh = https_client()
    fresh.post("/login/", {"username": admin.user.username, "password": admin.password})
    assert PENDING in fresh.session
    assert fresh.post("/login/verify/", {"code": old}).status_code == 401


def test_deactivation_ends_sessions_and_tokens(admin: Person) -> None:
    """A deactivated person is signed out at once and their tokens stop working."""
    dev = make_person("developer")
    client = signed_in_client(dev)
    _, secret = actions.do_create_token(dev.user, owner=dev.user, name="laptop", write=True)
    actions.do_update_user(admin.user, dev.user, is_active=False)
    assert client.get("/").status_code == 302
    r = Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert r.status_code == 401


def test_admin_cannot_demote_self(admin: Person) -> None:
    """An admin cannot lock the last door behind themselves."""
    with pytest.raises(ValidationError):
        actions.do_update_user(admin.user, admin.user, role="auditor")


def test_completing_one_reset_link_voids_the_others(admin: Person) -> None:
    """Of several reset links for one person, the first used voids the rest."""
    bob = make_person("developer")
    links = [
        actions.do_create_setup_link(
            admin.user,
            purpose=SetupLink.Purpose.RESET,
            minutes=30,
            user=bob.user,
            role=bob.user.role,
        )
        for _ in range(2)
    ]
    assert _complete(https_client(), links[0])[0] == 200
    assert https_client().get(f"/setup/{links[1]}/").status_code == 404
