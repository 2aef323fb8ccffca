"""Traffic and cloud formats: netfilter (``nft``), AWS VPC Flow Logs, AWS CloudTrail."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.events.parsers import parse_line, parse_lines
from garrison.events.schema import problems
from tests.cli import garrison

REF = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
BOUNDED = settings(derandomize=True, max_examples=200, deadline=None, database=None)

NFT_TCP = (
    "Dec  1 10:00:00 fw kernel: [12345.678] garrison-drop IN=eth0 OUT= "
    "MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.5 DST=198.51.100.10 LEN=60 "
    "TOS=0x00 PREC=0x00 TTL=52 ID=54321 DF PROTO=TCP SPT=51234 DPT=22 WINDOW=64240 RES=0x00 "
    "SYN URGP=0"
)
NFT_UDP6 = (
    "Dec  1 10:00:01 fw kernel: [12346.001] garrison-reject IN=eth0 OUT= "
    "MAC=52:54:00:12:34:56:52:54:00:65:43:21:86:dd SRC=2001:0db8:0000:0000:0000:0000:0000:0001 "
    "DST=2001:db8::2 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=12345 PROTO=UDP SPT= DPT="
)
NFT_ICMP = (
    "fw kernel: icmp-accept IN=eth1 OUT=eth0 SRC=192.0.2.1 DST=192.0.2.2 LEN=84 TOS=0x00 "
    "PREC=0x00 TTL=63 ID=4242 DF PROTO=ICMP TYPE=8 CODE=0 ID=77 SEQ=1"
)
IPTABLES = (
    "Dec  1 10:00:02 gw kernel: [ 4711.5] IPTables-Dropped: IN=ens3 OUT= "
    "MAC=fa:16:3e:aa:bb:cc:fa:16:3e:dd:ee:ff:08:00 SRC=198.51.100.7 DST=10.0.0.5 LEN=44 "
    "TOS=0x00 PREC=0x00 TTL=241 ID=12 PROTO=TCP SPT=40000 DPT=3389 WINDOW=1024 RES=0x00 "
    "ACK PSH URGP=0"
)

VPC_HEADER = (
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes "
    "start end action log-status"
)
VPC_ACCEPT = (
    "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 "
    "1418530010 1418530070 ACCEPT OK"
)
VPC_REJECT = (
    "2 123456789010 eni-1235b8ca123456789 2001:db8:1234:a100:8d6e:3477:df66:f105 "
    "2001:db8:1234:a102:3304:8879:34cf:4071 34892 22 58 252 15440 1418530010 1418530070 "
    "REJECT OK"
)
VPC_NODATA = "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA"


def record(**changes: Any) -> dict[str, Any]:
    """A CloudTrail record shaped like AWS's, with `changes` applied."""
    value: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "arn": "arn:aws:iam::123456789012:user/alice",
            "accountId": "123456789012",
            "userName": "alice",
        },
        "eventTime": "2026-12-01T10:00:00Z",
        "eventSource": "iam.amazonaws.com",
        "eventName": "CreateUser",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.9",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": {"userName": "bob"},
        "responseElements": None,
        "eventID": "4e8d0d8a-0000-4000-8000-000000000001",
        "readOnly": False,
        "eventType": "AwsApiCall",
        "recipientAccountId": "123456789012",
    }
    value.update(changes)
    return value


def one(format_: str, line: str) -> dict[str, Any]:
    """The single conforming event of `line`."""
    event = parse_line(format_, line, reference_time=REF)
    assert problems(event) == [], event
    return event


def test_nft_ipv4_tcp() -> None:
    """An nftables drop of a TCP SYN: addresses, ports, flags, sizes, prefix and action."""
    event = one("nft", NFT_TCP)
    assert event["class"] == "network_activity"
    assert event["time"] == "2026-12-01T10:00:00Z"
    assert event["host"] == "fw"
    assert (event["src_ip"], event["dst_ip"]) == ("203.0.113.5", "198.51.100.10")
    assert (event["src_port"], event["dst_port"]) == (51234, 22)
    assert event["protocol"] == "tcp"
    assert event["in_interface"] == "eth0"
    assert "out_interface" not in event
    assert event["prefix"] == "garrison-drop"
    assert event["action"] == "drop"
    assert event["tcp_flags"] == ["SYN"]
    assert (event["bytes"], event["ttl"]) == (60, 52)
    assert event["raw"] == NFT_TCP


def test_nft_ipv6_udp_without_ports() -> None:
    """IPv6 addresses are compressed, empty ports are absent, HOPLIMIT is the ttl."""
    event = one("nft", NFT_UDP6)
    assert (event["src_ip"], event["dst_ip"]) == ("2001:db8::1", "2001:db8::2")
    assert event["protocol"] == "udp"
    assert "src_port" not in event
    assert "dst_port" not in event
    assert "tcp_flags" not in event
    assert event["ttl"] == 64
    assert event["action"] == "reject"


def test_nft_icmp_from_journal() -> None:
    """A journal-style ICMP echo: type and code, both interfaces, time inferred."""
    event = one("nft", NFT_ICMP)
    assert event["protocol"] == "icmp"
    assert (event["icmp_type"], event["icmp_code"]) == (8, 0)
    assert (event["in_interface"], event["out_interface"]) == ("eth1", "eth0")
    assert event["action"] == "accept"
    assert event["time_inferred"] is True


def test_iptables_log_with_mac() -> None:
    """iptables ``-j LOG`` output: prefix kept as logged, several TCP flags, MAC kept."""
    event = one("nft", IPTABLES)
    assert event["prefix"] == "IPTables-Dropped:"
    assert event["action"] == "drop"
    assert event["tcp_flags"] == ["ACK", "PSH"]
    assert event["mac"].startswith("fa:16:3e")
    assert event["dst_port"] == 3389


def test_nft_prefix_without_action_and_non_netfilter_lines() -> None:
    """No action word, no ``action``; other kernel lines are ``raw`` with a reason."""
    event = one("nft", NFT_TCP.replace("garrison-drop", "inbound-ssh"))
    assert "action" not in event
    other = one("nft", "Dec  1 10:00:00 fw kernel: [1.0] eth0: link up")
    assert other["class"] == "raw"
    assert other["reason"] == "not a netfilter log line"
    assert other["host"] == "fw"


def test_vpcflow_header_accept_reject_nodata() -> None:
    """The header is raw; records carry their fields, protocols named, actions lower-cased."""
    header, accept, reject, nodata = parse_lines(
        "vpcflow", [VPC_HEADER, VPC_ACCEPT, VPC_REJECT, VPC_NODATA], reference_time=REF
    )
    assert (header["class"], header["reason"]) == ("raw", "vpc flow log header")
    assert accept["class"] == "network_activity"
    assert accept["time"] == "2014-12-14T04:06:50Z"
    assert accept["end_time"] == "2014-12-14T04:07:50Z"
    assert (accept["src_ip"], accept["dst_ip"]) == ("172.31.16.139", "172.31.16.21")
    assert (accept["src_port"], accept["dst_port"]) == (20641, 22)
    assert (accept["protocol"], accept["action"]) == ("tcp", "accept")
    assert (accept["packets"], accept["bytes"]) == (20, 4249)
    assert accept["account_id"] == "123456789010"
    assert accept["interface_id"] == "eni-1235b8ca123456789"
    assert accept["log_status"] == "OK"
    assert reject["action"] == "reject"
    assert reject["protocol"] == "ipv6-icmp"
    assert reject["src_ip"] == "2001:db8:1234:a100:8d6e:3477:df66:f105"
    assert nodata["class"] == "network_activity"
    assert nodata["log_status"] == "NODATA"
    assert "src_ip" not in nodata
    assert "action" not in nodata
    for event in (header, accept, reject, nodata):
        assert problems(event) == [], event


def test_vpcflow_other_protocol_and_wrong_shape() -> None:
    """Unnamed protocol numbers stay numbers as text; a short line is raw."""
    event = one("vpcflow", VPC_ACCEPT.replace(" 6 20 ", " 47 20 "))
    assert event["protocol"] == "47"
    short = one("vpcflow", "2 123456789010 eni-1 1.2.3.4")
    assert short["class"] == "raw"
    assert short["time_inferred"] is True


def test_cloudtrail_single_record_lines() -> None:
    """One record per line: every field; an IP source is ``src_ip``."""
    event = one("cloudtrail", json.dumps(record()))
    assert event["class"] == "api_activity"
    assert event["time"] == "2026-12-01T10:00:00Z"
    assert event["action"] == "iam.amazonaws.com:CreateUser"
    assert event["actor"] == "arn:aws:iam::123456789012:user/alice"
    assert event["src_ip"] == "203.0.113.9"
    assert event["user_agent"] == "aws-cli/2.15.0"
    assert event["region"] == "us-east-1"
    assert event["outcome"] == "success"
    assert "error_code" not in event
    assert event["read_only"] is False
    assert event["event_id"] == "4e8d0d8a-0000-4000-8000-000000000001"
    assert event["account_id"] == "123456789012"
    assert json.loads(event["raw"]) == record()
    assert event["raw"].startswith('{"eventVersion":"1.08","userIdentity":{"type"')


def test_cloudtrail_error_and_service_principal() -> None:
    """errorCode makes a failure; a service principal source is ``src_host``; actor by type."""
    event = one(
        "cloudtrail",
        json.dumps(
            record(
                errorCode="AccessDenied",
                errorMessage="not authorized",
                sourceIPAddress="cloudformation.amazonaws.com",
                userIdentity={"type": "AWSService", "invokedBy": "cloudformation.amazonaws.com"},
            )
        ),
    )
    assert event["outcome"] == "failure"
    assert event["error_code"] == "AccessDenied"
    assert event["src_host"] == "cloudformation.amazonaws.com"
    assert "src_ip" not in event
    assert event["actor"] == "AWSService"


def test_cloudtrail_records_line_yields_one_event_per_record() -> None:
    """A ``{"Records": [...]}`` line gives each record its event, in order."""
    line = json.dumps({"Records": [record(eventName="ListUsers"), record(), record()]})
    events = list(parse_lines("cloudtrail", [line, json.dumps(record())], reference_time=REF))
    assert len(events) == 4
    assert [e["action"].split(":")[1] for e in events] == [
        "ListUsers",
        "CreateUser",
        "CreateUser",
        "CreateUser",
    ]
    assert all(problems(e) == [] for e in events)
    single = parse_line("cloudtrail", line, reference_time=REF)
    assert single["class"] == "raw"
    empty = list(parse_lines("cloudtrail", ['{"Records": []}'], reference_time=REF))
    assert [e["reason"] for e in empty] == ["no records"]


def test_cloudtrail_not_json_and_not_a_record() -> None:
    """Broken JSON and foreign objects are raw with a reason."""
    assert one("cloudtrail", "{not json")["reason"].startswith("not JSON")
    assert one("cloudtrail", '{"hello": 1}')["reason"] == "not a CloudTrail record"
    bad_time = one("cloudtrail", json.dumps(record(eventTime="yesterday")))
    assert bad_time["time_inferred"] is True


@BOUNDED
@given(st.sampled_from(["nft", "vpcflow", "cloudtrail"]), st.text(max_size=300))
def test_random_text_yields_an_event(format_: str, text: str) -> None:
    """Random text never raises and yields at least one conforming event."""
    events = list(parse_lines(format_, [text], reference_time=REF))
    assert events
    for event in events:
        assert problems(event) == [], event


@BOUNDED
@given(
    st.sampled_from([NFT_TCP, NFT_UDP6, NFT_ICMP, IPTABLES, VPC_ACCEPT, VPC_NODATA]),
    st.integers(min_value=0, max_value=400),
    st.text(max_size=20),
)
def test_mangled_lines_yield_one_event(line: str, cut: int, junk: str) -> None:
    """Truncated and spliced real-shaped lines never raise and yield exactly one event."""
    for format_ in ("nft", "vpcflow"):
        events = list(parse_lines(format_, [line[:cut] + junk + line[cut:]], reference_time=REF))
        assert len(events) == 1
        assert problems(events[0]) == [], events[0]


def test_cli_parse_vpcflow(tmp_path: Path) -> None:
    """`logs parse --format vpcflow` prints one event per line, header included."""
    path = tmp_path / "flow.log"
    path.write_text("\n".join([VPC_HEADER, VPC_ACCEPT, VPC_REJECT, VPC_NODATA]) + "\n")
    proc = garrison("logs", "parse", "--format", "vpcflow", str(path))
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["class"] for e in events] == ["raw"] + ["network_activity"] * 3
    assert events[2]["action"] == "reject"


def test_cli_import_pretty_printed_cloudtrail(tmp_path: Path) -> None:
    """A pretty-printed ``Records`` file imports as one event per record; parse agrees."""
    path = tmp_path / "trail.json"
    records = [record(), record(errorCode="AccessDenied", eventName="DeleteUser")]
    path.write_text(json.dumps({"Records": records}, indent=2) + "\n")
    parsed = garrison("logs", "parse", "--format", "cloudtrail", str(path))
    assert parsed.returncode == 0, parsed.stderr
    assert len(parsed.stdout.splitlines()) == 2
    data = tmp_path / "data"
    proc = garrison(
        "logs", "import", "--stream", "aws", "--format", "cloudtrail", str(path), data_dir=data
    )
    assert proc.returncode == 0, proc.stderr
    assert "imported 2 events into aws" in proc.stdout
    found = garrison(
        "logs", "search", "--stream", "aws", "--format", "jsonl", "outcome=failure", data_dir=data
    )
    assert found.returncode == 0, found.stderr
    (event,) = [json.loads(line) for line in found.stdout.splitlines()]
    assert event["action"] == "iam.amazonaws.com:DeleteUser"
    assert event["class"] == "api_activity"
