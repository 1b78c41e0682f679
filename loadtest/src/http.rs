//! HTTP. `http`: each user registers once, then logs in, reads itself, lists
//! users and searches, weighted as clients of the original app did. `me`:
//! register once, then only `GET /api/v1/users/me` (the cheapest
//! authenticated request: what the server costs per request). `logins`:
//! register once, then log in again and again — argon2id, expensive on
//! purpose — to show whether a login storm starves `me`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use goose::prelude::*;
use serde_json::{Value, json};

use crate::histogram::Histogram;
use crate::server::Sample;

/// What the server watch samples: requests done, users registered.
pub static COUNTERS: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
const REQUESTS: usize = 0;
const REGISTERED: usize = 1;
static LOGINS: AtomicU64 = AtomicU64::new(0);
static ME: Histogram = Histogram::new();

#[derive(Clone)]
struct Session {
    name: String,
    token: String,
}

fn name(user: &GooseUser) -> String {
    format!("lt{}_{}", std::process::id(), user.weighted_users_index)
}

pub async fn register(user: &mut GooseUser) -> TransactionResult {
    let name = name(user);
    let body = json!({"email": format!("{name}@example.com"), "username": name, "password": "load test password"});
    let _ = user.post_json("/api/v1/auth/register", &body).await?;
    user.set_session_data(Session { name, token: String::new() });
    login(user).await?;
    COUNTERS[REGISTERED].fetch_add(1, Ordering::Relaxed);
    Ok(())
}

pub async fn login(user: &mut GooseUser) -> TransactionResult {
    let name = user.get_session_data_unchecked::<Session>().name.clone();
    let form = [("username", name.as_str()), ("password", "load test password")];
    let request = user.get_request_builder(&GooseMethod::Post, "/api/v1/auth/login")?.form(&form);
    let goose = user.request(GooseRequest::builder().set_request_builder(request).build()).await?;
    COUNTERS[REQUESTS].fetch_add(1, Ordering::Relaxed);
    LOGINS.fetch_add(1, Ordering::Relaxed);
    if let Ok(response) = goose.response {
        let token: Value = response.json().await.unwrap_or_default();
        if let Some(token) = token["access_token"].as_str() {
            user.get_session_data_unchecked_mut::<Session>().token = token.to_owned();
        }
    }
    Ok(())
}

async fn authorised_get(user: &mut GooseUser, path: &str) -> TransactionResult {
    let token = user.get_session_data_unchecked::<Session>().token.clone();
    let request = user.get_request_builder(&GooseMethod::Get, path)?.bearer_auth(token);
    user.request(GooseRequest::builder().set_request_builder(request).build()).await?;
    COUNTERS[REQUESTS].fetch_add(1, Ordering::Relaxed);
    Ok(())
}

pub async fn me(user: &mut GooseUser) -> TransactionResult {
    let started = Instant::now();
    authorised_get(user, "/api/v1/users/me").await?;
    ME.record(started.elapsed());
    Ok(())
}

pub async fn list(user: &mut GooseUser) -> TransactionResult {
    authorised_get(user, "/api/v1/users/?limit=20").await
}

pub async fn search(user: &mut GooseUser) -> TransactionResult {
    let _ = user.get("/search?room=general&query=hello").await?;
    COUNTERS[REQUESTS].fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The run's figures as JSON (this module's counters sampled from `offset`). Server CPU is taken over the steady state:
/// from when the last user had registered to the last sample.
pub fn summary(samples: &[Sample], offset: usize) -> Value {
    let us = |p: f64| ME.percentile(p).map(|d| d.as_micros() as u64);
    let registered = COUNTERS[REGISTERED].load(Ordering::Relaxed);
    let mut report = json!({
        "scenario": "http",
        "users": registered,
        "requests": COUNTERS[REQUESTS].load(Ordering::Relaxed),
        "logins": LOGINS.load(Ordering::Relaxed),
        "me_requests": ME.count(),
        "me_p50_us": us(50.0),
        "me_p99_us": us(99.0),
    });
    let steady = samples.iter().find(|s| s.counters[offset + REGISTERED] == registered);
    if let (Some(start), Some(end)) = (steady, samples.last()) {
        let requests = end.counters[offset + REQUESTS].saturating_sub(start.counters[offset + REQUESTS]);
        if requests > 0 {
            let cpu = end.cpu.saturating_sub(start.cpu).as_secs_f64();
            report["cpu_us_per_request"] = json!((cpu * 1e6 / requests as f64 * 10.0).round() / 10.0);
        }
    }
    report
}
