//! The CLI in scripts: every client verb with `-o json` against a real ground and flight agent
//! (Docker Engine, UDP link), each answer exactly its documented schema (`support::assert_schema`
//! for the `api` type, `support::assert_keys` for a verb with a shape of its own) and compared
//! with what the API itself answers; exit statuses; contexts and
//! `ORBITDOCK_SERVER`/`ORBITDOCK_TOKEN`; offline passes against the ground's; completions and man
//! pages; `-o yaml`, the same document as `-o json`.

mod support;

use std::path::Path;
use std::process::Output;

use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::Value;
use support::{
    BIN, DockerCleanup, GroundOnly, Stack, User, assert_keys, assert_schema, json_of, unique,
    without_generated_at,
};

/// A YAML document read back into the JSON value it says (a YAML 1.2 reader: saphyr's).
fn yaml_value(y: &Yaml) -> Value {
    match y {
        Yaml::Value(Scalar::Null) => Value::Null,
        Yaml::Value(Scalar::Boolean(b)) => Value::Bool(*b),
        Yaml::Value(Scalar::Integer(i)) => Value::from(*i),
        Yaml::Value(Scalar::FloatingPoint(f)) => Value::from(f.into_inner()),
        Yaml::Value(Scalar::String(s)) => Value::String(s.to_string()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(yaml_value).collect()),
        Yaml::Mapping(m) => Value::Object(
            m.iter()
                .map(|(k, v)| match yaml_value(k) {
                    Value::String(k) => (k, yaml_value(v)),
                    k => panic!("a mapping key that is not a string: {k}"),
                })
                .collect(),
        ),
        other => panic!("not a JSON value: {other:?}"),
    }
}

fn yaml_of(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("---\n"), "one YAML document: {text}");
    let docs = Yaml::load_from_str(&text).unwrap_or_else(|e| panic!("not YAML ({e}): {text}"));
    assert_eq!(docs.len(), 1, "one YAML document: {text}");
    yaml_value(&docs[0])
}

/// Runs `args` with `-o json` and with `-o yaml` as `user`: both exit alike and say the same
/// document. Returns the exit status, the document and the YAML text.
async fn json_and_yaml(user: &User, args: &[&str]) -> (i32, Value, String) {
    let (code, json) = user.cli_json(args).await;
    let mut all = args.to_vec();
    all.extend(["-o", "yaml"]);
    let out = user.cli(&all).await;
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: -o yaml exits as -o json"
    );
    assert_eq!(
        yaml_of(&out),
        json,
        "{args:?}: -o yaml is the JSON document"
    );
    (
        code,
        json,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args).env_remove("ORBITDOCK_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_client_verb_prints_the_apis_answer_as_json() {
    let stack = Stack::start().await;
    let tenant = unique("j");
    let _cleanup = DockerCleanup {
        tenants: vec![tenant.clone()],
        images: vec![],
    };
    let user = stack.user(&tenant).await;
    let dir = stack.dir.path();
    let ns = unique("ns");

    // files push / ls / pull
    let app = dir.join("app");
    std::fs::create_dir_all(app.join("in")).unwrap();
    std::fs::write(app.join("in/a.txt"), b"hello json\n").unwrap();
    let (code, pushed) = user
        .cli_json(&["files", "push", app.to_str().unwrap(), "--namespace", &ns])
        .await;
    assert_eq!(code, 0);
    assert_eq!(pushed["files"][0]["path"], "/in/a.txt", "{pushed:#}");
    assert_eq!(pushed["files"][0]["size"], 11);
    assert_schema::<api::Uploaded>(&pushed);
    let (code, listed) = user.cli_json(&["files", "ls", &ns]).await;
    assert_eq!(code, 0);
    let (_, api_list) = user.get(&format!("/api/v1/namespaces/{ns}/files")).await;
    assert_eq!(listed, api_list, "files ls -o json is the API's answer");
    assert_schema::<api::FileList>(&listed);

    // plan: the ground's planner, as `POST /api/v1/plan` answers the same request
    let plan = user.plan_json(&format!("{ns}:/in"), "em").await;
    assert_eq!(plan["files"][0]["path"], "/in/a.txt", "{plan:#}");
    let pulled_dir = dir.join("pulled");
    let (code, pulled) = user
        .cli_json(&[
            "files",
            "pull",
            &format!("{ns}:/in"),
            pulled_dir.to_str().unwrap(),
        ])
        .await;
    assert_eq!(code, 0);
    assert_eq!(pulled["files"][0]["bytes"], 11, "{pulled:#}");
    assert_eq!(pulled["files"][0]["remote"], format!("{ns}:/in/a.txt"));
    assert_keys(&pulled, &["files"], &[]);
    for f in pulled["files"].as_array().unwrap() {
        assert_keys(f, &["remote", "local", "bytes"], &[]);
    }
    assert_eq!(
        std::fs::read(pulled_dir.join("a.txt")).unwrap(),
        b"hello json\n"
    );

    // op validate / apply / list / show
    let op = dir.join("op.yaml");
    std::fs::write(
        &op,
        format!(
            "id: hello\nnamespace: {ns}\nsystem: em\ntasks:\n\
             - id: up\n  type: uplink\n  source: /in\n  destination: /\n\
             - id: run\n  type: pod.run\n  image: busybox\n  command: [sh, -c, 'echo pod-says-hi; cat /data/in/a.txt']\n  max_duration: 1\n"
        ),
    )
    .unwrap();
    let (code, valid) = user
        .cli_json(&["op", "validate", op.to_str().unwrap()])
        .await;
    assert_eq!(code, 0, "{valid:#}");
    assert_eq!(valid["valid"], true);
    assert_schema::<api::Validation>(&valid);
    let op_text = std::fs::read_to_string(&op).unwrap();
    let (status, api_valid) = user
        .post_yaml("/api/v1/operations/validate", &op_text)
        .await;
    assert_eq!(
        (status, &valid),
        (200, &api_valid),
        "op validate is the API's"
    );
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "id: x\nnamespace: n\ntasks:\n  - id: a\n    type: nope\n",
    )
    .unwrap();
    let (code, invalid) = user
        .cli_json(&["op", "validate", bad.to_str().unwrap()])
        .await;
    assert_eq!(code, 1, "an invalid operation exits 1");
    assert_eq!(invalid["valid"], false);
    assert_eq!(invalid["diagnostics"][0]["line"], 5, "{invalid:#}");
    assert_schema::<api::Validation>(&invalid);
    let bad_text = std::fs::read_to_string(&bad).unwrap();
    let (status, api_invalid) = user
        .post_yaml("/api/v1/operations/validate", &bad_text)
        .await;
    assert_eq!((status, &invalid), (200, &api_invalid));
    let (code, refused) = user.cli_json(&["op", "apply", bad.to_str().unwrap()]).await;
    assert_eq!(code, 1);
    assert!(
        refused["error"]["diagnostics"]
            .as_array()
            .is_some_and(|d| !d.is_empty()),
        "a refused apply prints the API's error body: {refused:#}"
    );
    assert_schema::<api::ErrorBody>(&refused);
    let (status, api_refused) = user.post_yaml("/api/v1/operations", &bad_text).await;
    assert_eq!((status, &refused), (400, &api_refused));
    let (code, applied) = user.cli_json(&["op", "apply", op.to_str().unwrap()]).await;
    assert_eq!(code, 0);
    assert_eq!(applied["revision"], 1);
    assert_eq!(applied["namespace"], ns.as_str());
    assert_schema::<api::AppliedOperation>(&applied);
    // The same text again: the same revision, as the API answers it.
    let (code, again) = user.cli_json(&["op", "apply", op.to_str().unwrap()]).await;
    assert_eq!(
        (code, &again),
        (0, &applied),
        "the same text, the same revision"
    );
    let (status, api_applied) = user.post_yaml("/api/v1/operations", &op_text).await;
    assert_eq!((status, &api_applied), (201, &applied));
    let (_, ops) = user.cli_json(&["op", "list", "-n", &ns]).await;
    let (_, api_ops) = user
        .get(&format!("/api/v1/operations?namespace={ns}"))
        .await;
    assert_eq!(ops, api_ops);
    assert_eq!(ops["operations"][0]["id"], "hello");
    assert_schema::<api::OperationList>(&ops);
    let (_, shown) = user.cli_json(&["op", "show", &format!("{ns}/hello")]).await;
    let (_, api_shown) = user.get(&format!("/api/v1/operations/{ns}/hello")).await;
    assert_eq!(shown, api_shown);
    assert_schema::<api::OperationDetail>(&shown);

    // exec start --wait / show / list / wait / logs
    let (code, done) = user
        .cli_json(&["exec", "start", &format!("{ns}/hello"), "--wait"])
        .await;
    assert_eq!(code, 0, "{done:#}");
    assert_eq!(done["state"], "COMPLETED");
    let id = done["id"].as_str().unwrap().to_string();
    let (_, shown, _) = json_and_yaml(&user, &["exec", "show", &id]).await;
    let (_, api_exec) = user.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(shown, api_exec, "exec show -o json is the API's answer");
    assert_eq!(shown, done, "exec start --wait prints the final execution");
    assert_schema::<api::Execution>(&shown);
    let (code, waited) = user.cli_json(&["exec", "wait", &id]).await;
    assert_eq!(code, 0);
    assert_eq!(waited, api_exec);
    let (_, execs) = user.cli_json(&["exec", "list", "-n", &ns]).await;
    let (_, api_execs) = user
        .get(&format!("/api/v1/executions?namespace={ns}"))
        .await;
    assert_eq!(execs, api_execs);
    assert_eq!(execs["executions"][0]["id"], id.as_str());
    assert_schema::<api::ExecutionList>(&execs);
    let (code, logs, _) = json_and_yaml(&user, &["exec", "logs", &id, "run"]).await;
    assert_eq!(code, 0);
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 1, "one task named: {logs:#?}");
    assert_eq!(logs[0]["task"], "run");
    assert_eq!(logs[0]["exit_code"], 0);
    let tail: Vec<&str> = logs[0]["log_tail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(tail.contains(&"pod-says-hi"), "{tail:?}");
    assert!(tail.contains(&"hello json"), "{tail:?}");
    // Every task's, and with --follow the same once the execution ended.
    let (code, all) = user.cli_json(&["exec", "logs", &id]).await;
    assert_eq!(code, 0);
    let keys = [
        "task",
        "task_type",
        "state",
        "message",
        "exit_code",
        "log_tail",
    ];
    for l in all.as_array().unwrap() {
        assert_keys(l, &keys, &[]);
    }
    assert_eq!(all[0]["task"], "up", "{all:#}");
    assert_eq!(all[1], logs[0]);
    let (code, followed) = user.cli_json(&["exec", "logs", &id, "--follow"]).await;
    assert_eq!((code, &followed), (0, &all));
    let text = user.cli(&["exec", "logs", &id, "--follow"]).await;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("== run (pod.run) SUCCESS exit 0"), "{text}");
    assert!(text.contains("| pod-says-hi"), "{text}");
    let unknown = user.cli(&["exec", "logs", &id, "nope"]).await;
    assert_eq!(unknown.status.code(), Some(1));

    // op diff: a second revision against the first
    let v2 = std::fs::read_to_string(&op)
        .unwrap()
        .replace("max_duration: 1\n", "max_duration: 2\n");
    std::fs::write(&op, v2).unwrap();
    let (code, applied) = user.cli_json(&["op", "apply", op.to_str().unwrap()]).await;
    assert_eq!(code, 0);
    assert_eq!(applied["revision"], 2);
    let (code, diff) = user
        .cli_json(&["op", "diff", &format!("{ns}/hello"), "1"])
        .await;
    assert_eq!(code, 0);
    assert_eq!(diff["from"]["revision"], 1);
    assert_eq!(diff["to"]["revision"], 2);
    let text = diff["diff"].as_str().unwrap();
    assert!(text.contains("-  max_duration: 1"), "{text}");
    assert!(text.contains("+  max_duration: 2"), "{text}");
    assert_keys(&diff, &["from", "to", "diff"], &[]);
    for (side, r) in [("from", 1), ("to", 2)] {
        assert_schema::<api::OperationRevision>(&diff[side]);
        let (_, api_revision) = user
            .get(&format!("/api/v1/operations/{ns}/hello/revisions/{r}"))
            .await;
        assert_eq!(diff[side], api_revision, "op diff's {side} is the API's");
    }
    let none = user.cli(&["op", "diff", &format!("{ns}/hello"), "9"]).await;
    assert_eq!(none.status.code(), Some(1), "an unknown revision fails");

    // files ls --onboard: the ground's mirror of the volume, as the API answers it
    let volume = format!("{tenant}-pvc");
    let onboard_args = ["--onboard", "--system", "em", "--volume", volume.as_str()];
    let onboard_cli = |verb: &'static str, paths: &[&str]| -> Vec<String> {
        let mut args = vec!["files".to_string(), verb.to_string()];
        args.extend(onboard_args.iter().chain(paths).map(|s| s.to_string()));
        args
    };
    let ls_onboard = async || {
        let args = onboard_cli("ls", &[]);
        let (code, listed) = user
            .cli_json(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .await;
        assert_eq!(code, 0, "{listed:#}");
        let paths: Vec<String> = listed["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect();
        (listed, paths)
    };
    // What a verb printed is the execution as the API answers it once ended.
    let is_apis_execution = async |printed: &Value| {
        assert_schema::<api::Execution>(printed);
        let id = printed["id"].as_str().unwrap();
        let (_, api_exec) = user.get(&format!("/api/v1/executions/{id}")).await;
        assert_eq!(
            printed, &api_exec,
            "the final execution, as the API says it"
        );
    };
    let (_, api_volume) = user
        .get(&format!("/api/v1/systems/em/volumes/{volume}/files"))
        .await;
    let (onboard, paths) = ls_onboard().await;
    assert_eq!(onboard, api_volume);
    assert_schema::<api::VolumeFileList>(&onboard);
    assert!(
        paths.iter().any(|p| p == "/in/a.txt"),
        "the uplinked file is in the mirror: {onboard:#}"
    );

    // files mv / rm --onboard: an operation `onboard-files` run on the system and waited for,
    // its final execution as the API answers it; the mirror shows the change
    let args = onboard_cli("mv", &["/in/a.txt", "/moved/a.txt"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The user's only namespace keeps the operation when -n is not given.
    let (code, moved) = user.cli_json(&args).await;
    assert_eq!(code, 0, "{moved:#}");
    assert_eq!(moved["state"], "COMPLETED", "{moved:#}");
    assert_eq!(moved["operation"], "onboard-files");
    assert_eq!(moved["namespace"], ns.as_str());
    assert_eq!(moved["tasks"][0]["type"], "files.move", "{moved:#}");
    is_apis_execution(&moved).await;
    let (_, paths) = ls_onboard().await;
    assert!(
        paths.iter().any(|p| p == "/moved/a.txt") && !paths.iter().any(|p| p == "/in/a.txt"),
        "files ls --onboard shows the move: {paths:?}"
    );
    let args = onboard_cli("rm", &["/moved", "-n", &ns]);
    let args_rm: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, removed) = user.cli_json(&args_rm).await;
    assert_eq!(code, 0, "{removed:#}");
    assert_eq!(removed["state"], "COMPLETED", "{removed:#}");
    assert_eq!(removed["tasks"][0]["type"], "files.delete");
    is_apis_execution(&removed).await;
    let (_, paths) = ls_onboard().await;
    assert!(
        !paths.iter().any(|p| p.starts_with("/moved")),
        "files rm --onboard deleted the folder: {paths:?}"
    );
    // A missing path: the task fails, nothing is deleted, exit 1 with the task's message.
    let (code, missing) = user.cli_json(&args_rm).await;
    assert_eq!(code, 1, "{missing:#}");
    assert_eq!(missing["state"], "FAILED");
    assert_eq!(
        missing["errors"][0]["name"], "EXECUTION_ERROR",
        "{missing:#}"
    );
    is_apis_execution(&missing).await;
    let text = user
        .cli(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert_eq!(text.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(
        stderr.contains("4 EXECUTION_ERROR File not found: /moved"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&text.stdout).contains("FAILED"));
    // Usage errors, before anything is asked of the ground.
    for bad in [
        vec!["files", "rm", "--onboard", "/x"],
        vec![
            "files",
            "rm",
            "--onboard",
            "--system",
            "em",
            "--volume",
            &volume,
            "ns:/x",
        ],
        vec!["files", "mv", "--system", "em", "/x", "/y"],
        vec!["files", "rm", "a:/x", "b:/y"],
        // Not the whole volume, however it is written.
        vec![
            "files",
            "rm",
            "--onboard",
            "--system",
            "em",
            "--volume",
            &volume,
            "/x",
            "/./",
        ],
    ] {
        let out = user.cli(&bad).await;
        assert_eq!(out.status.code(), Some(2), "{bad:?} is a usage error");
    }

    // files mv / rm on the ground
    let (code, moved) = user
        .cli_json(&["files", "mv", &format!("{ns}:/in"), "/archive/in"])
        .await;
    assert_eq!(code, 0, "{moved:#}");
    assert_eq!(moved["moved"][0]["from"], "/in/a.txt");
    assert_eq!(moved["moved"][0]["to"], "/archive/in/a.txt");
    assert_schema::<api::Moved>(&moved);
    let (_, after) = user.get(&format!("/api/v1/namespaces/{ns}/files")).await;
    assert_eq!(after["files"][0]["path"], "/archive/in/a.txt");
    assert_eq!(after["files"].as_array().unwrap().len(), 1);
    std::fs::write(app.join("in/b.txt"), b"b").unwrap();
    assert!(
        user.cli(&[
            "files",
            "push",
            app.to_str().unwrap(),
            "-n",
            &ns,
            "--to",
            "/archive"
        ])
        .await
        .status
        .success()
    );
    let clash = user
        .cli(&[
            "files",
            "mv",
            &format!("{ns}:/archive/in/b.txt"),
            "/archive/in/a.txt",
        ])
        .await;
    assert_eq!(clash.status.code(), Some(1), "a move never overwrites");
    assert!(String::from_utf8_lossy(&clash.stderr).contains("exists"));
    let into_itself = user
        .cli(&["files", "mv", &format!("{ns}:/archive"), "/archive/deeper"])
        .await;
    assert_eq!(into_itself.status.code(), Some(1));
    let (code, removed) = user
        .cli_json(&["files", "rm", &format!("{ns}:/archive")])
        .await;
    assert_eq!(code, 0);
    assert_eq!(
        removed["paths"],
        serde_json::json!(["/archive/in/a.txt", "/archive/in/b.txt"])
    );
    assert_schema::<api::Removed>(&removed);
    let (_, empty) = user.get(&format!("/api/v1/namespaces/{ns}/files")).await;
    assert_eq!(empty["files"], serde_json::json!([]));
    let gone = user.cli(&["files", "rm", &format!("{ns}:/archive")]).await;
    assert_eq!(gone.status.code(), Some(1), "nothing left to remove");

    // passes for a system without an orbit, and for every system (an array), as the API
    // answers for the same hours
    let (code, passes) = user
        .cli_json(&["passes", "--system", "em", "--hours", "12"])
        .await;
    assert_eq!(code, 0);
    assert_eq!(passes["always_in_contact"], true);
    assert_eq!(passes["system"], "em");
    assert_eq!(passes["hours"], 12);
    assert_schema::<api::Passes>(&passes);
    let (_, api_passes) = user.get("/api/v1/systems/em/passes?hours=12").await;
    assert_eq!(
        without_generated_at(&passes),
        without_generated_at(&api_passes)
    );
    let (code, every) = user.cli_json(&["passes"]).await;
    assert_eq!(code, 0);
    let every_typed = assert_schema::<Vec<api::Passes>>(&every);
    let (_, systems) = user.get("/api/v1/systems").await;
    let names: Vec<&str> = systems["systems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["em"]);
    assert_eq!(every_typed.len(), names.len(), "one answer per system");
    let mut api_every = Vec::new();
    for s in names {
        api_every.push(user.get(&format!("/api/v1/systems/{s}/passes")).await.1);
    }
    assert_eq!(
        without_generated_at(&every),
        without_generated_at(&Value::Array(api_every))
    );

    // contexts
    let (code, contexts) = user.cli_json(&["context", "list"]).await;
    assert_eq!(code, 0);
    assert_eq!(contexts[0]["current"], true, "{contexts:#}");
    assert_eq!(contexts[0]["user"], tenant.as_str());
    let context_keys = ["name", "current", "server", "user"];
    assert_keys(&contexts[0], &context_keys, &["cacert"]);
    let name = contexts[0]["name"].as_str().unwrap().to_string();
    assert_eq!(format!("http://{name}"), stack.url);
    // A second context, in a copy of the session file: login, use and rm print their documents.
    let copy = dir.join("contexts.json");
    std::fs::copy(&user.session, &copy).unwrap();
    let copy_env = [("ORBITDOCK_SESSION", copy.to_str().unwrap())];
    let password = format!("pw-{tenant}");
    let out = run(
        &[
            "login",
            "--server",
            &stack.url,
            "--user",
            &tenant,
            "--password",
            &password,
            "--name",
            "second",
            "-o",
            "json",
        ],
        &copy_env,
    )
    .await;
    assert_eq!(out.status.code(), Some(0));
    let logged_in = json_of(&out);
    assert_keys(
        &logged_in,
        &["context", "server", "user", "session_file"],
        &[],
    );
    assert_eq!(logged_in["context"], "second");
    assert_eq!(logged_in["server"], stack.url.as_str());
    assert_eq!(logged_in["user"], tenant.as_str());
    assert_eq!(logged_in["session_file"], copy.to_str().unwrap());
    let saved: Value = serde_json::from_slice(&std::fs::read(&copy).unwrap()).unwrap();
    let token = saved["contexts"]["second"]["token"].as_str().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(token),
        "login -o json never prints the token"
    );
    let out = run(&["context", "use", &name, "-o", "json"], &copy_env).await;
    assert_eq!(out.status.code(), Some(0));
    let used = json_of(&out);
    assert_keys(&used, &context_keys, &["cacert"]);
    let out = run(&["context", "list", "-o", "json"], &copy_env).await;
    let listed = json_of(&out);
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name.as_str())
        .unwrap();
    assert_eq!(&used, entry, "context use prints the entry it made current");
    assert_eq!(used["current"], true);
    let out = run(&["context", "rm", "second", "-o", "json"], &copy_env).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        json_of(&out),
        serde_json::json!({"removed": "second", "current": name})
    );
    let out = run(&["context", "rm", &name, "-o", "json"], &copy_env).await;
    assert_eq!(
        json_of(&out),
        serde_json::json!({"removed": name, "current": null}),
        "the current context removed: none is current"
    );
    let session = user.session.to_str().unwrap();
    let out = run(
        &["exec", "list", "--context", "elsewhere"],
        &[("ORBITDOCK_SESSION", session)],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "an unknown context: log in");
    let out = run(
        &["context", "use", "elsewhere"],
        &[("ORBITDOCK_SESSION", session)],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));

    // CI: ORBITDOCK_SERVER and ORBITDOCK_TOKEN, no session file.
    let nowhere = dir.join("no-session.json");
    let env = [
        ("ORBITDOCK_SESSION", nowhere.to_str().unwrap()),
        ("ORBITDOCK_SERVER", stack.url.as_str()),
        ("ORBITDOCK_TOKEN", user.token.as_str()),
    ];
    let out = run(&["exec", "list", "-n", &ns, "-o", "json"], &env).await;
    assert_eq!(out.status.code(), Some(0));
    let (_, api_execs) = user
        .get(&format!("/api/v1/executions?namespace={ns}"))
        .await;
    assert_eq!(json_of(&out), api_execs);
    assert!(!nowhere.exists(), "nothing is written in CI mode");
    let refused = run(
        &["exec", "list", "-o", "json"],
        &[
            ("ORBITDOCK_SESSION", nowhere.to_str().unwrap()),
            ("ORBITDOCK_SERVER", stack.url.as_str()),
            ("ORBITDOCK_TOKEN", "not-a-token"),
        ],
    )
    .await;
    assert_eq!(refused.status.code(), Some(3), "a refused token: log in");
    let none = run(
        &["exec", "list"],
        &[("ORBITDOCK_SESSION", nowhere.to_str().unwrap())],
    )
    .await;
    assert_eq!(none.status.code(), Some(3), "not logged in");
}

fn systems_file(
    dir: &Path,
    now: std::time::SystemTime,
) -> (std::path::PathBuf, orbit::SystemOrbit) {
    let epoch = orbit::Epoch::from_unix_seconds(
        now.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64(),
    );
    let demo = orbit::demo_system(epoch);
    let stations: Vec<Value> = demo
        .stations
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.station.name,
                "latitude_deg": s.station.latitude_deg,
                "longitude_deg": s.station.longitude_deg,
                "altitude_m": s.station.altitude_m,
                "min_elevation_deg": s.station.min_elevation_deg,
                "uplink_bps": s.uplink_bps,
                "downlink_bps": s.downlink_bps,
            })
        })
        .collect();
    let path = dir.join("systems.json");
    std::fs::write(
        &path,
        serde_json::to_vec(&serde_json::json!({
            "fm": {"tle": demo.tle_text, "stations": stations},
            "em": {},
        }))
        .unwrap(),
    )
    .unwrap();
    let tle = orbit::parse_tle_text(&demo.tle_text).unwrap().remove(0);
    (
        path,
        orbit::SystemOrbit {
            tle,
            stations: demo.stations,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_passes_agree_with_the_grounds_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let (systems, fm) = systems_file(dir.path(), std::time::SystemTime::now());
    let g = ground::Ground::open(ground::GroundConfig {
        data_dir: dir.path().join("ground"),
        database_url: None,
        s3: None,
        systems: vec![ground::SystemLink {
            name: "fm".into(),
            bind: support::free_udp(),
            link: support::free_udp(),
            key: wire::LinkKey::from_bytes(rand::random()),
            rate_bits_per_sec: None,
            contact: link::Contact::Always,
            orbit: Some(fm),
            link_settings: link::LinkSettings::STANDARD,
        }],
        plan_signer: wire::PlanSigner::from_bytes(rand::random()),
    })
    .await
    .unwrap();
    g.ensure_user("ops", "pw-ops").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(ground::serve(g, listener, std::future::pending()));
    let session = dir.path().join("session.json");
    let session = session.to_str().unwrap();
    let mut login = tokio::process::Command::new(BIN);
    login
        .args([
            "login",
            "--server",
            &url,
            "--user",
            "ops",
            "--password-stdin",
        ])
        .env("ORBITDOCK_SESSION", session)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = login.spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"pw-ops\n").await.unwrap();
    }
    assert!(child.wait_with_output().await.unwrap().status.success());

    let from_ground = run(
        &["passes", "--system", "fm", "--hours", "24", "-o", "json"],
        &[("ORBITDOCK_SESSION", session)],
    )
    .await;
    assert!(from_ground.status.success());
    let ground_json = json_of(&from_ground);
    let at = ground_json["generated_at"].as_str().unwrap().to_string();
    assert!(
        !ground_json["passes"].as_array().unwrap().is_empty(),
        "the demo orbit passes its stations within a day"
    );
    assert!(!ground_json["eclipses"].as_array().unwrap().is_empty());
    // The API's answer for the same hours, but for the instant it was made (the ground keeps a
    // system's contact plan for minutes, so both name the same passes).
    assert_schema::<api::Passes>(&ground_json);
    let saved: Value = serde_json::from_slice(&std::fs::read(session).unwrap()).unwrap();
    let current = saved["current"].as_str().unwrap();
    let ops = User {
        name: "ops".into(),
        session: session.into(),
        url: url.clone(),
        token: saved["contexts"][current]["token"]
            .as_str()
            .unwrap()
            .to_string(),
    };
    let (_, api_passes) = ops.get("/api/v1/systems/fm/passes?hours=24").await;
    // The passes come from that plan; the eclipses are searched from the instant asked, and
    // their edges move by a millisecond with it.
    let (mut cli_doc, mut api_doc) = (
        without_generated_at(&ground_json),
        without_generated_at(&api_passes),
    );
    let (cli_eclipses, api_eclipses) = (
        cli_doc.as_object_mut().unwrap().remove("eclipses").unwrap(),
        api_doc.as_object_mut().unwrap().remove("eclipses").unwrap(),
    );
    assert_eq!(cli_doc, api_doc, "passes --system fm -o json is the API's");
    let seconds = |v: &Value| match v {
        Value::String(t) => orbit::Epoch::parse_iso8601(t).unwrap().unix_seconds(),
        v => v.as_f64().unwrap(),
    };
    let (cli_eclipses, api_eclipses) = (
        cli_eclipses.as_array().unwrap(),
        api_eclipses.as_array().unwrap(),
    );
    assert_eq!(cli_eclipses.len(), api_eclipses.len());
    for (c, a) in cli_eclipses.iter().zip(api_eclipses) {
        let (c, a) = (c.as_object().unwrap(), a.as_object().unwrap());
        assert_eq!(c.keys().collect::<Vec<_>>(), a.keys().collect::<Vec<_>>());
        for (k, v) in c {
            assert!(
                (seconds(v) - seconds(&a[k])).abs() <= 0.005,
                "{k}: {v} against {}",
                a[k]
            );
        }
    }

    let offline = run(
        &[
            "passes",
            "--systems-file",
            systems.to_str().unwrap(),
            "--system",
            "fm",
            "--from",
            &at,
            "--hours",
            "24",
            "-o",
            "json",
        ],
        &[],
    )
    .await;
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    assert_eq!(
        json_of(&offline),
        ground_json,
        "offline passes are the ground's, to the millisecond"
    );

    let text = run(
        &[
            "passes",
            "--systems-file",
            systems.to_str().unwrap(),
            "--system",
            "fm",
            "--from",
            &at,
        ],
        &[],
    )
    .await;
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    for p in ground_json["passes"].as_array().unwrap() {
        let line = text
            .lines()
            .find(|l| l.contains(p["aos"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("text lists the pass at {}: {text}", p["aos"]));
        assert!(line.contains(p["los"].as_str().unwrap()));
        assert!(line.contains(p["station"].as_str().unwrap()));
    }
    for e in ground_json["eclipses"].as_array().unwrap() {
        assert!(text.contains(e["penumbra_entry"].as_str().unwrap()));
    }

    // Every system of the file: an array, `em` always in contact.
    let all = run(
        &[
            "passes",
            "--systems-file",
            systems.to_str().unwrap(),
            "--from",
            &at,
            "-o",
            "json",
        ],
        &[],
    )
    .await;
    let all = json_of(&all);
    assert_eq!(all[0]["system"], "em");
    assert_eq!(all[0]["always_in_contact"], true);
    assert_eq!(all[1], ground_json);

    // Bad input says what and where.
    let bad = run(
        &[
            "passes",
            "--systems-file",
            systems.to_str().unwrap(),
            "--from",
            "yesterday",
        ],
        &[],
    )
    .await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--from \"yesterday\""));
    let missing = run(
        &[
            "passes",
            "--systems-file",
            systems.to_str().unwrap(),
            "--system",
            "xx",
        ],
        &[],
    )
    .await;
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no system \"xx\""));
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yaml_output_is_the_json_document() {
    let g = GroundOnly::start().await;
    g.ground.ensure_user("yammy", "pw-yammy").await.unwrap();
    let dir = g.dir.path();
    let user = User {
        name: "yammy".into(),
        session: dir.join("session.json"),
        url: g.url.clone(),
        token: String::new(),
    };
    let out = user
        .cli(&[
            "login",
            "--server",
            &g.url,
            "--user",
            "yammy",
            "--password",
            "pw-yammy",
            "-o",
            "yaml",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(yaml_of(&out)["user"], "yammy");

    let app = dir.join("app");
    std::fs::create_dir_all(app.join("in")).unwrap();
    std::fs::write(app.join("in/a.txt"), b"hello yaml\n").unwrap();
    let out = user
        .cli(&[
            "files",
            "push",
            app.to_str().unwrap(),
            "-n",
            "yml",
            "-o",
            "yaml",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(yaml_of(&out)["files"][0]["path"], "/in/a.txt");
    let (code, listed, text) = json_and_yaml(&user, &["files", "ls", "yml"]).await;
    assert_eq!(code, 0);
    assert_eq!(listed["files"][0]["size"], 11);
    // Instants are quoted, so YAML 1.1 readers keep them strings.
    let created = listed["files"][0]["created_at"].as_str().unwrap();
    assert!(
        text.contains(&format!("created_at: \"{created}\"")),
        "{text}"
    );

    let op = dir.join("op.yaml");
    let yaml = "id: hello\nnamespace: yml\nsystem: em\ntasks:\n- id: up\n  type: uplink\n  source: /in\n  destination: /\n";
    std::fs::write(&op, yaml).unwrap();
    let (code, valid, _) = json_and_yaml(&user, &["op", "validate", op.to_str().unwrap()]).await;
    assert_eq!(
        (code, &valid["valid"]),
        (0, &Value::Bool(true)),
        "{valid:#}"
    );
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "id: x\nnamespace: yml\ntasks:\n  - id: a\n    type: nope\n",
    )
    .unwrap();
    let (code, invalid, _) = json_and_yaml(&user, &["op", "validate", bad.to_str().unwrap()]).await;
    assert_eq!(code, 1);
    assert_eq!(invalid["diagnostics"][0]["line"], 5, "{invalid:#}");
    // A refused request prints the API's error body, in YAML too.
    let (code, refused, _) = json_and_yaml(&user, &["op", "apply", bad.to_str().unwrap()]).await;
    assert_eq!(code, 1);
    assert!(
        refused["error"]["diagnostics"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
    );
    let out = user
        .cli(&["op", "apply", op.to_str().unwrap(), "-o", "yaml"])
        .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(yaml_of(&out)["revision"], 1);
    let (_, shown, text) = json_and_yaml(&user, &["op", "show", "yml/hello"]).await;
    assert_eq!(shown["id"], "hello");
    assert!(
        text.contains("\n  yaml: |\n") || text.contains("\nyaml: |\n"),
        "the operation's text is a literal block: {text}"
    );
    let (_, ops, _) = json_and_yaml(&user, &["op", "list", "-n", "yml"]).await;
    assert_eq!(ops["operations"][0]["id"], "hello");
    let (_, execs, _) = json_and_yaml(&user, &["exec", "list"]).await;
    assert_eq!(execs["executions"], serde_json::json!([]));
    let (_, quota, _) = json_and_yaml(&user, &["quota", "show", "yammy"]).await;
    assert_eq!(quota["tenant"], "yammy", "{quota:#}");
    assert_schema::<api::Quota>(&quota);
    let (_, contexts, _) = json_and_yaml(&user, &["context", "list"]).await;
    assert_eq!(contexts[0]["user"], "yammy");

    // Offline verbs too: passes and lint.
    let (systems, _) = systems_file(dir, std::time::SystemTime::now());
    let (code, passes, _) = json_and_yaml(
        &user,
        &[
            "passes",
            "--systems-file",
            systems.to_str().unwrap(),
            "--from",
            "2026-12-03T00:00:00Z",
            "--hours",
            "12",
        ],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(passes[1]["system"], "fm");
    let dockerfile = dir.join("Dockerfile");
    std::fs::write(
        &dockerfile,
        "FROM nosuchimage:1\nRUN curl http://example.com\n",
    )
    .unwrap();
    let (code, report, _) = json_and_yaml(&user, &["lint", dockerfile.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{report:#}");
    assert!(
        report["diagnostics"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
    );
}

/// The schema check fails on what it is there to catch: a field too many, one missing (even one
/// the type reads as empty when absent), one renamed, one of another type.
#[test]
fn the_schema_check_refuses_a_field_too_many_missing_renamed_or_mistyped() {
    use serde_json::json;
    assert_schema::<api::Moved>(&json!({"moved": [{"from": "/a", "to": "/b"}]}));
    let passes = json!({"system": "em", "generated_at": "2026-12-03T00:00:00.000Z", "hours": 24,
        "always_in_contact": true, "passes": [], "eclipses": []});
    assert_schema::<api::Passes>(&passes);
    let mut no_eclipses = passes.clone();
    no_eclipses.as_object_mut().unwrap().remove("eclipses");
    for (bad, why) in [
        (
            json!({"moved": [{"from": "/a", "to": "/b", "at": 1}]}),
            "a field too many",
        ),
        (json!({"moved": [{"from": "/a"}]}), "a field missing"),
        (
            json!({"moved": [{"from": "/a", "target": "/b"}]}),
            "a field renamed",
        ),
        (
            json!({"moved": [{"from": "/a", "to": 2}]}),
            "a field of another type",
        ),
    ] {
        let caught = std::panic::catch_unwind(|| assert_schema::<api::Moved>(&bad));
        assert!(caught.is_err(), "{why} passes: {bad}");
    }
    let caught = std::panic::catch_unwind(|| assert_schema::<api::Passes>(&no_eclipses));
    assert!(caught.is_err(), "a defaulted field missing passes");
}

#[tokio::test]
async fn completions_and_man_pages_come_from_the_parser() {
    let out = run(&["completions", "bash"], &[]).await;
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("orbitdock"));
    assert!(
        script.contains("--systems-file"),
        "completions know the flags"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["man", dir.path().to_str().unwrap()], &[]).await;
    assert!(out.status.success());
    let page = std::fs::read_to_string(dir.path().join("orbitdock.1")).unwrap();
    assert!(page.contains(".TH orbitdock"), "{page}");
    let exec = std::fs::read_to_string(dir.path().join("orbitdock-exec.1")).unwrap();
    assert!(exec.contains("wait"));
    // Every verb's help carries an example.
    for verb in [
        &["login"][..],
        &["files", "push"],
        &["op", "apply"],
        &["exec", "start"],
        &["exec", "logs"],
        &["passes"],
        &["context"],
    ] {
        let mut args = verb.to_vec();
        args.push("--help");
        let out = run(&args, &[]).await;
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Example"),
            "{verb:?} --help has an example:\n{help}"
        );
    }
}
