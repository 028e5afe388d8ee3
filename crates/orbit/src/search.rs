//! Root finding and maximisation over time: Brent's zero finder, Brent's minimiser, and the
//! search for the intervals where a smooth function of time is positive.
//!
//! Times are `f64` Unix seconds; the minimiser works relative to the interval start so its
//! relative tolerances stay meaningful.

/// An interval where the searched function is positive. `open_start`/`open_end` mark an interval
/// cut by the search window (the function was already/still positive there).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Interval {
    pub(crate) start: f64,
    pub(crate) end: f64,
    pub(crate) open_start: bool,
    pub(crate) open_end: bool,
}

/// Brent's method for a root of `f` in `[a, b]`, where `fa = f(a)` and `fb = f(b)` have opposite
/// signs (or one is zero). Returns a time within `tol` seconds of a root.
pub(crate) fn brent_root<E>(
    f: &mut impl FnMut(f64) -> Result<f64, E>,
    mut a: f64,
    mut b: f64,
    mut fa: f64,
    mut fb: f64,
    tol: f64,
) -> Result<f64, E> {
    if fa == 0.0 {
        return Ok(a);
    }
    if fb == 0.0 {
        return Ok(b);
    }
    let mut c = b;
    let mut fc = fb;
    let mut d = b - a;
    let mut e = d;
    for _ in 0..200 {
        if (fb > 0.0) == (fc > 0.0) {
            c = a;
            fc = fa;
            d = b - a;
            e = d;
        }
        if fc.abs() < fb.abs() {
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        let tol1 = 2.0 * f64::EPSILON * b.abs() + 0.5 * tol;
        let xm = 0.5 * (c - b);
        if xm.abs() <= tol1 || fb == 0.0 {
            return Ok(b);
        }
        if e.abs() >= tol1 && fa.abs() > fb.abs() {
            // Inverse quadratic interpolation (secant when only two points are known).
            let s = fb / fa;
            let (mut p, mut q) = if a == c {
                (2.0 * xm * s, 1.0 - s)
            } else {
                let q = fa / fc;
                let r = fb / fc;
                (
                    s * (2.0 * xm * q * (q - r) - (b - a) * (r - 1.0)),
                    (q - 1.0) * (r - 1.0) * (s - 1.0),
                )
            };
            if p > 0.0 {
                q = -q;
            }
            p = p.abs();
            let min1 = 3.0 * xm * q - (tol1 * q).abs();
            let min2 = (e * q).abs();
            if 2.0 * p < min1.min(min2) {
                e = d;
                d = p / q;
            } else {
                d = xm;
                e = d;
            }
        } else {
            d = xm;
            e = d;
        }
        a = b;
        fa = fb;
        b += if d.abs() > tol1 { d } else { tol1.copysign(xm) };
        fb = f(b)?;
    }
    Ok(b)
}

/// Brent's minimiser (golden section with parabolic steps), used to find the maximum of `f` on
/// `[a, b]`. Returns `(t, f(t))` for the best point found, endpoints included.
pub(crate) fn brent_max<E>(
    f: &mut impl FnMut(f64) -> Result<f64, E>,
    a: f64,
    b: f64,
    tol: f64,
) -> Result<(f64, f64), E> {
    let origin = a;
    let mut g = |u: f64| f(origin + u).map(|v| -v);
    let golden = 0.5 * (3.0 - 5f64.sqrt());
    let eps = f64::EPSILON.sqrt();
    let (mut lo, mut hi) = (0.0, b - a);
    let mut x = lo + golden * (hi - lo);
    let (mut w, mut v) = (x, x);
    let mut fx = g(x)?;
    let (mut fw, mut fv) = (fx, fx);
    let (mut d, mut e): (f64, f64) = (0.0, 0.0);
    for _ in 0..200 {
        let xm = 0.5 * (lo + hi);
        let tol1 = eps * x.abs() + tol / 3.0;
        let tol2 = 2.0 * tol1;
        if (x - xm).abs() <= tol2 - 0.5 * (hi - lo) {
            break;
        }
        let mut golden_step = true;
        if e.abs() > tol1 {
            let r = (x - w) * (fx - fv);
            let mut q = (x - v) * (fx - fw);
            let mut p = (x - v) * q - (x - w) * r;
            q = 2.0 * (q - r);
            if q > 0.0 {
                p = -p;
            }
            q = q.abs();
            let etemp = e;
            if !(p.abs() >= (0.5 * q * etemp).abs() || p <= q * (lo - x) || p >= q * (hi - x)) {
                e = d;
                d = p / q;
                let u = x + d;
                if u - lo < tol2 || hi - u < tol2 {
                    d = tol1.copysign(xm - x);
                }
                golden_step = false;
            }
        }
        if golden_step {
            e = if x >= xm { lo - x } else { hi - x };
            d = golden * e;
        }
        let u = x + if d.abs() >= tol1 { d } else { tol1.copysign(d) };
        let fu = g(u)?;
        if fu <= fx {
            if u >= x {
                lo = x;
            } else {
                hi = x;
            }
            (v, fv) = (w, fw);
            (w, fw) = (x, fx);
            (x, fx) = (u, fu);
        } else {
            if u < x {
                lo = u;
            } else {
                hi = u;
            }
            if fu <= fw || w == x {
                (v, fv) = (w, fw);
                (w, fw) = (u, fu);
            } else if fu <= fv || v == x || v == w {
                (v, fv) = (u, fu);
            }
        }
    }
    let mut best = (origin + x, -fx);
    for t in [a, b] {
        let ft = f(t)?;
        if ft > best.1 {
            best = (t, ft);
        }
    }
    Ok(best)
}

/// Finds the intervals of `[start, end]` where `f > 0`.
///
/// `f` is sampled every `step` seconds or less; sign changes between samples are refined with
/// [`brent_root`] to `tol` seconds. A positive hump that fits between two samples is caught by
/// refining every local maximum of the (non-positive) samples with [`brent_max`]. This finds
/// every interval provided `f` is unimodal over any `2 * step` window around its maxima, which
/// callers ensure by choosing `step` from the orbit.
pub(crate) fn positive_intervals<E>(
    f: &mut impl FnMut(f64) -> Result<f64, E>,
    start: f64,
    end: f64,
    step: f64,
    tol: f64,
) -> Result<Vec<Interval>, E> {
    let mut out = Vec::new();
    if start.is_nan() || end.is_nan() || end <= start || step.is_nan() || step <= 0.0 {
        return Ok(out);
    }
    let n = ((end - start) / step).ceil().clamp(1.0, 1e9) as u64;
    let h = (end - start) / n as f64;
    let time = |k: u64| if k == n { end } else { start + k as f64 * h };

    let f0 = f(start)?;
    let mut open: Option<(f64, bool)> = (f0 > 0.0).then_some((start, true));
    // The last three samples: (t, f).
    let mut prev2: Option<(f64, f64)> = None;
    let mut prev = (start, f0);
    for k in 1..=n {
        let t = time(k);
        let ft = f(t)?;
        let (tp, fp) = prev;
        if fp <= 0.0 && ft > 0.0 {
            let root = brent_root(f, tp, t, fp, ft, tol)?;
            open = Some((root, false));
        } else if fp > 0.0 && ft <= 0.0 {
            let root = brent_root(f, tp, t, fp, ft, tol)?;
            if let Some((s, open_start)) = open.take() {
                out.push(Interval {
                    start: s,
                    end: root,
                    open_start,
                    open_end: false,
                });
            }
        } else if fp <= 0.0 && ft <= 0.0 {
            match prev2 {
                // A local maximum of the samples at `prev`.
                Some((t2, f2)) if f2 <= 0.0 && fp > f2 && fp >= ft => {
                    hidden(f, (t2, f2), (t, ft), tol, &mut out)?;
                }
                // At the window start, a maximum may sit between the first two samples.
                None if fp >= ft => hidden(f, (tp, fp), (t, ft), tol, &mut out)?,
                _ => {}
            }
            // At the window end, a maximum may sit between the last two samples.
            if k == n && ft > fp {
                hidden(f, (tp, fp), (t, ft), tol, &mut out)?;
            }
        }
        prev2 = Some(prev);
        prev = (t, ft);
    }
    if let Some((s, open_start)) = open {
        out.push(Interval {
            start: s,
            end,
            open_start,
            open_end: true,
        });
    }
    Ok(out)
}

/// Looks for a positive hump strictly inside `[a.0, b.0]`, whose ends are not positive.
fn hidden<E>(
    f: &mut impl FnMut(f64) -> Result<f64, E>,
    (ta, fa): (f64, f64),
    (tb, fb): (f64, f64),
    tol: f64,
    out: &mut Vec<Interval>,
) -> Result<(), E> {
    let (tm, fm) = brent_max(f, ta, tb, tol)?;
    if fm > 0.0 && tm > ta && tm < tb {
        let rise = brent_root(f, ta, tm, fa, fm, tol)?;
        let set = brent_root(f, tm, tb, fm, fb, tol)?;
        out.push(Interval {
            start: rise,
            end: set,
            open_start: false,
            open_end: false,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn ok(f: impl Fn(f64) -> f64) -> impl FnMut(f64) -> Result<f64, Infallible> {
        move |t| Ok(f(t))
    }

    #[test]
    fn root_and_max() {
        let root = brent_root(&mut ok(|t| t * t - 2.0), 0.0, 2.0, -2.0, 2.0, 1e-12).unwrap();
        assert!((root - 2f64.sqrt()).abs() < 1e-11);
        let (t, v) = brent_max(&mut ok(|t| -(t - 1.3).powi(2) + 4.0), 0.0, 5.0, 1e-6).unwrap();
        assert!((t - 1.3).abs() < 1e-5 && (v - 4.0).abs() < 1e-9);
        // Maximum on the boundary.
        let (t, _) = brent_max(&mut ok(|t| t), 0.0, 5.0, 1e-6).unwrap();
        assert_eq!(t, 5.0);
    }

    #[test]
    fn intervals_including_narrow_humps_and_edges() {
        // Positive on (1.2, 2.2) (crossings between samples), a narrow hump of width 0.2 around
        // 5.5 (between samples at 5 and 6), and positive at both ends of [0, 10].
        let f = |t: f64| {
            let wide = if t < 3.5 {
                0.25 - (t - 1.7).powi(2)
            } else {
                -1.0
            };
            let narrow = 0.01 - (t - 5.5).powi(2);
            let edge_start = 0.5 - t;
            let edge_end = t - 9.7;
            wide.max(narrow).max(edge_start).max(edge_end)
        };
        let found = positive_intervals(&mut ok(f), 0.0, 10.0, 1.0, 1e-9).unwrap();
        let rounded: Vec<_> = found
            .iter()
            .map(|i| {
                (
                    (i.start * 1e6).round() / 1e6,
                    (i.end * 1e6).round() / 1e6,
                    i.open_start,
                    i.open_end,
                )
            })
            .collect();
        assert_eq!(
            rounded,
            vec![
                (0.0, 0.5, true, false),
                (1.2, 2.2, false, false),
                (5.4, 5.6, false, false),
                (9.7, 10.0, false, true),
            ]
        );
        // A hump between the first two samples and one between the last two.
        let g = |t: f64| (0.01 - (t - 0.3).powi(2)).max(0.01 - (t - 9.3).powi(2));
        let found = positive_intervals(&mut ok(g), 0.0, 9.5, 1.0, 1e-9).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!((found[0].start - 0.2).abs() < 1e-6 && (found[1].end - 9.4).abs() < 1e-6);
    }
}
