//! Which method and path answer what, and the endpoint name each gives the
//! policy.
//!
//! A policy's selectors (`match.endpoints`, `match.except`, `cost_by_endpoint`)
//! speak of endpoint *names*; the emulator maps paths to names:
//!
//! | method | path | endpoint name | answers |
//! |---|---|---|---|
//! | `POST` | `/v1/chat/completions` | `chat.completions` | an OpenAI-compatible chat completion (`stream: true`: server-sent events, one request) |
//! | `POST` | `/v1/predictions` | `predictions.create` | a prediction that runs for the service time (its permits are held until it ends) |
//! | `GET` | `/v1/predictions/{id}` | `predictions.get` | the prediction's status |
//! | `GET` | `/v1/usage` | `usage` | the key's live figures (RunAgent's usage endpoint) |
//! | `GET` | `/health` | — | `{"status":"ok"}`, never limited, never logged |
//!
//! `--route 'METHOD /path=NAME'` renames the endpoint of a built-in route
//! (`POST /v1/chat/completions=invoke` for RunAgent's names) or adds a route
//! that answers `{"object":"ratesim.response","endpoint":NAME}` after the
//! service time. A path segment written `{name}` matches any one segment.

/// What a route answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/predictions`.
    PredictionCreate,
    /// `GET /v1/predictions/{id}`.
    PredictionGet,
    /// `GET /v1/usage`.
    Usage,
    /// `GET /health`: never limited.
    Health,
    /// A route added with `--route`.
    Generic,
}

/// One route: a method and path pattern, the endpoint name the policy sees,
/// and what answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// HTTP method, upper case.
    pub method: String,
    /// Path pattern: `/`-separated segments, `{name}` matching any one.
    pub path: String,
    /// The endpoint name given to the policy.
    pub endpoint: String,
    /// What answers.
    pub handler: Handler,
}

/// The route table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routes {
    routes: Vec<Route>,
}

/// What a method and path resolve to.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved<'r, 'p> {
    /// A route, and the path segment its `{…}` pattern segment matched.
    Found(&'r Route, Option<&'p str>),
    /// The path exists, with other methods (for `405` and its `Allow`).
    WrongMethod(Vec<&'r str>),
    /// No route has this path.
    NotFound,
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

impl Default for Routes {
    fn default() -> Self {
        Routes::builtin()
    }
}

impl Routes {
    /// The built-in routes (see the module docs).
    pub fn builtin() -> Routes {
        let r = |method: &str, path: &str, endpoint: &str, handler| Route {
            method: method.into(),
            path: path.into(),
            endpoint: endpoint.into(),
            handler,
        };
        Routes {
            routes: vec![
                r("POST", "/v1/chat/completions", "chat.completions", Handler::ChatCompletions),
                r("POST", "/v1/predictions", "predictions.create", Handler::PredictionCreate),
                r("GET", "/v1/predictions/{id}", "predictions.get", Handler::PredictionGet),
                r("GET", "/v1/usage", "usage", Handler::Usage),
                r("GET", "/health", "health", Handler::Health),
            ],
        }
    }

    /// The routes, built-in ones first.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// Applies a `--route` spec, `METHOD /path=NAME`: renames the endpoint
    /// of the built-in route with that method and path, or adds a route.
    pub fn add(&mut self, spec: &str) -> Result<(), String> {
        let expected = "expected METHOD /path=ENDPOINT, e.g. 'POST /v1/invoke=invoke'";
        let (left, endpoint) = spec.rsplit_once('=').ok_or_else(|| format!("{expected}, found {spec:?}"))?;
        let (method, path) =
            left.trim().split_once(char::is_whitespace).ok_or_else(|| format!("{expected}, found {spec:?}"))?;
        let method = method.trim().to_ascii_uppercase();
        let (path, endpoint) = (path.trim(), endpoint.trim());
        if !METHODS.contains(&method.as_str()) {
            return Err(format!("method {method:?}: expected one of {}", METHODS.join(", ")));
        }
        check_path(path)?;
        if endpoint.is_empty() || endpoint.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("endpoint name {endpoint:?}: expected a non-empty name without spaces, e.g. invoke"));
        }
        if let Some(existing) = self.routes.iter_mut().find(|r| r.method == method && r.path == path) {
            if existing.handler == Handler::Health {
                return Err(format!("{method} {path} is the emulator's health check: it is never limited"));
            }
            existing.endpoint = endpoint.to_string();
            return Ok(());
        }
        if let Some(clash) = self.routes.iter().find(|r| r.method == method && overlaps(&r.path, path)) {
            return Err(format!("{method} {path} overlaps the route {} {}", clash.method, clash.path));
        }
        self.routes.push(Route {
            method,
            path: path.to_string(),
            endpoint: endpoint.to_string(),
            handler: Handler::Generic,
        });
        Ok(())
    }

    /// The route for `method` and `path` (without the query string).
    pub fn resolve<'r, 'p>(&'r self, method: &str, path: &'p str) -> Resolved<'r, 'p> {
        let mut allowed = Vec::new();
        for route in &self.routes {
            if let Some(param) = match_path(&route.path, path) {
                if route.method == method {
                    return Resolved::Found(route, param);
                }
                allowed.push(route.method.as_str());
            }
        }
        if allowed.is_empty() {
            Resolved::NotFound
        } else {
            Resolved::WrongMethod(allowed)
        }
    }
}

fn check_path(path: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("path {path:?}: {why}"));
    if !path.starts_with('/') {
        return bad("expected a path starting with /, e.g. /v1/invoke");
    }
    if path.contains(['?', '#']) || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("expected a plain path without query, fragment or spaces");
    }
    if path.len() > 1 && path[1..].split('/').any(str::is_empty) {
        return bad("expected no empty segment (// or a trailing /)");
    }
    for seg in path[1..].split('/') {
        let braces = seg.contains(['{', '}']);
        if braces && !(seg.starts_with('{') && seg.ends_with('}') && seg.len() > 2) {
            return bad("a segment with braces must be a whole {name}");
        }
    }
    Ok(())
}

/// Whether `pattern` matches `path`; the segment its `{…}` matched, if any.
fn match_path<'p>(pattern: &str, path: &'p str) -> Option<Option<&'p str>> {
    let mut param = None;
    let mut pat = pattern.split('/');
    let mut segs = path.split('/');
    loop {
        match (pat.next(), segs.next()) {
            (None, None) => return Some(param),
            (Some(p), Some(s)) if p.starts_with('{') => {
                if s.is_empty() {
                    return None;
                }
                param = Some(s);
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

/// Whether two patterns match some path in common.
fn overlaps(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x == y || x.starts_with('{') || y.starts_with('{'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_paths_resolve_to_their_names() {
        let r = Routes::builtin();
        match r.resolve("POST", "/v1/chat/completions") {
            Resolved::Found(route, None) => assert_eq!(route.endpoint, "chat.completions"),
            other => panic!("{other:?}"),
        }
        match r.resolve("GET", "/v1/predictions/p-7") {
            Resolved::Found(route, Some("p-7")) => assert_eq!(route.endpoint, "predictions.get"),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.resolve("GET", "/v1/chat/completions"), Resolved::WrongMethod(vec!["POST"]));
        assert_eq!(r.resolve("GET", "/v1/nope"), Resolved::NotFound);
        assert_eq!(r.resolve("GET", "/v1/predictions/"), Resolved::NotFound);
        assert_eq!(r.resolve("GET", "/v1/usage/"), Resolved::NotFound);
    }

    #[test]
    fn routes_can_be_renamed_and_added() {
        let mut r = Routes::builtin();
        r.add("POST /v1/chat/completions=invoke").unwrap();
        r.add("get /v1/models/{model}=models.get").unwrap();
        match r.resolve("POST", "/v1/chat/completions") {
            Resolved::Found(route, _) => {
                assert_eq!((route.endpoint.as_str(), route.handler), ("invoke", Handler::ChatCompletions))
            }
            other => panic!("{other:?}"),
        }
        match r.resolve("GET", "/v1/models/gpt") {
            Resolved::Found(route, Some("gpt")) => assert_eq!(route.handler, Handler::Generic),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_route_specs_say_what_was_expected() {
        let mut r = Routes::builtin();
        assert!(r.add("/v1/x").unwrap_err().contains("expected METHOD /path=ENDPOINT"));
        assert!(r.add("FETCH /v1/x=x").unwrap_err().contains("expected one of GET"));
        assert!(r.add("GET v1/x=x").unwrap_err().contains("starting with /"));
        assert!(r.add("GET /v1//x=x").unwrap_err().contains("empty segment"));
        assert!(r.add("GET /v1/x=").unwrap_err().contains("non-empty name"));
        assert!(r.add("GET /health=h").unwrap_err().contains("never limited"));
        assert!(r.add("GET /v1/predictions/latest=x").unwrap_err().contains("overlaps"));
        assert!(r.add("GET /v1/a{b}=x").unwrap_err().contains("whole {name}"));
    }
}
