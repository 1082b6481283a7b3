//! Lambda, as the function meets it: asynchronous invocations delivered at
//! least once (a copy at once, a copy up to 6 h later), retried twice after
//! an error, a crash or a timeout (after 1 and 2 minutes), each delivery in
//! an execution environment of its own or a warm one, each environment with
//! its own clients and its own clock skew. A crashed environment is gone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_async::rt::sleep::{SharedAsyncSleep, TokioSleep};
use aws_smithy_async::time::{SharedTimeSource, TimeSource};
use lambda_runtime::{Context, LambdaEvent};
use migrate_once::clock::Clock;
use migrate_once::{Clients, Function};
use serde_json::Value;

use crate::draw::Delivery;
use crate::note;
use crate::rng::Rng;
use crate::timeline::Timeline;
use crate::wire::{CALLER, Caller, Net, Wire};

/// The function's timeout (template.yaml's `Timeout`).
pub const FUNCTION_TIMEOUT: Duration = Duration::from_secs(660);
/// How long Lambda keeps retrying an event (its maximum event age).
pub const MAX_EVENT_AGE: Duration = Duration::from_secs(6 * 3600);
/// Lambda's own delays before the two retries of an async invocation.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(60), Duration::from_secs(120)];

/// The virtual time of day at the start of every schedule.
pub fn epoch() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_798_761_600) // 2027-01-01T00:00:00Z
}

/// How one delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The handler returned `Ok`.
    Ok,
    /// The handler returned `Err` (Lambda retries).
    Err(String),
    /// The environment crashed under it.
    Crashed,
    /// It ran into the function's timeout.
    TimedOut,
}

/// One delivery: which event (by label), and how it ended.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The job id, or what the EventBridge event was.
    pub label: String,
    /// The delivery's number.
    pub delivery: u64,
    /// How it ended.
    pub ended: Ended,
    /// When it ended, since the schedule began.
    pub at: Duration,
}

struct Env {
    function: Function,
}

/// The Lambda service of one schedule.
pub struct Lambda {
    net: Arc<Net>,
    sdk: SdkConfig,
    started: tokio::time::Instant,
    idle: Mutex<Vec<Env>>,
    rng: Mutex<Rng>,
    behaviour: Delivery,
    deliveries: AtomicU64,
    /// Every delivery that ended.
    pub log: Mutex<Vec<Delivered>>,
    timeline: Arc<Timeline>,
    busy: crate::Busy,
}

/// Reads the calling environment's clock: the SDK signs with the skewed
/// time, as a real environment would.
#[derive(Debug)]
struct EnvTime;

impl TimeSource for EnvTime {
    fn now(&self) -> SystemTime {
        migrate_once::clock::now()
    }
}

impl Lambda {
    /// The Lambda service over `net`.
    pub fn new(
        net: Arc<Net>,
        rng: Rng,
        behaviour: Delivery,
        timeline: Arc<Timeline>,
        busy: crate::Busy,
    ) -> Arc<Lambda> {
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(local_aws::wire::REGION))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                local_aws::FAKE_ACCESS_KEY_ID,
                local_aws::FAKE_SECRET_ACCESS_KEY,
                Some(local_aws::FAKE_SESSION_TOKEN.to_owned()),
                None,
                "sim",
            )))
            .endpoint_url("http://aws.sim")
            .http_client(Wire(net.clone()))
            .time_source(SharedTimeSource::new(EnvTime))
            .sleep_impl(SharedAsyncSleep::new(TokioSleep::new()))
            .retry_config(migrate_once::sdk::retry_config(|_| None))
            .timeout_config(migrate_once::sdk::timeout_config())
            .stalled_stream_protection(
                aws_smithy_runtime_api::client::stalled_stream_protection::StalledStreamProtectionConfig::disabled(),
            )
            .build();
        Arc::new(Lambda {
            net,
            sdk,
            started: tokio::time::Instant::now(),
            idle: Mutex::new(Vec::new()),
            rng: Mutex::new(rng),
            behaviour,
            deliveries: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            timeline,
            busy,
        })
    }

    /// The world behind the function.
    pub fn net(&self) -> &Arc<Net> {
        &self.net
    }

    fn draw<T>(&self, f: impl FnOnce(&mut Rng) -> T) -> T {
        f(&mut self.rng.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Invokes the function asynchronously with `event`: delivered now,
    /// maybe once more at once, maybe once more hours later.
    pub fn invoke(self: &Arc<Self>, label: &str, event: Value) {
        let b = self.behaviour;
        let (copy_now, copy_late, late_by) = self.draw(|rng| {
            (
                rng.chance(b.concurrent_copy),
                rng.chance(b.late_copy),
                rng.range(1, MAX_EVENT_AGE.as_secs()),
            )
        });
        self.spawn_delivery(label, event.clone(), Duration::ZERO);
        if copy_now {
            self.spawn_delivery(label, event.clone(), Duration::from_millis(300));
        }
        if copy_late {
            self.spawn_delivery(label, event, Duration::from_secs(late_by));
        }
    }

    fn spawn_delivery(self: &Arc<Self>, label: &str, event: Value, after: Duration) {
        let lambda = self.clone();
        let label = label.to_owned();
        let busy = self.busy.enter();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            lambda.deliver(&label, event).await;
            drop(busy);
        });
    }

    /// One asynchronous invocation: the first try and Lambda's retries.
    async fn deliver(&self, label: &str, event: Value) {
        for attempt in 0..=RETRY_DELAYS.len() {
            let ended = self.attempt(label, &event).await;
            if ended == Ended::Ok {
                return;
            }
            match RETRY_DELAYS.get(attempt) {
                Some(delay) => tokio::time::sleep(*delay).await,
                None => return,
            }
        }
    }

    async fn attempt(&self, label: &str, event: &Value) -> Ended {
        let delivery = self.deliveries.fetch_add(1, Ordering::Relaxed) + 1;
        let env = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let env = match env {
            Some(env) => env,
            None => self.cold_start(),
        };
        note!(self.timeline, delivery, "delivered {label}");
        let deadline = migrate_once::clock::epoch_secs(self.virtual_now()) * 1000
            + FUNCTION_TIMEOUT.as_millis() as u64;
        let mut context = Context::default();
        context.request_id = format!("req-{delivery}");
        context.deadline = deadline;
        context.invoked_function_arn =
            "arn:aws:lambda:us-east-1:123456789012:function:migrate-once".to_owned();
        let caller = Caller::new(delivery, label);
        let work = CALLER.scope(
            caller.clone(),
            env.function
                .handle(LambdaEvent::new(event.clone(), context)),
        );
        let ended = tokio::select! {
            biased;
            _ = caller.crashed() => Ended::Crashed,
            result = tokio::time::timeout(FUNCTION_TIMEOUT, work) => match result {
                Ok(Ok(_)) => Ended::Ok,
                Ok(Err(e)) => Ended::Err(format!("{e:?}")),
                Err(_) => Ended::TimedOut,
            },
        };
        note!(self.timeline, delivery, "ended: {ended:?}");
        if ended != Ended::Crashed && ended != Ended::TimedOut {
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(env);
        }
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Delivered {
                label: label.to_owned(),
                delivery,
                ended: ended.clone(),
                at: self.started.elapsed(),
            });
        ended
    }

    fn virtual_now(&self) -> SystemTime {
        epoch() + self.started.elapsed()
    }

    fn cold_start(&self) -> Env {
        let (skew, seed) = self.draw(|rng| {
            let max = self.behaviour.skew_millis.max(0) as u64;
            (rng.range(0, 2 * max) as i64 - max as i64, rng.u64())
        });
        let clock = Clock::virtual_at(self.virtual_now(), skew, seed);
        Env {
            function: Function {
                clients: clients(&self.sdk),
                defaults: Vec::new(),
                function_name: "migrate-once".into(),
                clock: Arc::new(clock),
            },
        }
    }
}

/// SigV4 without the signature: the world checks no awsJson signature, and
/// signing is an eighth of the simulator's time. (S3 is still signed: its
/// model checks the artifact credentials.)
#[derive(Debug)]
struct Unsigned;

impl aws_smithy_runtime_api::client::auth::AuthScheme for Unsigned {
    fn scheme_id(&self) -> aws_smithy_runtime_api::client::auth::AuthSchemeId {
        aws_smithy_runtime_api::client::auth::AuthSchemeId::new("sigv4")
    }

    fn identity_resolver(
        &self,
        resolvers: &dyn aws_smithy_runtime_api::client::runtime_components::GetIdentityResolver,
    ) -> Option<aws_smithy_runtime_api::client::identity::SharedIdentityResolver> {
        resolvers.identity_resolver(self.scheme_id())
    }

    fn signer(&self) -> &dyn aws_smithy_runtime_api::client::auth::Sign {
        self
    }
}

impl aws_smithy_runtime_api::client::auth::Sign for Unsigned {
    fn sign_http_request(
        &self,
        _request: &mut aws_smithy_runtime_api::client::orchestrator::HttpRequest,
        _identity: &aws_smithy_runtime_api::client::identity::Identity,
        _endpoint: aws_smithy_runtime_api::client::auth::AuthSchemeEndpointConfig<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _config: &aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        Ok(())
    }
}

/// The clients of one environment, each with a retry token bucket of its
/// own, as a process of its own has.
fn clients(sdk: &SdkConfig) -> Clients {
    use aws_smithy_runtime::client::retries::{RetryPartition, TokenBucket};
    let partition = |name: &str| {
        RetryPartition::custom(name.to_owned())
            .token_bucket(TokenBucket::default())
            .build()
    };
    Clients {
        ssm: aws_sdk_ssm::Client::from_conf(
            aws_sdk_ssm::config::Builder::from(sdk)
                .push_auth_scheme(Unsigned)
                .retry_partition(partition("ssm"))
                .build(),
        ),
        ecs: aws_sdk_ecs::Client::from_conf(
            aws_sdk_ecs::config::Builder::from(sdk)
                .push_auth_scheme(Unsigned)
                .retry_partition(partition("ecs"))
                .build(),
        ),
        pipeline: aws_sdk_codepipeline::Client::from_conf(
            aws_sdk_codepipeline::config::Builder::from(sdk)
                .push_auth_scheme(Unsigned)
                .retry_partition(partition("codepipeline"))
                .build(),
        ),
        logs: aws_sdk_cloudwatchlogs::Client::from_conf(
            aws_sdk_cloudwatchlogs::config::Builder::from(sdk)
                .push_auth_scheme(Unsigned)
                .retry_partition(partition("logs"))
                .build(),
        ),
        s3: migrate_once::artifact::S3::lazy(sdk),
    }
}
