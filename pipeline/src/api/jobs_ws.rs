//! `GET /api/v1/jobs/{id}/ws` (`jobs:run`): a WebSocket that pushes the job's progress at most
//! every 250 ms, its preview rows as they come, and the final state; while it is open the job
//! does not expire.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use securewatch_schemas::TenantScope;
use serde_json::json;

use super::jobs::find;
use super::ApiState;
use crate::jobs::Job;

/// Shortest time between two progress messages of a running job.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Upgrades to the job's WebSocket (404 / 410 as the job's other routes).
pub async fn job_socket(
    State(state): State<ApiState>,
    Extension(scope): Extension<TenantScope>,
    Path(id): Path<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // The job first: another tenant's job is absent whether or not the request upgrades.
    let job = match find(&state, &scope, &id) {
        Ok(job) => job,
        Err(response) => return response,
    };
    match upgrade {
        // A browser offers its credential as a subprotocol: the answer names the protocol only.
        Ok(upgrade) => upgrade.protocols([crate::access::WEBSOCKET_BEARER]).on_upgrade(move |socket| stream(socket, job)),
        Err(rejection) => rejection.into_response(),
    }
}

async fn send(socket: &mut WebSocket, message: serde_json::Value) -> bool {
    socket.send(Message::Text(message.to_string().into())).await.is_ok()
}

/// Messages: `{"type": "progress", "job": …}` at once and on changes, `{"type": "preview",
/// "columns": […], "rows": […]}` for new preview rows, `{"type": "end", "job": …}` last.
async fn stream(mut socket: WebSocket, job: Arc<Job>) {
    let _hold = job.hold();
    let mut updates = job.subscribe();
    let mut previewed = 0;
    let mut first = true;
    loop {
        updates.borrow_and_update();
        let status = job.status();
        let preview = job.preview();
        // Progress first, also on connecting to a finished job: a client always sees where
        // the job stands before its end.
        if (!status.state.is_final() || first) && !send(&mut socket, json!({ "type": "progress", "job": status })).await {
            return;
        }
        first = false;
        if preview.len() > previewed {
            let rows: Vec<serde_json::Value> = preview[previewed..]
                .iter()
                .map(|row| serde_json::Value::Object(status.columns.iter().cloned().zip(row.iter().cloned()).collect()))
                .collect();
            previewed = preview.len();
            if !send(&mut socket, json!({ "type": "preview", "columns": status.columns, "rows": rows })).await {
                return;
            }
        }
        if status.state.is_final() {
            let _ = send(&mut socket, json!({ "type": "end", "job": status })).await;
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
        let next_message = tokio::time::Instant::now() + PROGRESS_EVERY;
        // Wait for a change, answering the client's close meanwhile.
        loop {
            tokio::select! {
                result = updates.changed() => {
                    if result.is_err() {
                        return;
                    }
                    break;
                }
                message = socket.recv() => match message {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => continue,
                },
            }
        }
        // The pause keeps progress to a few messages a second; it never holds back a job's end
        // or its first rows (a search done in 20 ms shows them then, not after the pause).
        let first_rows = previewed == 0 && job.preview_len() > 0;
        if !first_rows && !job.is_final() {
            tokio::time::sleep_until(next_message).await;
        }
    }
}
