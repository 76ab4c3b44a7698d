"""Property-based fuzzing of the running emulator over HTTPS (issue #9).

Hypothesis draws one request at a time: SOQL mutated from valid statements, JSON bodies of the wrong types
for each REST resource, hostile ids and field values, raw and compressed bodies, malformed OAuth, SOAP and
Bayeux messages. Every answer must come within a second, never be a 5xx (a SOAP fault, which SOAP 1.1
sends as 500, must carry a known fault code), and be in Salesforce's shape for its protocol; afterwards the
emulator must still answer a query, deliver a change event, and stop on SIGTERM. The emulator runs as
`sfconnector emulator` in a process of its own, so that its answer times are its own (not the pauses of
hypothesis in the test process).

The short form runs in `make test`. The long form is marked `fuzz_long` (excluded by default):

    FUZZ_EXAMPLES=20000 .venv/bin/pytest -m fuzz_long -s tests/test_emulator_fuzz.py
"""

from __future__ import annotations

import gc
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jwt
import pytest
import requests
from hostile_support import V, assert_still_serving, shape_problem, token
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfemulator.server import trusting_session

SHORT_EXAMPLES = 1500
PER_REQUEST_SECONDS = 1.0  # the bound; generous for one local request


@dataclass
class Probe:
    """One request: what to send, and which family of hostile input it belongs to."""

    family: str
    method: str
    path: str  # absolute path, query string included, already percent-encoded
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass
class Target:
    """The emulator under fuzz and what the strategies need to know about its org."""

    base_url: str
    http: requests.Session
    token: str
    lead_id: str
    client_id: str
    jwt_key: str
    sent: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    slowest: float = 0.0
    slowest_probe: str = ""

    def send(self, probe: Probe) -> None:
        headers = {"Authorization": f"Bearer {self.token}", **probe.headers}
        headers = {k: v for k, v in headers.items() if v is not None}
        gc.disable()  # the clock measures the emulator's answer, not a collection in this process
        started = time.monotonic()
        try:
            response = self.http.request(
                probe.method,
                f"{self.base_url}{probe.path}",
                headers=headers,
                data=probe.body,
                timeout=30,
            )
        finally:
            elapsed = time.monotonic() - started
            gc.enable()
        self.sent[probe.family] += 1
        self.statuses[response.status_code] += 1
        if elapsed > self.slowest:
            self.slowest, self.slowest_probe = elapsed, f"{probe.method} {probe.path[:120]}"
        assert elapsed < PER_REQUEST_SECONDS, f"{elapsed:.2f}s for {probe.method} {probe.path[:200]}"
        problem = shape_problem(response, path=probe.path.partition("?")[0])
        assert problem is None, f"{probe.method} {probe.path[:300]}\n{(probe.body or b'')[:300]!r}\n{problem}"


Process = tuple["subprocess.Popen[str]", str, Path]  # the process, its base URL, its TLS directory


@pytest.fixture(scope="module")
def emulator_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """`sfconnector emulator` in a process of its own (held CometD connects answer within 300 ms)."""
    tls = tmp_path_factory.mktemp("fuzz-tls")
    command = [
        "emulator",
        "--port",
        "0",
        "--tls-dir",
        str(tls),
        "--seed",
        "demo",
        "--streaming-timeout-ms",
        "300",
    ]
    with (tls / "emulator.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from sfconnector.cli import main; main()", *command],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.search(r"(https://127\.0\.0\.1:\d+) \(CA: (.+)\)", line)
            assert match, line
            yield proc, match.group(1), tls
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)


@pytest.fixture(scope="module")
def target(emulator_process: Process) -> Iterator[Target]:
    """The fuzzed emulator, with a lead and a CometD client of its own."""
    _, base_url, tls = emulator_process
    http = trusting_session(tls / "ca.pem")
    try:
        auth = token(base_url, http)
        lead = http.post(
            f"{base_url}{V}/sobjects/Lead/",
            json={"LastName": "Fuzz", "Company": "Target", "Description": "a" * 2000},
            headers={"Authorization": f"Bearer {auth}"},
            timeout=30,
        ).json()["id"]
        shake = http.post(
            f"{base_url}/cometd/59.0",
            json=[{"channel": "/meta/handshake", "version": "1.0", "id": "0"}],
            headers={"Authorization": f"Bearer {auth}"},
            timeout=30,
        ).json()[0]
        yield Target(base_url, http, auth, lead, shake["clientId"], (tls / "jwt-key.pem").read_text())
    finally:
        http.close()


# --- building blocks ------------------------------------------------------------------------------------

HOSTILE_TEXT = st.sampled_from(
    [
        "", " ", "'", '"', "\\", "%", "_", "\x00", "\ufeff", "é", "𝕏", "\u202e", "a" * 5000, "9" * 400, "NaN",
        "Infinity", "-0", "1e400", "0x10", "true", "null", "<x/>", "]]>", "&amp;", "@{a.id}", "{}", "[]", "../..",
        "%00", "%ZZ", "0" * 18, "00Q000000000000", "00Q000000000000AAA", "00Qzzzzzzzzzzzzzzz", "001" + "A" * 15,
        "2026-02-30", "9999-12-31T23:59:59-10:00", "0001-01-01T00:00:00+14:00", "1700-01-01", "4000-12-31T00:00:00Z",
    ]
)  # fmt: skip
TEXT = st.one_of(HOSTILE_TEXT, st.text(max_size=40))


def _header_safe(value: str) -> str:
    """What an HTTP client can put in a header: latin-1, no control characters, no edge whitespace."""
    text = value.encode("latin-1", "replace").decode("latin-1")
    return "".join(c for c in text if c >= " " and c != "\x7f").strip()


HEADER_TEXT = TEXT.map(_header_safe)
NUMBERS = st.one_of(
    st.integers(-(10**20), 10**20),
    st.integers(-(10**400), 10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 2**31, 2**63, 10**16, 1e308, 5e-324]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
# Tokens spliced into JSON text: what json.dumps would never write.
RAW_JSON_TOKENS = st.sampled_from(
    ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "9" * 500, "[" * 700 + "]" * 700, '"\\ud800"', "01", "1.",
     ".5", "+1", "'x'", "tru", "null,", '"\\x41"', '"\\u00"', "{,}", "[,]", "//c", "\x00"]
)  # fmt: skip


@st.composite
def json_text(draw: st.DrawFn, template: Any) -> bytes:
    """A body from a template: valid JSON with wrong types, or JSON text Salesforce's parser refuses."""
    value = draw(mutated_json(template))
    text = json.dumps(value)
    if draw(st.integers(0, 3)) == 0:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(RAW_JSON_TOKENS) + text[at + draw(st.integers(0, 3)) :]
    return text.encode("utf-8", "surrogatepass")


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.extend(_paths(item, (*prefix, index)))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


@st.composite
def mutated_json(draw: st.DrawFn, template: Any) -> Any:
    value = template
    for _ in range(draw(st.integers(0, 3))):  # none: a valid request, so success paths are fuzzed too
        paths = _paths(value)
        path = draw(st.sampled_from(paths))
        value = _replace(value, path, draw(JSON_VALUES))
    return value


# --- REST ---------------------------------------------------------------------------------------------

SOQL = [
    "SELECT Id, Name, Email FROM Lead WHERE Email = 'a@b.c' AND CreatedDate > 2020-01-01T00:00:00Z LIMIT 5",
    "SELECT COUNT() FROM Lead WHERE CreatedDate = LAST_N_DAYS:7 OR LastModifiedDate < YESTERDAY",
    "SELECT Status__c, SUM(Amount__c) total FROM Reward__c GROUP BY Status__c HAVING SUM(Amount__c) > 1",
    "SELECT Id, Owner.Name, Advocate__r.Referral_Code__c FROM Lead WHERE Description LIKE '%a%a%' ORDER BY Name",
    "SELECT Id FROM Lead WHERE NOT (Rating IN ('Hot', 'Cold') OR AnnualRevenue >= 1000.5) OFFSET 10",
    "SELECT Name, MIN(CreatedDate), COUNT_DISTINCT(OwnerId) FROM Advocate__c GROUP BY Name ORDER BY Name",
]
SOQL_PIECES = st.sampled_from(
    [
        "SELECT", "FROM", "WHERE", "NOT", "AND", "OR", "(", ")", ",", "'", "\\", "%", "_", ":", "=", "<>", "!=",
        "LIKE", "IN", "LIMIT", "OFFSET", "ORDER BY", "GROUP BY", "HAVING", "NULLS FIRST", "9" * 40, "-0", "1e400",
        "9999-12-31T23:59:59-10:00", "0001-01-01T00:00:00+14:00", "2026-13-45", "N_DAYS_AGO:99999999999",
        "LAST_N_MONTHS:2147483647", "NEXT_N_YEARS:0", "TODAY", "NULL", "TRUE", "Id", "Name", "Lead", "User",
        "COUNT()", "SUM(Name)", "'%a%a%a%a%a%a%a%b'", "NOT " * 150, "(" * 120, ")" * 120, "TYPEOF", "FIELDS(ALL)",
        "(SELECT Id FROM Contacts)", "WITH SECURITY_ENFORCED", "FOR UPDATE", "USING SCOPE mine", "\u0000", "é",
    ]
)  # fmt: skip


@st.composite
def soql(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SOQL))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(text)))
        choice = draw(st.integers(0, 4))
        if choice == 0:
            text = text[:at] + " " + draw(SOQL_PIECES) + " " + text[at:]
        elif choice == 1:
            text = text[:at] + text[at + draw(st.integers(1, 15)) :]
        elif choice == 2:
            text = text[:at] + draw(st.text(max_size=6)) + text[at:]
        elif choice == 3:
            text = text[:at] + text[at:].swapcase()
        else:
            start = draw(st.integers(0, len(text)))
            text = text[:at] + text[start : start + 30] + text[at:]
    return text


def query_probes(t: Target) -> st.SearchStrategy[Probe]:
    def as_probe(args: tuple[str, str, str | None]) -> Probe:
        text, resource, options = args
        headers = {"Sforce-Query-Options": options} if options is not None else {}
        if resource == "composite":
            body = {"compositeRequest": [{"method": "GET", "url": f"{V}/query?q={text}", "referenceId": "q"}]}
            return Probe("soql", "POST", f"{V}/composite", {"Content-Type": "application/json"}, _json(body))
        return Probe("soql", "GET", f"{V}/{resource}?{urlencode({'q': text})}", headers)

    options = st.one_of(st.none(), st.just("batchSize=200"), HEADER_TEXT.map(lambda s: f"batchSize={s}"))
    return st.tuples(soql(), st.sampled_from(["query", "query/", "queryAll", "composite"]), options).map(
        as_probe
    )


def _json(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


def resource_probes(t: Target) -> st.SearchStrategy[Probe]:
    lead, lead_body = t.lead_id, {"LastName": "L", "Company": "C", "LeadSource": "Web"}
    resources: list[tuple[str, str, Any]] = [
        ("POST", "/sobjects/Lead/", lead_body),
        ("POST", "/sobjects/Opportunity/", {"Name": "O", "StageName": "Prospecting", "CloseDate": "2026-01-01", "Amount": 10.5}),
        ("POST", "/sobjects/Advocate__c/", {"Name": "A", "Referral_Code__c": "FUZZ-1", "Reward_Balance__c": 1}),
        ("PATCH", f"/sobjects/Lead/{lead}", {"Title": "T", "NumberOfEmployees": 5, "Description": "d"}),
        ("PATCH", "/sobjects/Advocate__c/Referral_Code__c/FUZZ-2", {"Name": "A", "Total_Referrals__c": 1}),
        ("POST", "/composite/sobjects", {"allOrNone": False, "records": [{"attributes": {"type": "Lead"}, **lead_body}]}),
        ("PATCH", "/composite/sobjects", {"allOrNone": True, "records": [{"attributes": {"type": "Lead"}, "id": lead, "Title": "T"}]}),
        ("PATCH", "/composite/sobjects/Advocate__c/Referral_Code__c",
         {"allOrNone": False, "records": [{"attributes": {"type": "Advocate__c"}, "Referral_Code__c": "FUZZ-3", "Name": "A"}]}),
        ("POST", "/composite/sobjects/Lead", {"ids": [lead, "00Q000000000000AAA"], "fields": ["Id", "Name"]}),
        ("POST", "/composite", {"allOrNone": False, "compositeRequest": [
            {"method": "POST", "url": f"{V}/sobjects/Lead", "referenceId": "a", "body": lead_body,
             "httpHeaders": {"Sforce-Auto-Assign": "FALSE"}},
            {"method": "GET", "url": f"{V}/sobjects/Lead/@{{a.id}}?fields=Name", "referenceId": "b"},
            {"method": "PATCH", "url": f"{V}/sobjects/Lead/@{{a.id}}", "referenceId": "c", "body": {"Title": "@{b.Name}"}},
        ]}),
        ("POST", "/composite/batch", {"haltOnError": False, "batchRequests": [
            {"method": "POST", "url": "v59.0/sobjects/Lead", "richInput": lead_body},
            {"method": "GET", "url": "v59.0/limits"},
            {"method": "DELETE", "url": f"v59.0/sobjects/Lead/{lead}x"},
        ]}),
        ("POST", "/actions/standard/emailSimple", {"inputs": [{"emailAddresses": "a@b.c", "emailSubject": "s", "emailBody": "b"}]}),
        ("POST", "/sobjects/Referral_Submitted__e", {"Referral_Code__c": "GRACE-1001", "Last_Name__c": "L"}),
        ("POST", "/sobjects/PushTopic/", {"Name": "FuzzTopic", "Query": "SELECT Id, Name FROM Lead WHERE Name = 'x'", "ApiVersion": 59.0}),
    ]  # fmt: skip

    @st.composite
    def probe(draw: st.DrawFn) -> Probe:
        method, path, template = draw(st.sampled_from(resources))
        body = draw(st.one_of(json_text(template), JSON_VALUES.map(_json)))
        headers = {"Content-Type": "application/json"}
        for name in ("Sforce-Auto-Assign", "Sforce-Call-Options"):
            if draw(st.booleans()):
                headers[name] = draw(HEADER_TEXT)
        return Probe("rest-body", method, f"{V}{path}", headers, body)

    return probe()


def id_probes(t: Target) -> st.SearchStrategy[Probe]:
    objects = st.sampled_from(
        ["Lead", "Opportunity", "Advocate__c", "Account", "PushTopic", "Nope__c", "lead"]
    )
    segment = st.one_of(st.just(t.lead_id), st.just(t.lead_id[:15]), st.just(t.lead_id.lower()), TEXT)
    fields = st.one_of(st.just("Id,Name"), TEXT)

    @st.composite
    def probe(draw: st.DrawFn) -> Probe:
        obj, rid = draw(objects), quote(draw(segment), safe="")
        shape = draw(st.integers(0, 6))
        if shape == 0:
            return Probe("ids", "GET", f"{V}/sobjects/{obj}/{rid}?{urlencode({'fields': draw(fields)})}")
        if shape == 1:
            return Probe("ids", draw(st.sampled_from(["DELETE", "PATCH", "PUT", "HEAD"])), f"{V}/sobjects/{obj}/{rid}",
                         {"Content-Type": "application/json"}, _json({"Title": draw(JSON_VALUES)}))  # fmt: skip
        if shape == 2:
            ext = quote(draw(st.one_of(st.just("Referral_Code__c"), TEXT)), safe="")
            body = _json({"Name": "A", "Referral_Code__c": draw(JSON_VALUES)})
            return Probe("ids", "PATCH", f"{V}/sobjects/{obj}/{ext}/{rid}?updateOnly={draw(TEXT)}",
                         {"Content-Type": "application/json"}, body)  # fmt: skip
        if shape == 3:
            ids = ",".join(draw(st.lists(segment, max_size=4)))
            query = urlencode({"ids": ids, "allOrNone": draw(TEXT)})
            return Probe("ids", "DELETE", f"{V}/composite/sobjects?{query}")
        if shape == 4:
            query = urlencode({"ids": ",".join(draw(st.lists(segment, max_size=4))), "fields": draw(fields)})
            return Probe("ids", "GET", f"{V}/composite/sobjects/{obj}?{query}")
        if shape == 5:
            locator = quote(draw(st.one_of(TEXT, st.just("01gXXXXXXXXXXXXXXX-2000"))), safe="")
            return Probe("ids", "GET", f"{V}/query/{locator}")
        version = quote(
            draw(st.one_of(TEXT, st.sampled_from(["v59.0", "v19.0", "v68.0", "v59", "59.0"]))), safe=""
        )
        tail = draw(st.sampled_from(["", "/", "/limits", "/sobjects", f"/sobjects/{obj}/describe", "/nope"]))
        return Probe(
            "ids", draw(st.sampled_from(["GET", "POST", "OPTIONS"])), f"/services/data/{version}{tail}"
        )

    return probe()


def field_value_probes(t: Target) -> st.SearchStrategy[Probe]:
    required = {
        "Lead": {"LastName": "L", "Company": "C"},
        "Opportunity": {"Name": "O", "StageName": "Prospecting", "CloseDate": "2026-01-01"},
        "Advocate__c": {"Name": "A"},
        "Reward__c": {},
    }
    fields = {
        "Lead": ["LastName", "Company", "Email", "AnnualRevenue", "NumberOfEmployees", "LeadSource", "OwnerId",
                 "IsUnreadByOwner", "Description", "Advocate__c", "Referral_Channel__c", "Status"],
        "Opportunity": ["Name", "StageName", "CloseDate", "Amount", "Probability", "IsWon", "AccountId"],
        "Advocate__c": ["Name", "Referral_Code__c", "Reward_Balance__c", "Total_Referrals__c", "Status__c",
                        "Email__c", "Email_Opt_Out__c"],
        "Reward__c": ["Amount__c", "Payable_On__c", "Status__c", "Advocate__c", "External_Key__c"],
    }  # fmt: skip

    @st.composite
    def probe(draw: st.DrawFn) -> Probe:
        obj = draw(st.sampled_from(sorted(fields)))
        names = draw(st.lists(st.sampled_from(fields[obj]), min_size=1, max_size=4, unique=True))
        record = {**required[obj], **{name: draw(JSON_VALUES) for name in names}}
        if draw(st.booleans()):
            return Probe(
                "field-values",
                "POST",
                f"{V}/sobjects/{obj}/",
                {"Content-Type": "application/json"},
                _json(record),
            )
        body = {
            "allOrNone": draw(st.booleans()),
            "records": [{"attributes": {"type": obj}, **record}] * draw(st.integers(1, 3)),
        }
        return Probe(
            "field-values",
            "POST",
            f"{V}/composite/sobjects",
            {"Content-Type": "application/json"},
            _json(body),
        )

    return probe()


def raw_body_probes(t: Target) -> st.SearchStrategy[Probe]:
    @st.composite
    def probe(draw: st.DrawFn) -> Probe:
        raw = draw(st.one_of(st.binary(max_size=200), json_text({"LastName": "L", "Company": "C"})))
        encoding = draw(st.sampled_from([None, "gzip", "deflate", "br", "identity", "gzip, deflate"]))
        if encoding == "gzip" and draw(st.booleans()):
            raw = gzip.compress(raw)
        elif encoding == "deflate" and draw(st.booleans()):
            raw = zlib.compress(raw)
        headers: dict[str, str] = {"Content-Type": draw(st.sampled_from(
            ["application/json", "application/json; charset=klingon", "text/plain", "application/xml", ""]))}  # fmt: skip
        if encoding:
            headers["Content-Encoding"] = encoding
        path = draw(
            st.sampled_from(["/sobjects/Lead/", "/composite", "/composite/batch", "/composite/sobjects"])
        )
        return Probe("raw-body", "POST", f"{V}{path}", headers, raw)

    return probe()


# --- OAuth, SOAP, Bayeux ------------------------------------------------------------------------------


def oauth_probes(t: Target) -> st.SearchStrategy[Probe]:
    grants = st.sampled_from(
        [
            "password",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "",
            "x",
        ]
    )
    values = st.one_of(
        st.sampled_from(["sfconnector-demo", "demo-secret", "integration@sfconnector.test", "demo-password"]),
        TEXT,
    )

    @st.composite
    def assertion(draw: st.DrawFn) -> str:
        claims = {
            "iss": draw(st.one_of(st.just("sfconnector-demo"), TEXT)),
            "sub": draw(st.one_of(st.just("integration@sfconnector.test"), TEXT)),
            "aud": draw(st.one_of(st.just("https://login.salesforce.com"), JSON_VALUES)),
            "exp": draw(st.one_of(st.just(4_000_000_000), JSON_VALUES, st.just(float("nan")))),
        }
        return jwt.encode(claims, t.jwt_key, algorithm="RS256")

    @st.composite
    def probe(draw: st.DrawFn) -> Probe:
        shape = draw(st.integers(0, 5))
        if shape == 4:
            return Probe("oauth", draw(st.sampled_from(["GET", "PUT", "DELETE"])), "/services/oauth2/token")
        if shape == 5:
            first, second = (quote(draw(TEXT), safe="") or "x" for _ in range(2))
            path = draw(st.sampled_from([f"/id/{first}/{second}", f"/services/oauth2/revoke?token={first}"]))
            return Probe("oauth", draw(st.sampled_from(["GET", "POST"])), path)
        fields = {"grant_type": draw(grants)}
        for name in draw(
            st.lists(
                st.sampled_from(["client_id", "client_secret", "username", "password", "refresh_token"]),
                max_size=5,
            )
        ):
            fields[name] = draw(values)
        if fields["grant_type"].endswith("jwt-bearer") and draw(st.booleans()):
            fields["assertion"] = draw(assertion())
        body = urlencode(fields, encoding="utf-8", errors="surrogatepass").encode()
        if shape == 1:
            body = draw(st.binary(max_size=100)) + body
        content_type = draw(st.sampled_from([
            "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=klingon",
            "application/x-www-form-urlencoded; charset=latin-1", "multipart/form-data; boundary=xx", "text/plain"]))  # fmt: skip
        headers = {"Content-Type": content_type, "Authorization": None}
        if shape == 2:
            headers["Authorization"] = "Basic " + draw(HEADER_TEXT)
        if shape == 3:
            headers["Content-Encoding"] = "gzip"
            body = gzip.compress(body) if draw(st.booleans()) else body
        return Probe("oauth", "POST", "/services/oauth2/token", headers, body)  # type: ignore[arg-type]

    return probe()


def soap_probes(t: Target) -> st.SearchStrategy[Probe]:
    @st.composite
    def probe(draw: st.DrawFn) -> Probe:
        version = draw(st.one_of(st.sampled_from(["59.0", "20.0", "67.0", "68.0", "9.0"]), TEXT))
        user = draw(st.one_of(st.just("integration@sfconnector.test"), TEXT))
        password = draw(st.one_of(st.just("demo-password"), TEXT))
        escape = draw(st.booleans())

        def text(value: str) -> str:
            return value.replace("&", "&amp;").replace("<", "&lt;") if escape else value

        envelope = (
            '<?xml version="1.0" encoding="utf-8"?><se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/">'
            f'<se:Body><login xmlns="urn:partner.soap.sforce.com"><username>{text(user)}</username>'
            f"<password>{text(password)}</password></login></se:Body></se:Envelope>"
        )
        body = draw(st.one_of(st.just(envelope.encode("utf-8", "surrogatepass")), st.binary(max_size=100)))
        headers = {"Content-Type": "text/xml", "SOAPAction": "login", "Authorization": None}
        method = draw(st.sampled_from(["POST", "POST", "GET"]))
        return Probe("soap", method, f"/services/Soap/u/{quote(version, safe='')}", headers, body)  # type: ignore[arg-type]

    return probe()


def bayeux_probes(t: Target) -> st.SearchStrategy[Probe]:
    channels = st.one_of(
        st.sampled_from(["/meta/handshake", "/meta/connect", "/meta/subscribe", "/meta/unsubscribe",
                         "/meta/disconnect", "/data/LeadChangeEvent", "/topic/FuzzTopic", "/event/Referral_Submitted__e"]),
        JSON_VALUES,
    )  # fmt: skip

    @st.composite
    def message(draw: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {"channel": draw(channels)}
        if draw(st.booleans()):
            out["id"] = draw(SCALARS)
        if draw(st.booleans()):
            out["clientId"] = draw(st.one_of(st.just(t.client_id), JSON_VALUES))
        if draw(st.booleans()):
            out["subscription"] = draw(channels)
        if draw(st.booleans()):
            out["ext"] = {
                "replay": draw(
                    st.one_of(
                        JSON_VALUES,
                        st.dictionaries(channels.filter(lambda c: isinstance(c, str)), NUMBERS, max_size=2),
                    )
                )
            }  # type: ignore[arg-type]
        if draw(st.booleans()):
            out["advice"] = {"timeout": draw(st.one_of(NUMBERS, JSON_VALUES)), "interval": draw(SCALARS)}
        if draw(st.booleans()):
            out["connectionType"] = draw(st.one_of(st.just("long-polling"), JSON_VALUES))
        return out

    @st.composite
    def probe(draw: st.DrawFn) -> Probe:
        messages = draw(st.lists(message(), max_size=4))
        body = json.dumps(messages).encode("utf-8", "surrogatepass")
        if draw(st.integers(0, 3)) == 0:
            at = draw(st.integers(0, len(body)))
            body = body[:at] + draw(RAW_JSON_TOKENS).encode("utf-8", "surrogatepass") + body[at:]
        version = draw(st.one_of(st.sampled_from(["59.0", "45.0", "", "x"]), TEXT))
        auth = draw(st.sampled_from([f"Bearer {t.token}", f"OAuth {t.token}", "Bearer nope", None]))
        headers = {"Content-Type": "application/json", "Authorization": auth}
        return Probe("bayeux", "POST", f"/cometd/{quote(version, safe='')}".rstrip("/"), headers, body)  # type: ignore[arg-type]

    return probe()


def probes(t: Target) -> st.SearchStrategy[Probe]:
    return st.one_of(
        query_probes(t),
        resource_probes(t),
        id_probes(t),
        field_value_probes(t),
        raw_body_probes(t),
        oauth_probes(t),
        soap_probes(t),
        bayeux_probes(t),
    )


# --- the runs -----------------------------------------------------------------------------------------


def fuzz(t: Target, examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(probes(t))
    def one_request(probe: Probe) -> None:
        t.send(probe)

    started = time.monotonic()
    one_request()
    elapsed = time.monotonic() - started
    assert_still_serving(t.base_url, t.http)
    total = sum(t.sent.values())
    print(
        f"\nfuzz: {total} requests in {elapsed:.1f}s ({total / elapsed:.0f}/s), "
        f"slowest {t.slowest * 1000:.0f} ms ({t.slowest_probe}); "
        + ", ".join(f"{family} {n}" for family, n in sorted(t.sent.items()))
        + "; statuses "
        + ", ".join(f"{status}: {n}" for status, n in sorted(t.statuses.items()))
    )


def stops_on_sigterm(process: Process) -> None:
    """After the abuse, SIGTERM still stops the emulator cleanly (a frozen event loop would ignore it)."""
    process[0].send_signal(signal.SIGTERM)
    assert process[0].wait(timeout=30) == 0


def test_hostile_requests_get_salesforce_answers_promptly_and_leave_the_emulator_serving(
    target: Target, emulator_process: Process
) -> None:
    fuzz(target, SHORT_EXAMPLES)
    stops_on_sigterm(emulator_process)


@pytest.mark.fuzz_long
def test_long_fuzz_run(target: Target, emulator_process: Process) -> None:
    """The same properties over many more requests (FUZZ_EXAMPLES, default 20,000)."""
    fuzz(target, int(os.environ.get("FUZZ_EXAMPLES", "20000")))
    stops_on_sigterm(emulator_process)
