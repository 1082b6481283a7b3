//! `migrate-once claim` (SPEC §8) the way instances run it: many copies of
//! the built binary at once, against the local SSM over HTTP (and, as a
//! third-party check, against moto's SSM server), each running
//! `sh -c 'echo x >> runs'` if it wins. What a user relies on: exactly one
//! run per reset, losers that exit as documented, and clear exit-2 errors.
//!
//! `MIGRATE_ONCE_CLAIM_POLL_MS=5` keeps `--wait` polling fast; `--timeout 1`
//! is the one real wait (the killed-winner test).

use local_aws::http_client::aws_call;
use local_aws::{FunctionHost, LocalAws, PipelineDriver, Scenario};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const FLAG: &str = "/app/db-migration-state";
const BIN: &str = env!("CARGO_BIN_EXE_migrate-once");
/// The winner's command: one line in `runs` per run, and a line on stdout
/// that must reach the caller untouched.
const RECORD_RUN: &str = "echo x >> runs; echo 'migration output'";

/// Claimers sharing one SSM endpoint and one scratch directory.
struct Claims {
    env: Vec<(String, String)>,
    dir: PathBuf,
}

impl Claims {
    fn new(test: &str, env: Vec<(String, String)>) -> Claims {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("claim-{test}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Claims { env, dir }
    }

    fn local(test: &str, aws: &LocalAws) -> Claims {
        Claims::new(test, aws.sdk_environment())
    }

    /// `migrate-once claim --parameter FLAG <options> -- sh -c <script>`,
    /// in the scratch directory.
    fn command(&self, options: &[&str], script: &str) -> Command {
        let mut c = Command::new(BIN);
        c.arg("claim")
            .args(["--parameter", FLAG])
            .args(options)
            .args(["--", "sh", "-c", script])
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("MIGRATE_ONCE_CLAIM_POLL_MS", "5")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    fn spawn(&self, options: &[&str], script: &str) -> Child {
        self.command(options, script)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"))
    }

    async fn run(&self, options: &[&str], script: &str) -> Output {
        self.spawn(options, script)
            .wait_with_output()
            .await
            .expect("claimer output")
    }

    /// `n` claimers started at once, every other one with `--wait`.
    async fn crowd(&self, n: usize, script: &str) -> Vec<Output> {
        let children: Vec<Child> = (0..n)
            .map(|i| {
                let options: &[&str] = if i % 2 == 0 { &[] } else { &["--wait"] };
                self.spawn(options, script)
            })
            .collect();
        let mut outputs = Vec::new();
        for child in children {
            outputs.push(child.wait_with_output().await.expect("claimer output"));
        }
        outputs
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// How many times a winner ran the command.
    fn runs(&self) -> usize {
        std::fs::read_to_string(self.file("runs"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Waits (a few ms at a time) until `name` exists in the scratch dir.
    async fn until_exists(&self, name: &str) -> String {
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(self.file(name))
                && !text.is_empty()
            {
                return text;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{name} never appeared"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn explain(outputs: &[Output]) -> String {
    outputs
        .iter()
        .map(|o| format!("{:?}: {}", o.status.code(), stderr(o)))
        .collect::<Vec<_>>()
        .join("")
}

/// One reset's crowd: everyone exits 0, the command ran once, its output
/// reached one caller's stdout untouched and nobody else's.
fn assert_one_run(outputs: &[Output], runs_before: usize, claims: &Claims) {
    assert!(
        outputs.iter().all(|o| o.status.code() == Some(0)),
        "every claimer exits 0:\n{}",
        explain(outputs)
    );
    assert_eq!(
        claims.runs(),
        runs_before + 1,
        "exactly one run for the reset:\n{}",
        explain(outputs)
    );
    let stdouts: Vec<&[u8]> = outputs
        .iter()
        .map(|o| o.stdout.as_slice())
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(stdouts, [b"migration output\n".as_slice()]);
    for o in outputs {
        assert!(
            stderr(o)
                .lines()
                .all(|l| l.starts_with("migrate-once claim: ")),
            "{}",
            stderr(o)
        );
    }
}

async fn local_aws() -> LocalAws {
    match Scenario::from_json("{}") {
        Ok(s) => LocalAws::start(s).await.expect("local control plane"),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_claimers_over_twenty_resets_run_the_command_once_per_reset() {
    let aws = local_aws().await;
    let claims = Claims::local("crowd", &aws);
    for reset in 0..20 {
        aws.put_parameter(FLAG, "0");
        let outputs = claims.crowd(50, RECORD_RUN).await;
        assert_one_run(&outputs, reset, &claims);
        assert_eq!(aws.parameter(FLAG).map(|p| p.value).as_deref(), Some("1"));
    }
    // The winners tidy the records of older resets away.
    let records: Vec<String> = aws
        .parameters()
        .into_iter()
        .map(|p| p.name)
        .filter(|n| n.starts_with(&format!("{FLAG}/claims/")))
        .collect();
    assert!(records.len() <= 2, "claim records left: {records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_winner_makes_six_ssm_calls_and_one_more_to_tidy_older_records() {
    let aws = local_aws().await;
    let claims = Claims::local("calls", &aws);
    let ssm_calls = |aws: &LocalAws, from: usize| -> Vec<String> {
        aws.calls()[from..]
            .iter()
            .map(|c| c.operation.clone())
            .collect()
    };
    let winner_calls = [
        "GetParameter",        // "0": a reset
        "PutParameter",        // create its claim record: won
        "GetParameter",        // still that reset (see the argument in claim.rs)
        "GetParameter",        // still that reset: record the outcome
        "PutParameter",        // "1"
        "GetParametersByPath", // the claim records
    ];
    aws.put_parameter(FLAG, "0");
    let first = claims.run(&[], RECORD_RUN).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(ssm_calls(&aws, 0), winner_calls);

    let before = aws.calls().len();
    aws.put_parameter(FLAG, "0");
    let second = claims.run(&[], RECORD_RUN).await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let mut tidying = winner_calls.to_vec();
    tidying.push("DeleteParameters"); // the first winner's record
    assert_eq!(ssm_calls(&aws, before), tidying);
    let records: Vec<String> = aws
        .parameters()
        .into_iter()
        .map(|p| p.name)
        .filter(|n| n.starts_with(&format!("{FLAG}/claims/")))
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(
        records[0].starts_with(&format!("{FLAG}/claims/3-")),
        "{records:?}"
    );
    assert_eq!(claims.runs(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loser_without_wait_makes_three_calls_and_runs_nothing() {
    let aws = local_aws().await;
    let claims = Claims::local("loser", &aws);
    aws.put_parameter(FLAG, "0");
    let winner = claims.spawn(&[], "touch started; echo x >> runs; sleep 2");
    claims.until_exists("runs").await;
    let before = aws.calls().len();
    let loser = claims.run(&[], RECORD_RUN).await;
    assert_eq!(loser.status.code(), Some(0), "{}", stderr(&loser));
    assert!(stderr(&loser).contains("another instance holds the claim"));
    let calls: Vec<String> = aws.calls()[before..]
        .iter()
        .map(|c| format!("{} {}", c.operation, c.error.clone().unwrap_or_default()))
        .collect();
    // The third reads the claim record back: a create whose answer was
    // lost is one's own (see the test below).
    assert_eq!(
        calls,
        [
            "GetParameter ",
            "PutParameter ParameterAlreadyExists",
            "GetParameter "
        ]
    );
    drop(winner);
    assert_eq!(claims.runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_on_a_killed_winner_time_out_naming_the_holder_and_a_new_reset_frees_it() {
    let aws = local_aws().await;
    let claims = Claims::local("killed", &aws);
    aws.put_parameter(FLAG, "0");
    let mut winner = claims.spawn(&[], "echo $$ > child; exec sleep 30");
    let child = claims.until_exists("child").await;
    let winner_pid = winner.id().expect("winner pid");
    winner.start_kill().expect("SIGKILL the winner");
    let _ = winner.wait().await;

    let started = Instant::now();
    let waiters: Vec<Child> = (0..5)
        .map(|_| claims.spawn(&["--wait", "--timeout", "1"], RECORD_RUN))
        .collect();
    let mut outputs = Vec::new();
    for w in waiters {
        outputs.push(w.wait_with_output().await.expect("waiter output"));
    }
    let waited = started.elapsed();
    for o in &outputs {
        assert_eq!(o.status.code(), Some(1), "{}", explain(&outputs));
        let text = stderr(o);
        assert!(text.contains("gave up after 1 s"), "{text}");
        assert!(
            text.contains(&format!("held by pid {winner_pid} on host ")),
            "{text}"
        );
    }
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    let quick = claims.run(&[], RECORD_RUN).await;
    assert_eq!(quick.status.code(), Some(0), "{}", stderr(&quick));
    assert_eq!(
        claims.runs(),
        0,
        "nobody ran the command again for that reset"
    );
    let _ = std::process::Command::new("kill")
        .arg(child.trim())
        .status();

    aws.put_parameter(FLAG, "0");
    let next = claims.crowd(10, RECORD_RUN).await;
    assert_one_run(&next, 0, &claims);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_on_a_failed_run_exit_1_and_the_flag_says_failed() {
    let aws = local_aws().await;
    let claims = Claims::local("failed", &aws);
    aws.put_parameter(FLAG, "0");
    let winner = claims.spawn(&[], "echo x >> runs; sleep 0.5; exit 3");
    claims.until_exists("runs").await;
    let waiters: Vec<Child> = (0..5)
        .map(|_| claims.spawn(&["--wait"], RECORD_RUN))
        .collect();
    let winner = winner.wait_with_output().await.expect("winner output");
    assert_eq!(winner.status.code(), Some(3), "the command's own exit code");
    for w in waiters {
        let o = w.wait_with_output().await.expect("waiter output");
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("is \"failed\""), "{}", stderr(&o));
    }
    assert_eq!(
        aws.parameter(FLAG).map(|p| p.value).as_deref(),
        Some("failed")
    );
    // Latecomers: a waiter fails at once, a plain claimer goes on; neither runs it.
    let late_waiter = claims.run(&["--wait"], RECORD_RUN).await;
    assert_eq!(
        late_waiter.status.code(),
        Some(1),
        "{}",
        stderr(&late_waiter)
    );
    let late = claims.run(&[], RECORD_RUN).await;
    assert_eq!(late.status.code(), Some(0), "{}", stderr(&late));
    assert!(stderr(&late).contains("runs again only after a new reset"));
    assert_eq!(claims.runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_reaches_the_command_and_the_run_counts_as_failed() {
    let aws = local_aws().await;
    let claims = Claims::local("sigterm", &aws);
    aws.put_parameter(FLAG, "0");
    let winner = claims.spawn(
        &[],
        "trap 'echo terminated > trapped; exit 143' TERM; echo x >> runs; while :; do sleep 0.01; done",
    );
    claims.until_exists("runs").await;
    let pid = winner.id().expect("winner pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let o = winner.wait_with_output().await.expect("winner output");
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    assert_eq!(claims.until_exists("trapped").await.trim(), "terminated");
    assert_eq!(
        aws.parameter(FLAG).map(|p| p.value).as_deref(),
        Some("failed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_to_claim_and_bad_input_are_explained() {
    let aws = local_aws().await;
    let claims = Claims::local("errors", &aws);

    let missing = claims.run(&["--wait"], RECORD_RUN).await;
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(stderr(&missing).contains(&format!("SSM parameter {FLAG} does not exist")));

    aws.put_parameter(FLAG, "banana");
    let banana = claims.run(&[], RECORD_RUN).await;
    assert_eq!(banana.status.code(), Some(2), "{}", stderr(&banana));
    assert!(
        stderr(&banana).contains("holds \"banana\""),
        "{}",
        stderr(&banana)
    );

    aws.put_parameter(FLAG, "1");
    let done = claims.run(&["--wait"], RECORD_RUN).await;
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    assert!(stderr(&done).contains("already ran and succeeded"));

    let bad = Command::new(BIN)
        .args(["claim", "--parameter", FLAG, "make", "migrate"])
        .output()
        .await
        .expect("claimer output");
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("put the command after `--`"));
    assert!(stderr(&bad).contains("usage: migrate-once claim"));

    aws.put_parameter(FLAG, "0");
    let absent = claims.run(&[], "exec /no/such/migrate").await;
    assert_eq!(absent.status.code(), Some(127), "{}", stderr(&absent));
    assert_eq!(
        aws.parameter(FLAG).map(|p| p.value).as_deref(),
        Some("failed")
    );
    assert_eq!(claims.runs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_call_names_the_ssm_action_and_the_parameter() {
    let scenario = json!({
        "parameters": [{"name": FLAG, "value": "0"}],
        "faults": [{"operation": "PutParameter", "calls": "all", "fault": "accessDenied"}]
    });
    let aws = match Scenario::from_json(&scenario.to_string()) {
        Ok(s) => LocalAws::start(s).await.expect("local control plane"),
        Err(e) => panic!("{e}"),
    };
    let claims = Claims::local("denied", &aws);
    let o = claims.run(&[], RECORD_RUN).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let text = stderr(&o);
    assert!(
        text.contains(&format!("ssm:PutParameter on {FLAG}/claims/1-")) && text.contains("denied"),
        "{text}"
    );
    assert!(text.contains(&format!("{FLAG}/claims/*")), "{text}");
    assert_eq!(claims.runs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_resets_the_flag_and_then_one_instance_of_many_migrates() {
    let path = format!(
        "{}/tests/scenarios/success.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut scenario: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("scenario")).expect("json");
    scenario["userParameters"]["resetParameters"] = json!([FLAG]);
    scenario["parameters"] = json!([{"name": FLAG, "value": "1"}]);
    let aws = match Scenario::from_json(&scenario.to_string()) {
        Ok(s) => LocalAws::start(s).await.expect("local control plane"),
        Err(e) => panic!("{e}"),
    };
    let claims = Claims::local("deployment", &aws);
    // Before the deployment: nothing was reset, nobody runs it.
    let early = claims.crowd(4, RECORD_RUN).await;
    assert!(
        early.iter().all(|o| o.status.code() == Some(0)),
        "{}",
        explain(&early)
    );
    assert_eq!(claims.runs(), 0);

    let host = FunctionHost::for_scenario(&aws, BIN).expect("function binary");
    let result = tokio::time::timeout(
        Duration::from_secs(40),
        PipelineDriver::new(&aws, &host).run_default(),
    )
    .await
    .unwrap_or_else(|_| panic!("the deployment did not end\n{}", host.logs()));
    assert!(result.succeeded(), "{result:?}\n{}", host.logs());
    assert_eq!(aws.parameter(FLAG).map(|p| p.value).as_deref(), Some("0"));

    let outputs = claims.crowd(50, RECORD_RUN).await;
    assert_one_run(&outputs, 0, &claims);
    assert_eq!(aws.parameter(FLAG).map(|p| p.value).as_deref(), Some("1"));
}

/// A control plane whose SSM has `FLAG` at `"0"` and misbehaves as
/// `faults` say; claimers retry each call twice with 1 ms backoff.
async fn faulty(test: &str, faults: Value) -> (LocalAws, Claims) {
    let scenario = json!({
        "parameters": [{"name": FLAG, "value": "0"}],
        "faults": faults
    });
    let aws = match Scenario::from_json(&scenario.to_string()) {
        Ok(s) => LocalAws::start(s).await.expect("local control plane"),
        Err(e) => panic!("{e}"),
    };
    let mut env = aws.sdk_environment();
    env.push(("AWS_MAX_ATTEMPTS".into(), "2".into()));
    env.push(("AWS_RETRY_INITIAL_BACKOFF_MS".into(), "1".into()));
    let claims = Claims::new(test, env);
    (aws, claims)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_was_lost_still_wins_for_its_creator() {
    // The first create is applied but its answer is lost; the SDK's retry
    // gets ParameterAlreadyExists. That claimer created the record, so it
    // has won: somebody must run the command, and only once.
    let faults = json!([{"operation": "PutParameter", "calls": [1], "fault": "lostAnswer"}]);
    let (aws, claims) = faulty("lost-create", faults).await;
    let children: Vec<Child> = (0..6)
        .map(|i| {
            let options: &[&str] = if i % 2 == 0 {
                &[]
            } else {
                &["--wait", "--timeout", "5"]
            };
            claims.spawn(options, RECORD_RUN)
        })
        .collect();
    let mut outputs = Vec::new();
    for child in children {
        outputs.push(child.wait_with_output().await.expect("claimer output"));
    }
    assert_one_run(&outputs, 0, &claims);
    assert_eq!(aws.parameter(FLAG).map(|p| p.value).as_deref(), Some("1"));
    assert!(
        aws.calls_of("PutParameter")[0].error.is_some(),
        "the fault hit the first create"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_winner_whose_confirming_read_fails_reads_again_and_runs_the_command() {
    // Calls: GetParameter 1 reads "0", the create wins, GetParameter 2 and
    // its SDK retry (3) answer 500. Unknown is not failed: the winner reads
    // again instead of exiting 2 with the claim held.
    let faults = json!([{"operation": "GetParameter", "calls": [2, 3], "fault": "http500"}]);
    let (aws, claims) = faulty("confirm-retried", faults).await;
    let o = claims.run(&[], RECORD_RUN).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(claims.runs(), 1, "{}", stderr(&o));
    assert_eq!(aws.parameter(FLAG).map(|p| p.value).as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_winner_that_cannot_confirm_gives_the_claim_back() {
    // The confirming read is refused for good: the winner exits 2 without
    // running the command, and gives the reset back so that the next
    // claimer runs it instead of finding a claim nobody acts on.
    let faults = json!([{"operation": "GetParameter", "calls": [2], "fault": "accessDenied"}]);
    let (aws, claims) = faulty("confirm-denied", faults).await;
    let first = claims.run(&[], RECORD_RUN).await;
    assert_eq!(first.status.code(), Some(2), "{}", stderr(&first));
    assert!(stderr(&first).contains("denied"), "{}", stderr(&first));
    assert_eq!(claims.runs(), 0);
    let next = claims.run(&[], RECORD_RUN).await;
    assert_eq!(next.status.code(), Some(0), "{}", stderr(&next));
    assert_eq!(claims.runs(), 1, "{}{}", stderr(&first), stderr(&next));
    assert_eq!(aws.parameter(FLAG).map(|p| p.value).as_deref(), Some("1"));
}

/// moto's SSM server on a free port, or `None` (with a skip line) when it is
/// not installed — except in CI, where its absence fails the test.
async fn start_moto() -> Option<(Child, String)> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("moto_server"))
            .find(|p| p.is_file())
    });
    let Some(path) = found else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "moto_server is not on PATH (CI=true): .ci/install-tools installs it (pip install 'moto[server]')"
        );
        eprintln!(
            "SKIP claim against moto: moto_server is not on PATH (pip install 'moto[server]')"
        );
        return None;
    };
    let mut child = Command::new(&path)
        .args(["-H", "127.0.0.1", "-p", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
    let stderr = child.stderr.take().expect("piped stderr");
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(i) = line.find("http://") {
                return line[i..].split_whitespace().next().map(str::to_owned);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_else(|| panic!("moto_server did not start"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Some((child, url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_claimers_run_the_command_once_per_reset_against_moto() {
    let Some((_moto, url)) = start_moto().await else {
        return;
    };
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", url.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let claims = Claims::new("moto", env);
    let reset = || async {
        let answer = aws_call(
            &url,
            "AmazonSSM.PutParameter",
            &json!({"Name": FLAG, "Value": "0", "Type": "String", "Overwrite": true}),
        )
        .await
        .expect("moto PutParameter");
        assert_eq!(answer.status, 200, "{}", answer.body);
    };
    for round in 0..5 {
        reset().await;
        let outputs = claims.crowd(50, RECORD_RUN).await;
        assert_one_run(&outputs, round, &claims);
    }
    let value = aws_call(&url, "AmazonSSM.GetParameter", &json!({"Name": FLAG}))
        .await
        .expect("moto GetParameter");
    let value: Value = serde_json::from_str(&value.body).expect("json");
    assert_eq!(value["Parameter"]["Value"], "1");
}
