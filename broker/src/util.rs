//! Helpers shared by the brokers.

use std::sync::Arc;

use futures_util::FutureExt;

use crate::{Event, EventHandler};

/// Runs one handler call; a returned error or a panic is logged. Returns whether
/// it succeeded.
pub(crate) async fn run_handler(handler: &Arc<dyn EventHandler>, event: Event) -> bool {
    let topic = event.topic.clone();
    match std::panic::AssertUnwindSafe(handler.handle(event))
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(%topic, error = %e, "broker handler failed");
            false
        }
        Err(_) => {
            tracing::error!(%topic, "broker handler panicked");
            false
        }
    }
}
