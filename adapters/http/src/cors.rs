//! CORS as the original configured it (Starlette's middleware): listed
//! origins, credentials allowed, any method and requested header;
//! preflights answered here, before routing.

use hyper::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD,
    HeaderMap, HeaderValue, ORIGIN, VARY,
};
use hyper::{Method, StatusCode};

use crate::reply::{Reply, bytes};

const METHODS: &str = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT";
/// What a preflight answer is made of: a cache must not hand it to another
/// origin, or to a preflight asking for another method or other headers.
const PREFLIGHT_VARY: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    /// Origins allowed to call with credentials; `*` allows any (each is
    /// then echoed back, since credentials forbid a literal `*`).
    pub fn new(origins: Vec<String>) -> Self {
        Self { origins: origins.into_iter().map(|o| o.trim().trim_end_matches('/').to_owned()).collect() }
    }

    fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|allowed| allowed == "*" || allowed == origin)
    }

    /// The answer to a preflight request, if this is one.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Reply> {
        let origin = headers.get(ORIGIN)?;
        if method != Method::OPTIONS || !headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
            return None;
        }
        let allowed = origin.to_str().is_ok_and(|o| self.allows(o));
        let mut reply = if allowed {
            bytes(StatusCode::OK, "text/plain", "OK".into())
        } else {
            bytes(StatusCode::BAD_REQUEST, "text/plain", "Disallowed CORS origin".into())
        };
        let out = reply.headers_mut();
        out.insert(VARY, HeaderValue::from_static(PREFLIGHT_VARY));
        if !allowed {
            return Some(reply);
        }
        out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        out.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(METHODS));
        out.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        if let Some(requested) = headers.get(ACCESS_CONTROL_REQUEST_HEADERS) {
            out.insert(ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
        }
        Some(reply)
    }

    /// Adds the CORS headers to an ordinary response for an allowed origin.
    ///
    /// Every answer says it varies by `Origin`, not only those naming one: the
    /// allowed origin is echoed, so a cache keeping an answer made without it
    /// (or for another origin) would otherwise serve it to a page it fails.
    pub fn decorate(&self, origin: Option<&HeaderValue>, reply: &mut Reply) {
        let out = reply.headers_mut();
        // A preflight's answer names `Origin` already.
        if !out.get_all(VARY).iter().any(|v| v.as_bytes().starts_with(b"Origin")) {
            out.append(VARY, HeaderValue::from_static("Origin"));
        }
        let Some(origin) = origin.filter(|o| o.to_str().is_ok_and(|o| self.allows(o))) else {
            return;
        };
        out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
}
