//! The continuation token: what one invocation hands the next through
//! CodePipeline.
//!
//! Compact JSON with a version field, so a token written by an older build is
//! either understood or rejected with a clear message, never misread. It
//! carries only what the next invocation cannot cheaply look up again; the
//! configuration is re-read from the job each time.

use serde::{Deserialize, Serialize};

/// CodePipeline accepts continuation tokens of 1 to 2048 characters.
pub const MAX_LEN: usize = 2048;
/// Version 2: every phase names its attempt record and its action run.
const VERSION: u8 = 2;

/// Where the action is, between two invocations. Every phase carries the
/// first job of its action run (`j`): that is how a repeated delivery of
/// that job is told from a new action run, whatever happened in between.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "p")]
pub enum Phase {
    /// Go on with the claimed attempt `seq`: after waiting for the lock, an
    /// unknown RunTask outcome, or a retry-worthy AWS error before RunTask.
    #[serde(rename = "resume")]
    Resume {
        #[serde(rename = "d")]
        deployment: String,
        #[serde(rename = "j")]
        action_job: String,
        #[serde(rename = "s")]
        seq: u64,
        /// Tries so far whose outcome was unknown or that AWS was too busy for.
        #[serde(rename = "n", default)]
        unknown: u32,
    },
    /// The action's first job could not claim an attempt yet (AWS was
    /// busy): plan again as that job would.
    #[serde(rename = "start")]
    Start {
        #[serde(rename = "d")]
        deployment: String,
        #[serde(rename = "j")]
        action_job: String,
        /// Tries so far that AWS was too busy for.
        #[serde(rename = "n", default)]
        busy: u32,
    },
    /// Attempt `after` failed to start for a transient reason: claim the next.
    #[serde(rename = "retry")]
    Retry {
        #[serde(rename = "d")]
        deployment: String,
        #[serde(rename = "j")]
        action_job: String,
        #[serde(rename = "s")]
        after: u64,
        /// Tries so far that AWS was too busy for.
        #[serde(rename = "n", default)]
        busy: u32,
    },
    /// The migration task is running; check on it.
    #[serde(rename = "watch")]
    Watch(Watch),
    /// The migration succeeded; the services of `deploy` are rolling.
    #[serde(rename = "roll")]
    Roll(Roll),
}

/// What following the roll needs (SPEC §4b): the deployments this action
/// run started, and where the migration's success is recorded (reported
/// with the roll's at the end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Roll {
    #[serde(rename = "d")]
    pub deployment: String,
    #[serde(rename = "j")]
    pub action_job: String,
    /// The succeeded attempt's record.
    #[serde(rename = "s")]
    pub seq: u64,
    /// One per service of `deploy.services` whose `UpdateService` this run
    /// has made (or found made), in order; fewer than the services while
    /// updates remain to be made. (A token of an older build has none: its
    /// continuation finds each update again through its claim.)
    #[serde(rename = "r", default)]
    pub services: Vec<Rolled>,
    /// Epoch seconds when the roll phase began.
    #[serde(rename = "at")]
    pub started_at: u64,
    /// Epoch seconds when this token was handed to CodePipeline: the job
    /// carrying it was created after that, and CodePipeline takes no report
    /// for a job past its timeout — a copy delivered later than that is
    /// late, and makes no update (0 in an older build's token: unknown).
    #[serde(rename = "ia", default)]
    pub issued_at: u64,
    /// `awslogs` group and stream prefix of the migration's container (for
    /// its `LogStream` output).
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<(String, String)>,
    /// The migration was applied by an earlier run (a stage retry).
    #[serde(rename = "a", default, skip_serializing_if = "std::ops::Not::not")]
    pub already_applied: bool,
    /// Tries so far that AWS was too busy for.
    #[serde(rename = "n", default)]
    pub busy: u32,
}

/// One service's update, as the roll follows it (SPEC §4b).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rolled {
    /// The ECS deployment id (`ecs-svc/…`) the update started; `None` while
    /// it is unknown: `UpdateService` was sent but its answer was lost, or
    /// another invocation made it. Found by looking, never by sending again.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Epoch seconds of the update's claim, made just before it was sent:
    /// no deployment of ours is older (give or take clock skew).
    #[serde(rename = "t")]
    pub since: u64,
    /// ECS has listed `id` in the service's `deployments[]`: from now on,
    /// not listing it means rolled back or replaced.
    #[serde(rename = "s", default, skip_serializing_if = "std::ops::Not::not")]
    pub seen: bool,
    /// Looks in a row that listed nothing of ours and showed no reason why.
    #[serde(rename = "m", default, skip_serializing_if = "is_zero")]
    pub misses: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What watching a task needs: which attempt and task, which container
/// decides, and where its logs are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watch {
    #[serde(rename = "d")]
    pub deployment: String,
    #[serde(rename = "j")]
    pub action_job: String,
    #[serde(rename = "s")]
    pub seq: u64,
    #[serde(rename = "a")]
    pub attempt: u32,
    #[serde(rename = "t")]
    pub task_arn: String,
    #[serde(rename = "c")]
    pub container: String,
    /// `awslogs` group and stream prefix of the decisive container.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<(String, String)>,
    /// Epoch seconds when the attempt was claimed (before its RunTask), to
    /// tell ECS's eventual consistency (`MISSING` moments after RunTask)
    /// from a task it forgot.
    #[serde(rename = "at", default)]
    pub since: u64,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    v: u8,
    #[serde(flatten)]
    phase: Phase,
}

impl Phase {
    /// The token text. Fails only if identifiers are absurdly long.
    pub fn encode(&self) -> Result<String, String> {
        let text = serde_json::to_string(&Envelope {
            v: VERSION,
            phase: self.clone(),
        })
        .expect("token serialises");
        if text.len() > MAX_LEN {
            return Err(format!(
                "continuation token would be {} characters, over CodePipeline's {MAX_LEN}; shorten the deployment id",
                text.len()
            ));
        }
        Ok(text)
    }

    /// Reads a token written by [`Phase::encode`].
    pub fn decode(text: &str) -> Result<Phase, String> {
        let envelope: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("continuation token is not one migrate-once wrote ({e})"))?;
        match envelope.get("v").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(VERSION) => {}
            other => {
                return Err(format!(
                    "continuation token has version {other:?}, this build reads version {VERSION}; retry the stage to start over"
                ));
            }
        }
        serde_json::from_value::<Envelope>(envelope)
            .map(|e| e.phase)
            .map_err(|e| format!("continuation token is not one migrate-once wrote ({e})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_compactly() {
        let phase = Phase::Watch(Watch {
            deployment: "6c1f2a0e-7d8b-4a51-9a3c-1f2e3d4c5b6a".into(),
            action_job: "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0".into(),
            seq: 12,
            attempt: 2,
            since: 1_700_000_000,
            task_arn:
                "arn:aws:ecs:eu-west-1:123456789012:task/prod/0a1b2c3d4e5f60718293a4b5c6d7e8f9"
                    .into(),
            container: "app".into(),
            logs: Some(("/ecs/app".into(), "migrate".into())),
        });
        let text = phase.encode().unwrap();
        assert!(text.starts_with(r#"{"v":2,"p":"watch""#), "{text}");
        assert!(text.len() < 400, "{}", text.len());
        assert_eq!(Phase::decode(&text).unwrap(), phase);

        let phase = Phase::Resume {
            deployment: "d".into(),
            action_job: "j".into(),
            seq: 3,
            unknown: 1,
        };
        assert_eq!(Phase::decode(&phase.encode().unwrap()).unwrap(), phase);
    }

    #[test]
    fn a_roll_fits_ten_services_and_reads_an_older_builds_token() {
        let rolled = |i: u64| Rolled {
            id: Some(format!("ecs-svc/{:019}", 1_234_567_890_123_456_789u64 - i)),
            since: 1_764_561_600,
            seen: i.is_multiple_of(2),
            misses: 0,
        };
        let phase = Phase::Roll(Roll {
            deployment: "6c1f2a0e-7d8b-4a51-9a3c-1f2e3d4c5b6a".into(),
            action_job: "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0".into(),
            seq: 12,
            services: (0..10).map(rolled).collect(),
            started_at: 1_764_561_590,
            issued_at: 1_764_561_600,
            logs: Some(("/ecs/app".into(), "migrate".into())),
            already_applied: false,
            busy: 0,
        });
        let text = phase.encode().unwrap();
        assert!(text.len() < 1000, "{}", text.len());
        assert_eq!(Phase::decode(&text).unwrap(), phase);
        let older = r#"{"v":2,"p":"roll","d":"d","j":"j","s":3,"f":["ecs-svc/1"],"at":5,"n":0}"#;
        match Phase::decode(older).unwrap() {
            Phase::Roll(roll) => assert!(roll.services.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_foreign_and_future_tokens() {
        for text in [
            "",
            "abc",
            "{}",
            r#"{"v":3,"p":"watch"}"#,
            r#"{"v":1,"p":"lock","d":"x","n":0}"#,
            r#"{"v":1,"p":"dance"}"#,
            "[1]",
        ] {
            assert!(Phase::decode(text).is_err(), "{text}");
        }
    }

    #[test]
    fn refuses_to_exceed_the_limit() {
        let phase = Phase::Retry {
            deployment: "x".repeat(3000),
            action_job: "j".into(),
            after: 1,
            busy: 0,
        };
        assert!(phase.encode().is_err());
    }
}
