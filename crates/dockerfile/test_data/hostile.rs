// Hostile Dockerfiles at the size limit, each built to make a naive reader take quadratic time
// or memory: `(name, Dockerfile, refused, line of the first reason)`.
//
// Shared, with `include!`, by `dockerfile/tests/hostile.rs` (the judge) and preflight's
// `tests/robustness.rs` (preflight, which runs the judge and its own rules on them). Each must
// be judged in well under a second in a debug build; the tests assert only the verdicts.

/// `(name, Dockerfile, refused, line of the first reason)`.
fn hostile_dockerfiles() -> Vec<(&'static str, String, bool, Option<usize>)> {
    let limit = dockerfile::MAX_DOCKERFILE_BYTES;
    // `head`, then `item(i)` for i = 0, 1, … while it fits (and is not empty), then `tail`.
    let fill = |head: &str, item: &dyn Fn(usize) -> String, tail: &str| {
        let mut s = head.to_string();
        for i in 0.. {
            let next = item(i);
            if next.is_empty() || s.len() + next.len() + tail.len() > limit {
                break;
            }
            s.push_str(&next);
        }
        s.push_str(tail);
        assert!(s.len() <= limit);
        s
    };
    let half = "x".repeat(dockerfile::MAX_EXPANSION / 2);
    vec![
        // Every `${` is unterminated: a reader that rescans the rest at each one is quadratic.
        (
            "unterminated-substitutions",
            fill("FROM ", &|_| "${".into(), "\n"),
            true,
            Some(1),
        ),
        // A hundred thousand unknown flags: each one a problem, each placed by its column.
        (
            "unknown-flags",
            fill("FROM busybox\nCOPY ", &|i| format!("--a{i} "), "a /b\n"),
            true,
            Some(2),
        ),
        (
            "quoted-flags",
            fill("FROM busybox\nCOPY ", &|i| format!("--\"a{i}\"=1 "), "a /b\n"),
            true,
            Some(2),
        ),
        // A hundred thousand different URLs.
        (
            "add-urls",
            fill("FROM busybox\nADD ", &|i| format!("x://{i} "), "/b\n"),
            true,
            Some(2),
        ),
        // A hundred thousand words to unquote, none a URL.
        (
            "add-quoted-words",
            fill("FROM busybox\nADD ", &|i| format!("'a{i}' "), "/b/\n"),
            false,
            None,
        ),
        // Half a megabyte copied by each of a hundred thousand ARGs.
        (
            "arg-copies",
            fill(&format!("ARG H={half}\nARG "), &|i| format!("B{i}=$H "), "\nFROM busybox\n"),
            true,
            Some(2),
        ),
        // Each word expands half a megabyte into a default it then drops.
        (
            "dropped-defaults",
            fill(
                &format!("ARG H={half}\nARG "),
                &|i| format!("B{i}=${{U:+${{X:-$H}}}} "),
                "\nFROM busybox\n",
            ),
            true,
            Some(2),
        ),
        // The most stages, each built on the one before, looked up by name.
        (
            "stages",
            fill(
                "FROM busybox AS s0\n",
                &|i| {
                    if 2 * i + 3 > dockerfile::MAX_INSTRUCTIONS {
                        String::new()
                    } else {
                        format!("FROM s{i} AS s{}\nCOPY --from=s{i} /a /a\n", i + 1)
                    }
                },
                "",
            ),
            false,
            None,
        ),
        // Odd whitespace on every line.
        (
            "vertical-tabs",
            fill("FROM busybox\n", &|_| "RUN a\x0bb\n".into(), ""),
            true,
            Some(2),
        ),
        // ONBUILD triggers, each read as a Dockerfile of its own.
        (
            "benign-triggers",
            fill(
                "FROM busybox\n",
                &|i| {
                    if i + 2 > dockerfile::MAX_INSTRUCTIONS {
                        String::new()
                    } else {
                        format!("ONBUILD RUN echo {i}\n")
                    }
                },
                "",
            ),
            false,
            None,
        ),
        (
            "triggers",
            fill(
                "FROM busybox\n",
                &|i| {
                    if i + 2 > dockerfile::MAX_INSTRUCTIONS {
                        String::new()
                    } else {
                        format!("ONBUILD ADD x://{i} /x\n")
                    }
                },
                "",
            ),
            true,
            Some(2),
        ),
    ]
}
