//! `ratesim policy check` and `ratesim policy explain`.

use std::path::PathBuf;

use clap::Subcommand;

use crate::policy;

#[derive(Subcommand, Debug)]
pub(super) enum PolicyCommand {
    /// Check policy files: every plan, limit and number. Prints one line per
    /// good file on stdout, and one per bad file and the tally on stderr;
    /// exits 1 on any error.
    Check {
        /// Policy files (TOML), e.g. policies/*.toml.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print a human summary of a policy's plans.
    Explain {
        /// A policy file (TOML).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Only this plan.
        #[arg(long, value_name = "NAME")]
        plan: Option<String>,
    },
}

pub(super) fn run(cmd: PolicyCommand) -> u8 {
    match cmd {
        PolicyCommand::Check { files } => {
            let mut failed = 0;
            for file in &files {
                match policy::load(file) {
                    Ok(p) => println!("ok     {}: {}", file.display(), p.summary()),
                    Err(e) => {
                        failed += 1;
                        eprintln!("error  {e}");
                    }
                }
            }
            if failed > 0 {
                eprintln!(
                    "{failed} of {} policy file{} failed the check",
                    files.len(),
                    if files.len() == 1 { "" } else { "s" }
                );
                1
            } else {
                0
            }
        }
        PolicyCommand::Explain { file, plan } => match policy::load(&file) {
            Ok(p) => match p.explain(plan.as_deref()) {
                Ok(text) => {
                    print!("{text}");
                    0
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", file.display());
                    1
                }
            },
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
    }
}
