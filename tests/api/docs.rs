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
