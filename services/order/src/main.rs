//! `order-service`: reads its configuration from the environment and serves
//! until SIGTERM. See the crate docs and README for the variables.

use std::process::ExitCode;

use berth_service_kit::config::Env;
use berth_service_kit::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match order_service::Config::from_env(&Env::process()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("order-service: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = telemetry::init(config.server.log_format) {
        eprintln!("order-service: {e}");
        return ExitCode::from(2);
    }
    match order_service::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "order-service failed");
            eprintln!("order-service: {e}");
            ExitCode::FAILURE
        }
    }
}
