//! Who is calling: the API key of `Authorization: Bearer KEY`, resolved to a
//! user and workspace by an optional keys file.
//!
//! - **No `Authorization` header**: an unauthenticated caller, keyed by its
//!   address (`127.0.0.1`), as a provider limits anonymous clients per IP.
//!   The emulator accepts such requests only when the plan has a limit for
//!   unauthenticated requests (`match.auth = "unauthenticated"`, as
//!   WriftAI's); otherwise they get `401 missing_api_key`.
//! - **`Authorization: Bearer KEY`**: the key, visible ASCII, at most 512
//!   bytes. Any other scheme, an empty key or other characters get
//!   `401 invalid_authorization_header`.
//! - **Keys file** (`--keys FILE.toml`): maps keys to users and workspaces
//!   (for `scope = "user"` / `"workspace"` limits) and may mark a key
//!   invalid (`401 invalid_api_key`). Keys not in the file get `401` too,
//!   unless the file says `unknown_keys = "accept"`. Without a keys file
//!   every key is accepted, as its own user and workspace.
//!
//! ```toml
//! unknown_keys = "reject"   # or "accept": unlisted keys are their own user
//!
//! [[key]]
//! key = "sk-alice-1"
//! user = "alice"
//! workspace = "acme"
//!
//! [[key]]
//! key = "sk-revoked"
//! invalid = true
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::endpoints::ApiError;

/// Longest API key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

/// What the keys file says about one key.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Account {
    /// The user owning the key.
    pub user: Option<String>,
    /// The workspace owning the key.
    pub workspace: Option<String>,
    /// The key is revoked: requests with it get 401.
    pub invalid: bool,
}

/// A keys file: key → account.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    /// The file, for messages.
    pub file: String,
    /// Whether keys not in the file are accepted (as their own user).
    pub accept_unknown: bool,
    accounts: HashMap<String, Account>,
}

/// The caller of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// An API key, with its user and workspace if the keys file names them.
    Key {
        /// The API key.
        key: String,
        /// Its user.
        user: Option<String>,
        /// Its workspace.
        workspace: Option<String>,
    },
    /// No `Authorization` header: the client's address is its identity.
    Anonymous {
        /// The client's IP address, as text.
        address: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    unknown_keys: Option<Spanned<String>>,
    #[serde(default)]
    key: Vec<Spanned<RawKey>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    key: Spanned<String>,
    user: Option<String>,
    workspace: Option<String>,
    #[serde(default)]
    invalid: bool,
}

/// `file:line:column` of byte `offset` in `text`.
fn locate(file: &str, text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.chars().count(), |i| before[i + 1..].chars().count()) + 1;
    format!("{file}:{line}:{column}")
}

impl Keys {
    /// Reads the keys file at `path`.
    pub fn load(path: &Path) -> Result<Keys, String> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read the keys file: {e}"))?;
        Keys::parse(&text, &file)
    }

    /// Parses keys-file TOML `text`; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Keys, String> {
        let raw: RawKeys = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or_else(|| file.to_string(), |s| locate(file, text, s.start));
            format!("{at}: {}", e.message().trim())
        })?;
        let accept_unknown = match &raw.unknown_keys {
            None => false,
            Some(v) => match v.get_ref().as_str() {
                "reject" => false,
                "accept" => true,
                other => {
                    return Err(format!(
                        "{}: unknown_keys: expected \"reject\" or \"accept\", found {other:?}",
                        locate(file, text, v.span().start)
                    ))
                }
            },
        };
        let mut accounts = HashMap::new();
        let mut first_line: HashMap<String, String> = HashMap::new();
        for entry in raw.key {
            let at = locate(file, text, entry.span().start);
            let entry = entry.into_inner();
            let key_at = locate(file, text, entry.key.span().start);
            let key = entry.key.into_inner();
            if let Err(why) = check_key(&key) {
                return Err(format!("{key_at}: key: {why}"));
            }
            for (name, v) in [("user", &entry.user), ("workspace", &entry.workspace)] {
                if v.as_ref().is_some_and(|s| s.is_empty()) {
                    return Err(format!("{at}: {name}: expected a non-empty name (or leave it out)"));
                }
            }
            if let Some(first) = first_line.get(&key) {
                return Err(format!("{key_at}: key {key:?} is listed twice (first at {first})"));
            }
            first_line.insert(key.clone(), key_at);
            accounts.insert(key, Account { user: entry.user, workspace: entry.workspace, invalid: entry.invalid });
        }
        Ok(Keys { file: file.to_string(), accept_unknown, accounts })
    }

    /// The account of `key`, if listed.
    pub fn account(&self, key: &str) -> Option<&Account> {
        self.accounts.get(key)
    }

    /// Keys listed.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether no key is listed.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
}

/// Why `key` is not a usable API key, if it is not.
fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("expected a non-empty API key".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!("expected at most {MAX_KEY_BYTES} bytes, found {}", key.len()));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("expected visible ASCII characters only (no spaces)".into());
    }
    Ok(())
}

/// `sk-abcdef…wxyz`: enough of a key to recognise it in a message.
fn masked(key: &str) -> String {
    if key.len() <= 10 {
        key.to_string()
    } else {
        format!("{}…{}", &key[..6], &key[key.len() - 4..])
    }
}

/// The caller of a request with `authorization` (the raw header value, if
/// present) from address `peer`.
pub fn identify(authorization: Option<&[u8]>, peer: IpAddr, keys: Option<&Keys>) -> Result<Caller, ApiError> {
    let Some(raw) = authorization else {
        return Ok(Caller::Anonymous { address: peer.to_string() });
    };
    let malformed = |why: String| ApiError::unauthorized("invalid_authorization_header", why);
    let text = std::str::from_utf8(raw)
        .ok()
        .filter(|t| t.bytes().all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic()))
        .ok_or_else(|| malformed("Authorization header: expected `Bearer <API key>` in visible ASCII".into()))?;
    let text = text.trim();
    let (scheme, key) = text.split_once([' ', '\t']).unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed(format!(
            "Authorization header: expected the Bearer scheme (`Authorization: Bearer <API key>`), found {:?}",
            scheme
        )));
    }
    let key = key.trim();
    if key.is_empty() {
        return Err(malformed("Authorization header: the API key after `Bearer` is empty".into()));
    }
    check_key(key).map_err(|why| malformed(format!("Authorization header: API key: {why}")))?;
    let account = match keys {
        None => None,
        Some(keys) => match keys.account(key) {
            Some(a) if a.invalid => {
                return Err(ApiError::unauthorized(
                    "invalid_api_key",
                    format!("API key {} is revoked (marked invalid in {})", masked(key), keys.file),
                ))
            }
            Some(a) => Some(a),
            None if keys.accept_unknown => None,
            None => {
                return Err(ApiError::unauthorized(
                    "invalid_api_key",
                    format!("Incorrect API key provided: {} is not in {}", masked(key), keys.file),
                ))
            }
        },
    };
    Ok(Caller::Key {
        key: key.to_string(),
        user: account.and_then(|a| a.user.clone()),
        workspace: account.and_then(|a| a.workspace.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn keys() -> Keys {
        Keys::parse(
            "[[key]]\nkey = \"sk-alice\"\nuser = \"alice\"\nworkspace = \"acme\"\n\n[[key]]\nkey = \"sk-old\"\ninvalid = true\n",
            "keys.toml",
        )
        .unwrap()
    }

    #[test]
    fn bearer_keys_resolve_through_the_keys_file() {
        let k = keys();
        assert_eq!(
            identify(Some(b"Bearer sk-alice"), LOCAL, Some(&k)).unwrap(),
            Caller::Key { key: "sk-alice".into(), user: Some("alice".into()), workspace: Some("acme".into()) }
        );
        assert_eq!(
            identify(Some(b"bearer   sk-x"), LOCAL, None).unwrap(),
            Caller::Key { key: "sk-x".into(), user: None, workspace: None }
        );
        assert_eq!(identify(None, LOCAL, Some(&k)).unwrap(), Caller::Anonymous { address: "127.0.0.1".into() });
        let e = identify(Some(b"Bearer sk-old"), LOCAL, Some(&k)).unwrap_err();
        assert_eq!((e.status, e.code), (401, "invalid_api_key"));
        assert!(e.message.contains("revoked"), "{}", e.message);
        let e = identify(Some(b"Bearer sk-unknown"), LOCAL, Some(&k)).unwrap_err();
        assert!(e.message.contains("not in keys.toml"), "{}", e.message);
    }

    #[test]
    fn malformed_authorization_headers_are_401_with_a_reason() {
        for (header, why) in [
            (&b"Basic dXNlcjpwYXNz"[..], "Bearer scheme"),
            (b"Bearer", "is empty"),
            (b"Bearer  ", "is empty"),
            (b"Bearer sk a", "visible ASCII"),
            (b"Bearer \xff\xfe", "visible ASCII"),
        ] {
            let e = identify(Some(header), LOCAL, None).unwrap_err();
            assert_eq!((e.status, e.code), (401, "invalid_authorization_header"));
            assert!(e.message.contains(why), "{header:?}: {}", e.message);
        }
    }

    #[test]
    fn keys_file_errors_are_located() {
        let e = Keys::parse("[[key]]\nkey = \"a\"\n[[key]]\nkey = \"a\"\n", "k.toml").unwrap_err();
        assert!(e.starts_with("k.toml:4:7: key \"a\" is listed twice (first at k.toml:2:7)"), "{e}");
        let e = Keys::parse("[[key]]\nkey = \"a\"\ncolour = 1\n", "k.toml").unwrap_err();
        assert!(e.starts_with("k.toml:3:1:") && e.contains("colour"), "{e}");
        let e = Keys::parse("unknown_keys = \"maybe\"\n", "k.toml").unwrap_err();
        assert!(e.contains("k.toml:1:16: unknown_keys: expected \"reject\" or \"accept\""), "{e}");
        let e = Keys::parse("[[key]]\nkey = \"a b\"\n", "k.toml").unwrap_err();
        assert!(e.contains("k.toml:2:7: key: expected visible ASCII"), "{e}");
        assert!(Keys::parse("unknown_keys = \"accept\"\n", "k.toml").unwrap().accept_unknown);
    }
}
