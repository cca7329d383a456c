//! The Execution API server binary: `server --help`.

use std::process::ExitCode;

use execution_api_server::cli::{self, Cli, Command};
use execution_api_server::serve::init_tracing;

fn main() -> ExitCode {
    // Bad flags: clap prints the problem and usage, exit status 2.
    let cli = Cli::try_parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    // The server logs requests; one-shot commands only warn (their stdout is their output).
    let serving = matches!(cli.command, None | Some(Command::Serve(_)));
    init_tracing(if serving { "info" } else { "warn" });

    let result = match actix_web::rt::System::new().block_on(cli::run(cli)) {
        Ok(()) => return ExitCode::SUCCESS,
        Err(e) => e,
    };
    let mut message = format!("error: {result}");
    let mut source = std::error::Error::source(&result);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !message.contains(&cause_text) {
            message.push_str(&format!("\n  caused by: {cause_text}"));
        }
        source = cause.source();
    }
    eprintln!("{message}");
    ExitCode::FAILURE
}
