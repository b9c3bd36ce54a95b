//! The article's event: validation with the Python service's rules (service/events.py)
//! and the record that goes to Kafka (key = new event id, value = event + id + time).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

const MAX_TEXT: usize = 256;

pub struct Event {
    client_id: String,
    name: String,
    data: Map<String, Value>,
}

pub enum EventError {
    /// 400: the body is not JSON at all.
    Malformed(String),
    /// 422: JSON, but not an event; one entry per violated field, as the Python service.
    Invalid(Vec<Value>),
}

fn violation(field: &str, msg: &str, kind: &str) -> Value {
    let loc: Vec<&str> = if field.is_empty() { vec![] } else { vec![field] };
    json!({
        "field": if field.is_empty() { "(body)" } else { field },
        "loc": loc, "msg": msg, "type": kind,
    })
}

fn text(obj: &mut Map<String, Value>, field: &str, errors: &mut Vec<Value>) -> String {
    match obj.remove(field) {
        None => errors.push(violation(field, "Field required", "missing")),
        Some(Value::String(s)) => {
            let chars = s.chars().count();
            if chars == 0 {
                errors.push(violation(field, "String should have at least 1 character", "string_too_short"));
            } else if chars > MAX_TEXT {
                errors.push(violation(field, "String should have at most 256 characters", "string_too_long"));
            } else {
                return s;
            }
        }
        Some(_) => errors.push(violation(field, "Input should be a valid string", "string_type")),
    }
    String::new()
}

pub fn parse_event(body: &[u8]) -> Result<Event, EventError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| EventError::Malformed(format!("body is not valid JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(EventError::Invalid(vec![violation(
            "", "Input should be a valid dictionary or instance of Event", "model_type",
        )]));
    };
    let mut errors = Vec::new();
    let client_id = text(&mut obj, "client_id", &mut errors);
    let name = text(&mut obj, "name", &mut errors);
    let data = match obj.remove("data") {
        Some(Value::Object(data)) => data,
        None => {
            errors.push(violation("data", "Field required", "missing"));
            Map::new()
        }
        Some(_) => {
            errors.push(violation("data", "Input should be a valid dictionary", "dict_type"));
            Map::new()
        }
    };
    // The known fields were removed above: whatever is left is extra.
    for extra in obj.keys() {
        errors.push(violation(extra, "Extra inputs are not permitted", "extra_forbidden"));
    }
    if errors.is_empty() {
        Ok(Event { client_id, name, data })
    } else {
        Err(EventError::Invalid(errors))
    }
}

#[derive(Serialize)]
struct Enriched<'a> {
    event_id: &'a str,
    client_id: &'a str,
    name: &'a str,
    data: &'a Map<String, Value>,
    received_at: String,
}

/// Days since 1970-01-01 -> (year, month, day), Howard Hinnant's civil_from_days.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The receive time as Python's `datetime.isoformat(timespec="microseconds")` in UTC.
fn received_at() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_micros()
    )
}

/// (key, value): a new UUIDv4 event id, and the event re-serialized with it added.
pub fn to_record(event: Event) -> (String, Vec<u8>) {
    let event_id = Uuid::new_v4().to_string();
    let value = serde_json::to_vec(&Enriched {
        event_id: &event_id,
        client_id: &event.client_id,
        name: &event.name,
        data: &event.data,
        received_at: received_at(),
    })
    .expect("a map of JSON values always serializes");
    (event_id, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn wrong_types_name_each_field() {
        let Err(EventError::Invalid(errors)) =
            parse_event(br#"{"client_id": 1, "name": "", "data": [], "x": 0}"#)
        else {
            panic!("expected a validation error");
        };
        let kinds: Vec<_> = errors.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["string_type", "string_too_short", "dict_type", "extra_forbidden"]);
    }
}
