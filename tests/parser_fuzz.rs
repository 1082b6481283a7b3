//! A seeded fuzz harness for everything that parses outside input: the
//! events, the UserParameters and `MIGRATE_ONCE_*` values, and continuation
//! tokens. Inputs are random JSON values and byte-level mutations of the real
//! fixtures; the property is "a clear error or a value, never a panic".
//!
//! The seed is printed; rerun a failure with `FUZZ_SEED=<seed>`.

use migrate_once::config;
use migrate_once::event;
use migrate_once::token::Phase;
use serde_json::{Map, Value};

/// xorshift64*: small, deterministic, good enough to explore inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "",
    "x",
    "#{codepipeline.PipelineExecutionId}",
    "/migrate-once/a",
    "false",
    "true",
    "once",
    "always",
    "FARGATE",
    "é",
    "\u{0}",
    "9999999999999999999999",
    "-1",
    "{",
    "[",
    "\"",
    "lock",
    "/",
    "//",
];

fn value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => Value::from(rng.next() as i64 >> rng.below(64)),
        3 => Value::from((rng.next() as f64) / 1e9 - 1e9),
        4 => Value::String(rng.pick(WORDS).repeat(1 + rng.below(3))),
        5 => Value::Array((0..rng.below(4)).map(|_| value(rng, depth + 1)).collect()),
        _ => {
            let mut object = Map::new();
            for _ in 0..rng.below(5) {
                let key = if rng.below(2) == 0 {
                    rng.pick(config::FIELDS)
                } else {
                    rng.pick(WORDS)
                };
                object.insert(key.to_owned(), value(rng, depth + 1));
            }
            Value::Object(object)
        }
    }
}

/// Flips, drops or duplicates a few bytes of `text`.
fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len());
        match rng.below(3) {
            0 => bytes[at] = (rng.next() & 0x7f) as u8,
            1 => {
                bytes.remove(at);
            }
            _ => {
                let b = bytes[at];
                bytes.insert(at, b);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

const FIXTURES: &[&str] = &[
    include_str!("../events/job-start.json"),
    include_str!("../events/job-continue.json"),
    include_str!("../events/job-sam-generated.json"),
    include_str!("../events/job-bad-config.json"),
    include_str!("../events/action-failed.json"),
    include_str!("../events/pipeline-stopped.json"),
    include_str!("../events/rerun-requested.json"),
];

#[test]
fn parsers_never_panic() {
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("FUZZ_SEED={seed}");
    let mut rng = Rng(seed);
    let mut recognised = 0;
    for _ in 0..20_000 {
        // Config: a random object as UserParameters, random env values.
        let user = value(&mut rng, 0).to_string();
        let env_field = rng.pick(config::FIELDS);
        let env_value = value(&mut rng, 2).to_string();
        let env = [(config::env_name(env_field), env_value)];
        if let Err(e) = config::resolve(
            Some(&user),
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ) {
            assert!(!e.problems.is_empty() && e.problems.iter().all(|p| !p.is_empty()));
        }
        let _ = config::resolve(Some(&mutate(&mut rng, &user)), []);

        // Tokens: random JSON, and mutations of a real one.
        let _ = Phase::decode(&value(&mut rng, 0).to_string());
        let _ = Phase::decode(&mutate(
            &mut rng,
            r#"{"v":1,"p":"watch","d":"d","a":1,"n":1,"t":"arn:t","c":"app","l":["/g","p"]}"#,
        ));

        // Events: mutated fixtures, and fixtures with a random detail.
        let fixture = FIXTURES[rng.below(FIXTURES.len())];
        if let Ok(json) = serde_json::from_str::<Value>(&mutate(&mut rng, fixture)) {
            recognised += usize::from(event::parse(json).is_ok());
        }
        let mut json: Value = serde_json::from_str(fixture).unwrap();
        json["detail"] = value(&mut rng, 0);
        let _ = event::parse(json);
    }
    assert!(recognised > 0, "mutations should not all be rejected");
}
