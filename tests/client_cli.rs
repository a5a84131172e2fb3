//! `ratesim client list` / `ratesim client explain` as a user meets them,
//! the README's examples byte for byte, and clear errors for bad clients.

use std::process::Command;

use ratesim::client::preset_names;

fn ratesim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ratesim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the ratesim binary runs");
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert!(!stderr.contains("panicked"), "panic in ratesim {args:?}: {stderr}");
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// The output README shows after `$ COMMAND` in a console block.
fn readme_output(command: &str) -> String {
    let readme = include_str!("../README.md");
    let at = readme.find(&format!("$ {command}\n")).unwrap_or_else(|| panic!("README shows `{command}`"));
    let rest = &readme[at + command.len() + 3..];
    rest[..rest.find("```").unwrap()].to_string()
}

#[test]
fn list_names_every_preset_with_its_source() {
    let (code, out, _) = ratesim(&["client", "list"]);
    assert_eq!(code, 0);
    for name in preset_names() {
        assert!(out.lines().any(|l| l.starts_with(&format!("{name} "))), "{name} missing:\n{out}");
    }
    for source in ["openai/_base_client.py", "src/client.ts", "botocore/retries/standard.py", "urllib3/util/retry.py"] {
        assert!(out.contains(source), "{source}");
    }
}

#[test]
fn explain_prints_what_readme_shows() {
    let (code, out, _) = ratesim(&["client", "explain", "openai-node", "--responses", "429:RA=89,429,200"]);
    assert_eq!(code, 0);
    assert_eq!(out, readme_output("ratesim client explain openai-node --responses 429:RA=89,429,200"));
    let (_, out, _) = ratesim(&["client", "explain", "aws-standard", "--responses", "503,429,200"]);
    let tail: Vec<&str> = out.lines().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    assert_eq!(
        tail.join("\n") + "\n",
        readme_output("ratesim client explain aws-standard --responses 503,429,200 | tail -4")
    );
}

#[test]
fn explain_without_responses_runs_the_client_out() {
    let (code, out, _) = ratesim(&["client", "explain", "naive-immediate"]);
    assert_eq!(code, 0);
    assert!(out.contains("429 without headers until it stops"), "{out}");
    assert!(out.contains("gives up: no attempts left (10 made)"), "{out}");
    // More attempts than the default script shows.
    let (_, out, _) = ratesim(&["client", "explain", "fixed-1s,max_attempts=40"]);
    assert!(out.contains("… and so on, up to 40 attempts"), "{out}");
    // Traffic-dependent mechanisms are named, not replayed.
    let (_, out, _) = ratesim(&["client", "explain", "aws-adaptive"]);
    assert!(out.contains("not replayed: pacing"), "{out}");
}

#[test]
fn bad_clients_and_scripts_are_clear_errors() {
    for (args, expect) in [
        (vec!["client", "explain", "openai-pyhton"], "unknown client preset \"openai-pyhton\""),
        (vec!["client", "explain", "none,max_retries=3"], "does nothing"),
        (
            vec!["client", "explain", "openai-node", "--responses", "429,abc"],
            "--responses: response 2: expected an HTTP status",
        ),
        (vec!["client", "explain", "openai-node", "--responses", "429:RA=soon"], "response 1: `RA` expects seconds"),
        (vec!["client", "explain", "openai-node", "--responses", "429:retry=1"], "unknown attribute `retry`"),
        (
            vec!["run", "--trace", "traces/sample.csv", "--client", "none,max_retries=3"],
            "--client: client option `max_retries=3` does nothing",
        ),
        (vec!["run", "--trace", "traces/sample.csv", "--client", "fixed-1s,retry_on=429,503"], "joined with `+`"),
    ] {
        let (code, _, err) = ratesim(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.starts_with("error: ") && err.contains(expect), "{args:?}: {err}");
    }
}

#[test]
fn help_names_the_subcommands() {
    let (_, out, _) = ratesim(&["client", "--help"]);
    assert!(out.contains("list") && out.contains("explain"), "{out}");
    let (_, out, _) = ratesim(&["client", "explain", "--help"]);
    for word in ["--responses", "RA=89", "should-retry=false", "code=ThrottlingException"] {
        assert!(out.contains(word), "{word}: {out}");
    }
}
