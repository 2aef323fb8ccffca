"""The bastion's connection records, read by the sshd parser from the bastion's log."""

from __future__ import annotations

from garrison.events import bastion
from garrison.events.parsers import events_parser

HEADER = "2026-12-01T10:00:00.000000+00:00 jump-1 garrison-bastion[4242]: "


def _one(message: str) -> dict[str, object]:
    (event,) = events_parser("sshd")(HEADER + message)
    return event


def test_a_closed_connection_is_network_activity_with_its_bytes() -> None:
    record = bastion.Connection(
        src_ip="::ffff:198.51.100.7",
        src_port=50022,
        start="2026-12-01T09:59:00.000000Z",
        user="jump",
        cert_key_id="olga",
        cert_serial=17,
        authenticated=True,
        targets=["10.0.2.2:22", "[fd00::2]:22"],
        denied=["10.0.2.9:5432"],
        end="2026-12-01T10:00:00.000000Z",
        duration_s=60.0,
        bytes_in=4096,
        bytes_out=8192,
    )
    event = _one(bastion.message("closed", record))
    assert event["class"] == "network_activity"
    assert (event["activity"], event["outcome"]) == ("close", "success")
    assert (event["src_ip"], event["src_port"]) == ("198.51.100.7", 50022)
    assert (event["dst_ip"], event["dst_port"]) == ("10.0.2.2", 22)
    assert event["targets"] == ["10.0.2.2:22", "[fd00::2]:22"]
    assert event["denied_targets"] == ["10.0.2.9:5432"]
    assert (event["cert_key_id"], event["cert_serial"], event["user"]) == ("olga", 17, "jump")
    assert (event["bytes_in"], event["bytes_out"], event["duration_s"]) == (4096, 8192, 60.0)
    assert event["start"] == "2026-12-01T09:59:00.000000Z"


def test_refused_and_unauthenticated_connections_are_failures() -> None:
    record = bastion.Connection(src_ip="203.0.113.9", src_port=1, start="2026-12-01T10:00:00Z")
    assert _one(bastion.message("closed", record))["outcome"] == "failure"
    record.reason = "10 unauthenticated connections from it"
    refused = _one(bastion.message("refused", record))
    assert (refused["activity"], refused["outcome"]) == ("refused", "failure")
    assert refused["reason"] == record.reason


def test_a_line_that_is_not_a_record_stays_an_application_log() -> None:
    for message in (
        "listening on 10.0.0.1:22",
        'connection closed {"src_ip": 3}',
        "connection x {}",
    ):
        event = _one(message)
        assert event["class"] == "application_log"
        assert event["message"] == message
