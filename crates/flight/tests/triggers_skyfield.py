#!/usr/bin/env python3
"""Reference firing times from Skyfield, for tests/triggers.rs.

Reads JSON on stdin:
  {"name", "line1", "line2",
   "location": {"latitude", "longitude", "radius_km", "from", "to"},   # Unix seconds (UTC)
   "shadow": {"from", "to"},
   "nadir": {"latitude", "longitude", "altitude_m", "within_deg", "from", "to"}}   # each optional
Writes JSON on stdout:
  {"skyfield": version, "location_entry": t or null, "shadow_entry": t or null,
   "nadir_entry": t or null}

location_entry: the first instant in [from, to] at which the sub-satellite point (Skyfield's
WGS-84 geodetic `subpoint_of`) is within radius_km of the point, by the haversine on the mean
Earth sphere (6371.0088 km). shadow_entry: the first instant at which Skyfield's `is_sunlit`
(the line to the Sun's centre meets the Earth) turns false. Both sampled every second and
bisected to well under a millisecond. nadir_entry: the first instant at which the point (Skyfield's
WGS-84 `latlon`) is above its geocentric horizon seen from the satellite and its off-nadir angle
(between the line of sight from the satellite and the line to the Earth's centre) is at most
within_deg. Offline: the built-in timescale and the DE421 ephemeris
shipped in `skyfield-data`.
"""

import json
import math
import os
import sys

try:
    import numpy as np
    import skyfield
    import skyfield_data
    from skyfield.api import EarthSatellite, load, wgs84
except ImportError as e:  # pragma: no cover - reported by the Rust test
    sys.stderr.write(f"triggers_skyfield.py: {e}\ninstall: pip install skyfield skyfield-data\n")
    sys.exit(3)

DAY_S = 86400.0
MEAN_EARTH_RADIUS_KM = 6371.0088

ts = load.timescale(builtin=True)
eph = load(os.path.join(os.path.dirname(skyfield_data.__file__), "data", "de421.bsp"))


def times(unix):
    unix = np.asarray(unix, dtype=float)
    days = np.floor(unix / DAY_S)
    return ts.utc(1970, 1, 1 + days.astype(int), 0, 0, unix - days * DAY_S)


def first_entry(inside, start, end):
    """The first instant in [start, end] where inside(t) turns true (None if never)."""
    grid = np.arange(start, end + 1.0, 1.0)
    values = inside(grid)
    if values[0]:
        return float(start)
    hits = np.nonzero(~values[:-1] & values[1:])[0]
    if len(hits) == 0:
        return None
    lo, hi = float(grid[hits[0]]), float(grid[hits[0] + 1])
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if inside(np.array([mid]))[0]:
            hi = mid
        else:
            lo = mid
    return hi


def main():
    req = json.load(sys.stdin)
    sat = EarthSatellite(req["line1"], req["line2"], req.get("name"), ts)
    out = {
        "skyfield": skyfield.__version__,
        "location_entry": None,
        "shadow_entry": None,
        "nadir_entry": None,
    }
    loc = req.get("location")
    if loc:
        lat0, lon0 = math.radians(loc["latitude"]), math.radians(loc["longitude"])

        def within(unix):
            sub = wgs84.subpoint_of(sat.at(times(unix)))
            lat, lon = sub.latitude.radians, sub.longitude.radians
            h = np.sin((lat - lat0) / 2) ** 2 + np.cos(lat0) * np.cos(lat) * np.sin((lon - lon0) / 2) ** 2
            d = 2 * MEAN_EARTH_RADIUS_KM * np.arcsin(np.minimum(np.sqrt(h), 1.0))
            return d <= loc["radius_km"]

        out["location_entry"] = first_entry(within, loc["from"], loc["to"])
    shadow = req.get("shadow")
    if shadow:

        def dark(unix):
            return ~sat.at(times(unix)).is_sunlit(eph)

        out["shadow_entry"] = first_entry(dark, shadow["from"], shadow["to"])
    nadir = req.get("nadir")
    if nadir:
        place = wgs84.latlon(nadir["latitude"], nadir["longitude"], elevation_m=nadir["altitude_m"])

        def near(unix):
            t = times(unix)
            r = sat.at(t).position.km
            p = place.at(t).position.km
            los = p - r
            cos_off = np.sum(los * -r, axis=0) / (np.linalg.norm(los, axis=0) * np.linalg.norm(r, axis=0))
            off = np.degrees(np.arccos(np.clip(cos_off, -1.0, 1.0)))
            seen = np.sum(p * (r - p), axis=0) > 0.0
            return seen & (off <= nadir["within_deg"])

        out["nadir_entry"] = first_entry(near, nadir["from"], nadir["to"])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
