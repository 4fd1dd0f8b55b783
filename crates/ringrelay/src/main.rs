//! The `ringrelay` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    ringrelay::cli::run(ringrelay::cli::Cli::parse()).await
}
