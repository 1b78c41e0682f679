//! Reading what a client sent — body, form, query, path — into checked
//! values, collecting every problem at once the way FastAPI reports them.
//!
//! Knows wire shapes (JSON objects, urlencoded forms, query strings); the
//! domain's own rules come from `parley_ports::domain` constructors.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use parley_ports::domain::Invalid;
use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError};

/// Reads the whole body, refusing more than `limit` bytes (413) or a client
/// slower than `timeout` (408).
pub async fn read_body(request: hyper::Request<Incoming>, limit: usize, timeout: Duration) -> Result<Bytes, ApiError> {
    let declared =
        request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let collected = tokio::time::timeout(timeout, Limited::new(request.into_body(), limit).collect()).await;
    match collected {
        Err(_) => Err(ApiError::RequestTimeout),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => Err(ApiError::PayloadTooLarge(limit)),
        // The client broke off mid-body; nobody will read the answer, but keep it truthful.
        Ok(Err(_)) => {
            Err(ApiError::Validation(vec![FieldError::new("body", "", "body_incomplete", "Request body ended early")]))
        }
        Ok(Ok(body)) => Ok(body.to_bytes()),
    }
}

/// Problems found so far in one request; empty means valid.
#[derive(Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    pub fn push(&mut self, problem: FieldError) {
        self.0.push(problem);
    }

    /// The value, or `None` with the domain's refusal recorded at `place`.
    pub fn check<T>(&mut self, place: &'static str, result: Result<T, Invalid>) -> Option<T> {
        result.map_err(|invalid| self.push(FieldError::invalid(place, &invalid))).ok()
    }

    /// `Ok` if nothing was found, else the 422 listing everything.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::Validation(self.0)) }
    }
}

/// Fields of a request body: a JSON object or an urlencoded form.
pub struct Fields {
    values: Map<String, Value>,
    pub problems: Problems,
}

impl Fields {
    /// A JSON object body; anything else is a 422 at once.
    pub fn json(body: &[u8]) -> Result<Self, ApiError> {
        let problem = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(values)) => return Ok(Self { values, problems: Problems::default() }),
            Ok(_) => {
                FieldError::new("body", "", "model_attributes_type", "Input should be a valid dictionary or object")
            }
            Err(error) => FieldError::new("body", "", "json_invalid", format!("JSON decode error: {error}")),
        };
        Err(ApiError::Validation(vec![problem]))
    }

    /// An `application/x-www-form-urlencoded` body: every value a string.
    pub fn form(body: &[u8]) -> Self {
        let values =
            form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect();
        Self { values, problems: Problems::default() }
    }

    fn wrong_type(&mut self, name: &str, kind: &'static str, msg: &str) {
        self.problems.push(FieldError::new("body", name, kind, msg));
    }

    /// A string that must be present.
    pub fn required_string(&mut self, name: &str) -> Option<String> {
        match self.values.remove(name) {
            None => {
                self.problems.push(FieldError::new("body", name, "missing", "Field required"));
                None
            }
            Some(value) => self.string_value(name, value),
        }
    }

    /// A string that may be left out, but is never `null`.
    pub fn optional_string(&mut self, name: &str) -> Option<String> {
        let value = self.values.remove(name)?;
        self.string_value(name, value)
    }

    /// A string that may be left out (`None`) or set to `null` (`Some(None)`).
    pub fn nullable_string(&mut self, name: &str) -> Option<Option<String>> {
        match self.values.remove(name)? {
            Value::Null => Some(None),
            value => self.string_value(name, value).map(Some),
        }
    }

    /// A boolean that may be left out, but is never `null`.
    pub fn optional_bool(&mut self, name: &str) -> Option<bool> {
        match self.values.remove(name)? {
            Value::Bool(value) => Some(value),
            _ => {
                self.wrong_type(name, "bool_type", "Input should be a valid boolean");
                None
            }
        }
    }

    fn string_value(&mut self, name: &str, value: Value) -> Option<String> {
        match value {
            Value::String(text) => Some(text),
            _ => {
                self.wrong_type(name, "string_type", "Input should be a valid string");
                None
            }
        }
    }
}

/// The query string's parameters.
pub struct Query {
    values: HashMap<String, String>,
    pub problems: Problems,
}

impl Query {
    pub fn of(uri: &hyper::Uri) -> Self {
        let values =
            uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
        Self { values, problems: Problems::default() }
    }

    pub fn required(&mut self, name: &str) -> Option<String> {
        let value = self.values.remove(name);
        if value.is_none() {
            self.problems.push(FieldError::new("query", name, "missing", "Field required"));
        }
        value
    }

    pub fn optional(&mut self, name: &str) -> Option<String> {
        self.values.remove(name)
    }

    /// A whole number in `min..=max`; `None` when absent or refused.
    pub fn integer(&mut self, name: &str, min: u64, max: u64) -> Option<u64> {
        let text = self.values.remove(name)?;
        match text.trim().parse::<u64>() {
            Ok(value) if (min..=max).contains(&value) => Some(value),
            Ok(_) => {
                let msg = format!("Input should be between {min} and {max}");
                self.problems.push(FieldError::new("query", name, "range_error", msg));
                None
            }
            Err(_) => {
                let msg = format!("Input should be a valid integer between {min} and {max}");
                self.problems.push(FieldError::new("query", name, "int_parsing", msg));
                None
            }
        }
    }

    /// `true`/`false` and the spellings FastAPI accepts (`1`, `yes`, `on`...).
    pub fn boolean(&mut self, name: &str) -> Option<bool> {
        let text = self.values.remove(name)?;
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
            "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
            _ => {
                self.problems.push(FieldError::new("query", name, "bool_parsing", "Input should be a valid boolean"));
                None
            }
        }
    }
}

/// A user id from the path: a 64-bit integer or a 422.
pub fn user_id(text: &str) -> Result<parley_ports::domain::UserId, ApiError> {
    text.parse().map_err(|_| {
        let problem = FieldError::new("path", "user_id", "int_parsing", "Input should be a valid 64-bit integer");
        ApiError::Validation(vec![problem])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(fields: Fields) -> Vec<(String, &'static str)> {
        match fields.problems.finish() {
            Ok(()) => Vec::new(),
            Err(ApiError::Validation(list)) => {
                list.into_iter().map(|p| (serde_json::to_string(&p.loc).unwrap(), p.kind)).collect()
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_fields_report_every_missing_or_mistyped_field_at_once() {
        let mut fields = Fields::json(br#"{"email": 5, "full_name": null, "is_active": "yes"}"#).unwrap();
        assert_eq!(fields.required_string("email"), None);
        assert_eq!(fields.required_string("password"), None);
        assert_eq!(fields.nullable_string("full_name"), Some(None));
        assert_eq!(fields.optional_bool("is_active"), None);
        assert_eq!(fields.optional_string("username"), None);
        assert_eq!(
            problems(fields),
            vec![
                (r#"["body","email"]"#.into(), "string_type"),
                (r#"["body","password"]"#.into(), "missing"),
                (r#"["body","is_active"]"#.into(), "bool_type"),
            ]
        );
    }

    #[test]
    fn a_body_that_is_not_a_json_object_is_refused_whole() {
        for body in [&b"{not json"[..], b"[1,2]", b"\"text\"", b""] {
            assert!(matches!(Fields::json(body), Err(ApiError::Validation(_))), "{body:?}");
        }
    }

    #[test]
    fn an_explicit_null_where_a_value_is_required_is_a_type_error() {
        let mut fields = Fields::json(br#"{"email": null}"#).unwrap();
        assert_eq!(fields.optional_string("email"), None);
        assert_eq!(problems(fields), vec![(r#"["body","email"]"#.into(), "string_type")]);
    }

    #[test]
    fn form_fields_are_strings() {
        let mut fields = Fields::form(b"username=ann%40example.com&password=p%26ss+word");
        assert_eq!(fields.required_string("username").as_deref(), Some("ann@example.com"));
        assert_eq!(fields.required_string("password").as_deref(), Some("p&ss word"));
        assert!(problems(fields).is_empty());
    }

    #[test]
    fn query_integers_and_booleans_are_range_checked() {
        let uri: hyper::Uri = "/x?skip=-1&limit=99999999999999999999999&is_active=maybe&ok=5".parse().unwrap();
        let mut query = Query::of(&uri);
        assert_eq!(query.integer("skip", 0, u64::MAX), None);
        assert_eq!(query.integer("limit", 0, 1000), None);
        assert_eq!(query.boolean("is_active"), None);
        assert_eq!(query.integer("ok", 0, 10), Some(5));
        assert_eq!(query.integer("absent", 0, 10), None);
        let Err(ApiError::Validation(list)) = query.problems.finish() else { panic!("expected problems") };
        assert_eq!(list.iter().map(|p| p.kind).collect::<Vec<_>>(), ["int_parsing", "int_parsing", "bool_parsing"]);
    }

    #[test]
    fn path_ids_past_64_bits_are_a_422_not_a_panic() {
        assert_eq!(user_id("42").unwrap().get(), 42);
        for bad in ["99999999999999999999", "abc", "", "1.5"] {
            assert!(matches!(user_id(bad), Err(ApiError::Validation(_))), "{bad}");
        }
    }
}
