//! "Did you mean": the closest onboard image name to a reference.

pub(crate) use wire::names::edit_distance as levenshtein;

/// The repository part of a normalised reference: no registry host, no tag, no digest.
fn repository(reference: &str) -> &str {
    let r = reference.split('@').next().unwrap_or(reference);
    let (path, last) = match r.rsplit_once('/') {
        Some((p, l)) => (Some(p), l),
        None => (None, r),
    };
    let last_no_tag = last.split(':').next().unwrap_or(last);
    let without_tag = match path {
        Some(p) => &r[..p.len() + 1 + last_no_tag.len()],
        None => last_no_tag,
    };
    match without_tag.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            rest
        }
        _ => without_tag,
    }
}

fn tokens(s: &str) -> Vec<&str> {
    s.split(['/', ':', '.', '-', '_', '@'])
        .filter(|t| !t.is_empty())
        .collect()
}

/// Picks the candidate closest to `wanted`: most shared name tokens (a token matches when equal,
/// one contains the other, or they are one edit apart), then the smallest edit distance between
/// normalised repository names. `None` when nothing is plausibly close.
pub(crate) fn closest<'a>(wanted: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let w_repo = repository(wanted);
    let w_tokens = tokens(w_repo);
    let mut best: Option<(usize, usize, &str)> = None;
    for &c in candidates {
        let c_repo = repository(c);
        let c_tokens = tokens(c_repo);
        let shared = w_tokens
            .iter()
            .filter(|w| {
                c_tokens.iter().any(|t| {
                    t == *w
                        || (w.len() >= 3 && t.contains(*w))
                        || (t.len() >= 3 && w.contains(*t))
                        || (w.len() >= 4 && levenshtein(w, t) <= 1)
                })
            })
            .count();
        let dist = levenshtein(w_repo, c_repo);
        let better = match best {
            None => true,
            Some((s, d, _)) => shared > s || (shared == s && dist < d),
        };
        if better {
            best = Some((shared, dist, c));
        }
    }
    let (shared, dist, name) = best?;
    (shared > 0 || dist <= 3.max(w_repo.len() / 3)).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONBOARD: &[&str] = &[
        "gcr.io/distroless/static-debian12:latest",
        "gcr.io/distroless/cc-debian12:latest",
        "busybox:latest",
    ];

    #[test]
    fn suggests_onboard_names() {
        let cases = [
            (
                "distroless/cc:latest",
                Some("gcr.io/distroless/cc-debian12:latest"),
            ),
            (
                "gcr.io/distroless/static:nonroot",
                Some("gcr.io/distroless/static-debian12:latest"),
            ),
            (
                "gcr.io/distroless/cc-debian11:latest",
                Some("gcr.io/distroless/cc-debian12:latest"),
            ),
            ("busybox:1.36", Some("busybox:latest")),
            ("busybx:latest", Some("busybox:latest")),
            ("ubuntu:22.04", None),
            ("127.0.0.1:9/library/alpine:3.19", None),
        ];
        for (wanted, want) in cases {
            assert_eq!(closest(wanted, ONBOARD), want, "{wanted}");
        }
    }

    #[test]
    fn repository_drops_host_and_tag() {
        assert_eq!(
            repository("gcr.io/distroless/cc-debian12:latest"),
            "distroless/cc-debian12"
        );
        assert_eq!(repository("localhost:5000/x:1"), "x");
        assert_eq!(repository("busybox@sha256:00"), "busybox");
    }
}
