"""The emulator as jsforce, an independent JavaScript client, sees it (tests/jsforce, installed by make install).

Skipped where node or the npm install is missing; the same answers are checked over raw HTTPS and through
simple-salesforce in test_emulator_hostile.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import new_token

from sfemulator.server import Emulator

PROBE = Path(__file__).parent / "jsforce"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None or not (PROBE / "node_modules" / "jsforce").is_dir(),
    reason="jsforce is not installed (make install runs npm ci in tests/jsforce)",
)


def jsforce_query(emulator: Emulator, http: requests.Session, soql: str) -> dict[str, Any]:
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(PROBE / "query.js"), emulator.base_url, new_token(emulator, http), soql],
        env={**os.environ, "NODE_EXTRA_CA_CERTS": str(emulator.ca_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    outcome: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return outcome


def test_misspelt_select_through_jsforce_is_malformed_query(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    outcome = jsforce_query(emulator_reset, emulator_http, "SELEC Id FROM Lead")
    assert outcome == {
        "ok": False,
        "name": "MALFORMED_QUERY",
        "errorCode": "MALFORMED_QUERY",
        "message": "\nSELEC Id FROM Lead\n^\nERROR at Row:1:Column:1\nunexpected token: 'SELEC'",
    }


def test_a_valid_query_through_jsforce_is_answered(
    emulator_reset: Emulator, emulator_http: requests.Session
) -> None:
    assert jsforce_query(emulator_reset, emulator_http, "SELECT Id FROM User LIMIT 1") == {
        "ok": True,
        "totalSize": 1,
    }
