//! The revision an attempt runs (SPEC §4a): the configured task definition,
//! or one registered with the pipeline's images — exactly one per
//! deployment and image set, whatever is retried, duplicated or crashes.
//!
//! RegisterTaskDefinition is not idempotent (every call is a new revision)
//! and takes no client token, so, in this order:
//!
//! 1. an attempt of this deployment that recorded a revision for the same
//!    images: that one (a start retry, a rerun, a stage retry);
//! 2. else the attempt claims `<stateParameter>/register/<seq>`; only the
//!    claim's creator registers (recognised by its per-invocation value,
//!    so a create whose answer was lost is still its own);
//! 3. anyone else finding the claim (a resumption after a crash, a late
//!    copy) looks for the revision by its tags among the family's newest
//!    ([`revision::find_registered`]);
//! 4. a claim older than [`state::TAKEOVER_SECS`] with no such revision was
//!    abandoned before its RegisterTaskDefinition took effect (it is sent
//!    once, without the SDK's retries): whoever creates the takeover claim
//!    `<name>-t<k>` (one per [`state::TAKEOVER_SECS`] of age) registers
//!    then. Younger: its creator may be registering right now — try again
//!    shortly.
//!
//! RunTask gets the registered ARN, or else the task definition exactly as
//! configured, so that a resumed attempt sends its `clientToken` with the
//! same revision (steps 2–4 find the same one again).

use tracing::{info, warn};

use super::{Deployment, Invocation};
use crate::failure::Failure;
use crate::revision::{self, RegisterSpec};
use crate::state::{self, Claim, State};

/// What the attempt runs unless the pipeline's images change it, gathered
/// before any claim.
pub(super) struct Definition {
    /// The task definition as RunTask gets it when nothing is registered:
    /// as configured (or the ARN `fromService` runs).
    pub configured: String,
    /// Its ARN (output `TaskDefinitionArn`).
    pub arn: String,
    /// The decisive container's image in it.
    pub image: Option<String>,
    /// What to register for the pipeline's images: `Ok(None)` when there
    /// are none or they are the images already there. A bad artifact is an
    /// error reported only when an attempt needs it (never for a repeated
    /// delivery, or to a running migration's watch).
    pub register: Result<Option<RegisterSpec>, Failure>,
}

/// The revision an attempt runs.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Chosen {
    /// What RunTask names: the registered ARN, or the configured reference.
    pub run: String,
    pub arn: String,
    pub image: Option<String>,
    /// The registered image set's digest; `None` for the configured revision.
    pub image_set: Option<String>,
}

impl Chosen {
    /// The attempt record with its revision.
    pub fn on(&self, record: State) -> State {
        State {
            task_definition: Some(self.arn.clone()),
            image: self.image.clone(),
            image_set: self.image_set.clone(),
            ..record
        }
    }
}

impl Deployment {
    /// The revision `record`'s attempt runs; registers it if it must.
    pub(super) async fn revision(
        &self,
        inv: &Invocation<'_>,
        record: &State,
        definition: &Definition,
        records: &[State],
    ) -> Result<Chosen, Failure> {
        let spec = match &definition.register {
            Ok(Some(spec)) => spec,
            Ok(None) => {
                return Ok(Chosen {
                    run: definition.configured.clone(),
                    arn: definition.arn.clone(),
                    image: definition.image.clone(),
                    image_set: None,
                });
            }
            Err(failure) => return Err(failure.clone()),
        };
        let chosen = |arn: String| Chosen {
            run: arn.clone(),
            arn,
            image: record
                .container
                .as_ref()
                .and_then(|c| spec.images.get(c))
                .cloned(),
            image_set: Some(spec.digest.clone()),
        };
        let earlier = records.iter().rev().find(|r| {
            r.deployment == self.id && r.image_set.as_deref() == Some(spec.digest.as_str())
        });
        if let Some(arn) = earlier.and_then(|r| r.task_definition.clone()) {
            info!(%arn, "reusing the revision an earlier attempt registered for these images");
            return Ok(chosen(arn));
        }
        let ssm = &inv.clients.ssm;
        let ecs = &inv.clients.ecs;
        let name = state::claim_name(&self.config.state_parameter, Claim::Register, record.seq);
        if let Some(other) = state::claim_mine(ssm, &name, &inv.claim_value()).await? {
            if let Some(arn) = revision::find_registered(ecs, spec, &self.id).await? {
                info!(%arn, "found the revision registered for this attempt");
                return Ok(chosen(arn));
            }
            let (mine, age) = inv.take_over(&name, &other).await?;
            if !mine {
                return Err(Failure::Unavailable {
                    api: "ecs:RegisterTaskDefinition",
                    detail: format!(
                        "another invocation is registering the revision with the pipeline's images for attempt {} (claimed {age}s ago); waiting for it",
                        record.attempt
                    ),
                });
            }
            warn!(
                age,
                "the registration claimed for this attempt never took effect; registering"
            );
        }
        let arn = revision::register(&inv.clients.ecs, spec).await?;
        info!(%arn, images = %spec.digest, "registered the revision with the pipeline's images");
        Ok(chosen(arn))
    }
}
