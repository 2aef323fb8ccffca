"""Detection against the peers, on the same generated logs: Garrison, CrowdSec, fail2ban.

Uses ../shared/bench-anchors (setup.sh installs CrowdSec and fail2ban from Debian and generates
1,000,000-line auth.log and access.log with per-IP ground truth). For each file and tool:
lines per CPU-second, peak memory, attackers found and benign sources flagged.

Run: ANCHORS=/some/dir .venv/bin/python bench/detect_bench.py [--reuse] [--skip-peers]

--reuse takes peer runs already in $ANCHORS (CrowdSec needs about an hour on access.log).
Garrison "flags" a source when a finding other than a Policy finding names it; CrowdSec when an
alert names it; fail2ban when its jail (maxretry within findtime) would ban it. Impossible travel
judges accounts, not sources (the anchors give each benign user random addresses worldwide,
session after session): those findings are counted apart, in the line after the table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ANCHOR_SCRIPTS = ROOT.parent / "shared" / "bench-anchors"
GARRISON = ROOT / ".venv" / "bin" / "garrison"
BASH = "/bin/bash"
FILES = {"sshd": ("auth.log", "syslog"), "nginx": ("access.log", "nginx")}
F2B_JAILS = {"sshd": ["sshd"], "nginx": ["nginx-botsearch", "apache-badbots", "nginx-bad-request"]}


def _time_v(text: str) -> dict[str, float]:
    """CPU seconds and peak RSS (MiB) from `/usr/bin/time -v` output."""

    def field(name: str) -> float:
        m = re.search(rf"{name}: ([\d.]+)", text)
        return float(m[1]) if m else 0.0

    return {
        "cpu": field(r"User time \(seconds\)") + field(r"System time \(seconds\)"),
        "rss_mib": field(r"Maximum resident set size \(kbytes\)") / 1024,
    }


def _score(flagged: set[str], truth: dict[str, Any]) -> dict[str, int]:
    attackers = {ip for ip, v in truth.items() if v["label"] == "attacker"}
    benign = set(truth) - attackers
    return {
        "attackers": len(attackers),
        "found": len(attackers & flagged),
        "benign": len(benign),
        "false_positives": len(benign & flagged),
    }


def garrison(anchors: Path, kind: str, truth: dict[str, Any]) -> dict[str, Any]:
    """Replay one file through `garrison detect replay`, timed."""
    log = anchors / FILES[kind][0]
    out = anchors / f"garrison-{kind}.jsonl"
    with out.open("wb") as fh:
        run = subprocess.run(  # noqa: S603  # fixed argument list
            ["/usr/bin/time", "-v", str(GARRISON), "detect", "replay", "--format", kind, str(log)],
            stdout=fh,
            stderr=subprocess.PIPE,
            check=True,
            text=False,
        )
    flagged, travel = set(), 0
    for line in out.read_text().splitlines():
        finding = json.loads(line)
        source = finding.get("src_ip") or finding.get("src_host")
        kind_of = str(finding["type"])
        if kind_of.endswith("ImpossibleTravel"):
            travel += 1
        elif source and not kind_of.startswith("Policy:"):
            flagged.add(source)
    return {**_time_v(run.stderr.decode()), **_score(flagged, truth), "travel": travel}


def crowdsec(anchors: Path, kind: str, truth: dict[str, Any], reuse: bool) -> dict[str, Any]:
    """CrowdSec's replay mode (agent + its local API), as run_crowdsec.sh does it."""
    log, source_type = FILES[kind]
    runs = anchors / "cs" / "runs" / f"{kind}_full"
    if not (reuse and (runs / "alerts.json").exists()):
        subprocess.run(  # noqa: S603  # fixed argument list
            [
                BASH,
                str(ANCHOR_SCRIPTS / "run_crowdsec.sh"),
                str(anchors / log),
                source_type,
                f"{kind}_full",
            ],
            check=True,
            env={**os.environ, "ANCHORS": str(anchors)},
            capture_output=True,
        )
    timing = _time_v((runs / "time.txt").read_text())
    lapi = (runs / "lapi_cpu.txt").read_text()
    timing["cpu"] += float(re.search(r"lapi_cpu_s ([\d.]+)", lapi)[1])  # type: ignore[index]
    flagged = set()
    for alert in json.loads((runs / "alerts.json").read_text() or "[]"):
        value = (alert.get("source") or {}).get("value") or (alert.get("source") or {}).get("ip")
        if value:
            flagged.add(value)
    return {**timing, **_score(flagged, truth)}


def fail2ban(anchors: Path, kind: str, truth: dict[str, Any], reuse: bool) -> dict[str, Any]:
    """fail2ban-regex per jail filter, timed, and the jails' bans over its rows (all jails)."""
    runs = anchors / "f2b" / "runs"
    if not (reuse and all((runs / f"{j}.jail.json").exists() for j in F2B_JAILS[kind])):
        subprocess.run(  # noqa: S603  # fixed argument list
            [BASH, str(ANCHOR_SCRIPTS / "run_fail2ban.sh"), "all"],
            check=True,
            env={**os.environ, "ANCHORS": str(anchors)},
            capture_output=True,
        )
    cpu = rss = 0.0
    banned: set[str] = set()
    for jail in F2B_JAILS[kind]:
        timing = _time_v((runs / f"{jail}.time").read_text())
        cpu += timing["cpu"]
        rss = max(rss, timing["rss_mib"])
        banned |= set(json.loads((runs / f"{jail}.jail.json").read_text())["banned"])
    return {"cpu": cpu, "rss_mib": rss, **_score(banned, truth)}


def main() -> None:
    """Print one markdown table row per tool and file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="reuse peer runs in $ANCHORS")
    parser.add_argument("--skip-peers", action="store_true", help="run Garrison only")
    args = parser.parse_args()
    anchors = Path(os.environ.get("ANCHORS", "/tmp/anchors"))  # noqa: S108  # a work folder
    if not (anchors / "ground_truth.json").exists():
        subprocess.run(  # noqa: S603  # fixed argument list
            [BASH, str(ANCHOR_SCRIPTS / "setup.sh")],
            check=True,
            env={**os.environ, "ANCHORS": str(anchors)},
        )
    truth = json.loads((anchors / "ground_truth.json").read_text())
    lines = {kind: sum(1 for _ in (anchors / FILES[kind][0]).open("rb")) for kind in FILES}
    print("| file | tool | lines/CPU-s | peak MiB | attackers found | benign flagged |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    travel = {}
    for kind in FILES:
        results = {"Garrison": garrison(anchors, kind, truth[kind])}
        travel[FILES[kind][0]] = results["Garrison"]["travel"]
        if not args.skip_peers:
            results["CrowdSec 1.4.6"] = crowdsec(anchors, kind, truth[kind], args.reuse)
            results["fail2ban 1.0.2"] = fail2ban(anchors, kind, truth[kind], args.reuse)
        for tool, r in results.items():
            rate = lines[kind] / r["cpu"] if r["cpu"] else 0
            print(
                f"| {FILES[kind][0]} | {tool} | {rate:,.0f} | {r['rss_mib']:,.0f} "
                f"| {r['found']}/{r['attackers']} | {r['false_positives']} |",
                flush=True,
            )
    print(
        "\nGarrison impossible-travel findings (accounts): "
        + ", ".join(f"{name} {count}" for name, count in travel.items())
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
