"""The console's SSH page: one's certificates, issue with a fresh code, revoke, who holds what."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from garrison.events.bastion import PROGRAM, Connection, message
from garrison.events.parsers import events_parser
from garrison.server import trail
from garrison.server.ssh.models import Certificate
from tests.conftest import api_client, signed_in_client
from tests.factories import Person, make_person
from tests.ssh.helpers import new_key


def test_issue_list_and_revoke_ones_own(admin: Person, tmp_path: Path) -> None:
    dev = make_person("developer", username="dev1")
    client = signed_in_client(dev)
    key = new_key(tmp_path / "id_ed25519").read_text()
    page = client.get("/ssh/")
    assert page.status_code == 200
    assert "No certificates yet" in page.content.decode()
    wrong = client.post("/ssh/", {"public_key": key, "code": "000000"})
    assert wrong.status_code == 400
    assert "wrong or already used TOTP code" in wrong.content.decode()
    made = client.post("/ssh/", {"public_key": key, "code": dev.code(1), "hours": "2"})
    assert made.status_code == 200, made.content
    body = made.content.decode()
    assert '<pre id="certificate">ssh-ed25519-cert-v01@openssh.com ' in body
    cert = Certificate.objects.get(key_id="dev1")
    assert cert.principals == ["dev1", "role-developer"]
    assert "Who holds live certificates" not in body  # developers see only their own
    revoked = client.post(f"/ssh/{cert.serial}/revoke/", follow=True)
    assert f"Certificate {cert.serial} is revoked" in revoked.content.decode()
    cert.refresh_from_db()
    assert cert.state == "revoked"
    trail = api_client(admin).get("/api/v1/audit/events").json()["results"]
    assert {"ssh.page.post", "ssh.revoke.post"} <= {h["event"]["action"] for h in trail}


def test_operators_see_and_revoke_everyones_auditors_only_see(
    admin: Person, tmp_path: Path
) -> None:
    dev = make_person("developer", username="dev2")
    signed_in_client(dev).post(
        "/ssh/", {"public_key": new_key(tmp_path / "k").read_text(), "code": dev.code(1)}
    )
    cert = Certificate.objects.get(key_id="dev2")
    auditor = signed_in_client(make_person("auditor"))
    seen = auditor.get("/ssh/").content.decode()
    assert "Who holds live certificates" in seen
    assert "dev2" in seen
    assert "Get a certificate" not in seen
    assert auditor.post("/ssh/", {"public_key": "x", "code": "123456"}).status_code == 403
    other = signed_in_client(make_person("developer", username="dev3"))
    refused = other.post(f"/ssh/{cert.serial}/revoke/", follow=True)
    assert "only your own" in refused.content.decode()
    operator = signed_in_client(make_person("operator"))
    operator.post(f"/ssh/{cert.serial}/revoke/")
    cert.refresh_from_db()
    assert cert.state == "revoked"


def _record(activity: str, port: int, end: str = "") -> dict[str, object]:
    """A bastion record as the sshd parser makes it from the bastion's log."""
    (event,) = events_parser("sshd")(
        f"{dt.datetime.now(dt.UTC).isoformat()} jump-1 {PROGRAM}[7]: "
        + message(
            activity,  # type: ignore[arg-type]  # opened or closed
            Connection(
                src_ip="198.51.100.7",
                src_port=port,
                start="2026-12-01T09:00:00.000000Z",
                cert_key_id="olga",
                cert_serial=port,
                authenticated=True,
                targets=["10.0.2.2:22"] if end else [],
                denied=["10.0.2.9:5432"] if end else [],
                end=end,
                duration_s=61.5 if end else None,
                bytes_in=2048 if end else None,
                bytes_out=10_485_760 if end else None,
            ),
        )
    )
    return event


def test_who_is_connected_through_the_bastion_and_recent_connections(admin: Person) -> None:
    trail.store().append(
        "ssh",
        [
            _record("opened", 50001),
            _record("closed", 50001, end="2026-12-01T09:01:01.500000Z"),
            _record("opened", 50002),  # still connected
        ],
    )
    page = signed_in_client(admin).get("/ssh/").content.decode()
    connected = page.split("<caption>Connected now</caption>", 1)[1].split("</table>", 1)[0]
    assert "50002" in connected
    assert "50001" not in connected
    recent = page.split("<caption>Recent connections", 1)[1].split("</table>", 1)[0]
    assert "<td>10.0.2.2:22</td><td>10.0.2.9:5432</td><td>61.5</td>" in recent
    assert "2.0\xa0KB / 10.0\xa0MB" in recent
    assert "50002" not in recent
