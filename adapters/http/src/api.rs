//! The handlers: each reads its input, calls one service, and shapes the reply.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, StatusCode};
use parley_ports::domain::{
    ClientAddress, Email, EventId, FullName, NewUser, Password, RoomName, SearchText, UserPatch, Username,
};
use parley_ports::{Accounts, Caller, Chat, SearchOrder, SearchQuery, UserQuery};
use serde::Serialize;

use crate::error::{ApiError, FieldError};
use crate::input::{Fields, Query, read_body, user_id};
use crate::reply::{Reply, empty, json};
use crate::wire::{ChatHit, MembersBody, RoomBody, TokenBody, UserBody};

/// Results per search page when the client does not say.
const DEFAULT_SEARCH_LIMIT: u64 = 10;
/// Events per history page when the client does not say.
const DEFAULT_HISTORY_LIMIT: u64 = 50;

/// Answers a request for a `/ws/...` path (the WebSocket adapter, wired in
/// by the binary: adapters do not depend on each other), with the client it came from.
pub type Upgrader =
    Arc<dyn Fn(Request<Incoming>, ClientAddress) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// What the handlers need: the services, and the limits on client input.
pub struct Api {
    pub accounts: Arc<Accounts>,
    pub chat: Arc<Chat>,
    pub body_limit: usize,
    pub body_timeout: Duration,
    pub websockets: Option<Upgrader>,
}

pub type Handled = Result<Reply, ApiError>;

impl Api {
    pub async fn welcome(&self) -> Handled {
        #[derive(Serialize)]
        struct Welcome {
            message: &'static str,
        }
        Ok(json(StatusCode::OK, &Welcome { message: "Welcome to Parley, a real-time chat server" }))
    }

    pub async fn healthz(&self) -> Handled {
        Ok(json(StatusCode::OK, &serde_json::json!({ "status": "ok" })))
    }

    /// 200 when every wired adapter answers, else 503 naming which does not.
    /// Why it does not (backend error text: hostnames, users, SQL) goes to the
    /// log, and to an administrator's bearer token; anyone else reads
    /// `unavailable`. An administrator is recognised through the user store,
    /// so while that is down they too read only the log.
    pub async fn readyz(&self, request: &Request<Incoming>, seen: &Readiness) -> Handled {
        let (users, fanout, log) = tokio::join!(self.accounts.ping(), self.chat.ping_fanout(), self.chat.ping_log());
        let checks = [
            ("user_store", users.err().map(|e| e.to_string())),
            ("fanout", fanout.err().map(|e| e.to_string())),
            ("chat_log", log.err().map(|e| e.to_string())),
        ];
        seen.note(&checks);
        let ready = checks.iter().all(|(_, problem)| problem.is_none());
        // Only asked when there is something to hide: a probe of a ready server costs no lookup.
        let detailed = !ready && self.caller(request).await.is_ok_and(|caller| caller.user().is_admin);
        let checks: serde_json::Map<String, serde_json::Value> = checks
            .into_iter()
            .map(|(name, problem)| {
                let said = match problem {
                    None => "ok".to_owned(),
                    Some(problem) if detailed => problem,
                    Some(_) => "unavailable".to_owned(),
                };
                (name.to_owned(), said.into())
            })
            .collect();
        let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        Ok(json(
            status,
            &serde_json::json!({ "status": if ready { "ready" } else { "unavailable" }, "checks": checks }),
        ))
    }

    pub async fn register(&self, request: Request<Incoming>) -> Handled {
        let new = self.new_user(request).await?;
        Ok(json(StatusCode::CREATED, &UserBody::from(self.accounts.register(new).await?)))
    }

    /// The OAuth2 password form, or the same fields as JSON.
    pub async fn login(&self, request: Request<Incoming>) -> Handled {
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"));
        let body = read_body(request, self.body_limit, self.body_timeout).await?;
        let mut fields = if is_json { Fields::json(&body)? } else { Fields::form(&body) };
        let login = fields.required_string("username");
        let password = fields.required_string("password");
        fields.problems.finish()?;
        let (Some(login), Some(password)) = (login, password) else { unreachable_input()? };
        Ok(json(StatusCode::OK, &TokenBody::from(self.accounts.login(&login, &password).await?)))
    }

    pub async fn me(&self, request: &Request<Incoming>) -> Handled {
        let caller = self.caller(request).await?;
        Ok(json(StatusCode::OK, &UserBody::from(caller.user().clone())))
    }

    pub async fn list_users(&self, request: &Request<Incoming>) -> Handled {
        let caller = self.caller(request).await?;
        let mut query = Query::of(request.uri());
        let skip = query.integer("skip", 0, i64::MAX as u64).unwrap_or(0);
        // Larger limits are served as the cap (the original had none), not refused.
        let limit = query.integer("limit", 0, u64::MAX).unwrap_or(100);
        let search = query.optional("search").filter(|s| !s.is_empty());
        let is_active = query.boolean("is_active");
        query.problems.finish()?;
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let users = self.accounts.list(&caller, UserQuery { skip, limit, search, is_active }).await?;
        Ok(json(StatusCode::OK, &users.into_iter().map(UserBody::from).collect::<Vec<_>>()))
    }

    pub async fn create_user(&self, request: Request<Incoming>) -> Handled {
        let caller = self.caller(&request).await?;
        let new = self.new_user(request).await?;
        Ok(json(StatusCode::CREATED, &UserBody::from(self.accounts.create(&caller, new).await?)))
    }

    pub async fn get_user(&self, request: &Request<Incoming>, id: &str) -> Handled {
        let caller = self.caller(request).await?;
        let user = self.accounts.get(&caller, user_id(id)?).await?;
        Ok(json(StatusCode::OK, &UserBody::from(user)))
    }

    pub async fn update_user(&self, request: Request<Incoming>, id: &str) -> Handled {
        let caller = self.caller(&request).await?;
        let id = user_id(id)?;
        let body = read_body(request, self.body_limit, self.body_timeout).await?;
        let mut fields = Fields::json(&body)?;
        let email = fields.optional_string("email");
        let username = fields.optional_string("username");
        let full_name = fields.nullable_string("full_name");
        let password = fields.optional_string("password");
        let is_active = fields.optional_bool("is_active");
        let is_admin = fields.optional_bool("is_admin");
        let problems = &mut fields.problems;
        let patch = UserPatch {
            email: email.and_then(|v| problems.check("body", Email::parse(v))),
            username: username.and_then(|v| problems.check("body", Username::parse(v))),
            full_name: full_name.map(|v| v.and_then(|v| problems.check("body", FullName::parse(v)))),
            password: password.and_then(|v| problems.check("body", Password::parse(v))),
            is_active,
            is_admin,
        };
        fields.problems.finish()?;
        Ok(json(StatusCode::OK, &UserBody::from(self.accounts.update(&caller, id, patch).await?)))
    }

    pub async fn delete_user(&self, request: &Request<Incoming>, id: &str) -> Handled {
        let caller = self.caller(request).await?;
        self.accounts.delete(&caller, user_id(id)?).await?;
        Ok(empty(StatusCode::NO_CONTENT))
    }

    /// A room's messages matching the query: no authentication, as the original.
    pub async fn search(&self, request: &Request<Incoming>) -> Handled {
        let mut query = Query::of(request.uri());
        let room = query.required("room");
        let text = query.required("query");
        let limit = query.integer("limit", 1, u64::MAX).unwrap_or(DEFAULT_SEARCH_LIMIT);
        let offset = query.integer("offset", 0, u64::from(u32::MAX)).unwrap_or(0);
        let order = match query.optional("order").as_deref() {
            None | Some("relevance") => SearchOrder::Relevance,
            Some("newest") => SearchOrder::Newest,
            Some(_) => {
                let msg = "Input should be 'relevance' or 'newest'";
                query.problems.push(FieldError::new("query", "order", "enum", msg));
                SearchOrder::Relevance
            }
        };
        let room = room.and_then(|r| query.problems.check("query", RoomName::parse(r)));
        let text = text.and_then(|t| query.problems.check("query", SearchText::parse(t)));
        query.problems.finish()?;
        let (Some(room), Some(text)) = (room, text) else { unreachable_input()? };
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let offset = u32::try_from(offset).unwrap_or(u32::MAX);
        let hits = self.chat.search(SearchQuery { room, text: text.into_string(), order, offset, limit }).await?;
        Ok(json(StatusCode::OK, &hits.into_iter().map(ChatHit::from).collect::<Vec<_>>()))
    }

    /// Rooms with members now, by name.
    pub async fn rooms(&self) -> Handled {
        let rooms = self.chat.rooms().await?;
        let rooms: Vec<RoomBody> =
            rooms.into_iter().map(|(room, members)| RoomBody { room: room.into_string(), members }).collect();
        Ok(json(StatusCode::OK, &rooms))
    }

    /// Who is in a room now.
    pub async fn room_members(&self, room: &str) -> Handled {
        let room = room_name(room)?;
        let members = self.chat.members(&room).await?;
        // Everyone in `members`, as before guests were told apart (older
        // clients read it unchanged); the guests among them again in `guests`.
        let guests = members.iter().filter(|m| m.guest).map(|m| m.name.as_str().to_owned()).collect();
        let members = members.into_iter().map(|m| m.name.into_string()).collect();
        Ok(json(StatusCode::OK, &MembersBody { room: room.into_string(), members, guests }))
    }

    /// A room's events, newest first; `before` (an event id) pages back.
    pub async fn room_history(&self, request: &Request<Incoming>, room: &str) -> Handled {
        let room = room_name(room)?;
        let mut query = Query::of(request.uri());
        let limit = query.integer("limit", 1, 1000).unwrap_or(DEFAULT_HISTORY_LIMIT);
        let before = match query.optional("before") {
            None => None,
            Some(text) => match text.parse::<EventId>() {
                Ok(id) => Some(id),
                Err(_) => {
                    query.problems.push(FieldError::new(
                        "query",
                        "before",
                        "value_error",
                        "Input should be an event id",
                    ));
                    None
                }
            },
        };
        query.problems.finish()?;
        let events = self.chat.history(&room, before, u32::try_from(limit).unwrap_or(1000)).await?;
        Ok(json(StatusCode::OK, &events.into_iter().map(ChatHit::from).collect::<Vec<_>>()))
    }

    async fn new_user(&self, request: Request<Incoming>) -> Result<NewUser, ApiError> {
        let body = read_body(request, self.body_limit, self.body_timeout).await?;
        let mut fields = Fields::json(&body)?;
        let email = fields.required_string("email");
        let username = fields.required_string("username");
        let full_name = fields.nullable_string("full_name").flatten();
        let password = fields.required_string("password");
        let is_active = fields.optional_bool("is_active").unwrap_or(true);
        let problems = &mut fields.problems;
        let email = email.and_then(|v| problems.check("body", Email::parse(v)));
        let username = username.and_then(|v| problems.check("body", Username::parse(v)));
        let full_name = full_name.map(|v| problems.check("body", FullName::parse(v)));
        let password = password.and_then(|v| problems.check("body", Password::parse(v)));
        fields.problems.finish()?;
        match (email, username, full_name, password) {
            (Some(email), Some(username), full_name, Some(password)) => {
                Ok(NewUser { email, username, full_name: full_name.flatten(), password, is_active })
            }
            _ => unreachable_input(),
        }
    }

    /// The caller named by the `Authorization: Bearer` token.
    async fn caller(&self, request: &Request<Incoming>) -> Result<Caller, ApiError> {
        let token = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or(ApiError::NotAuthenticated)?;
        Ok(self.accounts.authenticate(token).await?)
    }
}

/// What `/readyz` saw last: which adapters were down. A change is logged once
/// (at warn with each cause, at info when all answer again), so a probe
/// polling every second does not repeat it.
#[derive(Debug, Default)]
pub struct Readiness {
    /// One bit per check, in `readyz`'s order.
    down: AtomicU8,
}

impl Readiness {
    fn note(&self, checks: &[(&str, Option<String>)]) {
        let down = checks.iter().enumerate().fold(
            0u8,
            |bits, (at, (_, problem))| {
                if problem.is_some() { bits | 1 << at } else { bits }
            },
        );
        let before = self.down.swap(down, Ordering::Relaxed);
        if down == before {
            return;
        }
        if down == 0 {
            tracing::info!("ready: every adapter answers again");
            return;
        }
        for (name, problem) in checks {
            if let Some(problem) = problem {
                tracing::warn!(adapter = name, %problem, "not ready");
            }
        }
    }
}

/// A room name from the path: percent-decoded UTF-8, then the domain's rules.
fn room_name(raw: &str) -> Result<RoomName, ApiError> {
    let invalid = |msg: String| ApiError::Validation(vec![FieldError::new("path", "room", "value_error", msg)]);
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8().map_err(|_| invalid("not UTF-8".into()))?;
    RoomName::parse(decoded.into_owned()).map_err(|e| ApiError::Validation(vec![FieldError::invalid("path", &e)]))
}

/// Every `None` above was recorded as a problem, so `finish` already returned
/// the 422; this keeps that invariant from becoming a panic if it ever broke.
fn unreachable_input<T>() -> Result<T, ApiError> {
    Err(ApiError::Validation(vec![FieldError::new("body", "", "value_error", "Invalid input")]))
}
