"""`POST /api/v1/ssh/login`: a person's own certificate after their second factor."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import pytest
from rest_framework.test import APIClient

from garrison.core import settings as garrison_settings
from garrison.core.errors import ConfigError
from garrison.server.ssh.models import Certificate
from tests.conftest import api_client
from tests.factories import Person, make_person
from tests.ssh.helpers import KEYGEN, new_key


def _key(tmp_path: Path) -> str:
    return new_key(tmp_path / "id_ed25519").read_text()


def test_token_and_totp_give_a_certificate_for_ones_role(admin: Person, tmp_path: Path) -> None:
    person = make_person("developer", username="dana")
    client = api_client(person)
    reply = client.post(
        "/api/v1/ssh/login",
        {"public_key": _key(tmp_path), "totp": person.code(), "ttl_hours": 2},
        format="json",
    )
    assert reply.status_code == 201, reply.content
    body = reply.json()
    assert body["principals"] == ["dana", "role-developer"]
    assert body["known_hosts"][0].startswith("@cert-authority * ssh-ed25519 ")
    assert "StrictHostKeyChecking yes" in body["ssh_config"]
    cert = tmp_path / "id_ed25519-cert.pub"
    cert.write_text(body["certificate"] + "\n")
    shown = subprocess.run(
        [KEYGEN, "-L", "-f", str(cert)], capture_output=True, text=True, check=True
    ).stdout
    assert 'Key ID: "dana"' in shown
    assert "permit-agent-forwarding" not in shown  # developers do not forward agents
    row = Certificate.objects.get(serial=int(body["serial"]))
    assert (row.issued_by, row.key_id) == ("dana", "dana")
    mine = client.get("/api/v1/ssh/certificates").json()["results"]
    assert [c["serial"] for c in mine] == [body["serial"]]
    revoked = client.delete(f"/api/v1/ssh/certificates/{body['serial']}")
    assert revoked.status_code == 200
    assert revoked.json()["state"] == "revoked"


def test_the_second_factor_is_required_once_and_throttled(admin: Person, tmp_path: Path) -> None:
    client = api_client(admin)
    key = _key(tmp_path)
    code = admin.code()
    assert (
        client.post(
            "/api/v1/ssh/login", {"public_key": key, "totp": code}, format="json"
        ).status_code
        == 201
    )
    replay = client.post("/api/v1/ssh/login", {"public_key": key, "totp": code}, format="json")
    assert replay.status_code == 403
    assert "already used" in replay.json()["error"]["message"]
    statuses = [
        client.post(
            "/api/v1/ssh/login", {"public_key": key, "totp": "000000"}, format="json"
        ).status_code
        for _ in range(6)
    ]
    assert statuses[-1] == 429


def test_password_and_totp_without_a_token(tmp_path: Path, db: None) -> None:
    person = make_person("operator", username="olga")
    client = APIClient()
    key = _key(tmp_path)
    wrong = client.post(
        "/api/v1/ssh/login",
        {"public_key": key, "totp": person.code(), "username": "olga", "password": "nope"},
        format="json",
    )
    assert wrong.status_code == 403
    right = client.post(
        "/api/v1/ssh/login",
        {"public_key": key, "totp": person.code(), "username": "olga", "password": person.password},
        format="json",
    )
    assert right.status_code == 201, right.content
    assert right.json()["principals"] == ["olga", "role-operator"]
    nothing = client.post("/api/v1/ssh/login", {"public_key": key, "totp": "123456"}, format="json")
    assert nothing.status_code == 401  # neither a token nor a password


def test_limits_on_who_and_how_long(admin: Person, tmp_path: Path) -> None:
    key = _key(tmp_path)
    auditor = make_person("auditor")
    refused = APIClient().post(
        "/api/v1/ssh/login",
        {
            "public_key": key,
            "totp": auditor.code(),
            "username": auditor.user.username,
            "password": auditor.password,
        },
        format="json",
    )
    assert refused.status_code == 403
    assert "auditor role gets no SSH certificates" in refused.json()["error"]["message"]
    long = api_client(admin).post(
        "/api/v1/ssh/login",
        {"public_key": key, "totp": admin.code(), "ttl_hours": 100},
        format="json",
    )
    assert long.status_code == 400
    assert "24 h allowed" in long.json()["error"]["message"]
    bad_key = api_client(admin).post(
        "/api/v1/ssh/login", {"public_key": "ssh-rsa AAAA", "totp": admin.code()}, format="json"
    )
    assert bad_key.status_code == 400
    fine = api_client(admin).post(  # neither refusal spent the code
        "/api/v1/ssh/login", {"public_key": key, "totp": admin.code()}, format="json"
    )
    assert fine.status_code == 201
    actions = {
        h["event"]["action"]
        for h in api_client(admin).get("/api/v1/audit/events").json()["results"]
    }
    assert "api.ssh-login.post" in actions


def test_each_role_has_its_own_longest_certificate(
    admin: Person, tmp_path: Path, settings: Any
) -> None:
    settings.GARRISON = msgspec.structs.replace(settings.GARRISON, ssh_role_hours=["developer:2"])
    dev = make_person("developer")
    client = api_client(dev)
    key = _key(tmp_path)
    refused = client.post(
        "/api/v1/ssh/login",
        {"public_key": key, "totp": dev.code(), "ttl_hours": 3},
        format="json",
    )
    assert refused.status_code == 400
    assert "the developer role's 2 h allowed" in refused.json()["error"]["message"]
    default = client.post(
        "/api/v1/ssh/login", {"public_key": key, "totp": dev.code()}, format="json"
    )
    assert default.status_code == 201
    row = Certificate.objects.get(serial=int(default.json()["serial"]))
    assert row.valid_before - row.valid_after == dt.timedelta(hours=2, minutes=5)  # 5: skew
    assert (
        api_client(admin)
        .post(  # other roles keep ssh_cert_max_hours
            "/api/v1/ssh/login",
            {"public_key": key, "totp": admin.code(), "ttl_hours": 20},
            format="json",
        )
        .status_code
        == 201
    )
    with pytest.raises(ConfigError, match="ROLE:HOURS"):
        garrison_settings.load(environ={"GARRISON_SSH_ROLE_HOURS": "wizard:3"})
