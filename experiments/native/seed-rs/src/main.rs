//! The seed article's REST-to-Kafka service ("Scaling Kafka Ingestion Using REST APIs in
//! Rust"), rebuilt as a comparison target for the Python service.
//!
//! Same contract as the article (`POST /` with `{"client_id", "name", "data"}`, a UUIDv4
//! event id as the Kafka key and as the plain-text answer) and the same two modes, but
//! without the article's two defects: a durable request whose delivery failed answers
//! 503, never 200, and a fire-and-forget request that finds the producer queue full
//! answers 503 instead of being dropped silently.

mod config;
mod event;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer, ProducerContext,
    ThreadedProducer,
};
use rdkafka::util::Timeout;
use rdkafka::ClientContext;
use serde_json::json;

use config::{Config, Mode};
use event::{parse_event, to_record, EventError};

/// Counters served on `/metrics`; shared by every worker through one `Arc`.
#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    delivered: AtomicU64,
    delivery_failed: AtomicU64,
    rejected_full: AtomicU64,
    rejected_invalid: AtomicU64,
}

/// Counts fire-and-forget delivery reports, which no request waits for.
struct CountingContext {
    counters: Arc<Counters>,
}

impl ClientContext for CountingContext {}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        let counter = match result {
            Ok(_) => &self.counters.delivered,
            Err(_) => &self.counters.delivery_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The mode decides the producer type, as in the article: one future per request when
/// durable, librdkafka's own background thread when fire-and-forget.
enum Publisher {
    Durable(FutureProducer),
    FireAndForget(ThreadedProducer<CountingContext>),
}

impl Publisher {
    fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        match self {
            Publisher::Durable(p) => p.flush(Timeout::After(timeout)),
            Publisher::FireAndForget(p) => p.flush(Timeout::After(timeout)),
        }
    }

    fn in_queue(&self) -> i32 {
        match self {
            Publisher::Durable(p) => p.in_flight_count(),
            Publisher::FireAndForget(p) => p.in_flight_count(),
        }
    }
}

struct AppState {
    config: Config,
    publisher: Publisher,
    counters: Arc<Counters>,
}

/// The Python service's error body: `{"error": code, "message": ...}`, `Retry-After` on 503.
fn error_response(status: StatusCode, code: &str, message: String) -> HttpResponse {
    error_body(status, json!({"error": code, "message": message}))
}

fn error_body(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        builder.insert_header((header::RETRY_AFTER, "1"));
    }
    builder.json(body)
}

/// librdkafka's reason for a failed delivery, e.g. `MessageTimedOut`.
fn reason(err: &KafkaError) -> String {
    match err.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => err.to_string(),
    }
}

/// The answer for a record librdkafka refused before queueing it.
fn produce_refused(state: &AppState, err: &KafkaError) -> HttpResponse {
    match err.rdkafka_error_code() {
        Some(RDKafkaErrorCode::QueueFull) => {
            state.counters.rejected_full.fetch_add(1, Ordering::Relaxed);
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "the producer queue is full; nothing was published".into(),
            )
        }
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the event exceeds the producer's message.max.bytes: {err}"),
        ),
        _ => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the producer refused the event: {err}"),
        ),
    }
}

fn is_json(req: &HttpRequest) -> bool {
    // No Content-Type is accepted (curl -d without -H); a wrong one is not.
    match req.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(value) => value
            .to_str()
            .map(|v| {
                let essence = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
                essence == "application/json" || essence.ends_with("+json")
            })
            .unwrap_or(false),
    }
}

async fn ingest(
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
    state: web::Data<AppState>,
) -> HttpResponse {
    // The body's own errors (over INGEST_MAX_BODY_BYTES, a broken upload) as JSON bodies.
    let body = match body {
        Ok(body) => body,
        Err(err) => {
            let status = err.as_response_error().status_code();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "bad_request" };
            return error_response(status, code, format!("cannot read the body: {err}"));
        }
    };
    if !is_json(&req) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "POST / takes Content-Type: application/json".into(),
        );
    }
    let event = match parse_event(&body) {
        Ok(event) => event,
        Err(err) => {
            state.counters.rejected_invalid.fetch_add(1, Ordering::Relaxed);
            return match err {
                EventError::Malformed(message) => {
                    error_response(StatusCode::BAD_REQUEST, "malformed_json", message)
                }
                EventError::Invalid(errors) => error_body(StatusCode::UNPROCESSABLE_ENTITY, json!({
                    "error": "validation_failed",
                    "message": "the event does not match the schema",
                    "errors": errors,
                })),
            };
        }
    };
    let (event_id, value) = to_record(event);
    let topic = state.config.topic.as_str();
    match &state.publisher {
        Publisher::Durable(producer) => {
            let record = FutureRecord::to(topic).key(&event_id).payload(&value);
            let delivery = match producer.send_result(record) {
                Ok(delivery) => delivery,
                Err((err, _)) => return produce_refused(&state, &err),
            };
            state.counters.accepted.fetch_add(1, Ordering::Relaxed);
            // The article awaited this and then answered 200 whatever it held.
            match delivery.await {
                Ok(Ok(_)) => {
                    state.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    HttpResponse::Ok().content_type(ContentType::plaintext()).body(event_id)
                }
                Ok(Err((err, _))) => {
                    state.counters.delivery_failed.fetch_add(1, Ordering::Relaxed);
                    error_body(StatusCode::SERVICE_UNAVAILABLE, json!({
                        "error": "delivery_failed",
                        "message": format!("event {event_id} was not delivered: {err}"),
                        "reason": reason(&err),
                    }))
                }
                Err(_canceled) => {
                    state.counters.delivery_failed.fetch_add(1, Ordering::Relaxed);
                    error_body(StatusCode::SERVICE_UNAVAILABLE, json!({
                        "error": "delivery_failed",
                        "message": format!("event {event_id}: the producer shut down before its report"),
                        "reason": "Canceled",
                    }))
                }
            }
        }
        Publisher::FireAndForget(producer) => {
            let record = BaseRecord::to(topic).key(&event_id).payload(&value);
            if let Err((err, _)) = producer.send(record) {
                return produce_refused(&state, &err);
            }
            state.counters.accepted.fetch_add(1, Ordering::Relaxed);
            HttpResponse::Accepted().content_type(ContentType::plaintext()).body(event_id)
        }
    }
}

/// Readiness: the broker answers a metadata request naming the topic, within 2 s.
/// The answer carries what a run records (mode, topic, effective producer config).
async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let probe_state = state.clone();
    let probe = web::block(move || {
        let topic = probe_state.config.topic.as_str();
        let timeout = Timeout::After(Duration::from_secs(2));
        let metadata = match &probe_state.publisher {
            Publisher::Durable(p) => p.client().fetch_metadata(Some(topic), timeout),
            Publisher::FireAndForget(p) => p.client().fetch_metadata(Some(topic), timeout),
        };
        metadata.map(|m| {
            m.topics().iter().any(|t| t.name() == topic && t.error().is_none())
        })
    })
    .await;
    let (status, ready, reason) = match probe {
        Ok(Ok(true)) => (StatusCode::OK, true, None),
        Ok(Ok(false)) => (StatusCode::SERVICE_UNAVAILABLE, false, Some("topic not found".to_string())),
        Ok(Err(err)) => (StatusCode::SERVICE_UNAVAILABLE, false, Some(format!("broker: {err}"))),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, false, Some(format!("probe: {err}"))),
    };
    let config = &state.config;
    HttpResponse::build(status).json(json!({
        "status": if ready { "ready" } else { "not_ready" },
        "reason": reason,
        "implementation": "rust",
        "mode": config.mode.as_str(),
        "topic": config.topic,
        "workers": config.workers,
        "producer_config": config.producer_config,
    }))
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let c = &state.counters;
    let mode = state.config.mode.as_str();
    let line = |name: &str, help: &str, value: u64| {
        format!("# HELP {name} {help}\n# TYPE {name} counter\n{name}{{mode=\"{mode}\"}} {value}\n")
    };
    let body = [
        line("seed_rs_events_accepted_total", "Events handed to the producer.", c.accepted.load(Ordering::Relaxed)),
        line("seed_rs_events_delivered_total", "Delivery reports without error.", c.delivered.load(Ordering::Relaxed)),
        line("seed_rs_delivery_failed_total", "Delivery reports with an error.", c.delivery_failed.load(Ordering::Relaxed)),
        line("seed_rs_rejected_queue_full_total", "Requests refused with 503: producer queue full.", c.rejected_full.load(Ordering::Relaxed)),
        line("seed_rs_rejected_invalid_total", "Requests refused with 400/422.", c.rejected_invalid.load(Ordering::Relaxed)),
        format!("# HELP seed_rs_producer_in_flight Messages queued or awaiting a report.\n# TYPE seed_rs_producer_in_flight gauge\nseed_rs_producer_in_flight {}\n", state.publisher.in_queue()),
    ]
    .concat();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(body)
}

fn build_publisher(config: &Config, counters: &Arc<Counters>) -> Result<Publisher, KafkaError> {
    let client_config = config.client_config();
    Ok(match config.mode {
        Mode::Durable => Publisher::Durable(client_config.create()?),
        Mode::FireAndForget => Publisher::FireAndForget(
            client_config.create_with_context(CountingContext { counters: counters.clone() })?,
        ),
    })
}

fn main() -> std::io::Result<()> {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("seed-rs: configuration error: {message}");
            std::process::exit(2);
        }
    };
    let counters = Arc::new(Counters::default());
    let publisher = match build_publisher(&config, &counters) {
        Ok(publisher) => publisher,
        Err(err) => {
            eprintln!("seed-rs: cannot create the producer: {err}");
            std::process::exit(2);
        }
    };
    eprintln!(
        "seed-rs: starting {}",
        json!({
            "mode": config.mode.as_str(), "host": config.host, "port": config.port,
            "workers": config.workers, "topic": config.topic,
            "producer_config": config.producer_config,
        })
    );
    let (host, port, workers, flush_timeout) =
        (config.host.clone(), config.port, config.workers, config.shutdown_flush);
    let max_body = config.max_body_bytes;
    let state = web::Data::new(AppState { config, publisher, counters });
    let app_state = state.clone();

    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .route("/", web::post().to(ingest))
                .route("/healthz", web::get().to(healthz))
                // The name the Python service and the suite's launcher poll.
                .route("/readyz", web::get().to(healthz))
                .route("/metrics", web::get().to(metrics))
        })
        .workers(workers)
        .bind((host.as_str(), port))?
        // SIGTERM: stop accepting, let running requests finish, then flush below.
        .shutdown_timeout(15)
        .run()
        .await
    })?;

    // Fire-and-forget events answered 202 may still sit in librdkafka's queue.
    let left = state.publisher.in_queue();
    match state.publisher.flush(flush_timeout) {
        Ok(()) => eprintln!("seed-rs: stopped; flushed {left} queued message(s)"),
        Err(err) => {
            eprintln!(
                "seed-rs: stopped; flush failed with {} message(s) still queued: {err}",
                state.publisher.in_queue()
            );
            std::process::exit(1);
        }
    }
    Ok(())
}
