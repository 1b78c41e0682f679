//! The OpenAPI 3.1 document at `/openapi.json`: every route, every status it
//! can return with its body, the real limits of every field — so generated
//! clients and API fuzzers can trust it. A test checks it lists exactly the
//! routes the router serves.

use parley_ports::accounts::MAX_LIST_LIMIT;
use parley_ports::domain::{Email, FullName, Password, RoomName, SearchText, Username};
use serde_json::{Value, json};

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn body_of(schema: Value) -> Value {
    json!({ "content": { "application/json": { "schema": schema } } })
}

fn described(description: &str, schema: Value) -> Value {
    let mut response = body_of(schema);
    response["description"] = json!(description);
    response
}

/// The error responses a route can give, each with its `{"detail"}` body.
fn errors(codes: &[u16]) -> serde_json::Map<String, Value> {
    codes
        .iter()
        .map(|code| {
            let (text, schema) = match code {
                400 => ("Refused: the e-mail or username is taken", reference("HTTPError")),
                401 => (
                    "Missing, invalid or expired credentials (with `WWW-Authenticate: Bearer`)",
                    reference("HTTPError"),
                ),
                403 => ("Inactive user, or not allowed for this caller", reference("HTTPError")),
                404 => ("No such user", reference("HTTPError")),
                408 => ("The request body did not arrive in time", reference("HTTPError")),
                413 => ("Request body larger than the server's limit", reference("HTTPError")),
                422 => ("Validation error", reference("HTTPValidationError")),
                503 => ("A backing service is unavailable; retry later (with `Retry-After`)", reference("HTTPError")),
                _ => ("Error", reference("HTTPError")),
            };
            (code.to_string(), described(text, schema))
        })
        .collect()
}

fn operation(summary: &str, tag: &str, ok: (u16, &str, Value), error_codes: &[u16]) -> Value {
    let mut responses = errors(error_codes);
    let (code, description, schema) = ok;
    let success = if schema.is_null() { json!({ "description": description }) } else { described(description, schema) };
    responses.insert(code.to_string(), success);
    json!({ "summary": summary, "tags": [tag], "responses": responses })
}

fn secured(mut operation: Value) -> Value {
    operation["security"] = json!([{ "OAuth2PasswordBearer": [] }]);
    operation
}

fn with_body(mut operation: Value, schema: &str) -> Value {
    operation["requestBody"] =
        json!({ "required": true, "content": { "application/json": { "schema": reference(schema) } } });
    operation
}

fn query(name: &str, required: bool, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": required, "description": description, "schema": schema })
}

fn with_params(mut operation: Value, params: Vec<Value>) -> Value {
    operation["parameters"] = Value::Array(params);
    operation
}

const USER_ID: &str = "user_id";
/// An event id: a ULID, 26 Crockford base-32 characters.
const EVENT_ID_PATTERN: &str = "^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$";

fn user_id_param() -> Value {
    json!({ "name": USER_ID, "in": "path", "required": true, "schema": { "type": "integer", "format": "int64" } })
}

fn list_users() -> Value {
    let users = json!({ "type": "array", "items": reference("User") });
    let operation = secured(operation("List users", "users", (200, "Users in id order", users), &[401, 403, 422, 503]));
    with_params(
        operation,
        vec![
            query(
                "skip",
                false,
                "Users to skip",
                json!({ "type": "integer", "minimum": 0, "maximum": i64::MAX, "default": 0 }),
            ),
            query(
                "limit",
                false,
                &format!("Most users to return; values above {MAX_LIST_LIMIT} are served as {MAX_LIST_LIMIT}"),
                json!({ "type": "integer", "minimum": 0, "default": 100 }),
            ),
            query(
                "search",
                false,
                "Case-insensitive substring of username, e-mail or full name",
                json!({ "type": "string" }),
            ),
            query("is_active", false, "Only active (true) or inactive (false) users", json!({ "type": "boolean" })),
        ],
    )
}

fn create_user() -> Value {
    let operation = operation(
        "Create a user (administrators only)",
        "users",
        (201, "The new user", reference("User")),
        &[400, 401, 403, 408, 413, 422, 503],
    );
    with_body(secured(operation), "UserCreate")
}

fn search() -> Value {
    let hits = json!({ "type": "array", "items": reference("ChatHit") });
    let operation = operation("Search a room's messages", "chat", (200, "Matching messages", hits), &[422, 503]);
    with_params(
        operation,
        vec![
            query(
                "room",
                true,
                "The room",
                json!({ "type": "string", "minLength": 1, "maxLength": RoomName::MAX_CHARS }),
            ),
            query(
                "query",
                true,
                "Words to find (any of them, ignoring case)",
                json!({ "type": "string", "minLength": 1, "maxLength": SearchText::MAX_CHARS }),
            ),
            query(
                "limit",
                false,
                "Most hits to return (at most 1000 are served)",
                json!({ "type": "integer", "minimum": 1, "default": 10 }),
            ),
            query(
                "offset",
                false,
                "Hits to skip",
                json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX, "default": 0 }),
            ),
            query(
                "order",
                false,
                "Best match first, or newest first",
                json!({ "type": "string", "enum": ["relevance", "newest"], "default": "relevance" }),
            ),
        ],
    )
}

fn login() -> Value {
    let mut operation = operation(
        "Log in for an access token",
        "auth",
        (200, "An access token", reference("Token")),
        &[401, 403, 408, 413, 422, 503],
    );
    operation["description"] =
        json!("`username` takes the e-mail or the username. OAuth2 password form, or the same fields as JSON.");
    operation["requestBody"] = json!({
        "required": true,
        "content": {
            "application/x-www-form-urlencoded": { "schema": reference("Login") },
            "application/json": { "schema": reference("Login") }
        }
    });
    operation
}

fn paths() -> Value {
    let users_path = json!({ "get": list_users(), "post": create_user() });
    let user_path = json!({
        "parameters": [user_id_param()],
        "get": secured(operation("Read a user", "users", (200, "The user", reference("User")), &[401, 403, 404, 422, 503])),
        "put": with_body(
            secured(operation("Change a user (yourself; administrators: anyone)", "users", (200, "The user as changed", reference("User")), &[400, 401, 403, 404, 408, 413, 422, 503])),
            "UserUpdate",
        ),
        "delete": secured(operation("Delete a user (yourself; administrators: anyone)", "users", (204, "Deleted", Value::Null), &[401, 403, 404, 422, 503])),
    });
    let search_path = json!({ "get": search() });
    let room_param = json!({ "name": "room", "in": "path", "required": true, "schema": { "type": "string", "minLength": 1, "maxLength": RoomName::MAX_CHARS } });
    let events = json!({ "type": "array", "items": reference("ChatHit") });
    let history = with_params(
        operation("A room's events, newest first", "chat", (200, "Events, newest first", events), &[422, 503]),
        vec![
            query(
                "before",
                false,
                "Only events older than this event id (the last id of the previous page)",
                json!({ "type": "string", "pattern": EVENT_ID_PATTERN }),
            ),
            query(
                "limit",
                false,
                "Most events to return",
                json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 50 }),
            ),
        ],
    );
    json!({
        "/": { "get": operation("Welcome", "meta", (200, "A welcome message", reference("Welcome")), &[]) },
        "/healthz": { "get": operation("The process is up", "meta", (200, "Up", reference("Health")), &[]) },
        "/readyz": { "get": operation("Every wired adapter answers", "meta", (200, "Ready", reference("Readiness")), &[503]) },
        "/api/v1/auth/register": {
            "post": with_body(operation("Open an account (the first becomes administrator)", "auth", (201, "The new user", reference("User")), &[400, 408, 413, 422, 503]), "UserCreate")
        },
        "/api/v1/auth/login": { "post": login() },
        "/api/v1/users": users_path.clone(),
        "/api/v1/users/": users_path,
        "/api/v1/users/me": { "get": secured(operation("The caller", "users", (200, "The caller", reference("User")), &[401, 403, 503])) },
        "/api/v1/users/{user_id}": user_path,
        "/api/v1/search": search_path.clone(),
        "/search": search_path,
        "/api/v1/rooms": {
            "get": operation("Rooms with members now", "chat", (200, "Rooms by name", json!({ "type": "array", "items": reference("Room") })), &[503])
        },
        "/api/v1/rooms/{room}/members": {
            "parameters": [room_param.clone()],
            "get": operation("Who is in a room now", "chat", (200, "The members' names, sorted", reference("Members")), &[422, 503])
        },
        "/api/v1/rooms/{room}/history": { "parameters": [room_param], "get": history },
    })
}

fn schemas() -> Value {
    let email = json!({ "type": "string", "format": "email", "minLength": 3, "maxLength": Email::MAX_CHARS });
    let username = json!({ "type": "string", "minLength": Username::MIN_CHARS, "maxLength": Username::MAX_CHARS, "pattern": "^[A-Za-z0-9_.-]+$" });
    let full_name = json!({ "type": ["string", "null"], "maxLength": FullName::MAX_CHARS });
    let password = json!({ "type": "string", "minLength": Password::MIN_CHARS, "maxLength": Password::MAX_CHARS, "writeOnly": true });
    let timestamp = json!({ "type": "string", "format": "date-time" });
    json!({
        "User": {
            "type": "object",
            "required": ["id", "email", "username", "full_name", "is_active", "is_admin", "created_at", "updated_at"],
            "properties": {
                "id": { "type": "integer", "format": "int64" },
                "email": { "type": "string" },
                "username": { "type": "string" },
                "full_name": { "type": ["string", "null"] },
                "is_active": { "type": "boolean" },
                "is_admin": { "type": "boolean" },
                "created_at": timestamp,
                "updated_at": { "type": ["string", "null"], "format": "date-time" }
            }
        },
        "UserCreate": {
            "type": "object",
            "required": ["email", "username", "password"],
            "properties": {
                "email": email,
                "username": username,
                "full_name": full_name,
                "password": password,
                "is_active": { "type": "boolean", "default": true }
            }
        },
        "UserUpdate": {
            "type": "object",
            "description": "Only the fields sent change; `full_name: null` clears it. Nobody changes their own `is_active` or `is_admin`.",
            "properties": {
                "email": email,
                "username": username,
                "full_name": full_name,
                "password": password,
                "is_active": { "type": "boolean" },
                "is_admin": { "type": "boolean" }
            }
        },
        "Login": {
            "type": "object",
            "required": ["username", "password"],
            "properties": {
                "username": { "type": "string", "description": "E-mail or username" },
                "password": { "type": "string", "writeOnly": true }
            }
        },
        "Token": {
            "type": "object",
            "required": ["access_token", "token_type", "expires_in"],
            "properties": {
                "access_token": { "type": "string" },
                "token_type": { "type": "string", "enum": ["bearer"] },
                "expires_in": { "type": "integer", "minimum": 0, "description": "Seconds until the token expires" }
            }
        },
        "ChatHit": {
            "type": "object",
            "required": ["id", "type", "room", "user", "message", "timestamp"],
            "properties": {
                "id": { "type": "string", "minLength": 26, "maxLength": 26, "description": "The event id (a ULID)" },
                "type": { "type": "string", "enum": ["joined", "message", "left"] },
                "room": { "type": "string" },
                "user": { "type": "string" },
                "guest": { "type": "boolean", "enum": [true], "description": "Present, and true, when the author was a guest (an unauthenticated connection): anyone may use that name" },
                "message": { "type": "string" },
                "timestamp": timestamp
            }
        },
        "Room": {
            "type": "object",
            "required": ["room", "members"],
            "properties": { "room": { "type": "string" }, "members": { "type": "integer", "minimum": 0, "description": "Open connections" } }
        },
        "Members": {
            "type": "object",
            "required": ["room", "members"],
            "properties": {
                "room": { "type": "string" },
                "members": { "type": "array", "items": { "type": "string" }, "description": "Everyone's names, guests included, sorted" },
                "guests": { "type": "array", "items": { "type": "string" }, "description": "The names in members that are guests' (never authenticated); empty when none" }
            }
        },
        "Welcome": { "type": "object", "required": ["message"], "properties": { "message": { "type": "string" } } },
        "Health": { "type": "object", "required": ["status"], "properties": { "status": { "type": "string", "enum": ["ok"] } } },
        "Readiness": {
            "type": "object",
            "required": ["status", "checks"],
            "properties": {
                "status": { "type": "string", "enum": ["ready", "unavailable"] },
                "checks": {
                    "type": "object",
                    "description": "Per adapter: `ok`, or `unavailable`; with an administrator's bearer token, why",
                    "additionalProperties": { "type": "string" }
                }
            }
        },
        "HTTPError": { "type": "object", "required": ["detail"], "properties": { "detail": { "type": "string" } } },
        "HTTPValidationError": {
            "type": "object",
            "required": ["detail"],
            "properties": { "detail": { "type": "array", "items": reference("ValidationError") } }
        },
        "ValidationError": {
            "type": "object",
            "required": ["loc", "msg", "type"],
            "properties": {
                "loc": { "type": "array", "items": { "anyOf": [{ "type": "string" }, { "type": "integer" }] } },
                "msg": { "type": "string" },
                "type": { "type": "string" }
            }
        }
    })
}

/// The whole document, as served.
pub fn document() -> Value {
    // Readiness answers 503 with the Readiness body, not HTTPError.
    let mut paths = paths();
    paths["/readyz"]["get"]["responses"]["503"] = described("Some adapter does not answer", reference("Readiness"));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Parley",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A real-time chat backend: accounts over REST, rooms over WebSocket, searchable history. A drop-in for the original FastAPI app's clients."
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "OAuth2PasswordBearer": { "type": "oauth2", "flows": { "password": { "tokenUrl": "/api/v1/auth/login", "scopes": {} } } }
            }
        }
    })
}
