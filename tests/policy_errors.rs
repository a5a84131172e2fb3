//! Malformed policies are refused with an error that points at the offending line
//! and field and says what was expected — never a panic, never a silent default.

use std::path::Path;

use ratesim::policy::{self, PolicyError};

/// Lines 1-4 of most cases below; the limit's own keys start on line 5.
const HEAD: &str = "provider = \"Example\"\n[[plan]]\nname = \"pro\"\n[[plan.limit]]\n";

/// A one-plan, one-limit policy whose limit body (starting on line 5) is `body`.
fn limit(body: &str) -> String {
    format!("{HEAD}{body}")
}

/// A valid leaky-bucket limit body: id line 5, algorithm 6, rate 7, burst 8.
const GCRA: &str = "id = \"rpm\"\nalgorithm = \"gcra\"\nrate = \"500/min\"\nburst = 50\n";

fn parse_err(text: &str) -> PolicyError {
    match policy::parse(text, "bad.toml") {
        Ok(_) => panic!("accepted a malformed policy:\n{text}"),
        Err(e) => e,
    }
}

/// The error names `line`, a field path containing `field`, and a message containing
/// `message`.
#[track_caller]
fn expect_error(text: &str, line: usize, field: &str, message: &str) -> PolicyError {
    let e = parse_err(text);
    assert_eq!(e.file, "bad.toml", "{e}");
    assert_eq!(e.line, line, "wrong line: {e}\n--- policy ---\n{text}");
    assert!(e.column >= 1, "no column: {e}");
    assert!(e.field.contains(field), "field {:?} does not contain {field:?}: {e}", e.field);
    assert!(e.message.contains(message), "message does not contain {message:?}: {e}");
    e
}

/// Errors found while reading the TOML structure (syntax, unknown or missing keys, wrong
/// types) carry the key's name in the message, and the line and column of the offending
/// key or value.
#[track_caller]
fn expect_toml_error(text: &str, line: usize, column: usize, message: &str) -> PolicyError {
    let e = parse_err(text);
    assert_eq!(e.file, "bad.toml", "{e}");
    assert_eq!((e.line, e.column), (line, column), "wrong position: {e}\n--- policy ---\n{text}");
    assert!(e.message.contains(message), "message does not contain {message:?}: {e}");
    e
}

#[test]
fn the_base_case_is_valid() {
    // Every case below breaks this policy (or one like it) in one place.
    let p = policy::parse(&limit(GCRA), "ok.toml").expect("valid");
    assert_eq!(p.plan_names(), ["pro"]);
}

#[test]
fn toml_syntax_errors() {
    expect_toml_error("provider = \"Example\"\n[[plan]]\nname = \"pro\n", 3, 12, "invalid basic string");
    expect_toml_error("provider = \"Example\"\n[[plan]\nname = \"pro\"\n", 2, 8, "unclosed array table");
    let e = expect_toml_error(&limit(&GCRA.replace("burst = 50", "burst = = 50")), 8, 9, "");
    assert!(!e.message.is_empty(), "{e}");
}

#[test]
fn missing_or_empty_provider() {
    expect_toml_error(&limit(GCRA).replace("provider = \"Example\"\n", ""), 1, 1, "missing field `provider`");
    expect_error(&limit(GCRA).replace("\"Example\"", "\"   \""), 1, "provider", "expected the provider's name");
}

#[test]
fn no_plans() {
    let e = expect_error(
        "provider = \"Example\"\ndescription = \"no plans\"\n",
        3,
        "plan",
        "expected at least one [[plan]]",
    );
    assert_eq!(e.field, "plan");
}

#[test]
fn plan_without_limits() {
    expect_error(
        "provider = \"Example\"\n[[plan]]\nname = \"pro\"\ndescription = \"nothing\"\n",
        2,
        "plan \"pro\"",
        "expected at least one [[plan.limit]]",
    );
    // The error points at the plan that is empty, not the first one.
    let text = format!("{}[[plan]]\nname = \"team\"\n", limit(GCRA));
    expect_error(&text, 9, "plan \"team\"", "at least one [[plan.limit]]");
}

#[test]
fn missing_plan_name_or_limit_id() {
    expect_toml_error(
        "provider = \"Example\"\n[[plan]]\n[[plan.limit]]\nid = \"rpm\"\nalgorithm = \"gcra\"\nrate = \"5/s\"\nburst = 5\n",
        2,
        1,
        "missing field `name`",
    );
    expect_error(&limit(GCRA).replace("name = \"pro\"", "name = \"\""), 3, "plan > name", "expected a plan name");
    expect_error(&limit(&GCRA.replace("id = \"rpm\"", "id = \" \"")), 5, "limit > id", "expected a limit id");
    expect_toml_error(&limit(&GCRA.replace("algorithm = \"gcra\"\n", "")), 4, 1, "missing field `algorithm`");
}

#[test]
fn missing_rate() {
    let e = expect_error(
        &limit("id = \"rpm\"\nalgorithm = \"gcra\"\nburst = 50\n"),
        4,
        "plan \"pro\" > limit \"rpm\" > rate",
        "missing field `rate`",
    );
    assert!(e.message.contains("500/min"), "suggests a form: {e}");
    expect_error(&limit("id = \"w\"\nalgorithm = \"fixed-window\"\n"), 4, "limit \"w\" > rate", "missing field `rate`");
}

#[test]
fn zero_rate() {
    expect_error(&limit(&GCRA.replace("500/min", "0/min")), 7, "limit \"rpm\" > rate", "the count must be at least 1");
    expect_error(
        &limit("id = \"w\"\nalgorithm = \"fixed-window\"\nlimit = 0\nperiod = \"1min\"\n"),
        7,
        "limit \"w\" > limit",
        "at least 1, found 0",
    );
    expect_error(&limit(&GCRA.replace("500/min", "500/0s")), 7, "limit \"rpm\" > rate", "500/0s");
}

#[test]
fn negative_rate() {
    expect_error(
        &limit(&GCRA.replace("500/min", "-500/min")),
        7,
        "limit \"rpm\" > rate",
        "the count must be at least 1; it is negative",
    );
    expect_error(
        &limit("id = \"w\"\nalgorithm = \"sliding-log\"\nlimit = -5\nperiod = \"1min\"\n"),
        7,
        "limit \"w\" > limit",
        "at least 1, found -5",
    );
}

#[test]
fn rate_with_an_unknown_unit() {
    expect_error(
        &limit(&GCRA.replace("500/min", "5/fortnight")),
        7,
        "limit \"rpm\" > rate",
        "unknown unit \"fortnight\"",
    );
    expect_error(
        &limit(&GCRA.replace("500/min", "500 per minute")),
        7,
        "limit \"rpm\" > rate",
        "expected a rate such as \"500/min\"",
    );
    expect_error(
        &limit("id = \"w\"\nalgorithm = \"fixed-window\"\nlimit = 5\nperiod = \"1 fortnight\"\n"),
        8,
        "limit \"w\" > period",
        "expected a duration unit",
    );
}

#[test]
fn zero_or_negative_burst() {
    expect_error(&limit(&GCRA.replace("burst = 50", "burst = 0")), 8, "limit \"rpm\" > burst", "at least 1, found 0");
    expect_error(&limit(&GCRA.replace("burst = 50", "burst = -5")), 8, "limit \"rpm\" > burst", "at least 1, found -5");
}

#[test]
fn gcra_without_burst() {
    expect_error(&limit(&GCRA.replace("burst = 50\n", "")), 4, "limit \"rpm\" > burst", "missing field `burst`");
}

#[test]
fn burst_on_a_window_limit() {
    expect_error(
        &limit("id = \"w\"\nalgorithm = \"fixed-window\"\nrate = \"5/s\"\nburst = 5\n"),
        8,
        "limit \"w\" > burst",
        "does not apply to a fixed-window limit",
    );
}

#[test]
fn unknown_algorithm() {
    let e = expect_error(
        &limit(&GCRA.replace("\"gcra\"", "\"token-bukket\"")),
        6,
        "limit \"rpm\" > algorithm",
        "unknown algorithm \"token-bukket\"",
    );
    assert!(e.message.contains("gcra, fixed-window, sliding-log"), "{e}");
}

#[test]
fn duplicate_plan_names() {
    let text = format!("{}[[plan]]\nname = \"pro\"\n[[plan.limit]]\n{GCRA}", limit(GCRA));
    expect_error(&text, 10, "plan > name", "duplicate plan name \"pro\"");
}

#[test]
fn duplicate_limit_ids() {
    let text = format!("{}[[plan.limit]]\n{GCRA}", limit(GCRA));
    expect_error(&text, 10, "plan \"pro\" > limit > id", "duplicate limit id \"rpm\"");
}

#[test]
fn unknown_keys() {
    // Top level.
    expect_toml_error(&format!("colour = \"blue\"\n{}", limit(GCRA)), 1, 1, "unknown field `colour`");
    // In a plan.
    expect_toml_error(&limit(GCRA).replace("name = \"pro\"", "name = \"pro\"\ntier = 3"), 4, 1, "unknown field `tier`");
    // In a limit: the message lists the keys a limit may have.
    let e = expect_toml_error(&limit(&format!("{GCRA}brust = 5\n")), 9, 1, "unknown field `brust`");
    assert!(e.message.contains("`burst`"), "{e}");
    // In a limit's match.
    expect_toml_error(&limit(&format!("{GCRA}match.endpionts = [\"invoke\"]\n")), 9, 7, "unknown field `endpionts`");
    // In [response].
    expect_toml_error(
        &format!("provider = \"Example\"\n[response]\nreset_fmt = \"unix\"\n[[plan]]\nname = \"pro\"\n[[plan.limit]]\n{GCRA}"),
        3,
        1,
        "unknown field `reset_fmt`",
    );
}

#[test]
fn wrong_value_types() {
    // The position is the offending value's.
    expect_toml_error(
        &limit(&GCRA.replace("burst = 50", "burst = \"50\"")),
        8,
        9,
        "expected a whole number, found string \"50\"",
    );
    expect_toml_error(
        &limit(&GCRA.replace("rate = \"500/min\"", "rate = 500")),
        7,
        8,
        "expected a string, found integer `500`",
    );
    expect_toml_error(
        &limit(&GCRA.replace("burst = 50", "burst = 5.5")),
        8,
        9,
        "expected a whole number, found floating point `5.5`",
    );
    expect_toml_error(&limit(GCRA).replace("name = \"pro\"", "name = [\"pro\"]"), 3, 8, "expected a string, found");
    expect_toml_error("provider = \"Example\"\nplan = 5\n", 2, 8, "found integer `5`");
    expect_toml_error(
        &limit(&GCRA.replace("burst = 50", "burst = 99999999999999999999")),
        8,
        9,
        "expected a whole number below 2^63, found integer `99999999999999999999`",
    );
}

#[test]
fn wrong_type_errors_name_the_field() {
    let e = parse_err(&limit(&GCRA.replace("burst = 50", "burst = \"50\"")));
    assert!(
        e.field.contains("burst") || e.message.contains("burst"),
        "the error does not say which key has the wrong type: {e}"
    );
    let e = parse_err(&limit(&GCRA.replace("algorithm = \"gcra\"\n", "")));
    assert!(e.field.contains("limit"), "no field path: {e}");
}

#[test]
fn bad_scope() {
    expect_error(
        &limit(&format!("{GCRA}scope = \"team\"\n")),
        9,
        "limit \"rpm\" > scope",
        "expected key, user, workspace or global, found \"team\"",
    );
}

#[test]
fn bad_auth() {
    expect_error(
        &limit(&format!("{GCRA}match.auth = \"admin\"\n")),
        9,
        "limit \"rpm\" > match > auth",
        "expected any, authenticated or unauthenticated, found \"admin\"",
    );
}

#[test]
fn bad_match_pattern() {
    expect_error(
        &limit(&format!("{GCRA}match.except = [\"health\", \"reg*stry\"]\n")),
        9,
        "limit \"rpm\" > match > except",
        "found \"reg*stry\"",
    );
    expect_error(
        &limit(&format!("{GCRA}match.endpoints = [\"\"]\n")),
        9,
        "limit \"rpm\" > match > endpoints",
        "expected an endpoint name",
    );
}

#[test]
fn bad_status() {
    for status in [200, 999, 302, -429] {
        expect_error(
            &limit(&format!("{GCRA}status = {status}\n")),
            9,
            "limit \"rpm\" > status",
            &format!("expected an HTTP error status from 400 to 599 (429, 402, 503), found {status}"),
        );
    }
    expect_error(
        &format!("provider = \"Example\"\n[response]\nretry_after_on = [429, 200]\n[[plan]]\nname = \"pro\"\n[[plan.limit]]\n{GCRA}"),
        3,
        "response > retry_after_on",
        "found 200",
    );
}

#[test]
fn invalid_json_body_template() {
    expect_error(
        &limit(&format!("{GCRA}body = '{{\"error\": {{\"code\": \"{{code}}\"}}'\n")),
        9,
        "limit \"rpm\" > body",
        "not valid JSON",
    );
    expect_error(
        &format!("provider = \"Example\"\n[response]\nbody = '{{error: 1}}'\n[[plan]]\nname = \"pro\"\n[[plan.limit]]\n{GCRA}"),
        3,
        "response > body",
        "not valid JSON: key must be a string",
    );
}

#[test]
fn extends_an_unknown_plan() {
    let text = format!("{}[[plan]]\nname = \"team\"\nextends = \"enterprise\"\n", limit(GCRA));
    expect_error(
        &text,
        11,
        "plan \"team\" > extends",
        "expected the name of a plan defined earlier in this file, found \"enterprise\"",
    );
    // A plan defined later does not count: plans extend what is above them.
    let text = format!(
        "provider = \"Example\"\n[[plan]]\nname = \"pro\"\nextends = \"team\"\n[[plan]]\nname = \"team\"\n[[plan.limit]]\n{GCRA}"
    );
    expect_error(&text, 4, "plan \"pro\" > extends", "defined earlier");
}

#[test]
fn budget_with_a_bad_period() {
    for period in ["fortnight", "weekly", "0s", "-1day"] {
        expect_error(
            &limit(&format!(
                "id = \"spend\"\nalgorithm = \"budget\"\nunit = \"USD\"\nlimit = 1000\nperiod = \"{period}\"\n"
            )),
            9,
            "limit \"spend\" > period",
            &format!("expected \"day\" (UTC calendar day), \"month\" (UTC calendar month), \"lifetime\" (never resets) or a rolling duration such as \"30day\", found \"{period}\""),
        );
    }
    expect_error(
        &limit("id = \"spend\"\nalgorithm = \"budget\"\nlimit = 1000\n"),
        4,
        "limit \"spend\" > period",
        "missing field `period`",
    );
    expect_error(
        &limit("id = \"spend\"\nalgorithm = \"budget\"\nperiod = \"day\"\n"),
        4,
        "limit \"spend\" > limit",
        "missing field `limit`",
    );
}

#[test]
fn budget_reserve_and_unit() {
    expect_error(
        &limit("id = \"spend\"\nalgorithm = \"budget\"\nlimit = 1000\nperiod = \"day\"\nreserve = -1\n"),
        9,
        "limit \"spend\" > reserve",
        "expected a non-negative whole amount or \"measured\"",
    );
    expect_error(
        &limit(&format!("{GCRA}reserve = 0\n")),
        9,
        "limit \"rpm\" > reserve",
        "`reserve` applies to budget limits only",
    );
    expect_error(
        &limit("id = \"spend\"\nalgorithm = \"budget\"\nlimit = 1000\nperiod = \"day\"\nunit = \"rupees\"\n"),
        9,
        "limit \"spend\" > unit",
        "found \"rupees\"",
    );
}

#[test]
fn concurrency_lease_of_zero() {
    expect_error(
        &limit("id = \"inflight\"\nalgorithm = \"concurrency\"\nmax = 5\nlease = \"0s\"\n"),
        8,
        "limit \"inflight\" > lease",
        "expected a lease longer than zero",
    );
    expect_error(
        &limit("id = \"inflight\"\nalgorithm = \"concurrency\"\nmax = 5\nlease = \"forever\"\n"),
        8,
        "limit \"inflight\" > lease",
        "expected a duration",
    );
    expect_error(
        &limit("id = \"inflight\"\nalgorithm = \"concurrency\"\nmax = 0\n"),
        7,
        "limit \"inflight\" > max",
        "at least 1, found 0",
    );
    expect_error(
        &limit("id = \"inflight\"\nalgorithm = \"concurrency\"\n"),
        4,
        "limit \"inflight\" > max",
        "missing field `max`",
    );
    expect_error(
        &limit("id = \"inflight\"\nalgorithm = \"concurrency\"\nmax = 5\nunit = \"tokens\"\n"),
        4,
        "limit \"inflight\" > unit",
        "`unit` and `cost` do not apply",
    );
}

#[test]
fn rate_and_limit_with_period_both_given() {
    expect_error(
        &limit("id = \"w\"\nalgorithm = \"fixed-window\"\nrate = \"5/s\"\nlimit = 5\nperiod = \"1s\"\n"),
        7,
        "limit \"w\" > rate",
        "give either `rate` or `limit` with `period`, not both",
    );
    expect_error(
        &limit("id = \"w\"\nalgorithm = \"fixed-window\"\nlimit = 5\n"),
        7,
        "limit \"w\" > period",
        "`limit` needs a `period`",
    );
    expect_error(
        &limit("id = \"w\"\nalgorithm = \"fixed-window\"\nperiod = \"1s\"\n"),
        7,
        "limit \"w\" > limit",
        "`period` needs a `limit`",
    );
}

#[test]
fn cost_on_a_tokens_limit() {
    expect_error(
        &limit("id = \"tokens\"\nalgorithm = \"budget\"\nunit = \"tokens\"\nlimit = 100000\nperiod = \"month\"\ncost = 2\n"),
        10,
        "limit \"tokens\" > cost",
        "`cost` applies to request limits; this limit counts tokens",
    );
    expect_error(
        &limit("id = \"spend\"\nalgorithm = \"budget\"\nunit = \"INR\"\nlimit = 100\nperiod = \"day\"\ncost = 1\n"),
        10,
        "limit \"spend\" > cost",
        "this limit counts INR",
    );
    expect_error(&limit(&format!("{GCRA}cost = 0\n")), 9, "limit \"rpm\" > cost", "at least 1, found 0");
}

#[test]
fn bad_response_settings() {
    let with_response = |settings: &str| {
        format!("provider = \"Example\"\n[response]\n{settings}\n[[plan]]\nname = \"pro\"\n[[plan.limit]]\n{GCRA}")
    };
    expect_error(
        &with_response("reset_format = \"iso8601\""),
        3,
        "response > reset_format",
        "expected \"unix\" (a Unix timestamp) or \"seconds\"",
    );
    expect_error(
        &with_response("headers_on = \"sometimes\""),
        3,
        "response > headers_on",
        "expected \"all\" or \"denied\"",
    );
    expect_error(
        &with_response("retry_after_unknown = \"soon\""),
        3,
        "response > retry_after_unknown",
        "expected a duration",
    );
    expect_error(
        &limit(&format!("{GCRA}reset_format = \"iso8601\"\n")),
        9,
        "limit \"rpm\" > reset_format",
        "found \"iso8601\"",
    );
}

#[test]
fn too_many_limits_in_a_plan() {
    let mut text = HEAD.trim_end_matches("[[plan.limit]]\n").to_string();
    for i in 0..17 {
        text.push_str(&format!("[[plan.limit]]\nid = \"l{i}\"\nalgorithm = \"gcra\"\nrate = \"5/s\"\nburst = 5\n"));
    }
    expect_error(&text, 2, "plan \"pro\"", "at most 16 limits per plan, found 17");
}

#[test]
fn errors_display_file_line_column_field_and_message() {
    let e = parse_err(&limit(&GCRA.replace("burst = 50", "burst = 0")));
    assert_eq!(
        e.to_string(),
        "bad.toml:8:9: plan \"pro\" > limit \"rpm\" > burst: expected a burst (in cost units; \
         at least one request) of at least 1, found 0"
    );
}

#[test]
fn unreadable_file() {
    let e = policy::load(Path::new("/nonexistent/policy.toml")).expect_err("no such file");
    assert_eq!((e.line, e.column), (0, 0));
    assert_eq!(e.file, "/nonexistent/policy.toml");
    assert!(e.message.contains("cannot read the policy file"), "{e}");
}

#[test]
fn truncated_policies_never_panic() {
    // Every prefix of every shipped policy either parses or is refused with a position
    // inside the text.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("policies/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).expect("readable");
        policy::load(&path).unwrap_or_else(|e| panic!("shipped policy is invalid: {e}"));
        let lines = text.lines().count() + 1;
        let cuts = (0..text.len()).step_by(7).filter(|&i| text.is_char_boundary(i));
        for cut in cuts {
            if let Err(e) = policy::parse(&text[..cut], "cut.toml") {
                assert!((1..=lines).contains(&e.line), "line {} outside the text: {e}", e.line);
                assert!(!e.message.is_empty());
            }
        }
    }
    assert!(files >= 5, "expected the five provider policies, found {files}");
}

#[test]
fn non_ascii_endpoint_patterns_are_names_not_panics() {
    // Multi-byte characters at the end of a pattern are ordinary names.
    for pattern in ["é", "café", "caf\u{e9}*", "予測"] {
        let text = limit(&format!("{GCRA}match.endpoints = [\"{pattern}\"]\n"));
        policy::parse(&text, "ok.toml").unwrap_or_else(|e| panic!("{pattern:?} refused: {e}"));
    }
    expect_error(
        &limit(&format!("{GCRA}match.except = [\"c*fé\"]\n")),
        9,
        "limit \"rpm\" > match > except",
        "found \"c*fé\"",
    );
}

#[test]
fn requests_that_could_never_be_admitted() {
    expect_error(
        &limit(&format!("{}cost = 10\n", GCRA.replace("burst = 50", "burst = 2"))),
        9,
        "limit \"rpm\" > cost",
        "a request costing 10 could never fit the burst of 2",
    );
    expect_error(
        &limit("id = \"w\"\nalgorithm = \"fixed-window\"\nrate = \"5/min\"\ncost_by_endpoint = { \"batch\" = 6 }\n"),
        4,
        "limit \"w\" > cost_by_endpoint > batch",
        "a request costing 6 could never fit the limit of 5",
    );
    // A cost that never applies (its endpoint is excluded), and a budget
    // (which admits while its reservation fits and settles the cost later),
    // are fine.
    let ok = limit(
        "id = \"w\"\nalgorithm = \"fixed-window\"\nrate = \"5/min\"\ncost_by_endpoint = { \"batch\" = 6 }\n\
         match.except = [\"batch\"]\n[[plan.limit]]\nid = \"b\"\nalgorithm = \"budget\"\nlimit = 3\nperiod = \"day\"\ncost = 5\n",
    );
    policy::parse(&ok, "ok.toml").unwrap_or_else(|e| panic!("refused: {e}"));
    expect_error(
        &limit("id = \"spend\"\nalgorithm = \"budget\"\nlimit = 10\nperiod = \"day\"\nreserve = 1000\n"),
        9,
        "limit \"spend\" > reserve",
        "a reservation of 1000 could never fit the budget of 10",
    );
}

#[test]
fn structural_errors_name_the_right_key() {
    // A missing top-level key is not blamed on the first table of the file.
    let e = parse_err(&limit(GCRA).replace("provider = \"Example\"\n", ""));
    assert_eq!(e.field, "", "{e}");
    assert!(e.message.contains("missing field `provider`"), "{e}");
    // A duplicate key is named.
    let e = expect_toml_error(&limit(GCRA).replace("[[plan]]", "provider = \"Again\"\n[[plan]]"), 2, 1, "");
    assert!(e.message.contains("duplicate key `provider`"), "{e}");
    // A repeated table header, and a quoted key containing `=`.
    let e = parse_err(&format!(
        "provider = \"x\"\n[response]\nietf = true\n[response]\n[[plan]]\nname = \"p\"\n[[plan.limit]]\n{GCRA}"
    ));
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("duplicate table `[response]`"), "{e}");
    let e = parse_err("provider = \"x\"\n\"b=c\" = 1\n\"b=c\" = 2\n");
    assert!(e.message.contains("duplicate key `b=c`"), "{e}");
    // A negative duration says so.
    expect_error(
        &limit("id = \"inflight\"\nalgorithm = \"concurrency\"\nmax = 5\nlease = \"-5s\"\n"),
        8,
        "limit \"inflight\" > lease",
        "expected a duration of at least zero, found the negative \"-5s\"",
    );
}

#[test]
fn periods_beyond_a_century_are_refused() {
    // Longer periods would overflow nanosecond arithmetic in the engines.
    expect_error(
        &limit(&GCRA.replace("\"500/min\"", "\"1/40000day\"")),
        7,
        "limit \"rpm\" > rate",
        "the period must be at most 100 years",
    );
    expect_error(
        &limit("id = \"w\"\nalgorithm = \"sliding-counter\"\nlimit = 5\nperiod = \"150000day\"\n"),
        8,
        "limit \"w\" > period",
        "at most 100 years",
    );
}

// ---------------------------------------------------------------------------
// Messages with a place and a reason (issue 9).

#[test]
fn out_of_range_integers_name_the_limit() {
    // Integers beyond i64 used to be reported against `plan.limit`, without the plan or limit.
    for (key, value) in [("burst", "99999999999999999999"), ("burst", "18446744073709551615")] {
        let e = expect_error(
            &limit(&GCRA.replace("burst = 50", &format!("{key} = {value}"))),
            8,
            "plan \"pro\" > limit \"rpm\" > burst",
            &format!("expected a whole number below 2^63, found integer `{value}`"),
        );
        assert_eq!(e.field, "plan \"pro\" > limit \"rpm\" > burst");
    }
    let e = expect_error(
        &limit(
            "id = \"spend\"\nalgorithm = \"budget\"\nlimit = 10\nperiod = \"day\"\nreserve = -99999999999999999999\n",
        ),
        9,
        "plan \"pro\" > limit \"spend\" > reserve",
        "integer `-99999999999999999999` is outside the range of TOML integers (-2^63 to 2^63 - 1)",
    );
    assert_eq!(e.column, 11, "{e}");
    expect_error(
        &limit(
            "id = \"spend\"\nalgorithm = \"budget\"\nlimit = 10\nperiod = \"day\"\nreserve = 18446744073709551615\n",
        ),
        9,
        "plan \"pro\" > limit \"spend\" > reserve",
        "integer `18446744073709551615` is outside the range of TOML integers",
    );
    // In a later plan, and in [response].
    let text = format!(
        "{}[[plan]]\nname = \"team\"\n[[plan.limit]]\n{}",
        limit(GCRA),
        GCRA.replace("burst = 50", "burst = 1e99")
    );
    expect_error(&text, 15, "plan \"team\" > limit \"rpm\" > burst", "expected a whole number, found floating point");
    expect_error(
        &format!("provider = \"Example\"\n[response]\nretry_after_on = [429, 99999999999999999999]\n[[plan]]\nname = \"pro\"\n[[plan.limit]]\n{GCRA}"),
        3,
        "response > retry_after_on",
        "below 2^63",
    );
}

#[test]
fn unknown_keys_and_wrong_types_name_the_plan_and_limit() {
    let e = parse_err(&limit(&format!("{GCRA}brust = 5\n")));
    assert_eq!(e.field, "plan \"pro\" > limit \"rpm\" > brust", "{e}");
    let e = parse_err(&limit(&GCRA.replace("burst = 50", "burst = \"50\"")));
    assert_eq!(e.field, "plan \"pro\" > limit \"rpm\" > burst", "{e}");
    let e = parse_err(&limit(&format!("{GCRA}match.except = \"health\"\n")));
    assert_eq!(e.field, "plan \"pro\" > limit \"rpm\" > match > except", "{e}");
}

#[test]
fn rate_counts_out_of_range_say_which_way() {
    // Both used to say "the count must be a whole number".
    expect_error(
        &limit(&GCRA.replace("500/min", "18446744073709551616/1ns")),
        7,
        "limit \"rpm\" > rate",
        "(the count is too large: at most 18446744073709551615)",
    );
    expect_error(
        &limit(&GCRA.replace("500/min", "-1/s")),
        7,
        "limit \"rpm\" > rate",
        "(the count must be at least 1; it is negative)",
    );
    expect_error(&limit(&GCRA.replace("500/min", "1/100y")), 7, "limit \"rpm\" > rate", "unknown unit \"100y\"");
}

#[test]
fn a_datetime_where_text_or_a_table_belongs() {
    // A TOML date-time used to surface as "unknown field `$__toml_private_datetime`".
    let e = expect_error(
        &limit("id = \"spend\"\nalgorithm = \"budget\"\nlimit = 10\nperiod = 1979-05-27T07:32:00Z\n"),
        8,
        "plan \"pro\" > limit \"spend\" > period",
        "expected a string, found the date-time 1979-05-27T07:32:00Z (quote it if it is meant as text)",
    );
    assert!(!e.message.contains("$__toml"), "{e}");
    let e = expect_error(
        &limit(&format!("{GCRA}match = 1979-05-27\n")),
        9,
        "plan \"pro\" > limit \"rpm\" > match",
        "expected a table, found the date-time 1979-05-27",
    );
    assert!(!e.message.contains("$__toml"), "{e}");
}

#[test]
fn a_key_nested_too_deeply_is_located() {
    // A 1,000-part dotted key used to give "recursion limit" at 1:1.
    let text = format!("{}{} = 1\n", limit(GCRA), vec!["a"; 1000].join("."));
    let e = parse_err(&text);
    assert_eq!((e.line, e.column), (9, 1), "{e}");
    assert!(e.message.contains("nested too deeply"), "{e}");
    let text = format!("provider = \"x\"\nx = {}1{}\n", "[".repeat(1000), "]".repeat(1000));
    let e = parse_err(&text);
    assert_eq!(e.line, 2, "{e}");
    assert!(e.message.contains("nested too deeply"), "{e}");
}

/// A scratch file, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str, bytes: &[u8]) -> Scratch {
        let path = std::env::temp_dir().join(format!("ratesim-policy-errors-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).expect("write a scratch file");
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_policy_that_is_not_utf8_is_located() {
    let file = Scratch::new("latin1.toml", b"provider = \"Caf\xe9\"\n[[plan]]\n");
    let e = policy::load(&file.0).expect_err("not UTF-8");
    assert_eq!((e.line, e.column), (1, 16), "{e}");
    assert!(e.message.contains("expected UTF-8 text, found the byte 0xE9"), "{e}");
    let file = Scratch::new("latin1-line3.toml", b"provider = \"x\"\n# ok\n# \xff\n");
    let e = policy::load(&file.0).expect_err("not UTF-8");
    assert_eq!((e.line, e.column), (3, 3), "{e}");
}

#[test]
fn an_oversized_policy_is_refused_before_it_is_read() {
    // The TOML reader needs several times the file's size: a 2 GB policy aborted.
    let file = Scratch::new("huge.toml", b"");
    let f = std::fs::OpenOptions::new().write(true).open(&file.0).expect("open");
    f.set_len(2_000_000_000).expect("a sparse 2 GB file");
    drop(f);
    let e = policy::load(&file.0).expect_err("too large");
    assert_eq!((e.line, e.column), (0, 0), "{e}");
    assert!(e.message.contains("the policy file is 2000000000 bytes; a policy file may be at most 4 MiB"), "{e}");
    let text = format!("provider = \"x\"\n{}", "#\n".repeat(3 << 19));
    let file = Scratch::new("large.toml", text.as_bytes());
    let e = policy::load(&file.0).expect_err("no plans");
    assert!(e.message.contains("at least one [[plan]]"), "a file under the cap is read: {e}");
}

#[test]
fn a_missing_relative_path_says_where_it_was_looked_for() {
    let e = policy::load(Path::new("no-such-dir/policy.toml")).expect_err("missing");
    let cwd = std::env::current_dir().unwrap();
    assert!(e.message.contains("cannot read the policy file"), "{e}");
    assert!(e.message.contains(&format!("read from the current directory, {}", cwd.display())), "{e}");
}

#[test]
fn explain_shows_slow_steady_rates() {
    // `1/36525day` used to read "(steady 0/h)".
    let p = policy::parse(&limit(&GCRA.replace("500/min", "1/36525day")), "slow.toml").expect("valid");
    let text = p.explain(None).expect("explains");
    assert!(text.contains("(steady 0.000027/day)"), "{text}");
    let p = policy::parse(&limit(&GCRA.replace("500/min", "1/day")), "slow.toml").expect("valid");
    let text = p.explain(None).expect("explains");
    assert!(text.contains("(steady 1/day)"), "{text}");
}

#[test]
fn dialect_errors() {
    let body = |rest: &str| limit(&format!("id = \"rpm\"\n{rest}"));
    // Line 6 onwards is `rest`.
    expect_error(
        &body("dialect = \"python\"\nalgorithm = \"fixed-window\"\nrate = \"1/s\""),
        6,
        "dialect",
        "unknown dialect \"python\"; expected one of python-limits, redis-incr-expire, envoy-local, nginx",
    );
    expect_error(
        &body("algorithm = \"gcra\"\nrate = \"1/s\"\nburst = 2\ndialect = \"python-limits\""),
        6,
        "algorithm",
        "dialect \"python-limits\" (Python limits 5.8.0) has no \"gcra\" limiter; its algorithms: fixed-window, sliding-log, sliding-counter",
    );
    expect_error(&body("dialect = \"python-limits\"\nrate = \"1/s\""), 4, "algorithm", "has several, give one of");
    expect_error(&body("rate = \"1/s\""), 4, "algorithm", "missing field `algorithm`");
    expect_error(
        &body("algorithm = \"fixed-window\"\nrate = \"1/s\"\ndialect = \"python-limits\"\ncount_denied = false"),
        9,
        "count_denied",
        "`count_denied` is set by dialect \"python-limits\"",
    );
    expect_error(
        &body("algorithm = \"sliding-log\"\nrate = \"1/s\"\nalign = \"first-hit\""),
        8,
        "align",
        "`align` applies to fixed-window limits only, not to a sliding-log limit",
    );
    expect_error(
        &body("algorithm = \"fixed-window\"\nrate = \"1/s\"\nalign = \"clock\""),
        8,
        "align",
        "expected \"epoch\"",
    );
    expect_error(
        &body("algorithm = \"fixed-window\"\nrate = \"1/1500us\"\nalign = \"first-hit-redis\""),
        8,
        "align",
        "needs a period of whole milliseconds",
    );
    expect_error(
        &body("algorithm = \"sliding-counter\"\nrate = \"1/s\"\nestimate = \"round\""),
        8,
        "estimate",
        "\"floor\"",
    );
    expect_error(
        &body("algorithm = \"sliding-log\"\nrate = \"1/s\"\nboundary = \"open\""),
        8,
        "boundary",
        "\"closed\"",
    );
    expect_error(
        &body("algorithm = \"gcra\"\nrate = \"1/s\"\nburst = 1\nnodelay = true"),
        9,
        "nodelay",
        "nginx-limit-req",
    );
    expect_error(&body("dialect = \"nginx\"\nrate = \"1/h\""), 7, "rate", "per second or per minute");
    expect_error(&body("dialect = \"nginx\"\nrate = \"1/s\"\ndelay = 2\nnodelay = true"), 8, "delay", "not both");
    expect_error(&body("dialect = \"nginx\"\nrate = \"1/s\"\nburst = -1"), 8, "burst", "0 or more");
    expect_error(
        &body("dialect = \"envoy-local\"\nrate = \"1/10ms\"\nburst = 3"),
        6,
        "dialect",
        "Envoy's fill interval is whole milliseconds, at least 50ms",
    );
    expect_error(&body("algorithm = \"token-bucket-steps\"\nrate = \"1/s\""), 4, "burst", "max_tokens");
    // An nginx request costing more than burst + 1 could never pass.
    expect_error(&body("dialect = \"nginx\"\nrate = \"1/s\"\nburst = 2\ncost = 4"), 9, "cost", "burst + 1");
}
