"""The REST API under /services/data/vNN.N/, independent of the HTTP server.

`RestApi.dispatch` takes one call (method, path below the version, query, body, headers) and returns a
`Reply`; the aiohttp layer, composite and composite/batch all go through it, so a subrequest behaves exactly
like the same request sent alone.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, unquote

from sfemulator.edge import unknown_exception_body
from sfemulator.errors import ApiError, DmlError, not_found
from sfemulator.ids import looks_like_id, to18
from sfemulator.schema import ObjectDef, describe_global_entry, describe_object
from sfemulator.soql_source import OrgRecordSource
from sfemulator.store import Org, Transaction, WriteContext

log = logging.getLogger("sfemulator.rest")

MIN_VERSION = 20
MAX_VERSION = 67
COMPOSITE_LIMIT = 25
COMPOSITE_HEAVY_LIMIT = 5  # of those, query/queryAll and sObject Collections subrequests
COLLECTION_LIMIT = 200
_VERSION_RE = re.compile(r"^v(\d{2})\.0$")
_REF_RE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_SEASONS = ("Winter", "Spring", "Summer")


def versions_list() -> list[dict[str, str]]:
    """`GET /services/data/`: every API version the org speaks, with its release label."""
    out = []
    for v in range(MIN_VERSION, MAX_VERSION + 1):
        i = v - MIN_VERSION  # v20.0 was Winter '11; three releases a year
        out.append(
            {
                "label": f"{_SEASONS[i % 3]} '{11 + i // 3:02d}",
                "url": f"/services/data/v{v}.0",
                "version": f"{v}.0",
            }
        )
    return out


def parse_version(segment: str) -> str | None:
    m = _VERSION_RE.match(segment)
    if not m or not MIN_VERSION <= int(m.group(1)) <= MAX_VERSION:
        return None
    return f"{m.group(1)}.0"


def call_options_client(value: str | None) -> str | None:
    """`client=` of Sforce-Call-Options; options are separated by `;` or `,` (jsforce sends `, `)."""
    if not value:
        return None
    for part in re.split(r"[;,]", value):
        key, _, val = part.strip().partition("=")
        if key.strip().lower() == "client" and val.strip():
            return val.strip()
    return None


def auto_assign(value: str | None, creating: bool) -> bool:
    """Sforce-Auto-Assign: TRUE (default) / FALSE, case-insensitive; a rule id runs on creates only."""
    if value is None:
        return True
    v = value.strip().lower()
    if v == "false":
        return False
    if v == "true" or v == "":
        return True
    return creating if looks_like_id(value.strip()) else True


@dataclass
class Call:
    """One REST call, from the wire or from a composite subrequest."""

    user_id: str
    version: str
    method: str
    segments: list[str]  # path below /services/data/vNN.N/, decoded, without empty segments
    query: Mapping[str, str]
    body: Any
    headers: Mapping[str, str]  # case-insensitive mapping


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    kind: str | None = None  # what the call counts as in the stats


@dataclass
class _Cursor:
    rows: list[dict[str, Any]]
    total: int
    created: dt.datetime


class RestApi:
    def __init__(self, org: Org) -> None:
        self.org = org
        self.source = OrgRecordSource(org)
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._cursor_lock = threading.Lock()

    def reset(self) -> None:
        with self._cursor_lock:
            self._cursors.clear()
        self.source = OrgRecordSource(self.org)

    # --- entry points ------------------------------------------------------------------------------

    def dispatch(self, call: Call, tx: Transaction | None = None) -> Reply:
        """Run one call; `tx` is the enclosing transaction of a composite request, if any."""
        try:
            return self._route(call, tx)
        except ApiError as exc:
            return Reply(exc.http_status, exc.body(), kind=_kind_of(call))
        except DmlError as exc:
            return Reply(exc.http_status, [_rest_error(exc)], kind=_kind_of(call))
        except Exception:
            # A bug, never an answer to any input: logged, and answered as Salesforce answers an internal
            # error. Here rather than at the HTTP edge so that a composite or batch subrequest fails alone
            # (its writes undone) and the subrequests already committed are still reported as they were.
            log.exception("rest.unexpected_error method=%s path=%s", call.method, "/".join(call.segments))
            return Reply(500, unknown_exception_body(), kind=_kind_of(call))

    def _route(self, call: Call, tx: Transaction | None) -> Reply:
        s = call.segments
        m = call.method
        if not s:
            if m != "GET":
                raise _method_not_allowed(m)
            return Reply(200, self._resources(call.version), kind="describe")
        head = s[0]
        if head == "sobjects":
            return self._sobjects(call, s[1:], tx)
        if head in ("query", "queryAll") and len(s) <= 2:
            if m != "GET":
                raise _method_not_allowed(m)
            if len(s) == 2:
                return Reply(200, self._query_more(call, s[1]), kind="query")
            return Reply(200, self._query(call, include_deleted=head == "queryAll", tx=tx), kind="query")
        if head == "composite":
            if len(s) == 1:
                if m != "POST":
                    raise _method_not_allowed(m)
                return Reply(200, self._composite(call), kind="composite")
            if s[1] == "batch" and len(s) == 2:
                if m != "POST":
                    raise _method_not_allowed(m)
                return Reply(200, self._composite_batch(call), kind="composite")
            if s[1] == "sobjects":
                return self._collections(call, s[2:], tx)
        if head == "limits" and len(s) == 1:
            if m != "GET":
                raise _method_not_allowed(m)
            return Reply(200, self._limits(), kind="limits")
        if head == "actions":
            return self._actions(call, s[1:])
        raise not_found()

    # --- resources, describe, limits -----------------------------------------------------------------

    def _resources(self, version: str) -> dict[str, str]:
        base = f"/services/data/v{version}"
        names = ("sobjects", "query", "queryAll", "composite", "limits", "actions")
        return {n: f"{base}/{n}" for n in names}

    def _limits(self) -> dict[str, Any]:
        o = self.org
        return {
            "DailyApiRequests": {"Max": o.api_limit, "Remaining": max(0, o.api_limit - o.api_used)},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DailyStreamingApiEvents": {"Max": 1000000, "Remaining": 1000000},
            "DailyDeliveredPlatformEvents": {"Max": 50000, "Remaining": 50000},
            "DailyWorkflowEmails": {"Max": 1000, "Remaining": max(0, 1000 - len(o.emails))},
            "SingleEmail": {"Max": 5000, "Remaining": max(0, 5000 - len(o.emails))},
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
        }

    def _object(self, name: str) -> ObjectDef:
        obj = self.org.schema.get(name)
        if obj is None:
            raise not_found()
        return obj

    # --- sobjects ----------------------------------------------------------------------------------

    def _sobjects(self, call: Call, s: list[str], tx: Transaction | None) -> Reply:
        m = call.method
        if not s:
            if m != "GET":
                raise _method_not_allowed(m)
            objects = self.org.schema.objects.values()
            return Reply(
                200,
                {
                    "encoding": "UTF-8",
                    "maxBatchSize": 200,
                    "sobjects": [describe_global_entry(o, call.version) for o in objects],
                },
                kind="describe",
            )
        obj = self._object(s[0])
        if len(s) == 1:
            if m == "GET":
                # Basic info lists recently viewed records by Id and Name only.
                rows = list(self.org.tables[obj.name].values())[-25:] if obj.queryable else []
                recent = [
                    self._shape(obj.name, r, ["Id", "Name"], call.version)
                    for r in rows
                    if not r.get("IsDeleted")
                ]
                info = describe_global_entry(obj, call.version)
                return Reply(200, {"objectDescribe": info, "recentItems": recent}, kind="describe")
            if m == "POST":
                return self._create(call, obj, tx)
            raise _method_not_allowed(m)
        if len(s) == 2 and s[1] == "describe":
            if m != "GET":
                raise _method_not_allowed(m)
            return Reply(200, describe_object(obj, call.version, self.org.schema), kind="describe")
        if len(s) == 2:
            return self._by_id(call, obj, s[1], tx)
        if len(s) == 3:
            return self._by_external_id(call, obj, s[1], s[2], tx)
        raise not_found()

    def _ctx(self, call: Call, creating: bool) -> WriteContext:
        return WriteContext(
            user_id=call.user_id,
            api="rest",
            api_version=call.version,
            client=call_options_client(call.headers.get("Sforce-Call-Options")),
            auto_assign=auto_assign(call.headers.get("Sforce-Auto-Assign"), creating),
        )

    def _run(
        self, call: Call, tx: Transaction | None, creating: bool, work: Callable[[Transaction], Any]
    ) -> Any:
        """Run `work` in the caller's transaction (composite) or in a transaction of its own."""
        if tx is not None:
            saved = tx.ctx
            tx.ctx = self._ctx(call, creating)
            try:
                return work(tx)
            finally:
                tx.ctx = saved
        with self.org.transaction(self._ctx(call, creating)) as own:
            return work(own)

    def _create(self, call: Call, obj: ObjectDef, tx: Transaction | None) -> Reply:
        body = _json_object(call.body)
        if obj.is_platform_event:
            rid, event_uuid = self._run(call, tx, True, lambda t: t.publish(obj.name, body))
            return Reply(201, _publish_result(rid, event_uuid), kind="create")
        rid = self._run(call, tx, True, lambda t: t.insert(obj.name, body))
        location = f"/services/data/v{call.version}/sobjects/{obj.name}/{rid}"
        return Reply(201, {"id": rid, "success": True, "errors": []}, {"Location": location}, kind="create")

    def _check_id(self, obj: ObjectDef, segment: str) -> str | None:
        """The 18-char id for a path segment, None if it is not id-shaped; MALFORMED_ID if it is but wrong."""
        if not re.fullmatch(r"[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?", segment):
            return None
        prefix = to18(segment)[:3] if len(segment) == 18 and looks_like_id(segment) else segment[:3]
        if not looks_like_id(segment) or prefix != obj.key_prefix:
            if prefix == obj.key_prefix or self.org.schema.by_prefix(prefix) is not None:
                raise ApiError(
                    400, "MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {segment}", ["Id"]
                )
            return None
        return to18(segment)

    def _by_id(self, call: Call, obj: ObjectDef, segment: str, tx: Transaction | None) -> Reply:
        m = call.method
        rid = self._check_id(obj, segment)
        if rid is None:
            raise ApiError(
                404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {segment}"
            )
        if m == "GET":
            found = self.org.get(rid)
            if found is None or found[0] != obj.name:
                raise not_found()
            fields = _fields_param(call.query.get("fields"))
            return Reply(
                200, self._shape(obj.name, found[1], fields, call.version, strict=True), kind="retrieve"
            )
        if m == "PATCH":
            body = _json_object(call.body)
            self._run(call, tx, False, lambda t: t.update(obj.name, rid, body))
            return Reply(204, kind="update")
        if m == "DELETE":
            self._run(call, tx, False, lambda t: t.delete(rid, obj.name))
            return Reply(204, kind="delete")
        raise _method_not_allowed(m)

    def _by_external_id(
        self, call: Call, obj: ObjectDef, field_name: str, value: str, tx: Transaction | None
    ) -> Reply:
        m = call.method
        fd = obj.field(field_name)
        if fd is None or not (fd.external_id or fd.unique or fd.name == "Id"):
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {field_name}",
            )
        if m == "PATCH":
            body = _json_object(call.body)
            update_only = (call.query.get("updateOnly") or "").lower() == "true"
            creating = not self.org.find_by_field(obj.name, fd, value)
            if update_only and creating:
                raise not_found()  # updateOnly: a value that matches nothing creates nothing
            try:
                # An AssignmentRule id in Sforce-Auto-Assign runs for created records only (notes §4.1).
                rid, created = self._run(
                    call, tx, creating, lambda t: t.upsert(obj.name, fd.name, value, body)
                )
            except DmlError as exc:
                if exc.http_status == 300:
                    urls = [f"/services/data/v{call.version}/sobjects/{obj.name}/{i}" for i in exc.fields]
                    return Reply(300, urls, kind="upsert")
                raise
            if created:
                return Reply(
                    201,
                    _upsert_result(rid, True, call.version),
                    {"Location": f"/services/data/v{call.version}/sobjects/{obj.name}/{rid}"},
                    kind="upsert",
                )
            if float(call.version) <= 45.0:
                return Reply(204, kind="upsert")
            return Reply(200, _upsert_result(rid, False, call.version), kind="upsert")
        matches = self.org.find_by_field(obj.name, fd, value)
        if not matches:
            raise not_found()
        if len(matches) > 1:
            urls = [f"/services/data/v{call.version}/sobjects/{obj.name}/{i}" for i in matches]
            return Reply(300, urls, kind="retrieve")
        if m == "GET":
            found = self.org.get(matches[0])
            assert found is not None
            fields = _fields_param(call.query.get("fields"))
            return Reply(
                200, self._shape(obj.name, found[1], fields, call.version, strict=True), kind="retrieve"
            )
        if m == "DELETE":
            self._run(call, tx, False, lambda t: t.delete(matches[0], obj.name))
            return Reply(204, kind="delete")
        raise _method_not_allowed(m)

    def _shape(
        self,
        sobject: str,
        record: Mapping[str, Any],
        fields: list[str] | None,
        version: str,
        strict: bool = False,
    ) -> dict[str, Any]:
        """A record as the API returns it: attributes first, then fields in describe order, nulls included."""
        obj = self.org.schema.objects[sobject]
        out: dict[str, Any] = {
            "attributes": {
                "type": sobject,
                "url": f"/services/data/v{version}/sobjects/{sobject}/{record['Id']}",
            }
        }
        if fields is None:
            for name in obj.fields:
                out[name] = record.get(name)
            return out
        for name in fields:
            fd = obj.field(name)
            if fd is None:
                if strict:
                    raise ApiError(
                        400,
                        "INVALID_FIELD",
                        f"No such column '{name}' on entity '{sobject}'. If you are attempting to use a custom "
                        "field, be sure to append the '__c' after the custom field name. Please reference your "
                        "WSDL or the describe call for the appropriate names.",
                    )
                continue
            out[fd.name] = record.get(fd.name)
        return out

    # --- query -------------------------------------------------------------------------------------

    def _query(self, call: Call, include_deleted: bool, tx: Transaction | None) -> dict[str, Any]:
        text = call.query.get("q")
        if not text:
            raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
        self.org.queries.append(
            {
                "soql": text,
                "all": include_deleted,
                "at": self.org.now_iso(),
                "user_id": call.user_id,
                "client": call_options_client(call.headers.get("Sforce-Call-Options")),
            }
        )
        if len(self.org.queries) > 10_000:
            del self.org.queries[:1000]
        rows, total = self.source.run(text, include_deleted, call.version)
        batch = _batch_size(call.headers.get("Sforce-Query-Options"), self.org.settings.query_batch_size)
        return self._page(rows, total, 0, batch, call.version)

    def _page(
        self, rows: list[dict[str, Any]], total: int, start: int, batch: int, version: str
    ) -> dict[str, Any]:
        end = start + batch
        page: dict[str, Any] = {"totalSize": total, "done": end >= len(rows)}
        if end < len(rows):
            locator = self._new_cursor(rows, total)
            page["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{end}"
        page["records"] = rows[start:end]
        return page

    def _new_cursor(self, rows: list[dict[str, Any]], total: int) -> str:
        body = "".join(
            secrets.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
            for _ in range(12)
        )
        locator = to18("01g" + body)
        with self._cursor_lock:
            for key, cursor in list(self._cursors.items()):
                if cursor.rows is rows:
                    return key  # one locator per result set, like Salesforce
            self._cursors[locator] = _Cursor(rows, total, self.org.clock())
            while len(self._cursors) > 200:  # the oldest cursors expire first
                self._cursors.popitem(last=False)
        return locator

    def _query_more(self, call: Call, locator_segment: str) -> dict[str, Any]:
        locator, _, offset = locator_segment.rpartition("-")
        with self._cursor_lock:
            cursor = self._cursors.get(locator)
        if cursor is None or not (offset.isascii() and offset.isdigit()) or len(offset) > 9:
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        start = int(offset)
        batch = _batch_size(call.headers.get("Sforce-Query-Options"), self.org.settings.query_batch_size)
        page: dict[str, Any] = {"totalSize": cursor.total, "done": start + batch >= len(cursor.rows)}
        if start + batch < len(cursor.rows):
            page["nextRecordsUrl"] = f"/services/data/v{call.version}/query/{locator}-{start + batch}"
        page["records"] = cursor.rows[start : start + batch]
        return page

    # --- collections -------------------------------------------------------------------------------

    def _collections(self, call: Call, s: list[str], tx: Transaction | None) -> Reply:
        m = call.method
        if not s:
            if m == "POST":
                return Reply(200, self._collection_write(call, "create", None, None, tx), kind="collections")
            if m == "PATCH":
                return Reply(200, self._collection_write(call, "update", None, None, tx), kind="collections")
            if m == "DELETE":
                return Reply(200, self._collection_delete(call, tx), kind="collections")
            raise _method_not_allowed(m)
        obj = self._object(s[0])
        if len(s) == 1 and m in ("GET", "POST"):
            return Reply(200, self._collection_retrieve(call, obj), kind="collections")
        if len(s) == 2 and m == "PATCH":
            fd = obj.field(s[1])
            if fd is None or not (fd.external_id or fd.name == "Id"):
                raise ApiError(
                    404,
                    "NOT_FOUND",
                    f"Provided external ID field does not exist or is not accessible: {s[1]}",
                )
            return Reply(200, self._collection_write(call, "upsert", obj, fd.name, tx), kind="collections")
        raise _method_not_allowed(m) if len(s) <= 2 else not_found()

    def _collection_write(
        self, call: Call, op: str, obj: ObjectDef | None, ext_field: str | None, tx: Transaction | None
    ) -> list[dict[str, Any]]:
        body = _json_object(call.body)
        records = body.get("records")
        if not isinstance(records, list):
            raise ApiError(400, "JSON_PARSER_ERROR", "records: the request must carry a records array")
        if len(records) > COLLECTION_LIMIT:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
        all_or_none = _flag(body, "allOrNone")

        def work(t: Transaction) -> list[dict[str, Any]]:
            start = t.savepoint()
            results: list[dict[str, Any]] = []
            failed = False
            for raw in records:
                sp = t.savepoint()
                rid: str | None = None
                try:
                    if not isinstance(raw, dict):
                        raise DmlError("JSON_PARSER_ERROR", "each record must be a JSON object")
                    rid = raw.get("id") or raw.get("Id") if op == "update" else None
                    attributes = raw.get("attributes")
                    if attributes is not None and not isinstance(attributes, dict):
                        raise DmlError(
                            "JSON_PARSER_ERROR", _cannot_deserialize("SObject attributes", attributes)
                        )
                    declared = (attributes or {}).get("type")
                    sobject = (declared if isinstance(declared, str) else None) if obj is None else obj.name
                    if not sobject:
                        raise DmlError("INVALID_TYPE", "Must specify a type in the attributes of each record")
                    values = {k: v for k, v in raw.items() if k not in ("attributes", "id")}
                    if op == "create":
                        target = self.org.schema.get(str(sobject))
                        if target is not None and target.is_platform_event:
                            eid, event_uuid = t.publish(target.name, values)
                            results.append(_publish_result(eid, event_uuid))
                            continue
                        rid = t.insert(str(sobject), values)
                        results.append({"id": rid, "success": True, "errors": []})
                    elif op == "update":
                        if not rid:
                            raise DmlError("MISSING_ARGUMENT", "Id not specified in an update call")
                        if not looks_like_id(str(rid)):
                            raise DmlError("MALFORMED_ID", f"Id: id value of incorrect type: {rid}", ["Id"])
                        values.pop("Id", None)
                        t.update(str(sobject), str(rid), values)
                        rid = to18(str(rid))
                        results.append({"id": rid, "success": True, "errors": []})
                    else:
                        assert ext_field is not None and obj is not None
                        ext_value = next(
                            (v for k, v in values.items() if k.lower() == ext_field.lower()), None
                        )
                        if ext_value is None:
                            raise DmlError("MISSING_ARGUMENT", f"{ext_field} not specified", [])
                        fd = obj.field(ext_field)
                        creating = fd is None or not self.org.find_by_field(obj.name, fd, str(ext_value))
                        saved = t.ctx
                        # An AssignmentRule id runs for the records this upsert creates only (notes §4.1).
                        header = call.headers.get("Sforce-Auto-Assign")
                        t.ctx = replace(saved, auto_assign=auto_assign(header, creating))
                        try:
                            rid, created = t.upsert(obj.name, ext_field, str(ext_value), values)
                        finally:
                            t.ctx = saved
                        results.append({"id": rid, "success": True, "errors": [], "created": created})
                except DmlError as exc:
                    t.rollback_to(sp)
                    failed = True
                    item: dict[str, Any] = {"success": False, "errors": [_save_error(exc)]}
                    if op != "create" and rid:
                        item = {"id": rid, **item}
                    results.append(item)
            if failed and all_or_none:
                t.rollback_to(start)
                results = [_rolled_back(r, keep_id=op != "create") if r["success"] else r for r in results]
            return results

        return self._run(call, tx, op != "update", work)

    def _collection_delete(self, call: Call, tx: Transaction | None) -> list[dict[str, Any]]:
        ids = [i for i in (call.query.get("ids") or "").split(",") if i]
        if not ids:
            raise ApiError(400, "MISSING_ARGUMENT", "ids parameter is required")
        if len(ids) > COLLECTION_LIMIT:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
        all_or_none = (call.query.get("allOrNone") or "false").lower() == "true"

        def work(t: Transaction) -> list[dict[str, Any]]:
            start = t.savepoint()
            results: list[dict[str, Any]] = []
            failed = False
            for rid in ids:
                sp = t.savepoint()
                try:
                    if not looks_like_id(rid):
                        raise DmlError("MALFORMED_ID", f"malformed id {rid}", [])
                    results.append({"id": t.delete(rid), "success": True, "errors": []})
                except DmlError as exc:
                    t.rollback_to(sp)
                    failed = True
                    results.append({"id": rid, "success": False, "errors": [_save_error(exc)]})
            if failed and all_or_none:
                t.rollback_to(start)
                results = [_rolled_back(r, keep_id=True) if r["success"] else r for r in results]
            return results

        return self._run(call, tx, False, work)

    def _collection_retrieve(self, call: Call, obj: ObjectDef) -> list[dict[str, Any] | None]:
        if call.method == "POST":
            body = _json_object(call.body)
            ids = _strings(body, "ids") or []
            fields = _strings(body, "fields")
        else:
            ids = [i for i in (call.query.get("ids") or "").split(",") if i]
            fields = _fields_param(call.query.get("fields"))
        if not fields:
            raise ApiError(400, "MISSING_ARGUMENT", "fields parameter is required")
        if len(ids) > 2000:
            raise ApiError(
                400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot retrieve more than 2000 records"
            )
        out: list[dict[str, Any] | None] = []
        for rid in ids:
            found = self.org.get(str(rid)) if looks_like_id(str(rid)) else None
            if found is None or found[0] != obj.name:
                out.append(None)
            else:
                out.append(
                    self._shape(obj.name, found[1], [str(f) for f in fields], call.version, strict=True)
                )
        return out

    # --- composite ---------------------------------------------------------------------------------

    def _composite(self, call: Call) -> dict[str, Any]:
        body = _json_object(call.body)
        subs = body.get("compositeRequest")
        if not isinstance(subs, list) or not subs:
            raise ApiError(400, "JSON_PARSER_ERROR", "compositeRequest: a non-empty array is required")
        if len(subs) > COMPOSITE_LIMIT:
            raise ApiError(400, "LIMIT_EXCEEDED", f"Exceeded max limit of subrequests: {COMPOSITE_LIMIT}")
        _check_subrequests(subs, "httpHeaders")
        heavy = sum(1 for sub in subs if _is_query_or_collection(sub.get("url")))
        if heavy > COMPOSITE_HEAVY_LIMIT:
            # Notes §3.2: at most 5 of the 25 may be query / sObject Collections subrequests.
            raise ApiError(
                400,
                "LIMIT_EXCEEDED",
                f"Exceeded max limit of query or sObject Collections subrequests: {COMPOSITE_HEAVY_LIMIT}",
            )
        seen: set[str] = set()
        for sub in subs:
            ref = sub.get("referenceId")
            if not isinstance(ref, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", ref):
                raise ApiError(400, "INVALID_INPUT", f"Invalid referenceId: {ref}")
            if ref in seen:
                raise ApiError(400, "INVALID_INPUT", f"Duplicate referenceId provided in the request: {ref}")
            seen.add(ref)
        all_or_none = _flag(body, "allOrNone")
        results: dict[str, Any] = {}
        responses: list[dict[str, Any]] = []
        halted_msg = "The transaction was rolled back since another operation in the same transaction failed."
        with self.org.transaction(self._ctx(call, True)) as tx:
            failed = False
            for sub in subs:
                ref = sub["referenceId"]
                if failed and all_or_none:
                    responses.append(_halted(ref, halted_msg))
                    continue
                try:
                    url = _resolve_refs(_text(sub, "url", ""), results, encode=True)
                    sub_body = _resolve_refs(sub.get("body"), results, encode=False)
                except KeyError as exc:
                    failed = True
                    missing = str(exc.args[0])
                    responses.append(
                        _halted(
                            ref,
                            f"Invalid reference specified. No value for {missing} found in {missing.split('.')[0]}. "
                            f"Provided referenceId ({missing.split('.')[0]}) must be a valid referenceId that "
                            "corresponds to a successful subrequest",
                        )
                    )
                    continue
                sub_call = self._sub_call(
                    call, _text(sub, "method", "GET").upper(), url, sub_body, sub.get("httpHeaders")
                )
                if sub_call is None:
                    reply = Reply(404, not_found().body())
                else:
                    sp = tx.savepoint()
                    reply = self.dispatch(sub_call, tx)
                    if reply.status >= 400:
                        tx.rollback_to(sp)
                if reply.status >= 400:
                    failed = True
                else:
                    results[ref] = reply.body
                responses.append(
                    {
                        "body": reply.body,
                        "httpHeaders": dict(reply.headers),
                        "httpStatusCode": reply.status,
                        "referenceId": ref,
                    }
                )
            if failed and all_or_none:
                tx.rollback()
                responses = [
                    r if r["httpStatusCode"] >= 400 else _halted(r["referenceId"], halted_msg)
                    for r in responses
                ]
        return {"compositeResponse": responses}

    def _sub_call(self, call: Call, method: str, url: str, body: Any, headers: Any) -> Call | None:
        path, _, query = url.partition("?")
        raw = [seg for seg in path.split("/") if seg]
        if len(raw) >= 3 and raw[0] == "services" and raw[1] == "data":
            raw = raw[2:]
        if not raw:
            return None
        version = parse_version(raw[0])
        if version is None:
            return None
        merged = _CaseInsensitive(call.headers)
        if isinstance(headers, dict):
            merged.update({str(k): _text(headers, k, "") for k in headers})
        return Call(
            user_id=call.user_id,
            version=version,
            method=method,
            segments=[unquote(seg) for seg in raw[1:]],
            query=dict(parse_qsl(query, keep_blank_values=True)),
            body=body,
            headers=merged,
        )

    def _composite_batch(self, call: Call) -> dict[str, Any]:
        body = _json_object(call.body)
        subs = body.get("batchRequests")
        if not isinstance(subs, list) or not subs:
            raise ApiError(400, "JSON_PARSER_ERROR", "batchRequests: a non-empty array is required")
        if len(subs) > COMPOSITE_LIMIT:
            raise ApiError(400, "LIMIT_EXCEEDED", f"Exceeded max limit of subrequests: {COMPOSITE_LIMIT}")
        _check_subrequests(subs, None)
        halt = _flag(body, "haltOnError")
        results: list[dict[str, Any]] = []
        has_errors = False
        for sub in subs:
            if halt and has_errors:
                results.append(
                    {
                        "statusCode": 412,
                        "result": [
                            {
                                "errorCode": "BATCH_PROCESSING_HALTED",
                                "message": "Batch processing halted per request",
                            }
                        ],
                    }
                )
                continue
            url = _text(sub, "url", "")
            if not url.startswith("/"):
                url = "/services/data/" + url
            sub_call = self._sub_call(
                call, _text(sub, "method", "GET").upper(), url, sub.get("richInput"), None
            )
            reply = Reply(404, not_found().body()) if sub_call is None else self.dispatch(sub_call)
            has_errors = has_errors or reply.status >= 400
            results.append({"statusCode": reply.status, "result": reply.body})
        # Unlike composite, every subrequest of a batch counts against the allocation (notes §3.3);
        # the request itself was counted once already.
        for _ in subs[1:]:
            self.org.consume_api_call()
            self.org.stats.total += 1
        return {"hasErrors": has_errors, "results": results}

    # --- actions -----------------------------------------------------------------------------------

    def _actions(self, call: Call, s: list[str]) -> Reply:
        if s == ["standard"] and call.method == "GET":
            return Reply(
                200,
                {"actions": [{"label": "Send Email", "name": "emailSimple", "type": "EMAILSIMPLE"}]},
                kind="action",
            )
        if s != ["standard", "emailSimple"]:
            raise not_found()
        if call.method == "GET":
            return Reply(200, _EMAIL_SIMPLE_DESCRIBE, kind="action")
        if call.method != "POST":
            raise _method_not_allowed(call.method)
        body = _json_object(call.body)
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise ApiError(400, "JSON_PARSER_ERROR", "Missing required input parameter: inputs")
        results: list[dict[str, Any]] = []
        all_ok = True
        for item in inputs:
            error = _email_input_error(item)
            if error is None:
                self.org.emails.append(
                    {
                        "at": self.org.now_iso(),
                        "user_id": call.user_id,
                        "client": call_options_client(call.headers.get("Sforce-Call-Options")),
                        **item,
                    }
                )
                results.append(
                    {"actionName": "emailSimple", "errors": None, "isSuccess": True, "outputValues": None}
                )
            else:
                all_ok = False
                results.append(
                    {
                        "actionName": "emailSimple",
                        "errors": [{"statusCode": "REQUIRED_FIELD_MISSING", "message": error, "fields": []}],
                        "isSuccess": False,
                        "outputValues": None,
                    }
                )
        return Reply(200 if all_ok else 400, results, kind="action")


_EMAIL_SIMPLE_DESCRIBE = {
    "name": "emailSimple",
    "label": "Send Email",
    "type": "EMAILSIMPLE",
    "inputs": [
        {"name": n, "type": t, "required": r}
        for n, t, r in (
            ("emailAddresses", "STRING", False),
            ("emailAddressesArray", "STRING", False),
            ("recipientAddresses", "STRING", False),
            ("ccAddresses", "STRING", False),
            ("bccAddresses", "STRING", False),
            ("emailSubject", "STRING", True),
            ("emailBody", "TEXTAREA", True),
            ("senderType", "STRING", False),
            ("senderAddress", "STRING", False),
            ("recipientId", "REFERENCE", False),
            ("relatedRecordId", "REFERENCE", False),
            ("logEmailOnSend", "BOOLEAN", False),
            ("sendRichBody", "BOOLEAN", False),
        )
    ],
    "outputs": [],
}


def _email_input_error(item: Any) -> str | None:
    if not isinstance(item, dict):
        return "each input must be a JSON object"
    # recipientAddresses/ccAddresses/bccAddresses are the v65.0+ inputs (notes §7); the older ones still work.
    recipients = ("emailAddresses", "emailAddressesArray", "recipientId", "recipientAddresses")
    if not any(item.get(name) for name in (*recipients, "ccAddresses", "bccAddresses")):
        return "Missing required input parameter: emailAddresses"
    for name in ("emailSubject", "emailBody"):
        if item.get(name) in (None, ""):
            return f"Missing required input parameter: {name}"
    return None


class _CaseInsensitive(dict[str, str]):
    """Request headers for a subrequest: the outer request's, overridden by its own httpHeaders."""

    def __init__(self, base: Mapping[str, str]) -> None:
        super().__init__()
        for k, v in base.items():
            self[k] = v

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def update(self, other: Mapping[str, str]) -> None:  # type: ignore[override]
        for k, v in other.items():
            self[k] = v

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


def _is_query_or_collection(url: Any) -> bool:
    path = str(url or "").partition("?")[0]
    segments = [seg for seg in path.split("/") if seg]
    if segments[:2] == ["services", "data"]:
        segments = segments[3:]
    return bool(segments) and (
        segments[0] in ("query", "queryAll") or segments[:2] == ["composite", "sobjects"]
    )


def _kind_of(call: Call) -> str | None:
    s = call.segments
    if not s:
        return "describe"
    if s[0] in ("query", "queryAll"):
        return "query"
    if s[0] == "composite":
        return "collections" if len(s) > 1 and s[1] == "sobjects" else "composite"
    if s[0] == "actions":
        return "action"
    if s[0] == "limits":
        return "limits"
    if s[0] == "sobjects":
        if len(s) <= 1 or (len(s) == 2 and call.method == "GET") or (len(s) == 3 and s[2] == "describe"):
            return "describe"
        return {
            "GET": "retrieve",
            "POST": "create",
            "PATCH": "update" if len(s) == 2 else "upsert",
            "DELETE": "delete",
        }.get(call.method)
    return None


def _method_not_allowed(method: str) -> ApiError:
    return ApiError(
        405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are GET,HEAD,POST"
    )


def _json_object(body: Any) -> dict[str, Any]:
    if isinstance(body, dict):
        return body
    kind = "START_ARRAY" if isinstance(body, list) else "VALUE_NULL" if body is None else "VALUE_STRING"
    raise ApiError(
        400,
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of object from {kind} value; a JSON object is required",
    )


# --- request bodies as Salesforce deserializes them (Jackson, before anything runs) -------------------------


def _token_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, str):
        return "String"
    return "Floating-point" if isinstance(value, float) else "Integer"


def _cannot_deserialize(java_type: str, value: Any) -> str:
    # Jackson's wording [UNCONFIRMED that Salesforce passes it on verbatim]; no input is run after it.
    return f"Cannot deserialize value of type `{java_type}` from {_token_kind(value)} value"


def _flag(body: Mapping[str, Any], key: str, default: bool = False) -> bool:
    """A boolean member; like Jackson, "true"/"false" strings are read as booleans, anything else fails."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ApiError(400, "JSON_PARSER_ERROR", f"{key}: {_cannot_deserialize('boolean', value)}")


def _text(body: Mapping[str, Any], key: str, default: str) -> str:
    """A string member; like Jackson, numbers and booleans are read as their text, objects and arrays fail."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, dict | list):
        raise ApiError(400, "JSON_PARSER_ERROR", f"{key}: {_cannot_deserialize('java.lang.String', value)}")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _strings(body: Mapping[str, Any], key: str) -> list[str] | None:
    """A member that must be an array of strings (ids, fields), or None when absent."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise ApiError(400, "JSON_PARSER_ERROR", f"{key}: {_cannot_deserialize('java.util.List', value)}")
    return [_text({key: item}, key, "") for item in value]


def _check_subrequests(subs: list[Any], headers_key: str | None) -> None:
    """Every subrequest is an object whose method and url are text and whose headers map names to text;
    otherwise the whole request fails before any subrequest runs, as a body Jackson cannot bind does."""
    for sub in subs:
        if not isinstance(sub, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", _cannot_deserialize("Subrequest", sub))
        _text(sub, "method", "GET")
        _text(sub, "url", "")
        headers = sub.get(headers_key) if headers_key else None
        if headers is not None:
            if not isinstance(headers, dict):
                raise ApiError(
                    400,
                    "JSON_PARSER_ERROR",
                    f"{headers_key}: {_cannot_deserialize('java.util.Map', headers)}",
                )
            for name in headers:
                _text(headers, name, "")


def _fields_param(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [f.strip() for f in value.split(",") if f.strip()]


def _batch_size(options: str | None, default: int) -> int:
    if options:
        m = re.search(r"batchSize\s*=\s*([0-9]+)", options)
        if m:
            digits = m.group(1).lstrip("0") or "0"
            return 2000 if len(digits) > 4 else max(200, min(2000, int(digits)))
    return default


def _rest_error(exc: DmlError) -> dict[str, Any]:
    body: dict[str, Any] = {"message": exc.message, "errorCode": exc.status_code}
    # DML errors carry their fields; "no such column" and resource errors do not (RF fixtures).
    if exc.status_code not in ("INVALID_FIELD", "NOT_FOUND", "JSON_PARSER_ERROR"):
        body["fields"] = exc.fields
    return body


def _save_error(exc: DmlError) -> dict[str, Any]:
    return {"statusCode": exc.status_code, "message": exc.message, "fields": exc.fields}


def _rolled_back(result: dict[str, Any], keep_id: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"id": result["id"]} if keep_id and result.get("id") else {}
    out.update(
        success=False,
        errors=[
            {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the request was using "
                "AllOrNone header",
                "fields": [],
            }
        ],
    )
    return out


def _halted(ref: str, message: str) -> dict[str, Any]:
    return {
        "body": [{"errorCode": "PROCESSING_HALTED", "message": message}],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": ref,
    }


def _publish_result(event_id: str, event_uuid: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "success": True,
        "errors": [{"statusCode": "OPERATION_ENQUEUED", "message": event_uuid, "fields": []}],
    }


def _upsert_result(rid: str, created: bool, version: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rid, "success": True, "errors": []}
    if float(version) >= 46.0:
        out["created"] = created
    return out


def _lookup(results: Mapping[str, Any], ref: str, path: str) -> Any:
    if ref not in results:
        raise KeyError(f"{ref}{path}")
    value = results[ref]
    for part in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
        name, index = part
        try:
            value = value[int(index)] if index else value[name]
        except (KeyError, IndexError, TypeError, ValueError):  # ValueError: an index of 5,000 digits
            raise KeyError(f"{ref}{path}") from None
    if value is None:
        raise KeyError(f"{ref}{path}")
    return value


def _resolve_refs(value: Any, results: Mapping[str, Any], encode: bool) -> Any:
    """Replace every `@{ref.path}` with the value from an earlier subrequest's response body."""
    if isinstance(value, str):
        whole = _REF_RE.fullmatch(value)
        if whole and not encode:
            return _lookup(results, whole.group(1), whole.group(2))
        return _REF_RE.sub(lambda m: str(_lookup(results, m.group(1), m.group(2))), value)
    if isinstance(value, dict):
        return {k: _resolve_refs(v, results, encode) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_refs(v, results, encode) for v in value]
    return value
