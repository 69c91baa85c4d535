//! Indexer acknowledgement over real HTTP on 127.0.0.1, with a consumer standing in for the
//! journal and the store.

use std::net::SocketAddr;

use serde_json::{json, Value};

use super::*;
use crate::queue::{ingest_queue, BatchOutcome, IngestBatch, IngestReceiver};
use crate::CancellationToken;

const ACK_TOKEN: &str = "acked-0123456789";
const PLAIN_TOKEN: &str = "plain-0123456789";

fn config(acks: HecAckConfig) -> HecConfig {
    HecConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        tokens: vec![
            HecTokenConfig { name: "acked".into(), token: ACK_TOKEN.into(), ack: true, ..HecTokenConfig::default() },
            HecTokenConfig { name: "plain".into(), token: PLAIN_TOKEN.into(), ..HecTokenConfig::default() },
        ],
        acks,
        ..HecConfig::default()
    }
}

struct Server {
    base: String,
    client: reqwest::Client,
    shutdown: CancellationToken,
}

impl Server {
    async fn start(acks: HecAckConfig) -> (Server, IngestReceiver) {
        let (sender, receiver) = ingest_queue(1000);
        let source = HecSource::bind(config(acks), sender).await.unwrap();
        let base = format!("http://{}", source.local_addr());
        let shutdown = CancellationToken::new();
        tokio::spawn(source.run(shutdown.clone()));
        (Server { base, client: reqwest::Client::builder().no_proxy().build().unwrap(), shutdown }, receiver)
    }

    /// POSTs `body` to `path` with `token` and, when given, the channel header.
    async fn post(&self, path: &str, token: &str, channel: Option<&str>, body: &str) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Splunk {token}"))
            .body(body.to_string());
        if let Some(channel) = channel {
            request = request.header("X-Splunk-Request-Channel", channel);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, serde_json::from_str(&response.text().await.unwrap()).unwrap())
    }

    async fn event(&self, channel: Option<&str>) -> (u16, Value) {
        self.post("/services/collector/event", ACK_TOKEN, channel, r#"{"event":"x"}"#).await
    }

    async fn acks(&self, channel: &str, ids: &[u64]) -> Value {
        let (status, body) =
            self.post("/services/collector/ack", ACK_TOKEN, Some(channel), &json!({ "acks": ids }).to_string()).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// Receives the next batch and tells its sender it is journaled, as `securewatch run` does.
async fn journal_next(receiver: &mut IngestReceiver) -> IngestBatch {
    let mut batch = receiver.recv().await.unwrap();
    batch.journaled();
    batch
}

#[tokio::test]
async fn ids_count_per_channel_and_read_true_once_the_batch_is_durable() {
    let (server, mut receiver) = Server::start(HecAckConfig::default()).await;
    let sending = tokio::spawn(async move {
        let mut answers = Vec::new();
        for channel in ["chan-a", "chan-a", "chan-b", "chan-a"] {
            answers.push(server.event(Some(channel)).await);
        }
        (server, answers)
    });
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(journal_next(&mut receiver).await);
    }
    let (server, answers) = sending.await.unwrap();
    let ids: Vec<Value> = answers.iter().map(|(status, body)| {
        assert_eq!(*status, 200);
        assert_eq!((&body["text"], &body["code"]), (&json!("Success"), &json!(0)));
        body["ackId"].clone()
    }).collect();
    assert_eq!(ids, [json!(0), json!(1), json!(0), json!(2)], "answered once journaled, before any is durable");
    assert_eq!(server.acks("chan-a", &[0, 1, 2]).await, json!({"acks": {"0": false, "1": false, "2": false}}));
    let mut held = held.into_iter();
    held.next().unwrap().complete(BatchOutcome::Durable);
    held.next().unwrap().complete(BatchOutcome::Failed("store down".into()));
    let mut status = json!(null);
    for _ in 0..100 {
        status = server.acks("chan-a", &[0, 1]).await;
        if status["acks"]["0"] == json!(true) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(status, json!({"acks": {"0": true, "1": false}}));
    assert_eq!(server.acks("chan-a", &[0, 1]).await, json!({"acks": {"0": false, "1": false}}), "true once, then forgotten");
    assert_eq!(server.acks("chan-b", &[0]).await, json!({"acks": {"0": false}}));
    assert_eq!(server.acks("never-seen", &[0, 5]).await, json!({"acks": {"0": false, "5": false}}));
    server.shutdown.cancel();
}

#[tokio::test]
async fn without_a_journal_the_answer_waits_and_the_id_is_true_at_once() {
    let (server, mut receiver) = Server::start(HecAckConfig::default()).await;
    tokio::spawn(async move {
        while let Some(batch) = receiver.recv().await {
            batch.complete(BatchOutcome::Durable); // no journal told: `ingest`, or the journal off
        }
    });
    assert_eq!(server.event(Some("c")).await, (200, json!({"text": "Success", "code": 0, "ackId": 0})));
    assert_eq!(server.acks("c", &[0]).await, json!({"acks": {"0": true}}));
    let (status, body) = server.post("/services/collector", PLAIN_TOKEN, None, r#"{"event":"y"}"#).await;
    assert_eq!((status, body), (200, json!({"text": "Success", "code": 0})), "no ackId without acks");
    server.shutdown.cancel();
}

#[tokio::test]
async fn channels_are_required_and_polls_are_checked() {
    let (server, _receiver) = Server::start(HecAckConfig::default()).await;
    let missing = json!({"text": "Data channel is missing", "code": 10});
    assert_eq!(server.event(None).await, (400, missing.clone()));
    assert_eq!(server.post("/services/collector/raw", ACK_TOKEN, None, "line").await, (400, missing.clone()));
    let query_channel = server.post("/services/collector/ack?channel=c", ACK_TOKEN, None, r#"{"acks":[3]}"#).await;
    assert_eq!(query_channel, (200, json!({"acks": {"3": false}})), "?channel= names the channel too");
    assert_eq!(server.post("/services/collector/ack", ACK_TOKEN, None, r#"{"acks":[0]}"#).await, (400, missing));
    let disabled = server.post("/services/collector/ack", PLAIN_TOKEN, Some("c"), r#"{"acks":[0]}"#).await;
    assert_eq!(disabled, (400, json!({"text": "ACK is disabled", "code": 14})));
    for bad in ["", "{}", r#"{"acks":[-1]}"#, r#"{"acks":"0"}"#] {
        let (status, body) = server.post("/services/collector/ack", ACK_TOKEN, Some("c"), bad).await;
        assert_eq!((status, &body["code"]), (400, &json!(6)), "{bad}: {body}");
    }
    let (status, body) = server.post("/services/collector/ack", "wrong-token", Some("c"), r#"{"acks":[0]}"#).await;
    assert_eq!((status, &body["code"]), (403, &json!(4)));
    server.shutdown.cancel();
}

#[tokio::test]
async fn bounds_answer_503_and_an_unanswered_request_gives_its_room_back() {
    let limits = HecAckConfig { max_channels: 1, max_pending_per_channel: 1, max_pending: 10, idle_channel_secs: 300 };
    let (server, mut receiver) = Server::start(limits).await;
    let server = std::sync::Arc::new(server);
    let first = tokio::spawn({
        let server = std::sync::Arc::clone(&server);
        async move { server.event(Some("one")).await }
    });
    let held = journal_next(&mut receiver).await;
    assert_eq!(first.await.unwrap().1["ackId"], json!(0));
    let busy = json!({"text": "Server is busy", "code": 9});
    assert_eq!(server.event(Some("one")).await, (503, busy.clone()), "the channel holds its one id");
    assert_eq!(server.event(Some("two")).await, (503, busy), "one channel at most");
    held.complete(BatchOutcome::Durable);
    let mut read = false;
    for _ in 0..100 {
        if server.acks("one", &[0]).await["acks"]["0"] == json!(true) {
            read = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(read, "id 0 became true");
    // Read: the channel has room again. A batch that fails gives it back without an id.
    let failing = tokio::spawn({
        let server = std::sync::Arc::clone(&server);
        async move { server.event(Some("one")).await }
    });
    receiver.recv().await.unwrap().complete(BatchOutcome::Failed("store down".into()));
    assert_eq!(failing.await.unwrap(), (500, json!({"text": "Internal server error", "code": 8})));
    let next = tokio::spawn({
        let server = std::sync::Arc::clone(&server);
        async move { server.event(Some("one")).await }
    });
    let _held = journal_next(&mut receiver).await;
    assert_eq!(next.await.unwrap().1["ackId"], json!(1), "ids keep counting; the failed request took none");
    server.shutdown.cancel();
}
