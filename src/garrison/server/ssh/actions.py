"""The one write path for SSH certificates: issue (user or host) and revoke, with the KRL.

`actor` None is the control plane's own shell (`garrison ssh ...`), whose commands are audited
by the CLI; a person may revoke their own certificates, operators and admins anyone's. Every
revocation rewrites the KRL that hosts pull.
"""

from __future__ import annotations

import datetime as dt
import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from garrison.core.errors import NotFoundError, PermissionDeniedError, ValidationError
from garrison.server.accounts.actions import verify_second_factor
from garrison.server.accounts.models import User
from garrison.server.accounts.roles import OPERATE
from garrison.server.bootstrap import ssh_authority
from garrison.server.ssh.models import Certificate
from garrison.server.ssh.queries import revoked_serials
from garrison.ssh.ca import Issued

_SERIAL_TRIES = 5


def role_hours(role: str | None) -> int:
    """The longest certificate a role may hold (`ssh_role_hours`, else `ssh_cert_max_hours`)."""
    config = settings.GARRISON
    for spec in config.ssh_role_hours:
        name, _, hours = spec.partition(":")
        if name == role:
            return min(int(hours), config.ssh_cert_max_hours)
    return config.ssh_cert_max_hours


def user_lifetime(hours: float | None, role: str | None = None) -> dt.timedelta:
    """The lifetime a user certificate gets: `hours`, or the default (`ssh_cert_hours`, within
    the role's maximum); never past the role's maximum (`ssh_role_hours`) nor
    `ssh_cert_max_hours`."""
    limit = role_hours(role)
    wanted = min(settings.GARRISON.ssh_cert_hours, limit) if hours is None else hours
    if wanted <= 0:
        raise ValidationError("a certificate must live for some time")
    if wanted > limit:
        whose = f"the {role} role's" if role else "the"
        raise ValidationError(
            f"{wanted:g} h is longer than {whose} {limit} h allowed",
            hint="ask for less, or raise ssh_role_hours / ssh_cert_max_hours",
        )
    return dt.timedelta(hours=wanted)


def _actor_name(actor: User | None) -> str:
    return actor.username if actor is not None else "cli"


def do_issue(
    actor: User | None,
    kind: str,
    public_key: str,
    *,
    key_id: str,
    principals: list[str],
    valid_for: dt.timedelta,
    source_address: str = "",
    agent_forwarding: bool = False,
) -> Issued:
    """Sign `public_key` and record the certificate (a fresh random serial each time)."""
    authority = ssh_authority(settings.PREPARED)
    for _ in range(_SERIAL_TRIES):
        serial = secrets.randbits(63) or 1
        issued = authority.sign(
            kind,
            public_key,
            serial=serial,
            key_id=key_id,
            principals=principals,
            valid_for=valid_for,
            source_address=source_address,
            agent_forwarding=agent_forwarding,
        )
        try:
            with transaction.atomic():
                Certificate.objects.create(
                    serial=serial,
                    kind=kind,
                    key_id=key_id[:255],
                    principals=list(issued.principals),
                    fingerprint=issued.fingerprint,
                    ca_fingerprint=issued.ca_fingerprint,
                    source_address=source_address[:255],
                    valid_after=issued.valid_after,
                    valid_before=issued.valid_before,
                    issued_by=_actor_name(actor),
                )
        except IntegrityError:
            continue  # a serial drawn twice: draw again
        return issued
    raise ValidationError("could not draw an unused certificate serial; try again")


def do_revoke(actor: User | None, serial: int) -> Certificate:
    """Revoke a certificate by serial and publish the new KRL."""
    found = Certificate.objects.filter(serial=serial).first()
    if found is None:
        raise NotFoundError(f"no SSH certificate with serial {serial}")
    own = actor is not None and found.key_id == actor.username
    if actor is not None and not own and actor.role not in OPERATE:
        raise PermissionDeniedError("you may revoke only your own certificates")
    with transaction.atomic():
        if found.revoked_at is None:
            found.revoked_at = timezone.now()
            found.revoked_by = _actor_name(actor)
            found.save(update_fields=["revoked_at", "revoked_by"])
        publish_krl()
    return found


def publish_krl() -> None:
    """Write the KRL of every revoked, unexpired user certificate (atomic replace)."""
    authority = ssh_authority(settings.PREPARED)
    authority.write_krl(revoked_serials(), settings.PREPARED.data.ssh_krl)


def principals_for(person: User) -> list[str]:
    """What a person's certificate lets them log in as, through each host's principals files:
    their own name, and their role (``role-admin``, ``role-operator``, ...)."""
    return [person.username, f"role-{person.role}"]


def do_issue_for_person(person: User, public_key: str, hours: float | None) -> Issued:
    """A person's own certificate (they proved their second factor): principals from their
    role, agent forwarding for operators and admins only."""
    if person.is_machine:
        raise PermissionDeniedError("machine identities get no SSH certificates; people do")
    return do_issue(
        person,
        "user",
        public_key,
        key_id=person.username,
        principals=principals_for(person),
        valid_for=user_lifetime(hours, person.role),
        agent_forwarding=person.role in OPERATE,
    )


def do_check_bastion_login(
    key_id: str, serial: int, key_fingerprint: str, code: str, ip: str | None
) -> User:
    """The bastion's second factor: the certificate sshd accepted must be one Garrison
    issued (serial, key id and key agree), unrevoked and unexpired, its person active, and the
    TOTP code theirs and fresh."""
    cert = Certificate.objects.filter(serial=serial, kind="user").first()
    if cert is None or cert.key_id != key_id or cert.fingerprint != key_fingerprint:
        raise PermissionDeniedError(f"certificate {serial} was not issued by Garrison as it is")
    if cert.state != "valid":
        raise PermissionDeniedError(f"certificate {serial} is {cert.state}")
    person = User.objects.filter(username=key_id, is_active=True, is_machine=False).first()
    if person is None:
        raise PermissionDeniedError(f"{key_id} is not an active person")
    verify_second_factor(person, code, ip)
    return person
