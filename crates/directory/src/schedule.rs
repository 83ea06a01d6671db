//! Scheduled reconciliation: every connection is pulled again after its
//! `reconcile_interval_secs` (default 6 h), to heal whatever Feishu did not deliver (Feishu
//! gives up on an event after ~7 h of failed pushes). The same tick ends jobs orphaned by a
//! stopped instance.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Engine, EngineError};
use crate::ids::{ConnectionId, Millis, now_ms};
use crate::model::{JobKind, JobState, JobTrigger};
use crate::store::{PageRequest, StoreError};

/// When a connection is due: `None` when it never had a job (the admin starts the first
/// import) or its schedule is off; else the time its next reconciliation is due.
pub async fn next_due(
    engine: &Engine,
    connection_id: &ConnectionId,
    interval_secs: u64,
) -> Result<Option<Millis>, StoreError> {
    if interval_secs == 0 {
        return Ok(None);
    }
    let jobs = engine
        .store()
        .list_jobs(
            Some(connection_id),
            PageRequest {
                offset: 0,
                limit: 1,
                after: None,
            },
        )
        .await?;
    let Some(last) = jobs.first() else {
        return Ok(None);
    };
    if last.state == JobState::Running {
        return Ok(None);
    }
    let since = last.finished_at.unwrap_or(last.started_at);
    Ok(Some(since + (interval_secs as i64) * 1000))
}

/// One pass: starts a reconciliation for every connection that is due. Returns the ones
/// started.
pub async fn run_due(engine: &Arc<Engine>, now: Millis) -> Result<Vec<ConnectionId>, StoreError> {
    let mut started = Vec::new();
    for connection in engine.store().list_connections(None).await? {
        let due = next_due(
            engine,
            &connection.id,
            connection.settings.reconcile_interval_secs,
        )
        .await?;
        if due.is_some_and(|due| due <= now) {
            match engine
                .start_job(&connection.id, JobKind::Reconcile, JobTrigger::Schedule)
                .await
            {
                Ok(job) => {
                    tracing::info!(connection = %connection.identifier, %job, "scheduled reconciliation started");
                    started.push(connection.id.clone());
                }
                // Another instance (or an admin) got there first.
                Err(EngineError::Busy(_)) => {}
                Err(e) => {
                    tracing::warn!(connection = %connection.identifier, error = %e, "could not start the scheduled reconciliation")
                }
            }
        }
    }
    Ok(started)
}

/// Checks every `every` until `shutdown` turns true; each tick first ends the jobs whose
/// instance stopped (their lease expired), which would otherwise look running forever and
/// hold back their connection's schedule.
pub fn spawn(
    engine: Arc<Engine>,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if *shutdown.borrow() {
                break;
            }
            if let Err(e) = engine.end_orphaned_jobs().await {
                tracing::warn!(error = %e, "could not look for jobs left running by a stopped instance");
            }
            if let Err(e) = run_due(&engine, now_ms()).await {
                tracing::warn!(error = %e, "reconciliation schedule check failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => {}
            }
        }
    })
}
