"""The bastion in network namespaces: client -> bastion (certificate + TOTP) -> private host
(see tests/ssh/topology.py), driven with the stock ssh -J."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from garrison.core.secrets import KeyRing
from garrison.events.bastion import PROGRAM
from garrison.events.parsers import events_parser
from garrison.ssh.ca import SSHAuthority
from tests.cli import garrison
from tests.ssh.helpers import SSH
from tests.ssh.topology import ACCOUNT, BASTION, HOST, PAM_FILE, SIDE_DOOR, Topology, topology


@pytest.fixture(scope="module")
def world() -> Iterator[Topology]:
    with topology(["olga"]) as running:
        yield running


def _fresh_code(secret: str) -> str:
    """A code of a step no earlier test used (codes work once)."""
    totp = pyotp.TOTP(secret)
    used = _fresh_code.__dict__.setdefault("used", set())
    while (code := totp.now()) in used:
        time.sleep(1)
    used.add(code)
    return code


def test_certificate_and_totp_reach_the_private_host(world: Topology) -> None:
    key = world.key("olga")
    serial = world.sign(key, "--principals", "olga,role-operator")
    code = _fresh_code(world.secrets["olga"])
    result = world.ssh(key, code)
    assert result.returncode == 0, result.stderr + world.bastion_log + world.host.log
    assert result.stdout.strip() == "reached"
    assert f"ID olga (serial {serial})" in world.bastion_log
    # The bastion's log is written for the agent to ship: sshd lines with time, host and pid.
    parse = events_parser("sshd")
    logins = [
        e
        for line in world.bastion_log.splitlines()
        for e in parse(line)
        if e.get("outcome") == "success" and e.get("cert_serial") == int(serial)
    ]
    assert {(e["user"], e["cert_key_id"], e["src_ip"]) for e in logins} == {
        (ACCOUNT, "olga", "10.77.1.2")
    }
    assert "Accepted publickey for root from 10.77.2.1" in world.host.log
    assert f"ID olga (serial {serial})" in world.host.log

    replay = world.ssh(key, code)  # the same code again
    assert replay.returncode == 255
    assert "Permission denied" in replay.stderr


def test_what_the_bastion_refuses(world: Topology) -> None:
    """Each on its own, and none reaches the host."""
    plain = world.key("plain")
    other = SSHAuthority(world.work / "other-ca", KeyRing.load_or_create(world.work / "okek"))
    other.init()
    foreign = world.key("foreign")
    Path(f"{foreign}-cert.pub").write_text(
        other.sign(
            "user",
            Path(f"{foreign}.pub").read_text(),
            serial=5,
            key_id="olga",
            principals=["role-operator"],
            valid_for=dt.timedelta(hours=1),
        ).certificate
        + "\n"
    )
    expired = world.key("expired")
    Path(f"{expired}-cert.pub").write_text(
        world.authority.sign(
            "user",
            Path(f"{expired}.pub").read_text(),
            serial=6,
            key_id="olga",
            principals=["role-operator"],
            valid_for=dt.timedelta(hours=1),
            now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3),
        ).certificate
        + "\n"
    )
    stranger = world.key("stranger")
    world.sign(stranger, "--principals", "olga,role-auditor")
    revoked = world.key("revoked")
    serial = world.sign(revoked, "--principals", "olga,role-operator")
    assert garrison("ssh", "revoke", "--serial", serial, data_dir=world.data).returncode == 0
    wrong_code = world.key("wrongcode")
    world.sign(wrong_code, "--principals", "olga,role-operator")
    # All but the last fail at the certificate, before any code is asked for.
    for key, code in (
        (plain, "111111"),
        (foreign, "111111"),
        (expired, "111111"),
        (stranger, "111111"),
        (revoked, "111111"),
        (wrong_code, "000000"),
    ):
        refused = world.ssh(key, code)
        assert refused.returncode == 255, key.name
        assert "Permission denied" in refused.stderr, key.name
    assert "reached" not in world.host.log


def test_no_password_no_shell_no_side_door(world: Topology) -> None:
    key = world.key("olga2")
    world.sign(key, "--principals", "olga,role-operator")
    password = subprocess.run(
        world.net.argv(
            "client",
            [
                SSH, "-F", "/dev/null", "-o", "PreferredAuthentications=password",
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-p", "2222", f"{ACCOUNT}@{BASTION}", "true",
            ],
        ),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert password.returncode == 255
    assert "Permission denied" in password.stderr
    shell = world.ssh(key, _fresh_code(world.secrets["olga"]), bastion_only=True)
    assert "This is the Garrison bastion" in shell.stdout + shell.stderr
    side_door = subprocess.run(
        world.net.argv(
            "bastion",
            [
                SSH, "-F", "/dev/null", "-b", SIDE_DOOR, "-i", str(key), "-o", "IdentitiesOnly=yes",
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", f"root@{HOST}", "echo reached",
            ],
        ),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert side_door.returncode == 255
    assert "reached" not in side_door.stdout
    no_route = subprocess.run(
        world.net.argv("client", [SSH, "-o", "ConnectTimeout=3", f"root@{HOST}", "true"]),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert no_route.returncode == 255


def _records(world: Topology, serial: str, count: int) -> list[dict[str, Any]]:
    """The bastion's records of the certificate `serial`, once there are `count` (the last is
    written as the connection ends, which may be just after the client has gone)."""
    parse = events_parser("sshd")
    deadline = time.monotonic() + 10
    while True:
        found = [
            e
            for line in world.bastion_log.splitlines()
            for e in parse(line)
            if e.get("process") == PROGRAM and e.get("cert_serial") == int(serial)
        ]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_each_connection_is_recorded(world: Topology) -> None:
    """Who, which certificate, from where, to which host and port, start, end and bytes; a
    target the bastion refuses is on the record too. Then the bastion's record and the host's
    login both reach the log store, tied by the certificate's serial."""
    key = world.key("olga3")
    serial = world.sign(key, "--principals", "olga,role-operator")
    assert world.ssh(key, _fresh_code(world.secrets["olga"])).returncode == 0
    opened, closed = _records(world, serial, 2)
    assert (opened["activity"], closed["activity"]) == ("open", "close")
    assert closed["outcome"] == "success"
    assert (closed["cert_key_id"], closed["user"]) == ("olga", ACCOUNT)
    assert (closed["src_ip"], closed["targets"]) == ("10.77.1.2", [f"{HOST}:22"])
    assert (closed["dst_ip"], closed["dst_port"]) == (HOST, 22)
    assert closed["bytes_in"] > 1000
    assert closed["bytes_out"] > 1000
    assert closed["start"] <= closed["end"]
    assert closed["duration_s"] > 0

    elsewhere = world.ssh(key, _fresh_code(world.secrets["olga"]), target=SIDE_DOOR)
    assert elsewhere.returncode == 255
    refused = _records(world, serial, 4)[-1]
    assert refused["denied_targets"] == [f"{SIDE_DOOR}:22"]
    assert "targets" not in refused

    host_log = world.work / "host-sshd.log"
    host_log.write_text(
        "".join(
            f"{dt.datetime.now(dt.UTC).isoformat()} host sshd[{world.host.process.pid}]: {line}\n"
            for line in world.host.log.splitlines()
        )  # as journald would give them to the agent
    )
    for path in (world.work / "bastion" / "sshd.log", host_log):
        imported = garrison(
            "logs", "import", str(path), "--stream", "ssh", "--format", "sshd", data_dir=world.data
        )
        assert imported.returncode == 0, imported.stderr
    found = garrison(
        "logs", "search", "--stream", "ssh", "--format", "jsonl",
        f"cert_serial={serial} AND cert_key_id=olga", data_dir=world.data,
    )  # fmt: skip
    events = [json.loads(line) for line in found.stdout.splitlines()]
    assert {(e["process"], e["src_ip"], e.get("activity"), e["outcome"]) for e in events} >= {
        ("sshd", "10.77.2.1", None, "success"),  # root's login on the host, via the bastion
        (PROGRAM, "10.77.1.2", "close", "success"),  # the jump, from the client
    }


def test_the_second_factor_is_audited(world: Topology) -> None:
    trail = garrison(
        "logs", "search", "--stream", "audit", "--format", "jsonl",
        "action=ssh.bastion.second-factor", data_dir=world.data,
    )  # fmt: skip
    outcomes = {json.loads(line)["outcome"] for line in trail.stdout.splitlines()}
    assert {"success", "denied"} <= outcomes
    assert os.path.exists(PAM_FILE)
