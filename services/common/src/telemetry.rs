//! Structured logs through `tracing`: JSON lines for production (one object
//! per event, the request span's fields included), plain text for a
//! developer's terminal. `RUST_LOG` filters as usual and defaults to `info`.

use std::str::FromStr;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            _ => Err("expected `json` or `text`".to_owned()),
        }
    }
}

/// Installs the global subscriber. Fails on an unparsable `RUST_LOG`; a
/// second call (tests) leaves the first subscriber in place.
pub fn init(format: LogFormat) -> Result<(), crate::config::ConfigError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec)
            .map_err(|e| crate::config::ConfigError::new("RUST_LOG", &spec, e.to_string()))?,
        _ => EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let _already_set = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    Ok(())
}
