//! `ingress-controller`: the Ferry ingress controller binary.
//!
//! Reads flags (and their environment variables), then runs the controller, or one of the
//! `explain`, `check` and `version` sub-commands. Errors end the process with one line and a
//! non-zero exit code, never a backtrace.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod inspect;
mod run;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => start(&cli.run),
        Some(Command::Run(args)) => start(&args),
        Some(Command::Version) => {
            println!("ingress-controller {} (ferry)", env!("CARGO_PKG_VERSION"));
            Ok(true)
        }
        Some(Command::Explain(args)) => once(LogFormat::Text, inspect::explain(args)).map(|()| true),
        Some(Command::Check(args)) => once(LogFormat::Text, inspect::check(args)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn start(args: &args::RunArgs) -> anyhow::Result<bool> {
    init_logging(args.log_format);
    run::run(args).map(|()| true)
}

/// Runs a one-shot async command on a small runtime.
fn once<T>(format: LogFormat, fut: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    init_logging_to_stderr(format, "warn");
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(fut)
}

fn init_logging(format: LogFormat) {
    init_logging_to_stderr(format, "info");
}

/// Logs go to stderr, so `explain --output json` keeps a clean stdout. `RUST_LOG` overrides the
/// level.
fn init_logging_to_stderr(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default_level},pingora_core=warn,pingora_proxy=warn"))
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
