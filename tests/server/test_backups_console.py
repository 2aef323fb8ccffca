"""The console's Backups page, from the backup engine's events in the log store."""

from __future__ import annotations

import datetime as dt

from garrison.backup.report import event
from garrison.server import trail
from tests.conftest import signed_in_client
from tests.factories import Person, make_person


def _at(days_ago: float) -> str:
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _event(
    activity: str, outcome: str, message: str, days_ago: float, **fields: object
) -> dict[str, object]:
    made = event(activity, outcome, message, **fields)
    made["time"], made["host"] = _at(days_ago), "db-1"
    return made


def test_the_window_drills_and_backups_of_each_database(admin: Person) -> None:
    trail.store().append(
        "system",
        [
            _event("base_backup", "success", "base backup 20261120T000000Z taken", 10),
            _event("drill", "failure", "drill of x failed: the SQL check says 'f', not true", 5,
                   point=_at(8), seconds=3.2, reason="the SQL check says 'f', not true"),
            _event("drill", "success", "restored", 2, point=_at(9), seconds=2.9, reason=""),
            _event(
                "check", "success", "healthy", 0.01, recoverable_from=_at(20),
                recoverable_to=_at(0.02), last_base_backup=_at(1), problems=[],
                archiver={"last_archived_age_s": "42"}, data_dir_encrypted=False,
                data_dir_devices="vda (disk)",
            ),
        ],
    )  # fmt: skip
    silent = _event(
        "check", "success", "healthy", 1, recoverable_from=_at(25), recoverable_to=_at(1)
    )
    silent["host"] = "db-2"
    trail.store().append("system", [silent])
    page = signed_in_client(make_person("auditor")).get("/backups/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'class="window"' in body
    assert body.count('class="drill-failed"') == 1
    assert body.count('class="drill-ok"') == 1
    assert body.count('class="tick"') == 1
    assert "<td>db-1</td>" in body
    assert "<td>42</td>" in body
    assert "vda (disk)" in body
    assert "the SQL check says &#x27;f&#x27;, not true" in body
    assert body.count("is garrison db run running?") == 1  # db-2 has not checked for a day


def test_developers_do_not_see_backups(admin: Person) -> None:
    assert signed_in_client(make_person("developer")).get("/backups/").status_code == 403
