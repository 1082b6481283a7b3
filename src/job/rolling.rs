//! Rolling the services after the migration (SPEC §4b), as the state
//! machine does it: one `UpdateService` per service per action run, then
//! following each update by what ECS says, through continuation tokens.
//!
//! `UpdateService` takes no client token and every call starts a
//! deployment, so each is claimed first: `<stateParameter>/roll/<run>-<i>`
//! ([`state::roll_claim_name`]), created by exactly one invocation of the
//! action run, whose value starts with the time it was made. Every
//! service's revision is planned before the first claim (a bad artifact or
//! service rolls nothing); the claim's creator registers the revision (or
//! finds the one registered for the same source and images) and sends the
//! update, once: no SDK retry (only a throttled refusal is tried again).
//! When its answer is lost, the update is followed without an id
//! ([`Rolled::id`] `None`) and found by looking ([`roll::judge`]), never
//! sent again.
//!
//! Anyone else finding the claim — a duplicate, a Lambda retry after a
//! crash, a late copy of a job — looks instead: when ECS shows anything
//! since the claim ([`roll::evidence_since`]: a deployment created since,
//! including one a rollback has since taken off `PRIMARY`; an event about a
//! failed deployment or a rollback; a current service deployment created
//! since), the update happened and is followed (and a late copy after the
//! action ended only re-reports what it finds). Only when ECS shows nothing
//! at all may the creator have died before its update reached ECS: it may
//! still be sending it (wait), and from [`state::TAKEOVER_SECS`] on,
//! whoever creates the takeover claim sends it — but never once the claim
//! is [`TAKEOVER_UNTIL_SECS`] old, when the run that made it is over. A
//! stage retry is a new run with new claims: it rolls again, and the
//! migration, already applied, is not run again.
//!
//! Only a job CodePipeline can still take a report for updates anything.
//! The job that sees the migration succeed hands the updates to the next
//! job, which CodePipeline creates only once it took that report: a copy
//! of an already reported job (a late or duplicate delivery) has its report
//! refused and starts nothing. And a job whose token was handed out more
//! than [`LATE_SECS`] ago is past CodePipeline's job timeout: it makes no
//! update either, and hands the roll on with a fresh token (which only a
//! live action run turns into a job).
//!
//! The roll waits as the migration does ([`Invocation::wait_until`]): looks
//! 1, 2, 4 … 10 s apart within one invocation, never past the moment a
//! service times out, and a last one when `waitSeconds` is up; then a
//! continuation token.
//!
//! The migration's lock was released when the migration ended; rolling
//! holds nothing.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use tracing::{info, warn};

use super::{Deployment, Invocation, epoch_secs, in_progress, now, retry_later, text};
use crate::artifact;
use crate::failure::Failure;
use crate::outcome::human;
use crate::report::Report;
use crate::revision::{self, RegisterSpec};
use crate::roll::{self, HistoryView, RollPlan, Sent, ServiceView, UpdateSpec};
use crate::state::{self, State, claimed_at};
use crate::task::Container;
use crate::token::{Phase, Roll, Rolled};

/// Longest pause between two looks within one invocation (as the
/// migration's watch).
const MAX_POLL_DELAY: Duration = Duration::from_secs(10);
/// The least time left worth one more look before the continuation token.
const LAST_LOOK: Duration = Duration::from_millis(250);
/// Busy AWS answers in a row before the roll gives up.
const MAX_BUSY: u32 = 30;
/// A claimed update that ECS shows no trace of is taken over only while
/// the claim is younger than this: longer than Lambda's retries of a
/// crashed invocation (up to 15 minutes of run time and about 3 minutes
/// between deliveries). An older claim belongs to a run that is over: a
/// late copy of one of its jobs must change nothing.
pub const TAKEOVER_UNTIL_SECS: u64 = 20 * 60;

/// A job whose token was handed out longer ago than this is a late copy:
/// CodePipeline takes no report for a job past its timeout (20 minutes, as
/// local-aws models it), less a margin for the calls before an update.
pub const LATE_SECS: u64 = 18 * 60;

/// The roll handed to the next job, stamped with the time it is handed out.
fn handed(roll: Roll) -> Phase {
    Phase::Roll(Roll {
        issued_at: epoch_secs(now()),
        ..roll
    })
}

fn epoch_f64() -> f64 {
    now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl Deployment {
    /// What a succeeded migration reports: its success, or — with `deploy`
    /// — the roll to come, which reports it at the end. The updates are
    /// left to the next job (module docs).
    pub(super) async fn succeeded(
        &self,
        _inv: &Invocation<'_>,
        action_job: &str,
        record: &State,
        container: &Container,
        report: Report,
    ) -> Result<Report, Failure> {
        let Report::Succeeded { summary, .. } = &report else {
            return Ok(report);
        };
        if self.config.deploy.is_none() {
            return Ok(report);
        }
        let roll = Roll {
            deployment: self.id.clone(),
            action_job: action_job.to_owned(),
            seq: record.seq,
            services: Vec::new(),
            started_at: epoch_secs(now()),
            issued_at: 0,
            logs: container.logs.clone(),
            already_applied: summary.starts_with(text::ALREADY_APPLIED),
            busy: 0,
        };
        // The updates are the next job's: CodePipeline makes it only once
        // it took this report, so a copy of this job delivered after the
        // run ended (its report refused) updates nothing.
        let services: Vec<&str> = self
            .config
            .deploy
            .iter()
            .flat_map(|d| &d.services)
            .map(|s| roll::service_name(s))
            .collect();
        in_progress(
            handed(roll),
            format!("Migration done; rolling {} next", services.join(", ")),
            Some(50),
            None,
        )
    }

    /// Makes the updates still to be made, then follows every update for
    /// up to `waitSeconds` and reports.
    pub(super) async fn roll(
        &self,
        inv: &Invocation<'_>,
        mut roll: Roll,
    ) -> Result<Report, Failure> {
        let Some(deploy) = &self.config.deploy else {
            return Err(Failure::Configuration(
                "this action is rolling services, but its configuration no longer has `deploy`; retry the stage".into(),
            ));
        };
        let services = &deploy.services;
        let ecs = &inv.clients.ecs;
        let cluster = &self.config.cluster;
        let until = inv.wait_until(self.config.wait_seconds, now());
        let mut delay = Duration::from_secs(1);
        loop {
            let views = match roll::describe(ecs, cluster, services).await {
                Ok(views) => views,
                Err(failure) => return self.roll_later(inv, roll, failure).await,
            };
            if roll.services.len() < services.len() {
                let age = epoch_secs(now()).saturating_sub(roll.issued_at);
                if roll.issued_at > 0 && age > LATE_SECS {
                    // This job cannot be reported any more, unless
                    // CodePipeline's timeout is longer than we think: then
                    // the next job, with a fresh token, makes the updates.
                    warn!(
                        age,
                        "a copy of a job past CodePipeline's job timeout: no update"
                    );
                    return in_progress(
                        handed(roll),
                        format!(
                            "Rolling the services: this job is {} old; the next one updates them",
                            human(age)
                        ),
                        Some(50),
                        None,
                    );
                }
                if let Err(failure) = self.update_services(inv, &mut roll, &views).await {
                    return self.roll_later(inv, roll, failure).await;
                }
                roll.busy = 0;
                if now() + delay < until {
                    continue;
                }
                let started: Vec<String> = services
                    .iter()
                    .zip(&roll.services)
                    .map(|(s, r)| match &r.id {
                        Some(id) => format!("{} ({id})", roll::service_name(s)),
                        None => roll::service_name(s).to_owned(),
                    })
                    .collect();
                return in_progress(
                    handed(roll),
                    format!("Migration done; rolling {}", started.join(", ")),
                    Some(50),
                    None,
                );
            }
            let histories = self.histories(inv, &roll, &views).await;
            let at = epoch_f64();
            let (next, plan) = roll::plan_roll(
                services,
                &roll.services,
                &views,
                &histories,
                at,
                deploy.timeout_seconds,
            );
            roll.services = next;
            roll.busy = 0;
            match plan {
                RollPlan::Done => {
                    let followed = self.followed(&roll);
                    info!(?followed, "roll completed");
                    return self.rolled(inv, &roll, &followed).await;
                }
                RollPlan::Wait { progress, percent } => {
                    // The next look: paced as the migration's watch paces
                    // its own, never after a service times out, and a last
                    // one at the end of what this invocation may wait.
                    let pause = progress
                        .iter()
                        .filter(|p| !p.completed)
                        .map(|p| p.times_out_at - at + 0.05)
                        .fold(delay.as_secs_f64(), f64::min)
                        .max(0.05);
                    let pause = Duration::from_secs_f64(pause);
                    if now() + pause < until {
                        tokio::time::sleep(pause).await;
                        delay = (delay * 2).min(MAX_POLL_DELAY);
                        continue;
                    }
                    let left = until.duration_since(now()).unwrap_or_default();
                    if left >= LAST_LOOK {
                        tokio::time::sleep(left).await;
                        continue;
                    }
                    return in_progress(
                        handed(roll),
                        roll::progress_summary(&progress),
                        Some(50 + percent / 2),
                        None,
                    );
                }
                RollPlan::Failed {
                    service,
                    deployment_id,
                    why,
                } => {
                    warn!(%service, ?deployment_id, ?why, "roll failed");
                    let events = views
                        .iter()
                        .find(|v| v.name == service)
                        .map(|v| v.events.clone())
                        .unwrap_or_default();
                    let stopped = match &deployment_id {
                        Some(id) => roll::stopped_reasons(ecs, cluster, &service, id)
                            .await
                            .unwrap_or_else(|failure| {
                                warn!(%failure, "could not read the failed deployment's stopped tasks");
                                Vec::new()
                            }),
                        None => Vec::new(),
                    };
                    return Err(Failure::Job(roll::failure_message(
                        &service,
                        deployment_id.as_deref(),
                        &why,
                        &events,
                        &stopped,
                    )));
                }
            }
        }
    }

    /// The current service deployment of each service whose look lists
    /// nothing of ours (`deployments[]` may no longer show a rolled-back
    /// deployment; ECS's history does). Best effort: without it, the events
    /// and [`roll::MISSES`] still decide.
    async fn histories(
        &self,
        inv: &Invocation<'_>,
        roll: &Roll,
        views: &[ServiceView],
    ) -> Vec<Option<HistoryView>> {
        let services = self.config.deploy.iter().flat_map(|d| &d.services);
        let mut histories = Vec::new();
        for (service, rolled) in services.zip(&roll.services) {
            let view = views.iter().find(|v| v.name == roll::service_name(service));
            let arn = view
                .filter(|v| roll::unlisted(rolled, v))
                .and_then(|v| v.current_service_deployment.as_deref());
            let history = match arn {
                Some(arn) => roll::history(&inv.clients.ecs, arn)
                    .await
                    .unwrap_or_else(|failure| {
                        warn!(%failure, "could not read the service deployment");
                        None
                    }),
                None => None,
            };
            histories.push(history);
        }
        histories
    }

    /// `(service, deployment id)` of the deployments followed.
    fn followed(&self, roll: &Roll) -> Vec<(String, String)> {
        let services = self.config.deploy.iter().flat_map(|d| &d.services);
        services
            .cloned()
            .zip(
                roll.services
                    .iter()
                    .map(|r| r.id.clone().unwrap_or_default()),
            )
            .collect()
    }

    /// The final success: the migration's (from its record) and the roll's.
    async fn rolled(
        &self,
        inv: &Invocation<'_>,
        roll: &Roll,
        followed: &[(String, String)],
    ) -> Result<Report, Failure> {
        let sp = &self.config.state_parameter;
        let record = match state::read(&inv.clients.ssm, sp, roll.seq).await {
            Ok(record) => record,
            Err(failure) => return self.roll_later(inv, roll.clone(), failure).await,
        };
        let (mut summary, mut outputs, task_arn) = match record {
            Some(record) => {
                let container = Container {
                    name: record.container.clone().unwrap_or_default(),
                    logs: roll.logs.clone(),
                };
                let report = match roll.already_applied {
                    true => text::already_applied(&record, &container),
                    false => text::success(&record, &container, None),
                };
                match report {
                    Report::Succeeded {
                        summary,
                        outputs,
                        task_arn,
                    } => (summary, outputs, task_arn),
                    _ => unreachable!("text::success reports success"),
                }
            }
            None => ("Migration finished".to_owned(), BTreeMap::new(), None),
        };
        summary.push_str("; then ");
        summary.push_str(&roll::done_summary(followed));
        outputs.extend(roll::outputs(followed));
        Ok(Report::Succeeded {
            summary,
            task_arn,
            outputs,
        })
    }

    /// One `UpdateService` per service of `deploy` still to be updated in
    /// this action run (module docs); each update is pushed to
    /// `roll.services` as soon as it was made or found made.
    async fn update_services(
        &self,
        inv: &Invocation<'_>,
        roll: &mut Roll,
        views: &[ServiceView],
    ) -> Result<(), Failure> {
        let config = &self.config;
        let services = config
            .deploy
            .as_ref()
            .map(|d| d.services.as_slice())
            .unwrap_or_default();
        let ecs = &inv.clients.ecs;
        let ssm = &inv.clients.ssm;
        // Everything that can be wrong is found before anything is claimed.
        let data = &inv.job.data;
        let artifacts = &data.input_artifacts;
        let credentials = data.artifact_credentials.as_ref();
        let images =
            artifact::resolve(&inv.clients.s3, &config.images, artifacts, credentials).await?;
        let mut plans: Vec<(&ServiceView, Option<RegisterSpec>)> = Vec::new();
        for service in &services[roll.services.len()..] {
            let view = views
                .iter()
                .find(|v| v.name == roll::service_name(service) && v.status == "ACTIVE")
                .ok_or_else(|| {
                    Failure::Configuration(format!(
                        "`deploy.services`: service `{}` was not found (ACTIVE) in cluster `{}`",
                        roll::service_name(service),
                        config.cluster
                    ))
                })?;
            let spec = match (&images, &view.task_definition) {
                (Some(set), Some(current)) => {
                    let described = revision::describe(ecs, current).await?;
                    revision::plan_service(&view.name, &described, set, &self.id)?
                }
                _ => None,
            };
            plans.push((view, spec));
        }
        // Registered in this invocation, by digest: services sharing a
        // source and images share a revision.
        let mut registered: BTreeMap<String, String> = BTreeMap::new();
        for (view, spec) in plans {
            let index = roll.services.len();
            let name = state::roll_claim_name(&config.state_parameter, &roll.action_job, index);
            if let Some(other) = state::claim_mine(ssm, &name, &inv.claim_value()).await? {
                let since = claimed_at(Some(&other));
                if self.made_since(inv, view, since).await? {
                    roll.services.push(Rolled {
                        since,
                        ..Rolled::default()
                    });
                    continue;
                }
                let age = epoch_secs(now()).saturating_sub(since);
                if age >= TAKEOVER_UNTIL_SECS {
                    return Err(Failure::Job(format!(
                        "The UpdateService of service `{}` was claimed {} ago by another invocation of this action run (`{name}`), and ECS shows no deployment, event or service deployment since: it never took effect, and the run that claimed it is over. Nothing was sent now. Retry the stage to roll the services (the migration, already applied, is not run again).",
                        view.name,
                        human(age)
                    )));
                }
                let (mine, age) = inv.take_over(&name, &other).await?;
                if !mine {
                    return Err(Failure::Unavailable {
                        api: "ecs:UpdateService",
                        detail: format!(
                            "another invocation of this action run is updating service `{}` (claimed {age}s ago); waiting for it",
                            view.name
                        ),
                    });
                }
                warn!(service = %view.name, age, "the update claimed for this service never reached ECS; sending it");
            }
            let task_definition = match spec {
                Some(spec) => Some(match registered.get(&spec.digest) {
                    Some(arn) => arn.clone(),
                    None => {
                        let arn = match revision::find_registered(ecs, &spec, &self.id).await? {
                            Some(arn) => arn,
                            None => revision::register(ecs, &spec).await?,
                        };
                        registered.insert(spec.digest.clone(), arn.clone());
                        arn
                    }
                }),
                None => None,
            };
            let spec = UpdateSpec::new(&config.cluster, &view.name, task_definition.as_deref());
            let since = epoch_secs(now());
            let id = match roll::update(ecs, &spec).await? {
                Sent::Started(id) => {
                    info!(service = %view.name, deployment = %id, task_definition = ?task_definition, "service updated");
                    Some(id)
                }
                Sent::Unanswered(why) => {
                    warn!(service = %view.name, %why, "UpdateService's answer was lost; its deployment is found by looking, never by sending it again");
                    None
                }
            };
            roll.services.push(Rolled {
                id,
                since,
                ..Rolled::default()
            });
        }
        // One listing per action run that rolls: the roll claims of runs
        // no late delivery can ask for go.
        state::clean_roll_claims(ssm, &config.state_parameter, epoch_secs(now())).await;
        Ok(())
    }

    /// Whether ECS shows any update of the service since a claim made at
    /// `since` by another invocation ([`roll::evidence_since`]), asking for
    /// the service's current service deployment when `deployments[]` and
    /// the events show none. An error there is an error: without that
    /// answer, nothing proves the update was not made.
    async fn made_since(
        &self,
        inv: &Invocation<'_>,
        view: &ServiceView,
        since: u64,
    ) -> Result<bool, Failure> {
        let at = since as f64 - roll::SKEW_SECS;
        if roll::evidence_since(view, None, at) {
            return Ok(true);
        }
        let history = match &view.current_service_deployment {
            Some(arn) => roll::history(&inv.clients.ecs, arn).await?,
            None => None,
        };
        Ok(roll::evidence_since(view, history.as_ref(), at))
    }

    /// A busy or unanswered AWS call while rolling: a short jittered pause
    /// (1 s, 2 s, 4 s … up to 32 s, within what this invocation may wait),
    /// then try again in the next invocation, up to [`MAX_BUSY`] times in a
    /// row; anything else fails the action.
    async fn roll_later(
        &self,
        inv: &Invocation<'_>,
        roll: Roll,
        failure: Failure,
    ) -> Result<Report, Failure> {
        let Some(why) = retry_later(&failure) else {
            return Err(failure);
        };
        if roll.busy + 1 >= MAX_BUSY {
            return Err(failure);
        }
        let cap = Duration::from_secs(1 << roll.busy.min(5));
        inv.pause(self.config.wait_seconds, cap).await;
        in_progress(
            handed(Roll {
                busy: roll.busy + 1,
                ..roll
            }),
            format!("Rolling the services: AWS is busy ({why}); trying again shortly"),
            None,
            None,
        )
    }
}
