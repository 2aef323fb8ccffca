"""Hosts join with a one-time token and get a short-lived client certificate; revocation."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings
from rest_framework.test import APIClient

from tests.conftest import api_client, signed_in_client
from tests.factories import Person, make_person

pytestmark = pytest.mark.django_db


def csr_for(name: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A host key and its CSR (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def join(token: str, csr: str) -> object:
    """The agent's join call."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.post("/api/v1/agent/join", {"csr": csr}, format="json")


def test_operator_adds_host_and_it_joins_once(db: None) -> None:
    """An operator's join token yields one short-lived clientAuth certificate, then dies."""
    operator = make_person("operator")
    r = api_client(operator).post(
        "/api/v1/hosts", {"name": "Web-1.EU", "zone": "fsn1"}, format="json"
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["host"] == {**body["host"], "name": "web-1.eu", "zone": "fsn1", "state": "waiting"}
    token = body["join_token"]
    _, csr = csr_for("web-1.eu")
    joined = join(token, csr)
    assert joined.status_code == 201, joined.content  # type: ignore[attr-defined]
    chain = x509.load_pem_x509_certificates(joined.json()["certificate"].encode())  # type: ignore[attr-defined]
    leaf = chain[0]
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "web-1.eu"
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    life = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert life <= dt.timedelta(minutes=settings.GARRISON.host_cert_minutes + 2)
    assert join(token, csr).status_code == 404  # type: ignore[attr-defined]
    shown = api_client(operator).get("/api/v1/hosts/web-1.eu").json()
    assert shown["state"] == "joined"


def test_roles_for_hosts(db: None) -> None:
    """Developers cannot see hosts; auditors see but cannot add or revoke."""
    assert api_client(make_person("developer")).get("/api/v1/hosts").status_code == 403
    auditor = api_client(make_person("auditor"), write=False)
    assert auditor.get("/api/v1/hosts").status_code == 200
    assert (
        auditor.post("/api/v1/hosts", {"name": "x", "zone": "z"}, format="json").status_code == 403
    )


def test_bad_join_attempts(admin: Person) -> None:
    """No token, a user's API token, a garbage CSR: each refused with a clear error."""
    r = api_client(admin).post("/api/v1/hosts", {"name": "db-1", "zone": "z1"}, format="json")
    token = r.json()["join_token"]
    assert APIClient().post("/api/v1/agent/join", {"csr": "x"}, format="json").status_code == 401
    assert (
        api_client(admin).post("/api/v1/agent/join", {"csr": "x"}, format="json").status_code == 401
    )
    assert join(token, "not a csr").status_code == 400  # type: ignore[attr-defined]
    assert (
        api_client(admin)
        .post("/api/v1/hosts", {"name": "bad name!", "zone": "z"}, format="json")
        .status_code
        == 400
    )


def test_revocation_is_published(admin: Person) -> None:
    """Revoking a host lists its name and serial for the collector; its token dies too."""
    client = api_client(admin)
    token = client.post("/api/v1/hosts", {"name": "app-1", "zone": "z1"}, format="json").json()[
        "join_token"
    ]
    _, csr = csr_for("app-1")
    assert join(token, csr).status_code == 201  # type: ignore[attr-defined]
    assert client.delete("/api/v1/hosts/app-1").status_code == 204
    published = json.loads(settings.PREPARED.data.revocations.read_text())
    assert "app-1" in published["hosts"]
    assert published["serials"]
    second = client.post("/api/v1/hosts", {"name": "app-2", "zone": "z1"}, format="json").json()
    assert client.delete("/api/v1/hosts/app-2").status_code == 204
    assert join(second["join_token"], csr_for("app-2")[1]).status_code == 404  # type: ignore[attr-defined]


def test_hosts_page(admin: Person) -> None:
    """The console lists hosts and shows a new host's join command once."""
    console = signed_in_client(admin)
    r = console.post("/hosts/", {"name": "edge-1", "zone": "z2"})
    assert b"garrison agent join" in r.content
    page = console.get("/hosts/")
    assert b"edge-1" in page.content
    assert b"grj_" not in page.content


def test_silent_host_is_flagged(admin: Person) -> None:
    """A joined host the collector has not heard from in 5 minutes is flagged silent."""
    from garrison.pipeline.activity import HostActivity  # noqa: PLC0415
    from garrison.server.fleet.queries import fleet_view  # noqa: PLC0415

    client = api_client(admin)
    for name in ("quiet-1", "busy-1"):
        token = client.post("/api/v1/hosts", {"name": name, "zone": "z"}, format="json").json()
        assert join(token["join_token"], csr_for(name)[1]).status_code == 201  # type: ignore[attr-defined]
    activity = HostActivity()
    activity.record("busy-1", "ssh", 30)
    activity.publish(settings.PREPARED.data.activity)
    views = {v.host.name: v for v in fleet_view(admin.user)}
    assert views["quiet-1"].silent
    assert not views["busy-1"].silent
    assert views["busy-1"].events_per_second == {"ssh": 0.1}
    page = signed_in_client(admin).get("/hosts/")
    assert b"silent" in page.content


def test_agent_version_and_renewed_certificate_reach_the_fleet_view(admin: Person) -> None:
    """The collector's snapshot (agent User-Agent, expiry of the renewed certificate) wins over
    the join-time expiry in the console and the API."""
    from garrison.pipeline.activity import HostActivity  # noqa: PLC0415

    client = api_client(admin)
    token = client.post("/api/v1/hosts", {"name": "web-9", "zone": "z"}, format="json").json()
    assert join(token["join_token"], csr_for("web-9")[1]).status_code == 201  # type: ignore[attr-defined]
    joined = client.get("/api/v1/hosts/web-9").json()
    assert joined["agent"] == ""
    renewed = dt.datetime.fromisoformat(joined["cert_not_after"]) + dt.timedelta(hours=5)
    activity = HostActivity()
    activity.record("web-9", agent="garrison-agent/9.9.9", cert_not_after=renewed)
    activity.publish(settings.PREPARED.data.activity)
    shown = client.get("/api/v1/hosts/web-9").json()
    assert shown["agent"] == "garrison-agent/9.9.9"
    assert dt.datetime.fromisoformat(shown["cert_not_after"]) == renewed.replace(microsecond=0)
    assert not shown["silent"]
    listed = client.get("/api/v1/hosts").json()["results"]
    assert [h["agent"] for h in listed if h["name"] == "web-9"] == ["garrison-agent/9.9.9"]
    page = signed_in_client(admin).get("/hosts/").content.decode()
    assert "garrison-agent/9.9.9" in page
    assert renewed.strftime("%Y-%m-%d %H:%M") in page
