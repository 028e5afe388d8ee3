//! One judge on the ground and onboard. Every Dockerfile of the corpus, each Dockerfile the
//! flight agent's judge is known to refuse (`dockerfile/test_data/onboard_refusals.rs`), cases
//! for the rules the two share, and each limit at its value and one past it, go through
//! preflight and through `dockerfile::onboard::judge`, exactly what the flight agent calls before
//! a `docker.build`, as are the hostile Dockerfiles at the size limit
//! (`dockerfile/test_data/hostile.rs`). They must agree on accept/refuse: the judge refuses ⇔
//! preflight reports an error of a code in `preflight::ONBOARD_REFUSALS`. Preflight runs that
//! same judge for onboard builds and reports its reasons; what this shows is that nothing else
//! in preflight reports those codes where the judge accepts, but for a tenant image the tenant
//! does not have (which the flight agent finds missing in the daemon). Preflight's other errors (network in RUN,
//! ELF machines, missing context files…) are failures the judge does not look for.
//!
//! Both run as the flight agent builds: onboard, with the classic builder and no build
//! arguments. A case's tenant images are what the agent finds when it looks a tenant reference
//! up in the daemon; the catalogue images are all loaded. `cargo test -p preflight --test
//! judges_agree -- --nocapture` prints the table. A seeded random test then compares the two on
//! mutated corpus Dockerfiles (`PREFLIGHT_SEED`, `PREFLIGHT_ITERATIONS` as in `robustness.rs`).

mod support;

use dockerfile::onboard::{self, Target};
use dockerfile::{
    MAX_DEPTH, MAX_DOCKERFILE_BYTES, MAX_EXPANSION, MAX_EXPANSION_TOTAL, MAX_INSTRUCTIONS,
};
use preflight::{
    BaseImage, BuildSite, Builder, MemContext, ONBOARD_REFUSALS, Options, Severity, System,
    lint_context, lint_source,
};

include!("../../dockerfile/test_data/onboard_refusals.rs");
include!("../../dockerfile/test_data/hostile.rs");

/// One Dockerfile to judge.
struct Input {
    name: String,
    text: String,
    /// The corpus case's folder, whose files are the build context; else the context holds only
    /// the Dockerfile.
    case: Option<support::Case>,
    system: System,
    tenant_images: Vec<String>,
}

/// A verdict, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Accept,
    Refuse(String),
}

impl Verdict {
    fn refuses(&self) -> bool {
        matches!(self, Verdict::Refuse(_))
    }

    fn cell(&self) -> String {
        match self {
            Verdict::Accept => "accept".into(),
            Verdict::Refuse(why) => format!("refuse {why}"),
        }
    }
}

fn input(name: &str, text: &str) -> Input {
    Input {
        name: name.to_string(),
        text: text.to_string(),
        case: None,
        system: System::flight("sat1"),
        tenant_images: Vec::new(),
    }
}

/// The canonical catalogue names the flight agent judges against.
fn catalogue_names(system: &System) -> Vec<String> {
    system
        .catalogue
        .images
        .iter()
        .map(|b| wire::normalize_image_ref(&b.name))
        .collect()
}

/// What the flight agent does with a `docker.build`'s Dockerfile before the daemon sees it: the
/// judge, then the lookup of each tenant image (`tenants/<tenant>/<name>:<tag>` in the daemon).
fn flight(i: &Input) -> Verdict {
    match onboard::judge(&i.text, &catalogue_names(&i.system)) {
        Err(refusal) => Verdict::Refuse(shorten(&refusal.to_string())),
        Ok(judged) => {
            for u in judged.uses() {
                if let Target::Tenant(image) = &u.target {
                    let wanted = wire::normalize_image_ref(&image.to_string());
                    if !i
                        .tenant_images
                        .iter()
                        .any(|t| wire::normalize_image_ref(t) == wanted)
                    {
                        return Verdict::Refuse(shorten(&u.not_found(&[])));
                    }
                }
            }
            Verdict::Accept
        }
    }
}

/// Preflight on the case, as the ground runs it before an onboard build.
fn preflight(i: &Input) -> Verdict {
    preflight_with(i, ONBOARD_REFUSALS)
}

fn preflight_with(i: &Input, refusals: &[&str]) -> Verdict {
    let mut system = i.system.clone();
    system.builder = Builder::Classic;
    let options = Options {
        site: BuildSite::Onboard,
        build_args: Vec::new(),
        tenant_images: i.tenant_images.clone(),
    };
    let report = match &i.case {
        Some(case) => {
            let tmp = support::materialize(case);
            let ctx = support::context_of(&tmp);
            lint_context(&ctx, &ctx.join("Dockerfile"), &system, &options)
        }
        None => {
            let mut ctx = MemContext::new();
            ctx.add("Dockerfile", i.text.as_bytes());
            lint_source(&ctx, "Dockerfile", &system, &options)
        }
    };
    let codes: Vec<String> = report
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error && refusals.contains(&d.code))
        .map(|d| format!("{}:{}", d.code, d.line))
        .collect();
    match codes.len() {
        0 => Verdict::Accept,
        n if n > 6 => Verdict::Refuse(format!("{} … ({n} errors)", codes[..6].join(" "))),
        _ => Verdict::Refuse(codes.join(" ")),
    }
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if s.chars().count() > 60 {
        out.push('…');
    }
    out
}

/// The table of verdicts, and a line for every case where the judges disagree.
fn compare(
    inputs: &[Input],
    flight: &dyn Fn(&Input) -> Verdict,
    preflight: &dyn Fn(&Input) -> Verdict,
) -> (String, Vec<String>) {
    let mut table = format!("{:<44} {:<66} preflight\n", "case", "flight");
    let mut disagreements = Vec::new();
    for i in inputs {
        let (f, p) = (flight(i), preflight(i));
        table.push_str(&format!("{:<44} {:<66} {}\n", i.name, f.cell(), p.cell()));
        if f.refuses() != p.refuses() {
            disagreements.push(format!("{}: flight {f:?}, preflight {p:?}", i.name));
        }
    }
    (table, disagreements)
}

/// Every input: the corpus, the judge's refusals, shared rules and limits.
fn inputs() -> Vec<Input> {
    let mut out = Vec::new();
    for case in support::cases() {
        let text = std::fs::read_to_string(case.dir.join("Dockerfile")).unwrap();
        out.push(Input {
            name: format!("corpus/{}", case.name),
            text,
            system: case.system.clone(),
            tenant_images: case.options.tenant_images.clone(),
            case: Some(case),
        });
    }
    for (name, text, _) in REFUSED_DOCKERFILES {
        out.push(input(&format!("refused/{name}"), text));
    }
    out.extend(shared_rules());
    out.extend(limits());
    for (name, text, _, _) in hostile_dockerfiles() {
        out.push(input(&format!("hostile/{name}"), &text));
    }
    out
}

/// Cases for the rules the two judges share, accepted and refused.
fn shared_rules() -> Vec<Input> {
    let tenant = |name: &str, text: &str, images: &[&str]| Input {
        tenant_images: images.iter().map(|s| s.to_string()).collect(),
        ..input(name, text)
    };
    let mut pinned = input(
        "rule/digest-pin-of-the-reported-digest",
        &format!("FROM busybox@sha256:{}\nUSER 65532\n", "a".repeat(64)),
    );
    let busybox: &mut BaseImage = pinned
        .system
        .catalogue
        .images
        .iter_mut()
        .find(|b| b.name == "busybox:latest")
        .unwrap();
    busybox.digest = Some(format!("sha256:{}", "a".repeat(64)));
    vec![
        input("rule/plain", "FROM busybox\nUSER 65532\n"),
        input("rule/quoted-image", "FROM \"busybox\"\nUSER 65532\n"),
        input(
            "rule/arg-default",
            "ARG TAG\nARG B=busybox\nFROM ${B}:${TAG:-latest}\nUSER 65532\n",
        ),
        input(
            "rule/registry-prefix",
            "FROM fpga.dphi.space:5000/busybox\nUSER 65532\n",
        ),
        input("rule/crlf", "FROM busybox\r\nUSER 65532\r\n"),
        input("rule/bom", "\u{feff}FROM busybox\nUSER 65532\n"),
        input(
            "rule/copy-from-catalogue",
            "FROM busybox\nCOPY --from=busybox /bin/sh /sh\nUSER 65532\n",
        ),
        input(
            "rule/copy-from-stage-index",
            "FROM busybox\nFROM busybox\nCOPY --from=0 /bin/sh /sh\nUSER 65532\n",
        ),
        input(
            "rule/copy-from-this-stage-index",
            "FROM busybox\nCOPY --from=0 /bin/sh /sh\nUSER 65532\n",
        ),
        input(
            "rule/onbuild-add-url",
            "FROM busybox\nONBUILD ADD http://x/y /y\nUSER 65532\n",
        ),
        input(
            "rule/add-local",
            "FROM busybox\nADD --chown=1:1 local.txt /x\nUSER 65532\n",
        ),
        input(
            "rule/add-json-url",
            "FROM busybox\nADD [\"http:\\/\\/x/y\", \"/y\"]\nUSER 65532\n",
        ),
        input(
            "rule/add-ftp",
            "FROM busybox\nADD ftp://example.com/f /f\nUSER 65532\n",
        ),
        input("rule/unknown-flag", "FROM busybox\nCOPY --bogus=1 a /a\n"),
        input("rule/missing-argument", "FROM busybox\nCOPY a\n"),
        input("rule/unknown-instruction", "FROM busybox\nECHO hi\n"),
        input(
            "rule/invalid-json-is-a-warning",
            "FROM busybox\nCMD ['sh']\n",
        ),
        input(
            "rule/buildkit-flag-is-the-daemons",
            "FROM busybox\nCOPY --chmod=755 a /a\n",
        ),
        tenant(
            "rule/tenant-present",
            "FROM hello:v1\nUSER 65532\n",
            &["hello:v1"],
        ),
        tenant("rule/tenant-absent", "FROM hello:v1\nUSER 65532\n", &[]),
        tenant(
            "rule/tenant-with-a-path",
            "FROM acme/hello:v1\nUSER 65532\n",
            &["acme/hello:v1"],
        ),
        tenant(
            "rule/copy-from-tenant-named-like-this-stage",
            "FROM busybox AS app\nCOPY --from=app /a /b\nUSER 65532\n",
            &["app"],
        ),
        tenant(
            "rule/copy-from-this-stage",
            "FROM busybox AS app\nCOPY --from=app /a /b\nUSER 65532\n",
            &[],
        ),
        pinned,
        // `ARG A` without a default unsets A; the tenant image behind `${A:-…}` is looked up.
        tenant(
            "rule/arg-unset-tenant-absent",
            "ARG A=busybox\nARG A\nFROM ${A:-hello:v1}\nUSER 65532\n",
            &[],
        ),
        tenant(
            "rule/arg-unset-tenant-present",
            "ARG A=busybox\nARG A\nFROM ${A:-hello:v1}\nUSER 65532\n",
            &["hello:v1"],
        ),
        input(
            "rule/arg-defaults-expanded-before-declared",
            "ARG B=busybox\nARG B=scratch C=$B\nFROM $C\nUSER 65532\n",
        ),
        input(
            "rule/arg-unset-then-set",
            "ARG A=alpine/git\nARG A\nARG A=busybox\nFROM $A\nUSER 65532\n",
        ),
        input(
            "rule/stage-by-name-in-any-case",
            "FROM busybox AS Build\nFROM busybox\nCOPY --from=BUILD /bin/sh /sh\nFROM build\nUSER 65532\n",
        ),
        input(
            "rule/onbuild-run",
            "FROM busybox AS a\nONBUILD RUN echo hi\nFROM a\nUSER 65532\n",
        ),
        input(
            "rule/onbuild-copy-local",
            "FROM busybox\nONBUILD COPY . /app\nUSER 65532\n",
        ),
        input(
            "rule/add-quoted-local",
            "FROM busybox\nADD 'local.txt' \"b.txt\" /x/\nUSER 65532\n",
        ),
        input(
            "rule/add-json-quoted-url",
            "FROM busybox\nADD [\"http:'//'x/y\", \"/y\"]\nUSER 65532\n",
        ),
    ]
}

/// Each limit at its value (accepted) and one past it (refused).
fn limits() -> Vec<Input> {
    let head = "FROM busybox\nUSER 65532\n";
    let size = |n: usize| {
        let mut s = head.to_string();
        s.push_str(&"#".repeat(n - s.len() - 1));
        s.push('\n');
        assert_eq!(s.len(), n);
        s
    };
    let instructions = |n: usize| "FROM busybox\n".to_string() + &"USER 65532\n".repeat(n - 1);
    let half = "x".repeat(MAX_EXPANSION / 2);
    let expansion = |extra: &str| format!("ARG H={half}\nARG B=$H$H{extra}\n{head}");
    let depth = |n: usize| format!("ARG B={}v{}\n{head}", "${X:-".repeat(n), "}".repeat(n));
    // Every byte the judge's expansions write (ARG defaults and FROM) counts against
    // MAX_EXPANSION_TOTAL: H (h bytes), fifteen `$H$H` and one `$H`, a pad, and `busybox`.
    let h = MAX_EXPANSION / 2 - 1;
    let pad = MAX_EXPANSION_TOTAL - 32 * h - "busybox".len();
    let total = |pad: usize| {
        let words: Vec<String> = (0..15).map(|i| format!("B{i}=$H$H")).collect();
        format!(
            "ARG H={}\nARG {} C=$H P={}\n{head}",
            "x".repeat(h),
            words.join(" "),
            "x".repeat(pad)
        )
    };
    vec![
        input("limit/bytes-at", &size(MAX_DOCKERFILE_BYTES)),
        input("limit/bytes-over", &size(MAX_DOCKERFILE_BYTES + 1)),
        input("limit/instructions-at", &instructions(MAX_INSTRUCTIONS)),
        input(
            "limit/instructions-over",
            &instructions(MAX_INSTRUCTIONS + 1),
        ),
        input("limit/expansion-at", &expansion("")),
        input("limit/expansion-over", &expansion(".")),
        input("limit/depth-at", &depth(MAX_DEPTH)),
        input("limit/depth-over", &depth(MAX_DEPTH + 1)),
        input("limit/expansion-total-at", &total(pad)),
        input("limit/expansion-total-over", &total(pad + 1)),
    ]
}

#[test]
fn preflight_and_the_flight_agent_agree_on_every_case() {
    let inputs = inputs();
    let (table, disagreements) = compare(&inputs, &flight, &preflight);
    println!("{table}");
    assert!(
        disagreements.is_empty(),
        "{} of {} cases disagree:\n{}\n\n{table}",
        disagreements.len(),
        inputs.len(),
        disagreements.join("\n")
    );
    // The comparison means something: both accept some cases and refuse others.
    let refused = inputs.iter().filter(|i| flight(i).refuses()).count();
    assert!(refused > 40 && refused < inputs.len() - 20, "{refused}");
    // The limits hold at their value and refuse one past it.
    for i in inputs.iter().filter(|i| i.name.starts_with("limit/")) {
        assert_eq!(
            flight(i).refuses(),
            i.name.ends_with("-over"),
            "{}: {:?}",
            i.name,
            flight(i)
        );
    }
    // Every refusal of the judge's own list names the line the judge names.
    for (name, text, line) in REFUSED_DOCKERFILES {
        let i = input(name, text);
        let Verdict::Refuse(why) = preflight(&i) else {
            panic!("{name}: preflight accepts it");
        };
        if let Some(line) = line {
            assert!(why.contains(&format!(":{line}")), "{name}: {why}");
        }
    }
}

/// The same comparison on seeded random mutations of the corpus Dockerfiles and token soup.
#[test]
fn they_agree_on_random_dockerfiles() {
    let corpus: Vec<String> = support::cases()
        .iter()
        .map(|c| std::fs::read_to_string(c.dir.join("Dockerfile")).unwrap())
        .collect();
    let mut rng = support::Rng(support::seed() ^ 0xa9ee);
    let mut disagreements = Vec::new();
    for n in 0..support::iterations(3000) {
        let base = &corpus[rng.below(corpus.len())];
        let text = if rng.below(10) == 0 {
            support::mutate(&mut rng, "")
        } else {
            support::mutate(&mut rng, base)
        };
        let i = Input {
            tenant_images: vec!["hello:v1".into()],
            ..input(&format!("random #{n}"), &text)
        };
        let (f, p) = (flight(&i), preflight(&i));
        if f.refuses() != p.refuses() {
            disagreements.push(format!(
                "{}: {text:?}\n  flight {f:?}\n  preflight {p:?}",
                i.name
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "seed {}: {} disagreements:\n{}",
        support::seed(),
        disagreements.len(),
        disagreements.join("\n")
    );
}

/// The tests above can fail: a judge that disagrees on one case, or a preflight that forgets a
/// code, is caught.
#[test]
fn a_disagreement_is_caught() {
    let inputs: Vec<Input> = REFUSED_DOCKERFILES
        .iter()
        .map(|(name, text, _)| input(name, text))
        .chain(shared_rules())
        .collect();
    let lenient = |i: &Input| {
        if i.name == "vertical-tab" {
            Verdict::Accept
        } else {
            flight(i)
        }
    };
    let (_, found) = compare(&inputs, &lenient, &preflight);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("vertical-tab:"), "{found:?}");

    let without_ambiguity: Vec<&str> = ONBOARD_REFUSALS
        .iter()
        .copied()
        .filter(|c| *c != "OD007")
        .collect();
    let forgetful = |i: &Input| preflight_with(i, &without_ambiguity);
    let (_, found) = compare(&inputs, &flight, &forgetful);
    assert!(
        found.iter().any(|d| d.starts_with("non-ascii-flag:")),
        "{found:?}"
    );
}
