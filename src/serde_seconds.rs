//! Durations in the JSON of `/api/servers` and `check --output json` as seconds (a float), as
//! an operator's `jq` expects, rather than serde's `{"secs":..,"nanos":..}`.
//!
//! Use with `#[serde(serialize_with = "crate::serde_seconds::duration")]` (or `option`,
//! `stages`).

use std::time::Duration;

use serde::Serializer;
use serde::ser::SerializeSeq;

/// A duration as seconds.
pub fn duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// An optional duration as seconds or `null`.
pub fn option<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// Named durations (e.g. probe stages) as `[[name, seconds], ...]`, in order.
pub fn pairs<S, N>(items: &[(N, Duration)], s: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    N: serde::Serialize,
{
    let mut seq = s.serialize_seq(Some(items.len()))?;
    for (name, d) in items {
        seq.serialize_element(&(name, d.as_secs_f64()))?;
    }
    seq.end()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[derive(serde::Serialize)]
    struct Sample {
        #[serde(serialize_with = "super::duration")]
        took: Duration,
        #[serde(serialize_with = "super::option")]
        latency: Option<Duration>,
        #[serde(serialize_with = "super::option")]
        none: Option<Duration>,
        #[serde(serialize_with = "super::pairs")]
        stages: Vec<(&'static str, Duration)>,
    }

    #[test]
    fn durations_are_seconds() {
        let json = serde_json::to_string(&Sample {
            took: Duration::from_millis(1500),
            latency: Some(Duration::from_micros(250)),
            none: None,
            stages: vec![("ping", Duration::from_millis(8))],
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"took":1.5,"latency":0.00025,"none":null,"stages":[["ping",0.008]]}"#
        );
    }
}
