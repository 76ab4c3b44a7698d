"""`sfconnector demo`: the whole referral loop on the embedded emulator, printed as a story.

Starts the emulator with its demo org, starts the daemon (`sfconnector run`) as a separate process on the
example config, submits referral leads the way each channel does, waits until every one is routed; then
reps convert some of them, win two deals and lose one, and finance pays a reward; it prints who got what and
why, the referral statuses, the rewards with the rule and reason behind each, the advocates' totals and every
email, then stops both cleanly. Only this module and the `emulator` command import the
emulator; the daemon never does.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from sfconnector.rules.totals import totals_from_aggregates
from sfconnector.shipped import shipped_root
from sfconnector.state import StateStore

ROOT = shipped_root()  # the example config and its files, in a checkout or an installed wheel
# The story happens on this day whatever the calendar says (the org and the daemon both run their clocks
# from it), so every date, amount and promotion the demo prints is the same on every run.
DEMO_INSTANT = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
T = TypeVar("T")


@dataclass(frozen=True)
class Submission:
    """One referral as a channel submits it."""

    channel: str
    how: str  # what happens in the real world
    person: str  # who submits: "integration" (a gateway or form) or a rep's username
    client: str | None  # Sforce-Call-Options client of the submitting system
    lead: Mapping[str, Any]  # Lead fields, or Referral_Submitted__e fields for the SMS gateway
    late_code: str | None = None  # a rep adds the code to an existing lead afterwards


SUBMISSIONS = (
    Submission(
        "Web",
        "web form on the referral landing page",
        "integration",
        "webform",
        {
            "FirstName": "Maya",
            "LastName": "Patel",
            "Company": "Northwind Traders",
            "Email": "maya@northwind.example",
            "LeadSource": "Web",
            "Referral_Code__c": "GRACE-1001",
            "Referral_Channel__c": "Web",
        },
    ),
    Submission(
        "Card",
        "rep types the code from a printed referral card",
        "bruno.keller@sfconnector.test",
        None,
        {
            "FirstName": "Tom",
            "LastName": "Okafor",
            "Company": "Fabrikam",
            "Email": "tom@fabrikam.example",
            "Referral_Code__c": "ada 1003",
            "Referral_Channel__c": "Card",
        },
    ),
    Submission(
        "Verbal",
        "rep adds a referral number said on the phone to a lead",
        "chitra.rao@sfconnector.test",
        None,
        {
            "FirstName": "Lena",
            "LastName": "Schmidt",
            "Company": "Contoso GmbH",
            "Email": "lena@contoso.example",
            "Country": "Germany",
        },
        late_code="kj1004",
    ),
    Submission(
        "Email",
        "email gateway forwards a referral email",
        "integration",
        "emailgateway",
        {
            "FirstName": "Ravi",
            "LastName": "Iyer",
            "Company": "Tailspin Toys",
            "Email": "ravi@tailspin.example",
            "Referral_Code__c": "alan-1002",
            "Referral_Channel__c": "Email",
        },
    ),
    Submission(
        "Social",
        "prospect follows a partner's social share link",
        "integration",
        "webform",
        {
            "FirstName": "Noor",
            "LastName": "Haddad",
            "Company": "Wingtip",
            "Email": "noor@wingtip.example",
            "LeadSource": "Web",
            "Referral_Code__c": "ALAN-1002",
            "Referral_Channel__c": "Social",
        },
    ),
    Submission(
        "SMS",
        "SMS gateway publishes Referral_Submitted__e",
        "integration",
        "smsgateway",
        {
            "First_Name__c": "Ines",
            "Last_Name__c": "Duarte",
            "Company__c": "Litware",
            "Email__c": "ines@litware.example",
            "Phone__c": "+351 555 0100",
            "Referral_Code__c": "ewd 1005",
            "Channel__c": "SMS",
        },
    ),
    Submission(
        "Web",
        "web form with a code nobody has",
        "integration",
        "webform",
        {
            "FirstName": "Omar",
            "LastName": "Farouk",
            "Company": "Adventure Works",
            "Email": "omar@adventure.example",
            "LeadSource": "Web",
            "Referral_Code__c": "ZZZ-9999",
            "Referral_Channel__c": "Web",
        },
    ),
    Submission(
        "Email",
        "an advocate refers herself",
        "integration",
        "emailgateway",
        {
            "FirstName": "Katherine",
            "LastName": "Johnson",
            "Company": "Self",
            "Email": "katherine@advocates.example",
            "Referral_Code__c": "KJ-1004",
            "Referral_Channel__c": "Email",
        },
    ),
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise click.ClickException(f"timed out waiting for {what}")
        time.sleep(0.1)  # polling interval


def demo_config(example: Path, workdir: Path, base_url: str, tls_dir: Path) -> Path:
    """The example config, pointed at the emulator, with every file made absolute."""
    config = yaml.safe_load(example.read_text())
    config["salesforce"]["login_url"] = base_url
    config["salesforce"]["ca_bundle"] = str(tls_dir / "ca.pem")
    config["salesforce"]["auth"]["private_key_file"] = str(tls_dir / "jwt-key.pem")
    config["state"]["path"] = str(workdir / "state.db")
    for section in ("mapping", "rules"):
        ref = config.get(section)
        if isinstance(ref, dict) and isinstance(ref.get("file"), str):
            ref["file"] = str((example.parent / ref["file"]).resolve())
    config.setdefault("health", {})["listen"] = f"127.0.0.1:{_free_port()}"
    config.setdefault("logging", {})["format"] = "json"
    path = workdir / "connector.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class _Org:
    """The demo's Salesforce users and systems, each with its own session."""

    def __init__(self, base_url: str, ca: Path) -> None:
        from simple_salesforce import Salesforce

        from sfemulator.server import trusting_session

        self.base_url = base_url
        self.http = trusting_session(ca)
        self._clients: dict[str, Any] = {}
        self._salesforce = Salesforce

    def client(self, username: str) -> Any:
        if username not in self._clients:
            response = self.http.post(
                f"{self.base_url}/_emulator/sessions", json={"username": username}, timeout=10
            )
            response.raise_for_status()
            self._clients[username] = self._salesforce(
                instance_url=self.base_url, session_id=response.json()["access_token"], session=self.http
            )
        return self._clients[username]

    def query(self, soql: str) -> list[dict[str, Any]]:
        return list(self.client("integration@sfconnector.test").query_all(soql)["records"])


def _submit(org: _Org, submission: Submission) -> str | None:
    username = "integration@sfconnector.test" if submission.person == "integration" else submission.person
    sf = org.client(username)
    headers = {"Sforce-Call-Options": f"client={submission.client}"} if submission.client else {}
    if submission.channel == "SMS":
        sf.Referral_Submitted__e.create(dict(submission.lead), headers=headers)
        return None
    lead_id = str(sf.Lead.create(dict(submission.lead), headers=headers)["id"])
    if submission.late_code:
        sf.Lead.update(
            lead_id, {"Referral_Code__c": submission.late_code, "Referral_Channel__c": submission.channel}
        )
    return lead_id


def _names(org: _Org) -> dict[str, str]:
    names = {r["Id"][:15]: r["Name"] for r in org.query("SELECT Id, Name FROM User")}
    names.update(
        {
            r["Id"][:15]: f"queue {r['Name']}"
            for r in org.query("SELECT Id, Name FROM Group WHERE Type = 'Queue'")
        }
    )
    names.update({r["Id"][:15]: r["Name"] for r in org.query("SELECT Id, Name FROM Advocate__c")})
    return names


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def run_demo(example: Path, *, keep: bool = False, echo: Callable[[str], None] = click.echo) -> None:
    from sfemulator.server import Emulator

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="sfconnector-demo-"))
    emulator = Emulator(
        host="127.0.0.1", port=0, tls_dir=workdir / "tls", seed="demo", clock_start=DEMO_INSTANT
    )
    daemon: subprocess.Popen[bytes] | None = None
    try:
        emulator.start()
        echo(f"1. Salesforce emulator with the demo org at {emulator.base_url}")
        config = demo_config(example, workdir, emulator.base_url, Path(emulator.tls_dir))
        health = "http://" + yaml.safe_load(config.read_text())["health"]["listen"] + "/healthz"
        log_path = workdir / "daemon.log"
        with log_path.open("wb") as log:
            daemon = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sfconnector",
                    "run",
                    "--config",
                    str(config),
                    "--clock-start",
                    _org_now(emulator).isoformat(),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        import requests

        def healthy() -> bool:
            assert daemon is not None
            if daemon.poll() is not None:
                raise click.ClickException(f"the daemon exited: see {log_path}")
            try:
                return requests.get(health, timeout=1).status_code == 200
            except requests.RequestException:
                return False

        _wait(healthy, 30, "the daemon to subscribe")
        echo(f"2. sfconnector run: subscribed (config {config}, log {log_path})")
        org = _Org(emulator.base_url, Path(emulator.ca_path))
        echo("3. Referrals arrive:")
        submitted: list[tuple[Submission, str | None]] = []
        for s in SUBMISSIONS:
            submitted.append((s, _submit(org, s)))
            code = s.late_code or s.lead.get("Referral_Code__c")
            echo(f"   - {s.channel:<6} {s.how} (code typed: {code!r})")

        def lead_ids() -> list[str] | None:
            ids = []
            for s, lead_id in submitted:
                if lead_id is None:
                    rows = org.query(f"SELECT Id FROM Lead WHERE Email = '{s.lead['Email__c']}'")
                    if not rows:
                        return None
                    lead_id = rows[0]["Id"]
                ids.append(str(lead_id))
            return ids

        ids = _wait(lead_ids, 30, "the SMS referral's lead")
        quoted = ",".join(f"'{i}'" for i in ids)
        _wait(
            lambda: len(org.query(f"SELECT Id FROM Referral__c WHERE Lead__c IN ({quoted})")) == len(ids),
            30,
            "every referral to be routed",
        )
        routed_at = time.monotonic()
        echo("4. Deals move on:")
        _lifecycle(org, submitted, ids, echo)
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=60)
        echo(f"5. sfconnector stopped cleanly on SIGTERM (exit {code})")
        _report(org, submitted, ids, config, echo)
        _report_rewards(org, config, echo)
        echo(
            f"\nDone in {routed_at - started:.1f}s to route every referral ({time.monotonic() - started:.1f}s in all)."
        )
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
        emulator.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            echo(f"(kept {workdir})")


# The deals of the story: (lead last name, what happens, amount); converted in this order.
DEALS = (("Patel", "won", 12000), ("Iyer", "won", 30000), ("Okafor", "lost", 8000))
REP = "alice.nguyen@sfconnector.test"


def _lifecycle(
    org: _Org, submitted: list[tuple[Submission, str | None]], ids: list[str], echo: Callable[[str], None]
) -> None:
    """Reps convert referral leads and win or lose the deals; finance pays a reward. The daemon follows."""
    by_name = {str(s.lead.get("LastName")): lead_id for (s, _), lead_id in zip(submitted, ids, strict=True)}
    rep = org.client(REP)
    opportunities: dict[str, str] = {}
    for last_name, _, _ in DEALS:
        lead_id = by_name[last_name]
        response = org.http.post(
            f"{org.base_url}/_emulator/leads/{lead_id}/convert",
            json={"opportunityName": f"{last_name} referral deal"},
            timeout=10,
        )
        response.raise_for_status()
        opportunities[last_name] = str(response.json()["opportunityId"])
        echo(f"   - a rep converts the referral lead {last_name}: account, contact and opportunity created")
    wanted = ",".join(f"'{o}'" for o in opportunities.values())
    _wait(
        lambda: (
            len(org.query(f"SELECT Id FROM Referral__c WHERE Opportunity__c IN ({wanted})")) == len(DEALS)
        ),
        30,
        "the converted referrals to be linked to their opportunities",
    )
    for last_name, outcome, amount in DEALS:
        stage = "Closed Won" if outcome == "won" else "Closed Lost"
        rep.Opportunity.update(opportunities[last_name], {"Amount": amount, "StageName": stage})
        echo(f"   - the rep sets {last_name}'s opportunity ({amount:,}) to {stage}")
    won = [opportunities[n] for n, outcome, _ in DEALS if outcome == "won"]
    quoted = ",".join(f"'{o}'" for o in won)

    def rewarded() -> list[dict[str, Any]] | None:
        rows = org.query(f"SELECT Id, Opportunity__c FROM Reward__c WHERE Opportunity__c IN ({quoted})")
        return rows if len({r["Opportunity__c"] for r in rows}) == len(won) else None

    rewards = _wait(rewarded, 30, "the rewards of the won deals")
    first = next(r for r in rewards if r["Opportunity__c"] == won[0])
    rep.Reward__c.update(first["Id"], {"Status__c": "Paid"})
    echo(f"   - finance pays the reward for {DEALS[0][0]}'s deal (Status__c = Paid)")
    _wait(
        lambda: any("has been paid" in e["emailSubject"] for e in _emails(org)),
        30,
        "the advocate to hear that the reward was paid",
    )
    lost = opportunities[next(n for n, outcome, _ in DEALS if outcome == "lost")]
    _wait(
        lambda: (
            org.query(f"SELECT Status__c FROM Referral__c WHERE Opportunity__c = '{lost}'")[0]["Status__c"]
            == "Lost"
        ),
        30,
        "the lost deal's referral to be Lost",
    )


def _org_now(emulator: Any) -> datetime:
    now: datetime = emulator.org.clock()
    return now


def _emails(org: _Org) -> list[dict[str, Any]]:
    emails: list[dict[str, Any]] = org.http.get(f"{org.base_url}/_emulator/emails", timeout=10).json()
    return emails


def _report_rewards(org: _Org, config_path: Path, echo: Callable[[str], None]) -> None:
    from sfconnector.config import load_config
    from sfconnector.pipeline.lifecycle_reads import LifecycleReader
    from sfconnector.pipeline.reward_explain import explain_opportunity

    config = load_config(str(config_path))
    reader = LifecycleReader(org, config.mapping, config.rewards)
    names = {r["Id"][:15]: r["Name"] for r in org.query("SELECT Id, Name FROM Advocate__c")}
    rewards = org.query(
        "SELECT External_Key__c, Advocate__c, Opportunity__c, Opportunity__r.Name, Amount__c, Type__c, Status__c,"
        " Rule__c, Payable_On__c FROM Reward__c ORDER BY External_Key__c"
    )
    rows, reasons = [], []
    for r in rewards:
        opportunity = r.get("Opportunity__r") or {}
        rows.append(
            [
                names.get(str(r["Advocate__c"])[:15], "-"),
                str(opportunity.get("Name") or r["Opportunity__c"]),
                f"{r['Amount__c']:,.2f}",
                str(r["Type__c"]),
                str(r["Status__c"]),
                str(r["Rule__c"]),
                str(r["Payable_On__c"]),
            ]
        )
        if not str(r["External_Key__c"]).endswith(":clawback"):
            found = explain_opportunity(
                reader,
                config.rewards,
                str(r["Opportunity__c"]),
                DEMO_INSTANT.date(),
                ignore_existing=True,
            )
            why = next((o.reason for o in found.outcomes if o.rule == r["Rule__c"] and o.matched), "-")
            reasons.append(f"   {opportunity.get('Name')}: rule {r['Rule__c']}: {why}")
    echo(f"\nRewards ({len(rows)}):\n")
    if rows:
        echo(_table(["advocate", "opportunity", "amount", "type", "status", "rule", "payable on"], rows))
        echo("\nWhy:")
        for line in reasons:
            echo(line)
    advocates = org.query(
        "SELECT Id, Name, Total_Referrals__c, Successful_Referrals__c, Reward_Balance__c FROM Advocate__c"
        " WHERE Total_Referrals__c > 0 ORDER BY Name"
    )
    sums: dict[str, dict[str, Decimal]] = {}
    for row in org.query(
        "SELECT Advocate__c, Status__c, SUM(Amount__c) total FROM Reward__c GROUP BY Advocate__c, Status__c"
    ):
        by_status = sums.setdefault(str(row["Advocate__c"])[:15], {})
        by_status[str(row["Status__c"])] = Decimal(str(row["total"] or 0))
    echo("\nAdvocates' totals (recomputed from their referrals and rewards):\n")
    echo(
        _table(
            ["advocate", "referrals", "successful", "owed", "awaiting approval"],
            [
                [
                    str(a["Name"]),
                    str(int(a["Total_Referrals__c"] or 0)),
                    str(int(a["Successful_Referrals__c"] or 0)),
                    f"{a['Reward_Balance__c'] or 0:,.2f}",
                    f"{totals_from_aggregates({}, sums.get(str(a['Id'])[:15], {})).awaiting_approval:,.2f}",
                ]
                for a in advocates
            ],
        )
    )
    echo("   owed: Approved rewards not yet paid (Reward_Balance__c); awaiting approval: Pending Approval")


def _report(
    org: _Org,
    submitted: list[tuple[Submission, str | None]],
    ids: list[str],
    config: Path,
    echo: Callable[[str], None],
) -> None:
    names = _names(org)
    state_path = Path(yaml.safe_load(config.read_text())["state"]["path"])
    with StateStore.open(state_path) as state:
        log = {row.lead_id[:15]: row for row in state.routing_log(limit=1000) if row.lead_id}
    leads = {r["Id"][:15]: r for r in org.query("SELECT Id, Name, OwnerId, Advocate__c FROM Lead")}
    referrals = {
        str(r["Lead__c"])[:15]: r
        for r in org.query(
            "SELECT Lead__c, Status__c, Routing_Rule__c, Routing_Reason__c, Advocate__c FROM Referral__c"
        )
    }

    def name(record_id: str | None) -> str:
        return names.get((record_id or "")[:15], record_id or "-")

    rows, reasons = [], []
    for (s, _), lead_id in zip(submitted, ids, strict=True):
        lead, referral, row = leads[lead_id[:15]], referrals[lead_id[:15]], log.get(lead_id[:15])
        standard = name(row.standard_owner_id) if row and row.standard_owner_id else "(none: created routed)"
        rows.append(
            [
                s.channel,
                str(lead["Name"]),
                standard,
                name(lead["OwnerId"]),
                name(referral["Advocate__c"]),
                str(referral["Status__c"]),
                str(referral["Routing_Rule__c"]),
            ]
        )
        reasons.append(f"   {lead['Name']}: {referral['Routing_Reason__c']}")
    echo("\nWho got each referral lead (as Salesforce shows it now):\n")
    echo(_table(["channel", "lead", "standard owner", "routed owner", "advocate", "referral", "rule"], rows))
    echo("\nWhy:")
    for line in reasons:
        echo(line)
    # Open tasks are the reps' to-dos; completed ones log the reward emails sent on a person's change.
    tasks = org.query("SELECT Subject, OwnerId FROM Task WHERE IsClosed = false")
    echo(f"\nTasks for reps ({len(tasks)}):")
    for t in tasks:
        echo(f"   {name(t['OwnerId'])}: {t['Subject']}")
    emails = _emails(org)
    echo(f"\nEmails to advocates ({len(emails)}):")
    for e in emails:
        echo(f"   to {e['emailAddresses']}: {e['emailSubject']}")
