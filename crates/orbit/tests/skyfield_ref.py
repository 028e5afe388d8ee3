#!/usr/bin/env python3
"""Reference passes and eclipses from Skyfield, for tests/skyfield.rs.

Reads JSON on stdin:
  {"satellites": [{"name", "line1", "line2", "start", "end"}],   # start/end: Unix seconds (UTC)
   "stations":   [{"name", "latitude_deg", "longitude_deg", "altitude_m", "min_elevation_deg"}],
   "pairs":      [[satellite_index, station_index], ...],
   "eclipses":   [satellite_index, ...]}
Writes JSON on stdout:
  {"skyfield": version, "passes": [{"satellite", "station", "passes": [{"aos", "los",
   "culmination", "max_elevation_deg", "complete"}]}], "eclipses": [{"satellite",
   "center": [[entry, exit]], "penumbra": [[entry, exit]], "umbra": [[entry, exit]]}]}

Everything is offline: the built-in timescale (leap seconds, UT1 from Skyfield's bundled IERS
table) and the DE421 ephemeris shipped in the `skyfield-data` package.

Skyfield finds rises, culminations and sets with `EarthSatellite.find_events` (to about half a
second); each is then refined here by bisection / golden section on Skyfield's own altitude to
well under a millisecond, so the comparison measures the models, not the search tolerances.
Eclipse boundaries: the "center" boundary is Skyfield's `is_sunlit` (line to the Sun's centre
meets the Earth sphere); penumbra and umbra use the conical model on Skyfield's geocentric
satellite and DE421 Sun vectors.
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
    sys.stderr.write(
        f"skyfield_ref.py: {e}\n"
        "install the reference implementation with: pip install skyfield skyfield-data\n"
    )
    sys.exit(3)

SUN_RADIUS_KM = 695_700.0
EARTH_RADIUS_KM = 6378.137
DAY_S = 86400.0
IDENTITY = np.identity(3)

ts = load.timescale(builtin=True)
EPHEMERIS_PATH = os.path.join(os.path.dirname(skyfield_data.__file__), "data", "de421.bsp")
eph = load(EPHEMERIS_PATH)
earth_to_sun = eph["sun"] - eph["earth"]


def times(unix):
    """Skyfield Time(s) for Unix seconds (UTC, no leap seconds inside a day)."""
    unix = np.asarray(unix, dtype=float)
    days = np.floor(unix / DAY_S)
    return ts.utc(1970, 1, 1 + days.astype(int), 0, 0, unix - days * DAY_S)


def unix_of(t):
    """Unix seconds of Skyfield Time(s)."""
    whole = t.whole
    frac = t.tai_fraction - t._leap_seconds() / DAY_S
    return (whole - 2440587.5) * DAY_S + frac * DAY_S


def bisect(f, lo, hi, iterations=30):
    """Vectorised bisection: f(lo) and f(hi) have opposite signs elementwise."""
    lo = np.array(lo, dtype=float)
    hi = np.array(hi, dtype=float)
    if lo.size == 0:
        return lo
    flo = f(lo)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        fm = f(mid)
        same = np.sign(fm) == np.sign(flo)
        lo = np.where(same, mid, lo)
        flo = np.where(same, fm, flo)
        hi = np.where(same, hi, mid)
    return 0.5 * (lo + hi)


def golden_max(f, lo, hi, iterations=40):
    """Vectorised golden-section search for maxima inside [lo, hi]."""
    lo = np.array(lo, dtype=float)
    hi = np.array(hi, dtype=float)
    if lo.size == 0:
        return lo, lo
    g = (math.sqrt(5.0) - 1.0) / 2.0
    c = hi - g * (hi - lo)
    d = lo + g * (hi - lo)
    fc, fd = f(c), f(d)
    for _ in range(iterations):
        left = fc > fd
        hi = np.where(left, d, hi)
        lo = np.where(left, lo, c)
        new_c = np.where(left, hi - g * (hi - lo), d)
        new_d = np.where(left, c, lo + g * (hi - lo))
        c, d = new_c, new_d
        fc, fd = f(c), f(d)
    x = 0.5 * (lo + hi)
    return x, f(x)


def station_passes(sat, st, start, end):
    topos = wgs84.latlon(st["latitude_deg"], st["longitude_deg"], elevation_m=st["altitude_m"])
    mask = st["min_elevation_deg"]
    diff = sat - topos

    def altitude(unix):
        # Skyfield's own shortcut from `find_events`: the Earth-orientation rotations of the
        # satellite and the station cancel in the topocentric altitude, so skip computing them.
        t = times(unix)
        t.gast = t.tt * 0.0
        t.M = t.MT = IDENTITY
        return diff.at(t).altaz()[0].degrees

    t, events = sat.find_events(topos, times(start), times(end), altitude_degrees=mask)
    seeds = unix_of(t) if len(events) else np.array([])

    def refine_crossing(seed):
        # Widen the bracket until the sign changes (find_events is good to ~0.5 s).
        seed = np.asarray(seed, dtype=float)
        lo, hi = seed - 2.0, seed + 2.0
        for _ in range(10):
            bad = np.sign(altitude(lo) - mask) == np.sign(altitude(hi) - mask)
            if not bad.any():
                break
            lo = np.where(bad, lo - 4.0, lo)
            hi = np.where(bad, hi + 4.0, hi)
        return bisect(lambda x: altitude(x) - mask, lo, hi)

    crossing = np.isin(events, (0, 2))
    refined = np.array(seeds, dtype=float)
    if crossing.any():
        refined[crossing] = refine_crossing(seeds[crossing])
    culm = events == 1
    culm_alt = np.full(len(events), np.nan)
    if culm.any():
        x, a = golden_max(altitude, seeds[culm] - 5.0, seeds[culm] + 5.0)
        refined[culm] = x
        culm_alt[culm] = a

    out, current = [], None
    for kind, when, alt in zip(events, refined, culm_alt):
        if kind == 0:
            current = {"aos": when, "los": None, "culmination": None, "max_elevation_deg": -90.0,
                       "complete": True}
        else:
            if current is None:  # in progress at the start
                current = {"aos": start, "los": None, "culmination": None,
                           "max_elevation_deg": -90.0, "complete": False}
            if kind == 1 and alt > current["max_elevation_deg"]:
                current["culmination"], current["max_elevation_deg"] = when, alt
            if kind == 2:
                current["los"] = when
                out.append(current)
                current = None
    if current is not None:
        current["los"], current["complete"] = end, False
        out.append(current)
    return [{k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in p.items()}
            for p in out]


def intervals(f, grid, values, start, end):
    """[entry, exit] pairs where f > 0, from sign changes of `values` sampled on `grid`, bisected."""
    pos = values > 0
    up = np.nonzero(~pos[:-1] & pos[1:])[0]
    down = np.nonzero(pos[:-1] & ~pos[1:])[0]
    ups = list(bisect(f, grid[up], grid[up + 1], iterations=24))
    downs = list(bisect(f, grid[down], grid[down + 1], iterations=24))
    if pos[0]:
        ups.insert(0, start)
    if pos[-1]:
        downs.append(end)
    return [[float(a), float(b)] for a, b in zip(ups, downs)]


def satellite_eclipses(sat, start, end, step=20.0):
    def evaluate(unix):
        t = times(unix)
        position = sat.at(t)
        s = position.position.km
        to_sun = earth_to_sun.at(t).position.km - s
        to_earth = -s
        ds = np.linalg.norm(to_sun, axis=0)
        de = np.linalg.norm(to_earth, axis=0)
        sep = np.arccos(np.clip((to_sun * to_earth).sum(axis=0) / (ds * de), -1.0, 1.0))
        a, b = np.arcsin(SUN_RADIUS_KM / ds), np.arcsin(EARTH_RADIUS_KM / de)
        return position, a + b - sep, b - a - sep

    def penumbra(unix):
        return evaluate(unix)[1]

    def umbra(unix):
        return evaluate(unix)[2]

    def shadowed(unix):
        # Skyfield's own test: +1 in shadow, -1 sunlit.
        return np.where(sat.at(times(unix)).is_sunlit(eph), -1.0, 1.0)

    # Sampled once; LEO shadow crossings last minutes, so 20 s misses only grazing eclipses.
    grid = np.arange(start, end + step, step)
    grid[-1] = min(grid[-1], end)
    position, pen, umb = evaluate(grid)
    shadow = np.where(position.is_sunlit(eph), -1.0, 1.0)
    return {
        "center": intervals(shadowed, grid, shadow, start, end),
        "penumbra": intervals(penumbra, grid, pen, start, end),
        "umbra": intervals(umbra, grid, umb, start, end),
    }


def main():
    request = json.load(sys.stdin)
    sats = [EarthSatellite(s["line1"], s["line2"], s["name"], ts) for s in request["satellites"]]
    windows = [(float(s["start"]), float(s["end"])) for s in request["satellites"]]
    result = {"skyfield": skyfield.__version__, "passes": [], "eclipses": []}
    for si, gi in request["pairs"]:
        start, end = windows[si]
        result["passes"].append({
            "satellite": si,
            "station": gi,
            "passes": station_passes(sats[si], request["stations"][gi], start, end),
        })
    for si in request["eclipses"]:
        start, end = windows[si]
        result["eclipses"].append({"satellite": si, **satellite_eclipses(sats[si], start, end)})
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
