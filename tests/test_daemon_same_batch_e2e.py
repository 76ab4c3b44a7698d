"""The same person referred twice in one batch (a web form submitted twice, one collection call) counts
once, as it does when the two submissions fall in separate batches: the second is a Duplicate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from conftest import salesforce_as
from daemon_harness import DaemonProcess, wait_for, write_config

from sfemulator.server import Emulator


def test_a_double_submission_in_one_batch_is_one_referral_and_one_duplicate(
    emulator_reset: Emulator, emulator_http: requests.Session, tmp_path: Path
) -> None:
    daemon = DaemonProcess(write_config(tmp_path, emulator_reset)).start()
    sf = salesforce_as(emulator_reset, emulator_http)
    try:
        lead = {
            "attributes": {"type": "Lead"},
            "LastName": "Twice",
            "Company": "Twice Co",
            "Email": "twice@twice.example",
            "Referral_Code__c": "GRACE-1001",
        }
        created = sf.restful("composite/sobjects", method="POST", json={"records": [lead, dict(lead)]})
        lead_ids = sorted(r["id"] for r in created)

        def statuses() -> list[Any] | None:
            rows = sf.query(
                "SELECT Lead__c, Status__c FROM Referral__c WHERE Lead__c IN ('" + "','".join(lead_ids) + "')"
            )["records"]
            return sorted(r["Status__c"] for r in rows) if len(rows) == 2 else None

        assert wait_for(statuses, what="both referrals") == ["Duplicate", "Lead"]

        def total() -> float | None:
            rows = sf.query(
                "SELECT Total_Referrals__c FROM Advocate__c WHERE Referral_Code__c = 'GRACE-1001'"
            )
            value = rows["records"][0]["Total_Referrals__c"]
            return value if value else None

        assert wait_for(total, what="the advocate's totals") == 1
    finally:
        daemon.stop()
