"""Findings in the control plane: stored by id, listed with filters and a chart, shown whole."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone

from garrison.core.errors import ConflictError
from garrison.demo import DEMO_HOST
from garrison.detect import rules
from garrison.detect.live import Detector
from garrison.events.parsers import line_parser
from garrison.logstore.store import Store
from garrison.server.demo import Removed, do_enroll_demo_host, do_remove_demo
from garrison.server.findings.models import Finding, Suppression
from garrison.server.findings.sink import DatabaseSink
from garrison.server.fleet.models import Host
from tests.conftest import api_client, signed_in_client
from tests.factories import Person, make_person, seed_finding


def test_the_sink_upserts_by_id_and_keeps_the_status(admin: Person) -> None:
    """The same finding twice is one row with the newest values; people's status stays."""
    sink = DatabaseSink()
    sink.upsert([seed_finding()])
    Finding.objects.update(status="archived")
    sink.upsert([seed_finding(count=25, last_seen="2026-12-01T10:03:00Z")])
    (row,) = Finding.objects.all()
    assert (row.count, row.status, row.src) == (25, "archived", "203.0.113.5")
    assert row.last_seen == dt.datetime(2026, 12, 1, 10, 3, tzinfo=dt.UTC)


def test_api_lists_with_filters_and_shows_one(admin: Person) -> None:
    sink = DatabaseSink()
    sink.upsert(
        [
            seed_finding(),
            seed_finding(
                id="fnd_" + "1" * 32,
                severity=8.0,
                title="SSH login after a brute force",
                type="UnauthorizedAccess:EC2/SSHBruteForceSuccess",
                rule="ssh_success_after_bruteforce",
            ),
        ]
    )
    client = api_client(admin)
    listed = client.get("/api/v1/findings").json()["results"]
    assert sorted(f["severity_label"] for f in listed) == ["high", "medium"]
    high = client.get("/api/v1/findings", {"severity": "high"}).json()["results"]
    assert [f["id"] for f in high] == ["fnd_" + "1" * 32]
    assert client.get("/api/v1/findings", {"q": "Success"}).json()["count"] == 1
    assert client.get("/api/v1/findings", {"status": "archived"}).json()["count"] == 0
    assert client.get("/api/v1/findings", {"severity": "extreme"}).status_code == 400
    one = client.get(f"/api/v1/findings/{seed_finding()['id']}").json()
    assert one["evidence"] == ["ssh:0", "ssh:1"]
    assert one["remediation"] == "Block the source address."
    assert client.get("/api/v1/findings/fnd_nope").status_code == 404
    developer = api_client(make_person("developer"))
    assert developer.get("/api/v1/findings").status_code == 403


def test_console_list_chart_and_detail(admin: Person) -> None:
    today = timezone.now().astimezone(dt.UTC).replace(microsecond=0)
    DatabaseSink().upsert(
        [
            seed_finding(
                first_seen=today.isoformat(),
                last_seen=today.isoformat(),
                title="<script>alert(1)</script>",
            ),
        ]
    )
    console = signed_in_client(admin)
    page = console.get("/findings/").content.decode()
    assert "Findings first seen per day" in page
    assert 'class="sev-medium"' in page  # today's bar
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page
    detail = console.get(f"/findings/{seed_finding()['id']}/").content.decode()
    assert "Block the source address." in detail
    assert "/logs/?stream=ssh&amp;before=1" in detail
    assert console.get("/findings/?severity=extreme").status_code == 400


def test_detector_writes_findings_the_api_serves(admin: Person, tmp_path: Path) -> None:
    """Store -> detector -> database -> API: a brute force appears as one finding."""
    store = Store(tmp_path / "store")
    parse = line_parser("sshd", reference_time=dt.datetime(2026, 12, 2, tzinfo=dt.UTC))
    store.append(
        "ssh",
        [
            parse(
                f"Dec  1 10:00:{n * 4:02d} web-1 sshd[{n}]: Failed password for root "
                f"from 198.51.100.9 port {n} ssh2"
            )
            for n in range(12)
        ],
    )
    detector = Detector(store, rules.load(), DatabaseSink(), tmp_path / "state.json")
    while detector.step():
        pass
    detector.checkpoint()
    (finding,) = api_client(admin).get("/api/v1/findings").json()["results"]
    assert (finding["rule"], finding["count"], finding["src"]) == (
        "ssh_bruteforce_fast",
        12,
        "198.51.100.9",
    )
    assert finding["evidence"][0] == "ssh:0"
    store.close()


def test_operators_archive_a_finding_and_it_is_audited(admin: Person) -> None:
    """PATCH status (API) and the page's button; auditors may not; the audit trail has it."""
    DatabaseSink().upsert([seed_finding()])
    fid = seed_finding()["id"]
    auditor = api_client(make_person("auditor"))
    assert (
        auditor.patch(f"/api/v1/findings/{fid}", {"status": "archived"}, format="json").status_code
        == 403
    )
    client = api_client(admin)
    done = client.patch(f"/api/v1/findings/{fid}", {"status": "archived"}, format="json")
    assert done.json()["status"] == "archived"
    assert (
        client.patch(f"/api/v1/findings/{fid}", {"status": "gone"}, format="json").status_code
        == 400
    )
    assert client.get("/api/v1/findings").json()["count"] == 0
    console = signed_in_client(admin)
    back = console.post(f"/findings/{fid}/status/", {"status": "active"})
    assert back.status_code == 302
    assert Finding.objects.get().status == "active"
    actions = [h["event"]["action"] for h in client.get("/api/v1/audit/events").json()["results"]]
    assert "api.finding.patch" in actions
    assert "findings.status.post" in actions


def test_nul_bytes_from_urls_are_stored_replaced(admin: Person) -> None:
    """A path with %00 can reach a finding's group; PostgreSQL refuses NUL, so it is replaced."""
    DatabaseSink().upsert([seed_finding(group={"path": "/a\x00b"}, title="x\x00y")])
    row = Finding.objects.get()
    assert row.group == {"path": "/a\ufffdb"}
    assert row.title == "x\ufffdy"
    assert signed_in_client(admin).get("/findings/?q=%00").status_code == 200


def test_suppressed_findings_are_stored_but_not_announced(admin: Person) -> None:
    """A suppression by type and source: new matching findings are `suppressed` (not new for
    notifications); other sources, other types and expired rules are not affected."""
    client = api_client(admin)
    made = client.post(
        "/api/v1/suppressions",
        {
            "type": "UnauthorizedAccess:EC2/SSHBruteForce",
            "src": "203.0.113.5",
            "reason": "our pentest, ticket 42",
            "days": 7,
        },
        format="json",
    )
    assert made.status_code == 201, made.content
    sink = DatabaseSink()
    assert sink.upsert([seed_finding()]) == []
    assert Finding.objects.get(finding_id=seed_finding()["id"]).status == "suppressed"
    other = seed_finding(id="fnd_" + "2" * 32, src_ip="203.0.113.6")
    assert sink.upsert([other]) == [other["id"]]
    listed = client.get("/api/v1/suppressions").json()["results"]
    assert listed[0]["reason"] == "our pentest, ticket 42"
    assert listed[0]["created_by"] == admin.user.username
    assert client.get("/api/v1/findings", {"status": "suppressed"}).json()["count"] == 1
    bad = client.post(
        "/api/v1/suppressions", {"type": "X", "reason": "r", "days": 400}, format="json"
    )
    assert bad.status_code == 400
    auditor = api_client(make_person("auditor"))
    refused = auditor.post(
        "/api/v1/suppressions", {"type": "X", "reason": "r", "days": 1}, format="json"
    )
    assert refused.status_code == 403
    assert client.delete(f"/api/v1/suppressions/{made.json()['id']}").status_code == 204
    third = seed_finding(id="fnd_" + "3" * 32)
    assert sink.upsert([third]) == [third["id"]]
    actions = [h["event"]["action"] for h in client.get("/api/v1/audit/events").json()["results"]]
    assert {"api.suppressions.post", "api.suppression.delete"} <= set(actions)


def test_console_suppressions_page_adds_lists_and_ends(admin: Person) -> None:
    """From a finding's page to a prefilled form; added, listed, ended; each step audited;
    auditors read the page but may not change it."""
    DatabaseSink().upsert([seed_finding()])
    client = signed_in_client(admin)
    detail = client.get(f"/findings/{seed_finding()['id']}/").content.decode()
    assert "/findings/suppressions/?type=UnauthorizedAccess%3AEC2/SSHBruteForce" in detail
    form = client.get(
        "/findings/suppressions/", {"type": "UnauthorizedAccess:EC2/SSHBruteForce"}
    ).content.decode()
    assert 'value="UnauthorizedAccess:EC2/SSHBruteForce"' in form
    wrong = client.post(
        "/findings/suppressions/",
        {"type": "X", "reason": "r", "days": 400},
    )
    assert wrong.status_code == 400
    assert "less than or equal to 365" in wrong.content.decode()
    made = client.post(
        "/findings/suppressions/",
        {"type": "UnauthorizedAccess:EC2/SSHBruteForce", "reason": "pentest <b>42</b>", "days": 3},
        follow=True,
    )
    page = made.content.decode()
    assert "suppressed until" in page
    assert "pentest &lt;b&gt;42&lt;/b&gt;" in page
    public_id = Suppression.objects.get().public_id
    auditor = signed_in_client(make_person("auditor"))
    assert auditor.get("/findings/suppressions/").status_code == 200
    assert "End now" not in auditor.get("/findings/suppressions/").content.decode()
    assert auditor.post("/findings/suppressions/", {"type": "X"}).status_code == 403
    assert auditor.post(f"/findings/suppressions/{public_id}/delete/").status_code == 403
    ended = client.post(f"/findings/suppressions/{public_id}/delete/", follow=True)
    assert "The suppression has ended." in ended.content.decode()
    assert "(ended)" in ended.content.decode()  # kept on record, no longer in force
    assert Suppression.objects.get().expires_at <= timezone.now()
    actions = [
        h["event"]["action"]
        for h in api_client(admin).get("/api/v1/audit/events").json()["results"]
    ]
    assert {"findings.suppressions.post", "findings.suppression_remove.post"} <= set(actions)


def test_demo_data_is_labelled_and_removed(admin: Person) -> None:
    """While the demo host exists every console page says so; removing it takes its findings
    and leaves other findings alone."""
    Host.objects.create(name=DEMO_HOST, zone="demo")
    DatabaseSink().upsert([seed_finding(host=DEMO_HOST), seed_finding(id="fnd_" + "4" * 32)])
    client = signed_in_client(admin)
    assert "Demo data is loaded" in client.get("/findings/").content.decode()
    assert do_remove_demo() == Removed(findings=1, hosts=1)
    assert "Demo data is loaded" not in client.get("/findings/").content.decode()
    assert list(Finding.objects.values_list("finding_id", flat=True)) == ["fnd_" + "4" * 32]


def test_the_demo_never_touches_a_real_host_of_its_name(admin: Person) -> None:
    Host.objects.create(name=DEMO_HOST, zone="eu-1")
    DatabaseSink().upsert([seed_finding(host=DEMO_HOST)])
    with pytest.raises(ConflictError, match="the demo would mix"):
        do_enroll_demo_host(b"unused")
    assert do_remove_demo() == Removed(findings=0, hosts=0)
    assert Finding.objects.count() == 1
