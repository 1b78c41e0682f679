//! The pages Parley serves itself — `/openapi.json`, Swagger UI at `/docs`,
//! ReDoc at `/redoc`, the web chat at `/chat` — every asset embedded in the
//! binary so they work without internet access.

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::{CACHE_CONTROL, HeaderValue};

use crate::error::ApiError;
use crate::reply::{Reply, bytes};

const REDOC_JS: &[u8] = include_bytes!("../assets/redoc/redoc.standalone.js");
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

/// The documentation routes' content, built once.
pub struct Docs {
    openapi: Bytes,
    swagger: std::sync::Arc<utoipa_swagger_ui::Config<'static>>,
}

impl Docs {
    pub fn new() -> Self {
        let openapi = serde_json::to_vec_pretty(&crate::openapi::document()).unwrap_or_default();
        let swagger = std::sync::Arc::new(utoipa_swagger_ui::Config::from("/openapi.json"));
        Self { openapi: Bytes::from(openapi), swagger }
    }

    pub fn openapi(&self) -> Reply {
        bytes(StatusCode::OK, "application/json", self.openapi.clone())
    }

    pub fn swagger_page(&self) -> Reply {
        bytes(StatusCode::OK, "text/html; charset=utf-8", Bytes::from_static(SWAGGER_PAGE.as_bytes()))
    }

    pub fn redoc_page(&self) -> Reply {
        bytes(StatusCode::OK, "text/html; charset=utf-8", Bytes::from_static(REDOC_PAGE.as_bytes()))
    }

    /// The web chat page: sign in or pick a name, join a room, talk.
    pub fn chat_page(&self) -> Reply {
        bytes(StatusCode::OK, "text/html; charset=utf-8", Bytes::from_static(CHAT_PAGE.as_bytes()))
    }

    pub fn redoc_script(&self) -> Reply {
        cached(bytes(StatusCode::OK, "application/javascript", Bytes::from_static(REDOC_JS)))
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
