//! `spawn_app`: the server as `main` builds it, on 127.0.0.1:0, and a
//! `TestApp` whose methods are the original app's requests.

use std::sync::Arc;

use clap::Parser;
use parley::app::App;
use parley::config::Config;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

pub const SECRET: &str = "test secret, thirty-two bytes ok";
pub const PASSWORD: &str = "correct horse";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub chat: Arc<parley_ports::Chat>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(extra: &[&str]) -> TestApp {
    let mut args = vec!["parley", "--argon2-memory-kib", "64", "--argon2-iterations", "1", "--jwt-secret", SECRET];
    if !extra.contains(&"--database-url") {
        args.extend_from_slice(&["--database-url", "memory://"]);
    }
    args.extend_from_slice(extra);
    let config = Config::try_parse_from(args).expect("test configuration parses");
    let app = App::build(&config).await.expect("app builds");
    let chat = Arc::clone(&app.chat);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(app.run_until_stopped(listener, std::future::pending()));
    TestApp { address, client: reqwest::Client::new(), chat }
}

/// Serves services wired by hand (over a test's own adapters), with the
/// default settings, on 127.0.0.1:0: HTTP and the WebSocket rooms.
pub async fn serve(accounts: Arc<parley_ports::Accounts>, chat: Arc<parley_ports::Chat>) -> TestApp {
    let rooms = parley_ws::WsRooms::new(Arc::clone(&chat), Arc::clone(&accounts), parley_ws::WsConfig::default());
    let upgrade: parley_http::Upgrader =
        Arc::new(move |request, client| Box::pin(Arc::clone(&rooms).handle(request, client)));
    let api = parley_http::Api {
        accounts,
        chat: Arc::clone(&chat),
        body_limit: 64 * 1024,
        body_timeout: std::time::Duration::from_secs(5),
        websockets: Some(upgrade),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(parley_http::serve(listener, api, parley_http::ServerConfig::default(), std::future::pending()));
    TestApp { address, client: reqwest::Client::new(), chat }
}

/// A registered user and a token for them.
pub struct Account {
    pub id: i64,
    pub token: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post_register(&self, body: &Value) -> Response {
        self.client.post(self.url("/api/v1/auth/register")).json(body).send().await.unwrap()
    }

    pub async fn post_login_form(&self, username: &str, password: &str) -> Response {
        let form = [("username", username), ("password", password), ("grant_type", "password")];
        self.client.post(self.url("/api/v1/auth/login")).form(&form).send().await.unwrap()
    }

    pub async fn post_login_json(&self, username: &str, password: &str) -> Response {
        let body = json!({"username": username, "password": password});
        self.client.post(self.url("/api/v1/auth/login")).json(&body).send().await.unwrap()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub async fn put_user(&self, id: i64, token: &str, body: &Value) -> Response {
        self.client.put(self.url(&format!("/api/v1/users/{id}"))).bearer_auth(token).json(body).send().await.unwrap()
    }

    pub async fn delete_user(&self, id: i64, token: &str) -> Response {
        self.client.delete(self.url(&format!("/api/v1/users/{id}"))).bearer_auth(token).send().await.unwrap()
    }

    pub async fn post_user(&self, token: &str, body: &Value) -> Response {
        self.client.post(self.url("/api/v1/users/")).bearer_auth(token).json(body).send().await.unwrap()
    }

    /// Registers `name` (`name@example.com`, password [`PASSWORD`]) and logs in.
    pub async fn account(&self, name: &str) -> Account {
        let registered = self.post_register(&new_user(name)).await;
        assert_eq!(registered.status(), StatusCode::CREATED, "registering {name}");
        let id = body(registered).await["id"].as_i64().unwrap();
        let login = self.post_login_form(name, PASSWORD).await;
        assert_eq!(login.status(), StatusCode::OK, "logging in {name}");
        let token = body(login).await["access_token"].as_str().unwrap().to_owned();
        Account { id, token }
    }
}

pub fn new_user(name: &str) -> Value {
    json!({"email": format!("{name}@example.com"), "username": name, "full_name": format!("{name} Example"), "password": PASSWORD})
}

pub async fn body(response: Response) -> Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// Asserts status and `{"detail": text}`.
pub async fn assert_detail(response: Response, status: StatusCode, text: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(body(response).await, json!({ "detail": text }));
}

/// Asserts a 422 whose problems include one at `loc` of kind `kind`.
pub async fn assert_invalid(response: Response, loc: &[&str], kind: &str) {
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = body(response).await;
    let problems = body["detail"].as_array().unwrap_or_else(|| panic!("no problem list: {body}"));
    let found = problems.iter().any(|p| p["loc"] == json!(loc) && p["type"] == kind && p["msg"].is_string());
    assert!(found, "no {kind} at {loc:?} in {body}");
}
