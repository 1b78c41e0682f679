//! The OpenAPI document and the two documentation pages, offline.

use reqwest::StatusCode;

use crate::helpers::{body, spawn_app};

#[tokio::test]
async fn openapi_json_parses_and_lists_every_endpoint() {
    let app = spawn_app().await;
    let document = body(app.get("/openapi.json", None).await).await;
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/",
        "/healthz",
        "/readyz",
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/users",
        "/api/v1/users/",
        "/api/v1/users/me",
        "/api/v1/users/{user_id}",
        "/api/v1/search",
        "/search",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    assert_eq!(document["components"]["schemas"]["UserCreate"]["properties"]["username"]["maxLength"], 50);
}

/// Every `src=` and `href=` in a page points into this server.
fn external_references(page: &str) -> Vec<String> {
    ["src=\"", "href=\""]
        .iter()
        .flat_map(|attribute| page.match_indices(attribute).map(move |(at, _)| &page[at + attribute.len()..]))
        .map(|rest| rest.split('"').next().unwrap_or_default().to_owned())
        .filter(|target| !target.starts_with('/') || target.starts_with("//"))
        .collect()
}

#[tokio::test]
async fn docs_and_redoc_load_only_assets_this_server_serves() {
    let app = spawn_app().await;
    for (page, assets) in [
        ("/docs", vec!["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js"]),
        ("/redoc", vec!["/redoc/redoc.standalone.js"]),
    ] {
        let response = app.get(page, None).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let html = response.text().await.unwrap();
        assert!(!html.contains("http://") && !html.contains("https://"), "{page} names an external URL");
        assert_eq!(external_references(&html), Vec::<String>::new());
        assert!(html.contains("/openapi.json"));
        for asset in assets {
            assert!(html.contains(asset), "{page} does not load {asset}");
            let served = app.get(asset, None).await;
            assert_eq!(served.status(), StatusCode::OK, "{asset}");
            assert!(served.bytes().await.unwrap().len() > 10_000, "{asset} is the real file");
        }
    }
    assert_eq!(app.get("/docs/no-such-file.js", None).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_pages_forbid_framing_and_every_source_they_do_not_use() {
    let app = spawn_app().await;
    for page in ["/chat", "/docs", "/redoc"] {
        let response = app.get(page, None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.starts_with("default-src 'none';"), "{page}: {policy}");
        assert!(policy.contains("frame-ancestors 'none'") && policy.contains("base-uri 'none'"), "{page}: {policy}");
        let scripts = policy.split(';').find(|d| d.trim().starts_with("script-src")).unwrap();
        assert!(scripts.contains("'sha256-"), "{page}: its inline script is allowed by hash: {policy}");
        assert!(!scripts.contains("unsafe") && !scripts.contains("http"), "{page}: {policy}");
        assert_eq!(headers["x-frame-options"], "DENY", "{page}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{page}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{page}");
    }
    let redoc = app.get("/redoc/redoc.standalone.js", None).await.text().await.unwrap();
    assert!(!redoc.contains("cdn.redoc.ly"), "ReDoc's badge would load its logo from Redocly's CDN");
}

#[tokio::test]
async fn every_response_is_sent_without_sniffing_or_referrers() {
    let app = spawn_app().await;
    for path in ["/", "/openapi.json", "/nowhere", "/api/v1/users/me", "/docs/swagger-ui.css"] {
        let response = app.get(path, None).await;
        assert_eq!(response.headers()["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(response.headers()["referrer-policy"], "no-referrer", "{path}");
        assert!(response.headers().get("content-security-policy").is_none(), "{path}: only pages have one");
    }
}
