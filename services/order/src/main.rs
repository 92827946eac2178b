//! `order-service`: reads its configuration from the environment and serves
//! until SIGTERM. See the crate docs and README for the variables.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    berth_service_kit::start::main("order-service", order_service::run).await
}
