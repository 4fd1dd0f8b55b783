//! The background task around a [`Keeper`]: its commands, its handle, and what wakes it
//! (timer, commands, a change of the covered extensions).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::super::extensions::{Coverage, EffectiveScope};
use super::{Keeper, KeeperContext, KeeperStatus, Trigger};
use crate::receiver::StrayReport;
use crate::store::Lease;

/// A command for a running keeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Reconcile now.
    Reconcile,
    /// A renewal-reminder event arrived: renew now.
    Reminder,
    /// A notification arrived from a subscription that is not the account's current one.
    Stray(StrayReport),
    /// A notification for the account arrived at this time.
    Event {
        /// When.
        at: DateTime<Utc>,
    },
}

/// A running keeper.
#[derive(Debug)]
pub struct KeeperHandle {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<KeeperStatus>,
    lease: watch::Receiver<Option<Lease>>,
    stop: tokio_util::sync::CancellationToken,
    join: JoinHandle<()>,
}

impl KeeperHandle {
    /// Sends a command; `false` when the keeper has stopped or its queue is full (a full
    /// queue already holds a pending reconcile, so dropping is harmless).
    pub fn send(&self, command: Command) -> bool {
        self.commands.try_send(command).is_ok()
    }

    /// The latest status.
    pub fn status(&self) -> KeeperStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn watch(&self) -> watch::Receiver<KeeperStatus> {
        self.status.clone()
    }

    /// A receiver that sees the account's lease as this replica holds it (`None` while
    /// another replica keeps the account): the account's sync and backfill run only
    /// while it is `Some` and not lapsed.
    pub fn lease(&self) -> watch::Receiver<Option<Lease>> {
        self.lease.clone()
    }

    /// Stops the keeper (heartbeat, lease release) and waits for it.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(e) = self.join.await {
            tracing::error!(error = %e, "keeper task failed");
        }
    }
}

/// Maps any watch channel to the covered extensions a keeper follows
/// ([`KeeperContext::with_extensions`]; see [`KeeperContext::extensions`] for what `None`
/// and an empty list mean). The forwarding task ends when `source`'s sender is dropped or
/// every receiver of the result is.
pub fn map_extensions<T, F>(
    mut source: watch::Receiver<T>,
    f: F,
) -> (watch::Receiver<Option<Vec<String>>>, JoinHandle<()>)
where
    T: Send + Sync + 'static,
    F: Fn(&T) -> Option<Vec<String>> + Send + 'static,
{
    let (tx, rx) = watch::channel(f(&source.borrow_and_update()));
    let join = tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = source.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let ids = f(&source.borrow_and_update());
                    tx.send_if_modified(|cur| {
                        if *cur == ids {
                            false
                        } else {
                            *cur = ids;
                            true
                        }
                    });
                }
                () = tx.closed() => return,
            }
        }
    });
    (rx, join)
}

/// The extensions whose voicemail filters the keeper keeps, from extension discovery:
/// `None` before discovery has answered, no extension when only the JWT user is covered
/// (its `extension/~/voicemail` filter, as configured), else the covered ids.
pub fn voicemail_extensions(coverage: &Coverage) -> Option<Vec<String>> {
    coverage.refreshed_at?;
    Some(match coverage.effective {
        EffectiveScope::SelfOnly => Vec::new(),
        EffectiveScope::Company | EffectiveScope::Extensions => coverage.extension_ids.clone(),
    })
}

/// [`map_extensions`] with [`voicemail_extensions`]: what a keeper follows of extension
/// discovery's coverage.
pub fn follow_coverage(
    coverage: watch::Receiver<Coverage>,
) -> (watch::Receiver<Option<Vec<String>>>, JoinHandle<()>) {
    map_extensions(coverage, voicemail_extensions)
}

/// Starts a keeper task for one account.
pub fn spawn(ctx: KeeperContext) -> KeeperHandle {
    let (tx, rx) = mpsc::channel(64);
    let (status_tx, status_rx) = watch::channel(KeeperStatus::starting(ctx.account.clone()));
    let stop = tokio_util::sync::CancellationToken::new();
    let keeper = Keeper::new(ctx);
    let lease = keeper.lease_watch();
    let join = tokio::spawn(Box::pin(run(keeper, rx, status_tx, stop.clone())));
    KeeperHandle {
        commands: tx,
        status: status_rx,
        lease,
        stop,
        join,
    }
}

async fn run(
    mut keeper: Keeper,
    mut commands: mpsc::Receiver<Command>,
    status: watch::Sender<KeeperStatus>,
    stop: tokio_util::sync::CancellationToken,
) {
    let clock = Arc::clone(&keeper.ctx.clock);
    let spread = u64::try_from(keeper.ctx.start_spread.as_millis()).unwrap_or(u64::MAX);
    if spread > 0 {
        let delay = Duration::from_millis(rand::rng().random_range(0..=spread));
        tokio::select! {
            () = stop.cancelled() => return,
            () = clock.sleep(delay) => {}
        }
    }
    let mut outcome = tokio::select! {
        () = stop.cancelled() => return,
        o = keeper.start() => o,
    };
    status.send_replace(keeper.status().clone());
    let mut extensions = keeper.ctx.extensions.clone();
    let renew = keeper.ctx.lease.renew;
    let mut lease_due = tokio::time::Instant::now() + renew;
    loop {
        let wake = keeper.next_wake(outcome.next_wake);
        let wait = (wake - clock.now()).to_std().unwrap_or(Duration::ZERO);
        let changed = async {
            match extensions.as_mut() {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let trigger = tokio::select! {
            () = stop.cancelled() => break,
            () = clock.sleep(wait) => Trigger::Timer,
            // The lease on its own (real-time) timer: no RingCentral call.
            () = tokio::time::sleep_until(lease_due) => {
                lease_due = tokio::time::Instant::now() + renew;
                if !keeper.tend_lease().await {
                    continue;
                }
                Trigger::Reconcile
            }
            still = changed => {
                if !still {
                    // The publisher is gone: keep the last list, stop watching.
                    extensions = None;
                }
                Trigger::Reconcile
            }
            cmd = commands.recv() => match cmd {
                None => break,
                Some(Command::Reconcile | Command::Stray(_)) => Trigger::Reconcile,
                Some(Command::Reminder) => Trigger::Reminder,
                Some(Command::Event { at }) => {
                    keeper.note_event(at);
                    continue;
                }
            },
        };
        outcome = keeper.step(trigger).await;
        status.send_replace(keeper.status().clone());
    }
    if let Err(e) = keeper.shutdown().await {
        tracing::warn!(error = %e, "keeper shutdown could not record its heartbeat");
    }
}
