//! Settings from the environment, under the Python service's variable names, and the
//! librdkafka configuration: the Python service's mode defaults < INGEST_PRODUCER_CONFIG.

use std::env;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Durable,
    FireAndForget,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Durable => "durable",
            Mode::FireAndForget => "fire-and-forget",
        }
    }
}

pub struct Config {
    pub mode: Mode,
    pub host: String,
    pub port: u16,
    pub workers: usize,
    pub topic: String,
    pub max_body_bytes: usize,
    pub shutdown_flush: Duration,
    /// The effective librdkafka properties, bootstrap.servers included, as strings.
    pub producer_config: Map<String, Value>,
}

/// service/modes.py: both modes write with acks=all and idempotence; the mode decides
/// when the answer is sent, not how safely Kafka stores the event.
const MODE_DEFAULTS: [(&str, &str); 3] = [
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("linger.ms", "5"),
];

/// service/modes.py: how long librdkafka retries an event. Durable bounds a waiting
/// request; fire-and-forget already acknowledged the event, so it outlives a failover.
fn message_timeout_ms(mode: &Mode) -> &'static str {
    match mode {
        Mode::Durable => "10000",
        Mode::FireAndForget => "30000",
    }
}

fn var(name: &str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parsed<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match var(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|_| format!("{name}={raw:?} is not a valid value")),
    }
}

/// A JSON scalar as librdkafka wants it: a string (true/false, numbers as written).
fn property_value(name: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(format!("INGEST_PRODUCER_CONFIG: {name} must be a scalar")),
    }
}

impl Config {
    pub fn from_env() -> Result<Config, String> {
        let mode = match var("INGEST_MODE").as_deref().map(str::trim) {
            None | Some("durable") => Mode::Durable,
            Some("fire-and-forget") => Mode::FireAndForget,
            Some(other) => {
                return Err(format!("INGEST_MODE={other:?}: expected durable or fire-and-forget"))
            }
        };
        let workers: usize = parsed("INGEST_WORKERS", 1)?;
        if workers == 0 {
            return Err("INGEST_WORKERS must be at least 1".into());
        }
        let topic = var("INGEST_TOPIC").unwrap_or_else(|| "events.main".into());
        let mut producer_config = Map::new();
        producer_config.insert(
            "bootstrap.servers".into(),
            Value::String(var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|| "127.0.0.1:9092".into())),
        );
        for (key, value) in MODE_DEFAULTS {
            producer_config.insert(key.into(), Value::String(value.into()));
        }
        producer_config.insert(
            "message.timeout.ms".into(),
            Value::String(message_timeout_ms(&mode).into()),
        );
        if let Some(raw) = var("INGEST_PRODUCER_CONFIG") {
            let overrides: Map<String, Value> = serde_json::from_str(&raw)
                .map_err(|e| format!("INGEST_PRODUCER_CONFIG is not a JSON object: {e}"))?;
            for (key, value) in overrides {
                let value = property_value(&key, &value)?;
                producer_config.insert(key, Value::String(value));
            }
        }
        Ok(Config {
            mode,
            host: var("INGEST_HOST").unwrap_or_else(|| "127.0.0.1".into()),
            port: parsed("INGEST_PORT", 8000)?,
            workers,
            topic,
            max_body_bytes: parsed("INGEST_MAX_BODY_BYTES", 1024 * 1024)?,
            shutdown_flush: Duration::from_secs_f64(parsed("INGEST_SHUTDOWN_FLUSH_S", 10.0)?),
            producer_config,
        })
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in &self.producer_config {
            if let Value::String(value) = value {
                config.set(key, value);
            }
        }
        config
    }
}
