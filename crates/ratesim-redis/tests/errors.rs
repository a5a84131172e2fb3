//! Malformed commands and policies are answered with Redis errors that say
//! what was expected; the server keeps running and keeps deciding.

mod common;

use common::{error_of, load_policy, Server, TempDir};
use redis::Value;

const POLICY: &str = r#"
provider = "Example"
[[plan]]
name = "pro"
[[plan.limit]]
id = "rpm"
algorithm = "gcra"
rate = "500/min"
burst = 50
[[plan.limit]]
id = "inflight"
algorithm = "concurrency"
max = 2
"#;

#[test]
fn malformed_commands_get_errors_and_the_server_stays_up() {
    let dir = TempDir::new("errors");
    let mut server = Server::start(&dir.0, &[]);
    let mut c = server.conn();
    load_policy(&mut c, "ex", POLICY);
    // A string where a state key would be.
    let _: () = redis::cmd("SET").arg("ratesim:ex:pro:taken").arg("x").query(&mut c).unwrap();
    let cases: &[(&str, &[&str], &str)] = &[
        ("RATESIM.CHECK", &[], "wrong number of arguments"),
        ("RATESIM.CHECK", &["k", "ex"], "wrong number of arguments"),
        ("RATESIM.CHECK", &["k", "nope", "pro"], r#"no policy named "nope" is loaded"#),
        ("RATESIM.CHECK", &["k", "ex", "gold"], r#"policy "ex" has no plan "gold"; its plans are: pro"#),
        ("RATESIM.CHECK", &["", "ex", "pro"], "the key is empty"),
        ("RATESIM.CHECK", &["k", "ex", "pro", "SPEED", "9"], r#"unknown option "SPEED""#),
        ("RATESIM.CHECK", &["k", "ex", "pro", "USER"], "option USER needs a value"),
        ("RATESIM.CHECK", &["k", "ex", "pro", "USER", ""], "USER is empty"),
        ("RATESIM.CHECK", &["k", "ex", "pro", "AT", "1", "at", "2"], "option AT given twice"),
        ("RATESIM.CHECK", &["k", "ex", "pro", "AT", "-5"], r#"AT (nanoseconds since the Unix epoch) expects a whole number of 0 or more, found "-5""#),
        ("RATESIM.CHECK", &["k", "ex", "pro", "AT", "9223372036854775808"], "is at most 9223372036854775807"),
        ("RATESIM.CHECK", &["k", "ex", "pro", "TOKENS", "1e3"], r#"TOKENS expects a whole number of 0 or more, found "1e3""#),
        ("RATESIM.CHECK", &["k", "ex", "pro", "COST", "99999999999999999999"], "COST expects a whole number"),
        ("RATESIM.CHECK", &["k", "ex", "pro", "AUTH", "yes"], r#"AUTH expects 1 (authenticated) or 0, found "yes""#),
        ("RATESIM.CHECK", &["k", "ex", "pro", "RENDER", "2"], "RENDER expects 1"),
        ("RATESIM.CHECK", &["taken", "ex", "pro"], "WRONGTYPE"),
        ("RATESIM.COMPLETE", &["k", "ex", "pro"], "wrong number of arguments"),
        ("RATESIM.COMPLETE", &["k", "ex", "pro", "garbage"], "expected index:kind:number:number"),
        ("RATESIM.COMPLETE", &["k", "ex", "pro", "7:p:1:2"], "the plan has 2 limits, no limit 7"),
        ("RATESIM.COMPLETE", &["k", "ex", "pro", "1:x:1:2"], "neither p (permit) nor r (reservation)"),
        ("RATESIM.COMPLETE", &["k", "ex", "pro", "1:p:1:-2"], r#""-2" is not a whole number"#),
        ("RATESIM.COMPLETE", &["k", "ex", "pro", "1:p:1:2,1:p:3:4"], "a second item for the same limit"),
        ("RATESIM.POLICY.LOAD", &["ex"], "wrong number of arguments"),
        ("RATESIM.POLICY.LOAD", &["a:b", POLICY], r#"the policy name "a:b" contains ':'"#),
        ("RATESIM.POLICY.LOAD", &["{x}", POLICY], "may not contain ':', '{', '}'"),
        ("RATESIM.POLICY.LOAD", &["bad", "provider = 1"], "bad"),
        ("RATESIM.POLICY.LOAD", &["bad", "provider = \"P\"\n[[plan]]\nname = \"a:b\"\n[[plan.limit]]\nid = \"x\"\nalgorithm = \"concurrency\"\nmax = 1\n"], r#"bad: plan name "a:b" contains ':'"#),
        ("RATESIM.STATE", &["k", "ex"], "wrong number of arguments"),
        ("RATESIM.STATE", &["k", "ex", "pro", "WHEN", "1"], r#"unknown option "WHEN"; the only option is AT"#),
        ("RATESIM.STATE.RESTORE", &["ratesim:ex:pro:k", "not a state"], "not an encoded ratesim state"),
        ("RATESIM.STATE.RESTORE", &["ratesim:ex:pro:taken", "\u{0}"], "WRONGTYPE"),
    ];
    for (cmd, args, want) in cases {
        let got = error_of(&mut c, cmd, args);
        assert!(got.contains(want), "{cmd} {args:?}: expected an error containing {want:?}, got {got:?}");
    }
    // Invalid UTF-8 in an identity.
    let got: redis::RedisResult<Value> =
        redis::cmd("RATESIM.CHECK").arg(&b"k\xff"[..]).arg("ex").arg("pro").query(&mut c);
    assert!(got.unwrap_err().to_string().contains("the key is not valid UTF-8"));
    // Still up, still deciding, nothing written by the failed commands.
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    assert!(common::check(&mut c, &["k", "ex", "pro"]).allowed);
    let keys: Vec<String> = redis::cmd("KEYS").arg("ratesim:*").query(&mut c).unwrap();
    assert_eq!(keys.len(), 2, "only the string and k's states: {keys:?}");
    assert!(server.peer.signal_and_wait(0, std::time::Duration::from_millis(1)).is_none(), "the server is running");
}

#[test]
fn a_malformed_policy_gets_the_error_policy_check_prints() {
    let dir = TempDir::new("policy-errors");
    let server = Server::start(&dir.0, &[]);
    let mut c = server.conn();
    // The README's three broken policies, and one more.
    let minimal = "provider = \"Example\"\n\n[[plan]]\nname = \"pro\"\n\n[[plan.limit]]\nid = \"rpm\"\nalgorithm = \"gcra\"\nrate = \"500/min\"\nburst = 50\n";
    let broken = [
        minimal.replace("burst = 50", "burst = 0"),
        minimal.replace("algorithm = \"gcra\"", "algorithm = \"fixed-window\""),
        minimal.replace("rate = \"500/min\"", "rate = \"100/fortnight\""),
        minimal.replace("[[plan]]", "[[plan]]\nsurprise = true"),
    ];
    for text in broken {
        let want = ratesim::policy::parse(&text, "mine").unwrap_err().to_string();
        let got = error_of(&mut c, "RATESIM.POLICY.LOAD", &["mine", &text]);
        assert!(got.ends_with(&format!(": {}", want.replace('\n', " "))), "policy:\n{text}\ngot {got}\nwant {want}");
        assert!(want.starts_with("mine:"), "located in the policy named: {want}");
    }
    let list: Vec<String> = redis::cmd("RATESIM.POLICY.LIST").query(&mut c).unwrap();
    assert!(list.is_empty(), "nothing was loaded: {list:?}");
}

#[test]
fn a_state_of_another_kind_under_a_limit_is_replaced_not_trusted() {
    use ratesim::engines::{EngineState, GcraState};
    // What `RATESIM.STATE.RESTORE` takes: the postcard encoding of the
    // states (see value.rs), here a GCRA state under the fingerprint of the
    // concurrency limit, as a hand-made or corrupted value could hold.
    #[derive(serde::Serialize)]
    struct Entry {
        fingerprint: u64,
        state: EngineState,
    }
    #[derive(serde::Serialize)]
    struct StateValue {
        entries: Vec<Entry>,
    }
    let policy = ratesim::policy::parse(POLICY, "ex").unwrap();
    let limit = &policy.plans[0].limits[1];
    // The fingerprint as registry.rs documents it: FNV-1a of id, scope, engine.
    let text = format!("{}\u{0}{}\u{0}{:?}", limit.id, limit.scope.name(), limit.engine);
    let mut fp: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        fp ^= b as u64;
        fp = fp.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let bytes = postcard::to_allocvec(&StateValue {
        entries: vec![Entry { fingerprint: fp, state: EngineState::Gcra(GcraState::default()) }],
    })
    .unwrap();
    let dir = TempDir::new("kind");
    let server = Server::start(&dir.0, &[]);
    let mut c = server.conn();
    load_policy(&mut c, "ex", POLICY);
    let _: Value = redis::cmd("RATESIM.STATE.RESTORE").arg("ratesim:ex:pro:k").arg(bytes).query(&mut c).unwrap();
    let at = "1767225600000000000";
    for n in 0..3 {
        let d = common::check(&mut c, &["k", "ex", "pro", "AT", at]);
        assert_eq!(d.allowed, n < 2, "request {n}: two permits, then the cap: {d:?}");
    }
}
