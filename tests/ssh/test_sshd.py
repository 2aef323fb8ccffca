"""Certificates against a real OpenSSH sshd on loopback: what gets in, and what is refused."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.core.secrets import KeyRing
from garrison.events.parsers import events_parser
from garrison.ssh.ca import SSHAuthority, fingerprint
from tests.ssh.helpers import Sshd, new_authority, new_key, start_sshd

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def authority(tmp_path: Path) -> SSHAuthority:
    return new_authority(tmp_path)


@pytest.fixture
def sshd(tmp_path: Path, authority: SSHAuthority) -> Iterator[Sshd]:
    krl = tmp_path / "revoked.krl"
    authority.write_krl([], krl)
    server = start_sshd(
        tmp_path / "sshd", authority.public_key("user"), {"root": ["alice"]}, krl=krl
    )
    yield server
    server.stop()


def _certify(
    authority: SSHAuthority,
    key: Path,
    serial: int,
    principals: tuple[str, ...] = ("alice",),
    *,
    now: dt.datetime | None = None,
    source_address: str = "",
) -> None:
    issued = authority.sign(
        "user",
        key.with_name(key.name + ".pub").read_text(),
        serial=serial,
        key_id="alice",
        principals=principals,
        valid_for=HOUR,
        now=now,
        source_address=source_address,
    )
    key.with_name(key.name + "-cert.pub").write_text(issued.certificate + "\n")


def test_a_certificate_gets_in_and_sshd_logs_its_key_id_and_serial(
    tmp_path: Path, authority: SSHAuthority, sshd: Sshd
) -> None:
    key = tmp_path / "alice"
    new_key(key)
    _certify(authority, key, 77)
    result = sshd.ssh(key)
    assert result.returncode == 0, result.stderr + sshd.log
    assert result.stdout.strip() == "reached"
    assert "ID alice (serial 77) CA ED25519" in sshd.log
    (accepted,) = [x for x in sshd.log.splitlines() if x.startswith("Accepted publickey")]
    (event,) = events_parser("sshd")(f"Dec  1 12:00:00 web-1 sshd[1]: {accepted}")
    assert (event["user"], event["cert_key_id"], event["cert_serial"]) == ("root", "alice", 77)
    assert event["ca_fingerprint"] == fingerprint(authority.public_key("user"))


def test_what_is_refused(tmp_path: Path, authority: SSHAuthority, sshd: Sshd) -> None:
    """Each on its own: a plain key, another CA, expired, wrong principal, wrong address,
    revoked."""
    plain = tmp_path / "plain"
    new_key(plain)
    other = SSHAuthority(tmp_path / "other", KeyRing.load_or_create(tmp_path / "other-kek"))
    other.init()
    foreign, expired, stranger, elsewhere, revoked = (
        tmp_path / n for n in ("foreign", "expired", "stranger", "elsewhere", "revoked")
    )
    for key in (foreign, expired, stranger, elsewhere, revoked):
        new_key(key)
    _certify(other, foreign, 1)
    _certify(authority, expired, 2, now=dt.datetime.now(dt.UTC) - 2 * HOUR)
    _certify(authority, stranger, 3, ("bob",))
    _certify(authority, elsewhere, 4, source_address="10.9.8.0/24")
    _certify(authority, revoked, 5)
    assert sshd.ssh(revoked).returncode == 0  # works, until revoked
    authority.write_krl([5], tmp_path / "revoked.krl")
    for key in (plain, foreign, expired, stranger, elsewhere, revoked):
        result = sshd.ssh(key)
        assert result.returncode == 255, key.name
        assert "Permission denied" in result.stderr, key.name
    log = sshd.log
    assert "expired" in log.lower()
    assert "revoked" in log.lower()
    assert "not from a permitted source address" in log


def test_a_host_certificate_stands_in_for_known_hosts(
    tmp_path: Path, authority: SSHAuthority
) -> None:
    host_key = tmp_path / "sshd" / "host_ed25519"
    host_key.parent.mkdir()
    new_key(host_key)
    issued = authority.sign(
        "host",
        host_key.with_name("host_ed25519.pub").read_text(),
        serial=900,
        key_id="web-1",
        principals=["127.0.0.1", "web-1"],
        valid_for=HOUR,
    )
    cert = host_key.with_name("host_ed25519-cert.pub")
    cert.write_text(issued.certificate + "\n")
    server = start_sshd(
        tmp_path / "sshd",
        authority.public_key("user"),
        {"root": ["alice"]},
        extra=f"HostCertificate {cert}\n",
    )
    try:
        key = tmp_path / "alice"
        new_key(key)
        _certify(authority, key, 901)
        known = tmp_path / "known_hosts"
        known.write_text(f"@cert-authority 127.0.0.1 {authority.public_key('host')}\n")
        strict = ("-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}")
        assert server.ssh(key, *strict).returncode == 0, server.log
        known.write_text(f"@cert-authority 127.0.0.1 {authority.public_key('user')}\n")
        refused = server.ssh(key, *strict)
        assert refused.returncode == 255
        assert "Host key verification failed" in refused.stderr
    finally:
        server.stop()
