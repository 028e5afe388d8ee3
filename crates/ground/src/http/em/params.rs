//! What an EM API request says, wherever its client put it, and who sent it.
//!
//! Clustergate-2's clients send parameters as a query string (its first `GET` endpoints), a
//! urlencoded or multipart form (Django REST Framework reads both) or a JSON object (its later
//! `POST`s); [`Params`] reads them all into one map, so each endpoint reads its fields one way.
//! [`EmUser`] is the bearer token's user, refused in Django REST Framework's words.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Form, FromRequest, FromRequestParts, Multipart, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde_json::Value;

use super::shapes::{AuthFailure, EmError};
use crate::{Ground, auth};

/// The most bytes of a text parameter.
const MAX_TEXT: usize = 64 << 10;

/// The request's parameters: the query string's, then the body's. A name given twice
/// (`args=a&args=b`) holds a list.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Params(BTreeMap<String, Value>);

impl Params {
    fn add(&mut self, name: String, value: Value) {
        match self.0.get_mut(&name) {
            None => {
                self.0.insert(name, value);
            }
            Some(Value::Array(items)) => items.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
        }
    }

    fn add_text(&mut self, pairs: Vec<(String, String)>) {
        for (k, v) in pairs {
            self.add(k, Value::String(v));
        }
    }

    /// Adds the text fields of a multipart form.
    pub(super) fn with_fields(mut self, fields: Vec<(String, String)>) -> Params {
        self.add_text(fields);
        self
    }

    /// The parameters of the query string alone (a multipart upload reads its body itself).
    pub(super) fn from_query(parts: &Parts) -> Result<Params, EmError> {
        let mut p = Params::default();
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|e| EmError::invalid(format!("bad query string: {}", e.body_text())))?;
        p.add_text(pairs);
        Ok(p)
    }

    /// One string; `None` when absent, null or empty (a form's empty field).
    pub(super) fn text(&self, name: &str) -> Result<Option<String>, EmError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(EmError::invalid(format!("'{name}' must be one value"))),
        }
    }

    /// The first of `names` that is given.
    pub(super) fn text_of(&self, names: &[&str]) -> Result<Option<String>, EmError> {
        for name in names {
            if let Some(v) = self.text(name)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// One required string.
    pub(super) fn required(&self, names: &[&str]) -> Result<String, EmError> {
        self.text_of(names)?.ok_or_else(|| {
            EmError::invalid(format!("'{}' is required", names.first().unwrap_or(&"")))
        })
    }

    /// A list: a JSON array, a name given several times, a JSON array written as a string, or
    /// one value (a list of one).
    pub(super) fn list(&self, name: &str) -> Result<Option<Vec<Value>>, EmError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items.clone())),
            Some(Value::String(s)) if s.trim_start().starts_with('[') => {
                match serde_json::from_str::<Value>(s) {
                    Ok(Value::Array(items)) => Ok(Some(items)),
                    _ => Err(EmError::invalid(format!("'{name}' is not a JSON list"))),
                }
            }
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(v) => Ok(Some(vec![v.clone()])),
        }
    }

    /// A mapping: a JSON object, or one written as a string. A list of `{name, value}` (the
    /// dashboard's `env`) is read as the mapping it spells.
    pub(super) fn mapping(&self, name: &str) -> Result<Option<Vec<(String, String)>>, EmError> {
        let bad = || EmError::invalid(format!("'{name}' must be an object of names to values"));
        let value = match self.0.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) if s.is_empty() => return Ok(None),
            Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|_| bad())?,
            Some(v) => v.clone(),
        };
        let pairs = match value {
            Value::Object(map) => map
                .into_iter()
                .map(|(k, v)| Ok((k, scalar_text(&v).ok_or_else(bad)?)))
                .collect::<Result<Vec<_>, EmError>>()?,
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    let name = item.get("name").and_then(scalar_text).ok_or_else(bad)?;
                    let value = item.get("value").and_then(scalar_text).unwrap_or_default();
                    Ok((name, value))
                })
                .collect::<Result<Vec<_>, EmError>>()?,
            _ => return Err(bad()),
        };
        Ok(Some(pairs))
    }
}

/// A string, number or boolean as text.
pub(super) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

impl FromRequest<Ground> for Params {
    type Rejection = EmError;

    async fn from_request(req: Request, ground: &Ground) -> Result<Params, EmError> {
        let (parts, body) = req.into_parts();
        let mut p = Params::from_query(&parts)?;
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let req = Request::from_parts(parts, body);
        if content_type.starts_with("multipart/form-data") {
            let mut form = Multipart::from_request(req, ground)
                .await
                .map_err(|e| EmError::invalid(e.body_text()))?;
            while let Some(field) = form
                .next_field()
                .await
                .map_err(|e| EmError::invalid(e.body_text()))?
            {
                let name = field.name().unwrap_or_default().to_string();
                if field.file_name().is_some() {
                    return Err(EmError::invalid(format!(
                        "'{name}' is a file; this endpoint takes none"
                    )));
                }
                let text = field
                    .text()
                    .await
                    .map_err(|e| EmError::invalid(e.body_text()))?;
                if text.len() > MAX_TEXT {
                    return Err(EmError::invalid(format!(
                        "'{name}' is longer than {MAX_TEXT} bytes"
                    )));
                }
                p.add(name, Value::String(text));
            }
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            let Form(pairs) = Form::<Vec<(String, String)>>::from_request(req, ground)
                .await
                .map_err(|e| EmError::invalid(e.body_text()))?;
            p.add_text(pairs);
        } else {
            // JSON, whatever the content type says (clients that send `data=json.dumps(...)`
            // send none); an empty body holds nothing.
            let body = Bytes::from_request(req, ground)
                .await
                .map_err(|e| EmError::invalid(e.body_text()))?;
            if !body.iter().all(u8::is_ascii_whitespace) {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(Value::Object(map)) => {
                        for (k, v) in map {
                            p.0.insert(k, v);
                        }
                    }
                    _ => {
                        return Err(EmError::invalid(
                            "send parameters as a JSON object, a form or a query string",
                        ));
                    }
                }
            }
        }
        Ok(p)
    }
}

/// The caller, by bearer token (an access token from `POST /auth/`, or a token of our own API).
#[derive(Debug, Clone)]
pub(super) struct EmUser(pub(super) String);

impl FromRequestParts<Ground> for EmUser {
    type Rejection = AuthFailure;

    async fn from_request_parts(parts: &mut Parts, ground: &Ground) -> Result<EmUser, AuthFailure> {
        let token = auth::request_token(&parts.headers).ok_or_else(AuthFailure::missing)?;
        match auth::user_for_token(ground, &token).await {
            Ok(Some(user)) => Ok(EmUser(user)),
            Ok(None) => Err(AuthFailure::invalid_token()),
            Err(e) => {
                tracing::error!(error = %e, "cannot check an EM API token");
                Err(AuthFailure::invalid_token())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(pairs: &[(&str, Value)]) -> Params {
        let mut p = Params::default();
        for (k, v) in pairs {
            p.add(k.to_string(), v.clone());
        }
        p
    }

    #[test]
    fn repeated_names_are_lists_and_strings_may_hold_json() {
        let p = params(&[
            ("args", json!("a")),
            ("args", json!("b")),
            ("one", json!("x")),
            ("json", json!("[\"c\", 1]")),
            ("envs", json!("{\"A\": \"1\", \"B\": 2}")),
            ("env", json!([{"name": "C", "value": "3"}])),
            ("empty", json!("")),
            ("n", json!(5)),
        ]);
        assert_eq!(p.list("args").unwrap(), Some(vec![json!("a"), json!("b")]));
        assert_eq!(p.list("one").unwrap(), Some(vec![json!("x")]));
        assert_eq!(p.list("json").unwrap(), Some(vec![json!("c"), json!(1)]));
        assert_eq!(
            p.mapping("envs").unwrap(),
            Some(vec![("A".into(), "1".into()), ("B".into(), "2".into())])
        );
        assert_eq!(
            p.mapping("env").unwrap(),
            Some(vec![("C".into(), "3".into())])
        );
        assert_eq!(p.text("empty").unwrap(), None);
        assert_eq!(p.text("n").unwrap().as_deref(), Some("5"));
        assert_eq!(p.text_of(&["nope", "one"]).unwrap().as_deref(), Some("x"));
        assert!(p.text("args").is_err());
        assert!(p.required(&["image", "docker_image"]).is_err());
    }
}
