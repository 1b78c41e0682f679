//! The pages Parley serves itself — `/openapi.json`, Swagger UI at `/docs`,
//! ReDoc at `/redoc`, the web chat at `/chat` — every asset embedded in the
//! binary so they work without internet access, and each page with a
//! Content-Security-Policy that lets it load exactly that.

use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, HeaderValue, X_FRAME_OPTIONS};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::reply::{Reply, bytes};

const REDOC_JS: &str = include_str!("../assets/redoc/redoc.standalone.js");
/// ReDoc's "API docs by Redocly" badge loads its logo from Redocly's CDN: the
/// one request the pages would make elsewhere, telling Redocly who reads our
/// documentation (the policy would block it, with a violation each visit).
/// An empty `src` fetches nothing and makes the badge hide its image, as it
/// does when the CDN is unreachable; the badge's text link stays.
const REDOC_CDN_LOGO: &str = "https://cdn.redoc.ly/redoc/logo-mini.svg";
const CHAT_PAGE: &str = include_str!("../assets/chat/index.html");

const SWAGGER_PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Parley API — Swagger UI</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: true
});
</script>
</body>
</html>
"##;

const REDOC_PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Parley API — ReDoc</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body { margin: 0; padding: 0; }</style>
</head>
<body>
<div id="redoc"></div>
<script src="/redoc/redoc.standalone.js"></script>
<script>Redoc.init("/openapi.json", { hideDownloadButton: false }, document.getElementById("redoc"));</script>
</body>
</html>
"##;

/// What the chat page loads: its inline script and style (allowed by hash),
/// and REST and WebSocket calls to this server (`'self'` covers `ws:` and
/// `wss:` to the same host).
const CHAT_LOADS: Loads = Loads { scripts: "", styles: "", rest: "connect-src 'self'" };

/// What Swagger UI loads: its bundle and stylesheet from `/docs/`, the
/// document and "Try it out" calls from this server, and the icons its
/// stylesheet embeds as `data:` URLs.
const SWAGGER_LOADS: Loads =
    Loads { scripts: "'self'", styles: "'self'", rest: "connect-src 'self'; img-src 'self' data:" };

/// What ReDoc loads: its bundle from `/redoc/`, the document from this server,
/// and the logos its bundle embeds as `data:` URLs. Its styles are
/// styled-components, written into `<style>` elements at run time, which no
/// hash can name: styles (never scripts) may be inline here.
const REDOC_LOADS: Loads = Loads {
    scripts: "'self'",
    styles: "'unsafe-inline'",
    rest: "connect-src 'self'; img-src 'self' data:; worker-src blob:",
};

/// A page's sources beyond its own inline `<script>` and `<style>` elements,
/// per directive; anything not named is refused (`default-src 'none'`).
struct Loads {
    scripts: &'static str,
    styles: &'static str,
    /// Further directives, `;`-separated.
    rest: &'static str,
}

/// A page and the headers it is served with.
struct Page {
    html: &'static str,
    policy: HeaderValue,
}

impl Page {
    /// The page with its policy: the inline scripts and styles it holds now
    /// are allowed by their SHA-256, so editing one needs no policy edit.
    fn new(html: &'static str, loads: &Loads) -> Self {
        let scripts = with_hashes(loads.scripts, inline(html, "script"));
        let styles = with_hashes(loads.styles, inline(html, "style"));
        let policy = format!(
            "default-src 'none'; script-src {scripts}; style-src {styles}; {}; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            loads.rest
        );
        // Built from our own constants and base64: always a valid header value.
        let policy = HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
        Self { html, policy }
    }

    fn reply(&self) -> Reply {
        let mut reply = bytes(StatusCode::OK, "text/html; charset=utf-8", Bytes::from_static(self.html.as_bytes()));
        let headers = reply.headers_mut();
        headers.insert(CONTENT_SECURITY_POLICY, self.policy.clone());
        // `frame-ancestors` says the same to browsers that read CSP; this, to older ones.
        headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        reply
    }
}

/// The contents of every `<tag>` element in `html` that has no `src`: what a
/// browser treats as inline, and hashes exactly as written.
fn inline<'a>(html: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(&open) {
        let after = &rest[at + open.len()..];
        let Some(end_of_tag) = after.find('>') else { break };
        let attributes = &after[..end_of_tag];
        let body = &after[end_of_tag + 1..];
        let Some(end) = body.find(&close) else { break };
        if !attributes.contains("src=") {
            found.push(&body[..end]);
        }
        rest = &body[end + close.len()..];
    }
    found
}

/// A source list with the contents' hashes added, unless it allows every
/// inline element already: a hash beside `'unsafe-inline'` would turn it off.
fn with_hashes(sources: &str, contents: Vec<&str>) -> String {
    let mut list = sources.to_owned();
    if !sources.contains("'unsafe-inline'") {
        for content in contents {
            let hash = BASE64.encode(Sha256::digest(content.as_bytes()));
            let _ = write!(list, " 'sha256-{hash}'");
        }
    }
    if list.trim().is_empty() { "'none'".to_owned() } else { list.trim().to_owned() }
}

/// The documentation routes' content, built once.
pub struct Docs {
    openapi: Bytes,
    swagger: std::sync::Arc<utoipa_swagger_ui::Config<'static>>,
    redoc_js: Bytes,
    chat: Page,
    swagger_page: Page,
    redoc: Page,
}

impl Docs {
    pub fn new() -> Self {
        let openapi = serde_json::to_vec_pretty(&crate::openapi::document()).unwrap_or_default();
        let swagger = std::sync::Arc::new(utoipa_swagger_ui::Config::from("/openapi.json"));
        Self {
            openapi: Bytes::from(openapi),
            swagger,
            redoc_js: Bytes::from(REDOC_JS.replace(REDOC_CDN_LOGO, "")),
            chat: Page::new(CHAT_PAGE, &CHAT_LOADS),
            swagger_page: Page::new(SWAGGER_PAGE, &SWAGGER_LOADS),
            redoc: Page::new(REDOC_PAGE, &REDOC_LOADS),
        }
    }

    pub fn openapi(&self) -> Reply {
        bytes(StatusCode::OK, "application/json", self.openapi.clone())
    }

    pub fn swagger_page(&self) -> Reply {
        self.swagger_page.reply()
    }

    pub fn redoc_page(&self) -> Reply {
        self.redoc.reply()
    }

    /// The web chat page: sign in or pick a name, join a room, talk.
    pub fn chat_page(&self) -> Reply {
        self.chat.reply()
    }

    pub fn redoc_script(&self) -> Reply {
        cached(bytes(StatusCode::OK, "application/javascript", self.redoc_js.clone()))
    }

    /// A file of Swagger UI's distribution, as vendored by `utoipa-swagger-ui`.
    pub fn swagger_file(&self, file: &str) -> Result<Reply, ApiError> {
        match utoipa_swagger_ui::serve(file, std::sync::Arc::clone(&self.swagger)) {
            Ok(Some(found)) if !file.is_empty() && file != "index.html" => {
                let mut reply =
                    cached(bytes(StatusCode::OK, "application/octet-stream", Bytes::from(found.bytes.into_owned())));
                if let Ok(content_type) = HeaderValue::from_str(&found.content_type) {
                    reply.headers_mut().insert(hyper::header::CONTENT_TYPE, content_type);
                }
                Ok(reply)
            }
            _ => Err(ApiError::NotFound),
        }
    }
}

impl Default for Docs {
    fn default() -> Self {
        Self::new()
    }
}

/// Static assets change only with the binary: let browsers keep them a day.
fn cached(mut reply: Reply) -> Reply {
    reply.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_scripts_are_hashed_as_the_csp_specification_does() {
        // The example of CSP Level 3, section "hash-source".
        let html = "<script src=\"/app.js\"></script><script>alert('Hello, world.');</script>";
        assert_eq!(inline(html, "script"), ["alert('Hello, world.');"]);
        let sources = with_hashes("'self'", inline(html, "script"));
        assert_eq!(sources, "'self' 'sha256-qznLcsROx4GACP2dm0UCKCzCG+HiZ1guq6ZZDob/Tng='");
    }

    #[test]
    fn a_page_without_inline_parts_allows_none_and_unsafe_inline_is_not_undone_by_a_hash() {
        assert_eq!(with_hashes("", Vec::new()), "'none'");
        assert_eq!(with_hashes("'unsafe-inline'", vec!["body {}"]), "'unsafe-inline'");
    }

    #[test]
    fn every_page_allows_each_of_its_inline_scripts_by_hash() {
        for (html, loads) in [(CHAT_PAGE, CHAT_LOADS), (SWAGGER_PAGE, SWAGGER_LOADS), (REDOC_PAGE, REDOC_LOADS)] {
            let scripts = inline(html, "script");
            assert!(!scripts.is_empty());
            let policy = Page::new(html, &loads).policy;
            let policy = policy.to_str().unwrap();
            assert!(policy.matches("'sha256-").count() >= scripts.len(), "{policy}");
            assert!(!policy.contains("unsafe-eval") && !policy.contains("script-src 'unsafe-inline'"), "{policy}");
        }
    }
}
