#!/usr/bin/env python3
"""A Clustergate-2 telemetry API client, and the checks a CG2 payload developer would make with it.

Written from the telemetry API's reference (../shared/reference/clustergate-2.md, section 7: the
endpoint table with its parameters and answers, the `{success, data, count, error}` wrapper, the
`TelemetryRecord` and `TelemetryData` shapes, the images endpoints, and the documented
inconsistencies of section 13, item 5: the docs' `starttime/endtime/datatype` spellings), the way
CG2's own examples talk to it: `requests`, a `BASE_URL`, GET with query parameters, POST with a
JSON body for images.

It knows nothing of the server it talks to beyond that reference and what this project adds to it
(docs/telemetry.md: every query bounded, a bad parameter a 400 in the wrapper shape). Run by
crates/flight/tests/telemetry.rs against a real flight agent; it exits 0 when every check passed
and prints the failing request otherwise.

Environment: TM_BASE_URL (e.g. http://127.0.0.1:41234).
"""

import io
import math
import os
import re
import sys
import zipfile
from datetime import datetime, timedelta

import requests

BASE_URL = os.environ["TM_BASE_URL"].rstrip("/")
TIMEOUT = 30
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TYPES = {"attitude", "complete", "position", "velocity"}
PNG = b"\x89PNG\r\n\x1a\n"


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class TelemetryClient:
    """The telemetry API, as CG2's examples call it."""

    def get(self, path, **params):
        return requests.get(BASE_URL + path, params=params, timeout=TIMEOUT)

    def get_telemetry(self, **params):
        return self.get("/api/telemetry", **params)

    def latest(self, **params):
        return self.get("/api/telemetry/latest", **params)

    def list_images(self):
        return self.get("/api/images/list")

    def get_images(self, body):
        return requests.post(BASE_URL + "/api/images", json=body, timeout=TIMEOUT)


def check(cond, what, response=None):
    if not cond:
        detail = ""
        if response is not None:
            detail = " [%s %s -> %s: %s]" % (
                response.request.method,
                response.url,
                response.status_code,
                response.text[:400],
            )
        print("FAILED: %s%s" % (what, detail))
        sys.exit(1)


def wrapped(r, what):
    """A successful answer in the reference's wrapper: its data."""
    check(r.status_code == 200, what + ": 200", r)
    check(r.headers["content-type"].startswith("application/json"), what + ": JSON", r)
    body = r.json()
    check(set(body) == {"success", "data", "count", "error"}, what + ": the wrapper's fields", r)
    check(body["success"] is True and body["error"] is None, what + ": success", r)
    if isinstance(body["data"], list):
        check(body["count"] == len(body["data"]), what + ": count is the data's length", r)
    return body["data"]


def bad_request(r, what, mentions):
    """A 400 in the wrapper shape whose error names what was wrong."""
    check(r.status_code == 400, what + ": 400", r)
    body = r.json()
    check(
        body == {"success": False, "data": None, "count": None, "error": body["error"]},
        what + ": the wrapper with only an error",
        r,
    )
    check(mentions in body["error"], what + ": the error names %r" % mentions, r)


def check_record(rec, r):
    check(
        set(rec) == {"id", "timestamp", "original_timestamp", "data_type", "data", "created_at"},
        "a TelemetryRecord's fields",
        r,
    )
    check(UUID.match(rec["id"]) is not None, "a record's id is a UUID", r)
    t = parse_time(rec["timestamp"])
    check(rec["original_timestamp"] == int(t.timestamp()), "original_timestamp is the unix time", r)
    parse_time(rec["created_at"])
    data = rec["data"]
    kind = rec["data_type"]
    if kind in ("position", "velocity"):
        check(set(data) == {"x", "y", "z"}, kind + " is {x, y, z}", r)
        n = math.sqrt(sum(data[k] ** 2 for k in "xyz"))
        low, high = (6500, 8000) if kind == "position" else (6.5, 8.5)
        check(low < n < high, "%s magnitude %.3f is a low orbit's (km, km/s)" % (kind, n), r)
    elif kind == "attitude":
        q = data["quaternion"]
        check(set(q) == set("wxyz"), "a quaternion is {w, x, y, z}", r)
        check(abs(sum(v * v for v in q.values()) - 1) < 1e-6, "the quaternion is a unit one", r)
        check(set(data["angular_velocity"]) == set("xyz"), "angular_velocity is {x, y, z}", r)
    elif kind == "temperature":
        check(set(data) == {"sensor%d" % i for i in range(8)}, "eight sensors", r)
    elif kind == "power":
        check(0 <= data["battery_soc_percent"] <= 100, "a state of charge in percent", r)
    elif kind == "complete":
        for key in ("timestamp", "position", "velocity", "attitude", "power", "temperature", "tle"):
            check(key in data, "TelemetryData has " + key, r)
        check(data["timestamp"] == rec["timestamp"], "the composite's own timestamp", r)
    else:
        check(False, "an unknown data_type " + kind, r)


def main():
    c = TelemetryClient()

    # /health
    r = c.get("/health")
    check(r.status_code == 200, "health", r)
    h = r.json()
    check(h["service"] == "satellite-telemetry-api" and h["status"] == "healthy", "health body", r)
    parse_time(h["timestamp"])

    # /api/telemetry/types
    r = c.get("/api/telemetry/types")
    types = wrapped(r, "types")
    check(TYPES <= set(types), "the reference's types are there", r)

    # /api/telemetry/stats
    r = c.get("/api/telemetry/stats")
    stats = wrapped(r, "stats")
    for key in ("total_records", "data_types_count", "earliest_timestamp", "latest_timestamp",
                "data_type_breakdown"):
        check(key in stats, "stats has " + key, r)
    breakdown = stats["data_type_breakdown"]
    check(set(breakdown) == set(types), "the breakdown is by type", r)
    check(stats["total_records"] == sum(breakdown.values()), "total is the breakdown's sum", r)
    check(stats["data_types_count"] == len(types), "data_types_count", r)
    earliest = parse_time(stats["earliest_timestamp"])
    latest = parse_time(stats["latest_timestamp"])
    check(earliest < latest, "some history", r)

    # /api/telemetry without parameters: bounded (the reference's whole DB is not returned).
    r = c.get_telemetry()
    records = wrapped(r, "telemetry")
    check(0 < len(records) <= 100, "an unbounded query is bounded by default", r)
    check(len(records) < stats["total_records"], "the default bound cut the answer", r)
    for rec in records:
        check_record(rec, r)
    check(len({rec["id"] for rec in records}) == len(records), "ids are unique", r)

    # Every type, with a limit.
    for kind in sorted(types):
        r = c.get_telemetry(data_type=kind, limit=5)
        recs = wrapped(r, "telemetry of " + kind)
        check(len(recs) == 5, "limit=5 gives 5 " + kind, r)
        for rec in recs:
            check(rec["data_type"] == kind, "only " + kind, r)
            check_record(rec, r)

    # The largest limit is honoured; beyond it, a 400.
    r = c.get_telemetry(limit=1000)
    n = len(wrapped(r, "limit=1000"))
    check(min(1000, stats["total_records"]) <= n <= 1000, "limit=1000", r)
    bad_request(c.get_telemetry(limit=1001), "limit=1001", "limit")
    bad_request(c.get_telemetry(limit=0), "limit=0", "limit")
    bad_request(c.get_telemetry(limit=-3), "limit=-3", "limit")
    bad_request(c.get_telemetry(limit="ten"), "limit=ten", "limit")
    bad_request(c.get_telemetry(data_type="lidar"), "data_type=lidar", "data_type")
    bad_request(c.get_telemetry(start_time="yesterday"), "start_time=yesterday", "start_time")
    bad_request(c.get_telemetry(end_time="2026-12-03T10:00:00"), "end_time without offset",
                "end_time")
    bad_request(
        c.get_telemetry(start_time=rfc3339(latest), end_time=rfc3339(earliest)),
        "end before start",
        "end_time",
    )
    bad_request(c.get_telemetry(colour="blue"), "an unknown parameter", "colour")
    bad_request(c.latest(limit=3), "latest takes no limit", "limit")

    # A time range: every record in it, and the range is inclusive.
    start = latest - timedelta(seconds=60)
    r = c.get_telemetry(start_time=rfc3339(start), end_time=rfc3339(latest), data_type="position")
    recs = wrapped(r, "a minute of positions")
    check(1 <= len(recs) <= 7, "a minute at one sample each 10 s", r)
    for rec in recs:
        check(start <= parse_time(rec["timestamp"]) <= latest, "inside the range", r)
    check(parse_time(recs[0]["timestamp"]) == latest, "newest first, the end included", r)
    # An offset other than Z means the same instant.
    shifted = (latest + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00")
    r = c.get_telemetry(start_time=shifted, end_time=shifted, data_type="position")
    check(len(wrapped(r, "an instant with an offset")) == 1, "one record at that instant", r)
    # The docs' spellings (reference section 13, item 5) mean the same.
    r2 = c.get_telemetry(starttime=rfc3339(start), endtime=rfc3339(latest), datatype="position")
    check(wrapped(r2, "old spellings") == recs, "starttime/endtime/datatype", r2)
    # A range before the history: nothing, successfully.
    r = c.get_telemetry(end_time="2000-01-01T00:00:00Z")
    check(wrapped(r, "before the history") == [], "no records", r)

    # /api/telemetry/latest: one record per type, all of the newest sample.
    r = c.latest()
    recs = wrapped(r, "latest")
    check({rec["data_type"] for rec in recs} == set(types), "one record of each type", r)
    check(len(recs) == len(types), "and only one", r)
    newest = {rec["timestamp"] for rec in recs}
    check(len(newest) == 1, "of one instant", r)
    check(parse_time(newest.pop()) >= latest, "the newest", r)
    for rec in recs:
        check_record(rec, r)
    r = c.latest(data_type="power")
    recs = wrapped(r, "latest power")
    check(len(recs) == 1 and recs[0]["data_type"] == "power", "one power record", r)
    # With a time range (the reference's example passes one): the newest inside it.
    r = c.latest(data_type="position", start_time=rfc3339(earliest), end_time=rfc3339(start))
    recs = wrapped(r, "latest in a range")
    check(parse_time(recs[0]["timestamp"]) == start, "the newest inside the range", r)
    bad_request(c.latest(data_type="lidar"), "latest of an unknown type", "data_type")

    # /api/telemetry/tle: text, the element set the composite records carry.
    r = c.get("/api/telemetry/tle")
    check(r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), "tle", r)
    lines = r.text.strip().splitlines()
    check(lines[-2].startswith("1 ") and lines[-1].startswith("2 "), "two element lines", r)
    complete = wrapped(c.latest(data_type="complete"), "latest complete")[0]
    check(complete["data"]["tle"].strip() == r.text.strip(), "the composite's tle", r)

    # /api/images/list
    r = c.list_images()
    check(r.status_code == 200, "images list", r)
    body = r.json()
    check(body["success"] is True and body["error"] is None, "images list wrapper", r)
    names = body["data"]
    check(body["count"] == len(names) >= 2, "at least two pictures", r)
    check(all(n.endswith(".png") for n in names), "PNG names", r)
    check(len(names) <= 100, "at most 100 kept", r)

    # POST /api/images: one -> PNG; several -> stored ZIP; none -> ZIP of all, cut by limit.
    r = c.get_images({"images": [names[0]]})
    check(r.status_code == 200 and r.headers["content-type"] == "image/png", "one image", r)
    check(r.content.startswith(PNG), "a PNG", r)
    r = c.get_images({"images": names[:2]})
    check(r.headers["content-type"] == "application/zip", "two images: a zip", r)
    z = zipfile.ZipFile(io.BytesIO(r.content))
    check(z.testzip() is None, "the zip's CRCs", r)
    check(z.namelist() == names[:2], "the zip holds the two", r)
    check(all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist()), "STORED", r)
    check(all(z.read(n).startswith(PNG) for n in z.namelist()), "PNGs in the zip", r)
    r = c.get_images({})
    z = zipfile.ZipFile(io.BytesIO(r.content))
    # Pictures are still being taken: at least those listed, unless the newest 100 are all.
    check(len(z.namelist()) >= len(names) or len(z.namelist()) == 100, "all", r)
    r = c.get_images({"limit": 1})
    check(r.headers["content-type"] == "application/zip", "none named: a zip", r)
    check(len(zipfile.ZipFile(io.BytesIO(r.content)).namelist()) == 1, "limit 1", r)
    r = c.get_images({"images": ["19700101.png"]})
    check(r.status_code == 404 and "19700101.png" in r.text, "an unknown image: 404", r)
    r = c.get_images({"images": ["../../state/clock.json"]})
    check(r.status_code == 404, "a path is no image", r)
    r = c.get_images({"limit": 0})
    check(r.status_code == 400 and "limit" in r.text, "limit 0: 400", r)
    r = c.get_images({"limit": 101})
    check(r.status_code == 400 and "limit" in r.text, "limit 101: 400", r)
    r = c.get_images({"images": ["x.png"] * 101})
    check(r.status_code == 400, "more than 100 named: 400", r)
    r = c.get_images({"pictures": []})
    check(r.status_code == 400 and "pictures" in r.text, "an unknown field: 400", r)
    r = requests.post(BASE_URL + "/api/images", data="{not json",
                      headers={"content-type": "application/json"}, timeout=TIMEOUT)
    check(r.status_code == 400, "bad JSON: 400", r)

    # Read-only: no other verb is served.
    for verb, path in (("post", "/api/telemetry"), ("delete", "/api/telemetry"),
                       ("put", "/api/telemetry/tle"), ("delete", "/api/images/list")):
        r = getattr(requests, verb)(BASE_URL + path, timeout=TIMEOUT)
        check(r.status_code == 405, "%s %s is refused" % (verb.upper(), path), r)
    r = c.get("/api/telemetry/power")
    check(r.status_code == 404, "the removed power endpoint is gone", r)

    print("all telemetry checks passed")


if __name__ == "__main__":
    main()
