//! Rolling the services after the migration (SPEC §4b), as the state
//! machine does it: one `UpdateService` per service per action run, then
//! following each new deployment by its id through continuation tokens.
//!
//! `UpdateService` takes no client token and every call starts a
//! deployment, so each is claimed first: `<stateParameter>/roll/<run>-<i>`
//! ([`state::roll_claim_name`]), created by exactly one invocation of the
//! action run, whose value starts with the time it was made. The creator
//! registers the service's revision (found again by its tags if an earlier
//! try registered it) and sends the update once. Anyone else finding the
//! claim — a duplicate, a late delivery, a resumption after a crash — takes
//! the deployment the service started since the claim
//! ([`roll::deployment_since`]); if there is none yet, the creator may be
//! sending it right now (wait), or died before it reached ECS (after
//! [`TAKEOVER_SECS`]: send it). A stage retry is a new run with new claims:
//! it rolls again, and the migration, already applied, is not run again.
//!
//! The migration's lock was released when the migration ended; rolling
//! holds nothing.

use tracing::{info, warn};

use super::{Deployment, Invocation, epoch_secs, in_progress, now, retry_later};
use crate::artifact;
use crate::failure::Failure;
use crate::report::{MAX_SUMMARY, Report, truncate};
use crate::revision;
use crate::roll::{self, RollPlan, ServiceView, UpdateSpec};
use crate::state::{self, claimed_at};
use crate::token::{Phase, Roll};

/// Age after which a roll claim without a deployment since is abandoned.
const TAKEOVER_SECS: u64 = 60;
/// Clock skew allowed between our claim time and ECS's `createdAt`.
const SKEW_SECS: f64 = 5.0;
/// Busy AWS answers in a row before the roll gives up.
const MAX_BUSY: u32 = 30;

impl Deployment {
    /// What a succeeded migration reports: its success, or — with `deploy`
    /// — the start of the roll, which reports it at the end.
    pub(super) async fn succeeded(
        &self,
        inv: &Invocation<'_>,
        action_job: &str,
        report: Report,
    ) -> Result<Report, Failure> {
        let (
            Some(_),
            Report::Succeeded {
                summary, outputs, ..
            },
        ) = (&self.config.deploy, &report)
        else {
            return Ok(report);
        };
        let roll = Roll {
            deployment: self.id.clone(),
            action_job: action_job.to_owned(),
            followed: Vec::new(),
            started_at: epoch_secs(now()),
            migration: summary.clone(),
            outputs: outputs.clone(),
            busy: 0,
        };
        self.roll(inv, roll).await
    }

    /// Starts what is left of the roll's updates, then looks at every
    /// followed deployment once and reports.
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
            match self.update_services(inv, &roll.action_job, &views).await {
                Ok(followed) => roll.followed = followed,
                Err(failure) => return self.roll_later(roll, failure),
            }
            let names: Vec<String> = roll
                .followed
                .iter()
                .map(|(s, id)| format!("{} ({id})", roll::service_name(s)))
                .collect();
            return in_progress(
                Phase::Roll(Roll { busy: 0, ..roll }),
                truncate(
                    &format!("Migration done; rolling {}", names.join(", ")),
                    MAX_SUMMARY,
                ),
                Some(50),
                None,
            );
        }
        // The roll's clock starts with the earliest of our start and ECS's
        // `createdAt` of the deployments followed.
        let started_at = views
            .iter()
            .flat_map(|v| &v.deployments)
            .filter(|d| roll.followed.iter().any(|(_, id)| *id == d.id))
            .filter_map(|d| d.created_at)
            .fold(roll.started_at, |min, at| min.min(at.max(0.0) as u64));
        let now = epoch_secs(now());
        match roll::plan_roll(
            &roll.followed,
            &views,
            started_at,
            now,
            deploy.timeout_seconds,
        ) {
            RollPlan::Done => {
                let mut outputs = roll.outputs.clone();
                outputs.extend(roll::outputs(&roll.followed));
                info!(followed = ?roll.followed, "roll completed");
                Ok(Report::Succeeded {
                    summary: truncate(
                        &format!(
                            "{}; then {}",
                            roll.migration,
                            roll::done_summary(&roll.followed)
                        ),
                        MAX_SUMMARY,
                    ),
                    task_arn: outputs.get("TaskArn").cloned(),
                    outputs,
                })
            }
            RollPlan::Wait { progress, percent } => in_progress(
                Phase::Roll(Roll { busy: 0, ..roll }),
                roll::progress_summary(&progress),
                Some(50 + percent / 2),
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

    /// One `UpdateService` per service of `deploy` in this action run
    /// (module docs); the `(service, deployment id)` pairs, in order.
    async fn update_services(
        &self,
        inv: &Invocation<'_>,
        action_job: &str,
        views: &[ServiceView],
    ) -> Result<Vec<(String, String)>, Failure> {
        let config = &self.config;
        let services = config
            .deploy
            .as_ref()
            .map(|d| d.services.as_slice())
            .unwrap_or_default();
        let view_of = |service: &str| {
            views
                .iter()
                .find(|v| v.name == roll::service_name(service) && v.status == "ACTIVE")
                .ok_or_else(|| {
                    Failure::Configuration(format!(
                        "`deploy.services`: service `{}` was not found (ACTIVE) in cluster `{}`",
                        roll::service_name(service),
                        config.cluster
                    ))
                })
        };
        for service in services {
            view_of(service)?;
        }
        let ssm = &inv.clients.ssm;
        let mut images = None;
        let mut followed = Vec::new();
        for (index, service) in services.iter().enumerate() {
            let view = view_of(service)?;
            let name = state::roll_claim_name(&config.state_parameter, action_job, index);
            let value = inv.claim_value();
            let claimed = state::put(ssm, &name, &value, false).await?;
            let found = if claimed {
                None
            } else {
                state::get(ssm, &name).await?
            };
            if !claimed && found.as_deref() != Some(value.as_str()) {
                let since = claimed_at(found.as_deref());
                if let Some(id) = roll::deployment_since(view, since as f64 - SKEW_SECS) {
                    followed.push((service.clone(), id));
                    continue;
                }
                let age = epoch_secs(now()).saturating_sub(since);
                if age < TAKEOVER_SECS {
                    return Err(Failure::Unavailable {
                        api: "ecs:UpdateService",
                        detail: format!(
                            "another invocation of this action run is updating service `{}` ({age}s ago)",
                            view.name
                        ),
                    });
                }
                warn!(service = %view.name, age, "the update claimed for this service never reached ECS; sending it");
            }
            if images.is_none() {
                let data = &inv.job.data;
                let set = artifact::resolve(
                    &inv.clients.s3,
                    &config.images,
                    &data.input_artifacts,
                    data.artifact_credentials.as_ref(),
                )
                .await?;
                images = Some(set);
            }
            let task_definition = match images.as_ref().and_then(Option::as_ref) {
                Some(set) => self.service_revision(inv, view, set).await?,
                None => None,
            };
            let spec = UpdateSpec::new(&config.cluster, service, task_definition.as_deref());
            let id = roll::update(&inv.clients.ecs, &spec).await?;
            info!(service = %view.name, deployment = %id, task_definition = ?task_definition, "service updated");
            followed.push((service.clone(), id));
        }
        Ok(followed)
    }

    /// The revision a service rolls to: the task definition it runs now
    /// with the pipeline's images, registered once per deployment and
    /// image set (shared with the migration's when it is the same task
    /// definition); `None` when its images are already those.
    async fn service_revision(
        &self,
        inv: &Invocation<'_>,
        view: &ServiceView,
        set: &artifact::ImageSet,
    ) -> Result<Option<String>, Failure> {
        let ecs = &inv.clients.ecs;
        let Some(current) = &view.task_definition else {
            return Ok(None);
        };
        let described = revision::describe(ecs, current).await?;
        let Some(spec) = revision::plan_service(&view.name, &described, set, &self.id)? else {
            return Ok(None);
        };
        if let Some(arn) = revision::find_registered(ecs, &spec, &self.id).await? {
            info!(%arn, service = %view.name, "reusing the revision registered for these images");
            return Ok(Some(arn));
        }
        revision::register(ecs, &spec).await.map(Some)
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
