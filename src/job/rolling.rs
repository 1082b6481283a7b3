//! Rolling the services after the migration (SPEC §4b), as the state
//! machine does it: one `UpdateService` per service per action run, then
//! following each new deployment by its id through continuation tokens.
//!
//! `UpdateService` takes no client token and every call starts a
//! deployment, so each is claimed first: `<stateParameter>/roll/<run>-<i>`
//! ([`state::roll_claim_name`]), created by exactly one invocation of the
//! action run, whose value starts with the time it was made. Every
//! service's revision is planned before the first claim (a bad artifact or
//! service rolls nothing); the claim's creator registers the revision (or
//! finds the one registered for the same source and images) and sends the
//! update once. Anyone else finding the claim — a duplicate, a late
//! delivery, a resumption after a crash — takes the *oldest* deployment the
//! service started since the claim ([`roll::deployment_since`]: a rollback
//! comes after ours); if there is none yet, the creator may be sending it
//! right now (wait), or died before it reached ECS: after
//! [`state::TAKEOVER_SECS`], whoever creates the takeover claim sends it.
//! A stage retry is a new run with new claims: it rolls again, and the
//! migration, already applied, is not run again.
//!
//! The migration's lock was released when the migration ended; rolling
//! holds nothing.

use std::collections::BTreeMap;

use tracing::{info, warn};

use super::{Deployment, Invocation, epoch_secs, in_progress, now, retry_later, text};
use crate::artifact;
use crate::failure::Failure;
use crate::report::Report;
use crate::revision::{self, RegisterSpec};
use crate::roll::{self, RollFailure, RollPlan, ServiceView, UpdateSpec};
use crate::state::{self, State, claimed_at};
use crate::task::Container;
use crate::token::{Phase, Roll};

/// Clock skew allowed between our claim time and ECS's `createdAt`.
const SKEW_SECS: f64 = 5.0;
/// A followed deployment ECS does not list yet is waited for this long
/// after the roll started (DescribeServices is eventually consistent).
const UNLISTED_GRACE_SECS: u64 = 60;
/// Busy AWS answers in a row before the roll gives up.
const MAX_BUSY: u32 = 30;

impl Deployment {
    /// What a succeeded migration reports: its success, or — with `deploy`
    /// — the start of the roll, which reports it at the end.
    pub(super) async fn succeeded(
        &self,
        inv: &Invocation<'_>,
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
            followed: Vec::new(),
            started_at: epoch_secs(now()),
            logs: container.logs.clone(),
            already_applied: summary.starts_with(text::ALREADY_APPLIED),
            busy: 0,
        };
        self.roll(inv, roll).await
    }

    /// Makes the updates still to be made, then looks at every followed
    /// deployment once and reports.
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
        let ecs = &inv.clients.ecs;
        let cluster = &self.config.cluster;
        let views = match roll::describe(ecs, cluster, &deploy.services).await {
            Ok(views) => views,
            Err(failure) => return self.roll_later(roll, failure),
        };
        if roll.followed.len() < deploy.services.len() {
            if let Err(failure) = self.update_services(inv, &mut roll, &views).await {
                return self.roll_later(roll, failure);
            }
            let started: Vec<String> = self
                .followed(&roll)
                .iter()
                .map(|(s, id)| format!("{} ({id})", roll::service_name(s)))
                .collect();
            return in_progress(
                Phase::Roll(Roll { busy: 0, ..roll }),
                format!("Migration done; rolling {}", started.join(", ")),
                Some(50),
                None,
            );
        }
        let followed = self.followed(&roll);
        // The roll's clock starts with the earliest of our start and ECS's
        // `createdAt` of the deployments followed.
        let started_at = views
            .iter()
            .flat_map(|v| &v.deployments)
            .filter(|d| roll.followed.contains(&d.id))
            .filter_map(|d| d.created_at)
            .fold(roll.started_at, |min, at| min.min(at.max(0.0) as u64));
        let now = epoch_secs(now());
        match roll::plan_roll(&followed, &views, started_at, now, deploy.timeout_seconds) {
            RollPlan::Done => {
                info!(?followed, "roll completed");
                self.rolled(inv, &roll, &followed).await
            }
            RollPlan::Wait { progress, percent } => in_progress(
                Phase::Roll(Roll { busy: 0, ..roll }),
                roll::progress_summary(&progress),
                Some(50 + percent / 2),
                None,
            ),
            RollPlan::Failed {
                deployment_id,
                why: RollFailure::Gone { .. },
                ..
            } if now.saturating_sub(roll.started_at) < UNLISTED_GRACE_SECS => in_progress(
                Phase::Roll(Roll { busy: 0, ..roll }),
                format!("Rolling: waiting for ECS to list deployment {deployment_id}"),
                Some(50),
                None,
            ),
            RollPlan::Failed {
                service,
                deployment_id,
                why,
            } => {
                let events = views
                    .iter()
                    .find(|v| v.name == service)
                    .map(|v| v.events.clone())
                    .unwrap_or_default();
                let stopped = roll::stopped_reasons(ecs, cluster, &service, &deployment_id)
                    .await
                    .unwrap_or_else(|failure| {
                        warn!(%failure, "could not read the failed deployment's stopped tasks");
                        Vec::new()
                    });
                Err(Failure::Job(roll::failure_message(
                    &service,
                    &deployment_id,
                    &why,
                    &events,
                    &stopped,
                )))
            }
        }
    }

    /// `(service, deployment id)` of the deployments followed so far.
    fn followed(&self, roll: &Roll) -> Vec<(String, String)> {
        let services = self.config.deploy.iter().flat_map(|d| &d.services);
        services
            .cloned()
            .zip(roll.followed.iter().cloned())
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
            Err(failure) => return self.roll_later(roll.clone(), failure),
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
    /// this action run (module docs); each deployment id is pushed to
    /// `roll.followed` as soon as it is known.
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
        for service in &services[roll.followed.len()..] {
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
            let index = roll.followed.len();
            let name = state::roll_claim_name(&config.state_parameter, &roll.action_job, index);
            if let Some(other) = state::claim_mine(ssm, &name, &inv.claim_value()).await? {
                let since = claimed_at(Some(&other));
                if let Some(id) = roll::deployment_since(view, since as f64 - SKEW_SECS) {
                    roll.followed.push(id);
                    continue;
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
            let id = roll::update(ecs, &spec).await?;
            info!(service = %view.name, deployment = %id, task_definition = ?task_definition, "service updated");
            roll.followed.push(id);
        }
        Ok(())
    }

    /// A busy or unanswered AWS call while rolling: try again shortly, up to
    /// [`MAX_BUSY`] times in a row; anything else fails the action.
    fn roll_later(&self, roll: Roll, failure: Failure) -> Result<Report, Failure> {
        let Some(why) = retry_later(&failure) else {
            return Err(failure);
        };
        if roll.busy + 1 >= MAX_BUSY {
            return Err(failure);
        }
        in_progress(
            Phase::Roll(Roll {
                busy: roll.busy + 1,
                ..roll
            }),
            format!("Rolling the services: AWS is busy ({why}); trying again shortly"),
            None,
            None,
        )
    }
}
