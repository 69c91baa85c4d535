//! Prints the corpus conformance report; exits non-zero when a target is missed.
//!
//! Usage: `conformance <corpus-dir>` (normally `../shared/corpus`).

use std::path::PathBuf;
use std::process::ExitCode;

use securewatch_tests::conformance;

fn main() -> ExitCode {
    let Some(corpus) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: conformance <corpus-dir>");
        return ExitCode::from(2);
    };
    let mut all_met = true;
    type Section = fn(&std::path::Path) -> anyhow::Result<bool>;
    let sections: [(&str, Section); 4] = [
        ("syslog", conformance::syslog::run),
        ("wazuh", conformance::wazuh::run),
        ("sigma", conformance::sigma::run),
        ("windows", conformance::windows::run),
    ];
    for (name, section) in sections {
        println!("== conformance: {name} ({})", corpus.join(name).display());
        match section(&corpus) {
            Ok(true) => println!("== {name}: target met"),
            Ok(false) => {
                println!("== {name}: TARGET MISSED");
                all_met = false;
            }
            Err(error) => {
                println!("== {name}: ERROR {error:#}");
                all_met = false;
            }
        }
    }
    if all_met { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
