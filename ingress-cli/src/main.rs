//! `ingress-controller`: the Ferry ingress controller binary.
//!
//! Reads flags (and their environment variables), then runs the controller, or one of the
//! `explain`, `check` and `version` sub-commands. Errors end the process with one line and a
//! non-zero exit code, never a backtrace.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod alloc;
mod args;
mod certgen;
mod inspect;
mod nginx_flags;
mod run;
mod settings;
mod webhook;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command, LogFormat};

fn main() -> ExitCode {
    // ingress-nginx's arguments, as its manifests and Helm chart give them, start Ferry too.
    let (argv, ignored) = nginx_flags::translate(std::env::args_os());
    let cli = Cli::parse_from(argv);
    let result = match cli.command {
        None => start(&cli.run, &ignored),
        Some(Command::Run(args)) => start(&args, &ignored),
        Some(Command::Version) => {
            println!("ingress-controller {} (ferry)", env!("CARGO_PKG_VERSION"));
            Ok(true)
        }
        Some(Command::Explain(args)) => once(LogFormat::Text, inspect::explain(args)).map(|()| true),
        Some(Command::Check(args)) => once(LogFormat::Text, inspect::check(args)),
        Some(Command::WebhookCertificate(args)) => once(LogFormat::Text, certgen::run(args)),
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

fn start(args: &args::RunArgs, ignored: &[nginx_flags::IgnoredFlag]) -> anyhow::Result<bool> {
    let ours =
        |level: &str| format!("info,ingress_k8s={level},ingress_proxy={level},ingress_controller={level}");
    let level = match args.verbosity {
        0..=2 => "info".to_owned(),
        3 | 4 => ours("debug"),
        _ => ours("trace"),
    };
    init_logging_to_stderr(args.log_format, &level);
    for flag in ignored {
        tracing::warn!(flag = %flag.argument, reason = flag.reason, "ingress-nginx flag accepted and not applied");
    }
    run::run(args).map(|()| true)
}

/// Runs a one-shot async command on a small runtime.
fn once<T>(format: LogFormat, fut: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    init_logging_to_stderr(format, "warn");
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(fut)
}

/// Diagnostics go to stderr in `format` (`RUST_LOG` overrides the level), so `explain --output
/// json` keeps a clean stdout. The access log has a writer of its own, on stdout
/// (`ingress_proxy::AccessLog`).
fn init_logging_to_stderr(format: LogFormat, default_level: &str) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default_level},pingora_core=warn,pingora_proxy=warn"))
    });
    // Colours only for a terminal: `kubectl logs` and log files get plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let diagnostics = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(colour);
    let diagnostics = match format {
        LogFormat::Json => diagnostics.json().flatten_event(true).boxed(),
        LogFormat::Text => diagnostics.boxed(),
    };
    let _ = tracing_subscriber::registry().with(filter).with(diagnostics).try_init();
}
