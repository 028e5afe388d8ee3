// Dockerfiles the onboard judge refuses: `(name, text, line its refusal names)`.
//
// Shared, with `include!`, by the tests of `dockerfile::onboard` and by preflight's
// `tests/judges_agree.rs`, which shows preflight reports an onboard refusal for each of them.
// Most reference another tenant's image (`tenants/bob/...`): each is a way Docker could read a
// reference that this parser would not see.

/// `(name, Dockerfile, line of the refusal)`.
const REFUSED_DOCKERFILES: &[(&str, &str, Option<usize>)] = &[
    // Whitespace Docker's scanners read differently: the flag scanner splits at bytes that
    // Go's `unicode.IsSpace` accepts, the line scanner only at `\n`.
    (
        "vertical-tab",
        "FROM busybox\nCOPY --chown=1\x0b--from=tenants/bob/x:1 /a /b\n",
        Some(2),
    ),
    (
        "form-feed",
        "FROM busybox\nCOPY --chown=1\x0c--from=tenants/bob/x:1 /a /b\n",
        Some(2),
    ),
    (
        "no-break-space",
        "FROM busybox\nCOPY --chown=1\u{a0}--from=tenants/bob/x:1 /a /b\n",
        Some(2),
    ),
    (
        "line-separator",
        "FROM busybox\nCOPY --chown=1\u{2028}--from=tenants/bob/x:1 /a /b\n",
        Some(2),
    ),
    (
        "next-line",
        "FROM busybox\nCOPY --chown=1\u{85}--from=tenants/bob/x:1 /a /b\n",
        Some(2),
    ),
    (
        "lone-carriage-return",
        "FROM busybox\nCOPY --chown=1\r--from=tenants/bob/x:1 /a /b\n",
        Some(2),
    ),
    (
        "double-carriage-return",
        "FROM busybox\r\r\nCOPY --from=tenants/bob/x:1 /a /b\n",
        Some(1),
    ),
    // `à` is C3 A0 in UTF-8: Docker's flag scanner reads the A0 byte as a space.
    (
        "non-ascii-flag",
        "FROM busybox\nCOPY --chown=\u{e0}--from=tenants/bob/x:1 /a /b\n",
        Some(2),
    ),
    // Flags Docker's scanner reads differently from a plain split.
    (
        "quoted-flag-name",
        "FROM busybox\nCOPY --\"from\"=tenants/bob/x:1 /a /b\n",
        Some(2),
    ),
    (
        "escaped-flag-name",
        "FROM busybox\nCOPY --fr\\om=tenants/bob/x:1 /a /b\n",
        Some(2),
    ),
    (
        "quoted-flag-value",
        "FROM busybox\nCOPY --chown=\"1 \" --from=tenants/bob/x:1 /a /b\n",
        Some(2),
    ),
    (
        "single-quoted-add-flag",
        "FROM busybox\nADD --'from'=tenants/bob/x:1 /a /b\n",
        Some(2),
    ),
    (
        "from-without-equals",
        "FROM busybox\nCOPY --from tenants/bob/x:1 /a /b\n",
        Some(2),
    ),
    (
        "quoted-run-flag",
        "FROM busybox\nRUN --\"mount\"=from=tenants/bob/x:1 true\n",
        Some(2),
    ),
    (
        "quoted-platform-flag",
        "FROM busybox\nFROM --\"platform\"=x busybox\n",
        Some(2),
    ),
    (
        "from-twice",
        "FROM busybox AS a\nFROM busybox\nCOPY --from=a --from=tenants/bob/x:1 /a /b\n",
        Some(3),
    ),
    // An escaped escape at the end of a line: does it continue the line?
    (
        "escaped-backslash-at-end",
        "FROM busybox\nRUN echo \\\\\nCOPY --from=tenants/bob/x:1 /a /b\n",
        Some(2),
    ),
    (
        "escaped-backtick-at-end",
        "# escape=`\nFROM busybox\nRUN echo `` \t\nCOPY --from=x /a /b\n",
        Some(3),
    ),
    // Parser directives, as BuildKit reads them.
    (
        "repeated-directive",
        "# escape=`\n# escape=`\nFROM busybox\n",
        Some(2),
    ),
    ("invalid-escape", "# escape=x\nFROM busybox\n", Some(1)),
    // What names no build, or no image.
    ("empty", "", None),
    ("no-from", "RUN echo\n", None),
    (
        "instruction-before-from",
        "ENV A=1\nFROM busybox\n",
        Some(1),
    ),
    ("from-without-image", "FROM\n", Some(1)),
    ("from-four-words", "FROM a b c d\n", Some(1)),
    ("from-unset-arg", "ARG X\nFROM $X\n", Some(2)),
    ("from-unterminated-substitution", "FROM ${X\n", Some(1)),
    (
        "arg-unterminated-substitution",
        "ARG A=${\nFROM busybox\n",
        Some(1),
    ),
    (
        "from-unsupported-substitution",
        "ARG A=busybox\nFROM ${A%box}\n",
        Some(2),
    ),
    // Under the classic builder, the body of a "heredoc" is instructions.
    (
        "heredoc-hides-from",
        "FROM busybox\nRUN <<CMD\nFROM tenants/bob/x:1\nCMD\n",
        Some(3),
    ),
    // Images that cannot exist onboard, and downloads.
    (
        "from-other-tenant",
        "FROM tenants/bob/x:1\n",
        Some(1),
    ),
    (
        "copy-from-other-tenant",
        "FROM busybox\nCOPY --from=tenants/bob/x:1 /a /b\n",
        Some(2),
    ),
    (
        "copy-from-variable",
        "ARG S=a\nFROM busybox AS a\nFROM busybox\nARG S\nCOPY --from=$S /a /b\n",
        Some(5),
    ),
    ("scratch-in-capitals", "FROM SCRATCH\n", Some(1)),
    (
        "digest-pin",
        "FROM busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111\n",
        Some(1),
    ),
    (
        "add-url",
        "FROM busybox\nADD https://example.com/x /x\n",
        Some(2),
    ),
    (
        "add-variable",
        "FROM busybox\nARG U=local.txt\nADD $U /u\n",
        Some(3),
    ),
    // The builder removes quotes and escapes before it asks whether a source is a URL (and
    // then fetches it from the daemon, outside the build's network).
    (
        "add-url-quoted",
        "FROM busybox\nADD http:'//'127.0.0.1:9/x /x\n",
        Some(2),
    ),
    (
        "add-url-escaped",
        "FROM busybox\nADD http:/\\/127.0.0.1:9/x /x\n",
        Some(2),
    ),
    (
        "add-url-double-quoted",
        "FROM busybox\nADD \"http\":\"//127.0.0.1:9/x\" /x\n",
        Some(2),
    ),
    (
        "add-url-quoted-json",
        "FROM busybox\nADD [\"http:'//'127.0.0.1:9/x\", \"/x\"]\n",
        Some(2),
    ),
    (
        "add-url-backtick-escaped",
        "# escape=`\nFROM busybox\nADD http:/`/127.0.0.1:9/x /x\n",
        Some(3),
    ),
    // `ARG A` without a default unsets A (Docker's `AddMetaArg(key, nil)`): FROM takes the
    // default of `${A:-…}`, whatever A was before.
    (
        "arg-unset-catalogue",
        "ARG A=busybox:latest\nARG A\nFROM ${A:-tenants/bob/x:1}\n",
        Some(3),
    ),
    (
        "arg-unset-scratch",
        "ARG A=scratch\nARG A\nFROM ${A:-tenants/bob/x:1}\n",
        Some(3),
    ),
    (
        "arg-unset-stage",
        "ARG A=s\nARG A\nFROM busybox AS s\nFROM ${A:-tenants/bob/x:1}\n",
        Some(4),
    ),
    // ONBUILD triggers run in a later build (`FROM a` below, or another Dockerfile): read with
    // the same lexer, they may not copy from another image, download or be ambiguous.
    (
        "onbuild-copy-from",
        "FROM busybox AS a\nONBUILD COPY --from=tenants/bob/x:1 / /stolen\nFROM a\n",
        Some(2),
    ),
    (
        "onbuild-copy-quoted-from",
        "FROM busybox AS a\nONBUILD COPY --fr\"\"om=tenants/bob/x:1 / /stolen\nFROM a\n",
        Some(2),
    ),
    (
        "onbuild-add-url",
        "FROM busybox\nONBUILD ADD http://127.0.0.1:9/x /x\n",
        Some(2),
    ),
    (
        "onbuild-add-quoted-url",
        "FROM busybox\nONBUILD ADD http:'//'127.0.0.1:9/x /x\n",
        Some(2),
    ),
    (
        "onbuild-add-variable",
        "FROM busybox\nONBUILD ADD $U /x\n",
        Some(2),
    ),
    (
        "onbuild-ambiguous",
        "FROM busybox\nONBUILD RUN --\"mount\"=from=tenants/bob/x:1 true\n",
        Some(2),
    ),
    (
        "onbuild-onbuild",
        "FROM busybox\nONBUILD ONBUILD COPY --from=tenants/bob/x:1 / /\n",
        Some(2),
    ),
    (
        "onbuild-trailing-backslash",
        "# escape=`\nFROM busybox\nONBUILD RUN echo \\\n",
        Some(3),
    ),
    // Stage names as Docker reads them: `$` would be expanded where the name is used.
    (
        "stage-name-variable",
        "FROM busybox AS $S\nFROM busybox\nCOPY --from=$S /a /b\n",
        Some(1),
    ),
    ("stage-name-scratch", "FROM busybox AS scratch\nFROM scratch\n", Some(1)),
];
