//! `POST /auth/` and `POST /auth/refresh`: Clustergate-2's token pair (SimpleJWT's shapes).
//!
//! The access token is a session of our own API (it works there too, for 24 hours); the refresh
//! token only ever makes new access tokens (`em::refresh`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::params::Params;
use super::shapes::{Access, AuthFailure, EmError, Tokens};
use crate::auth::{ClientAddr, Login};
use crate::error::ApiError;
use crate::{Ground, auth, em};

/// Django REST Framework's answer to missing fields: `{"field": ["This field is required."]}`.
fn required(fields: &[&'static str]) -> Response {
    let body: BTreeMap<&str, [&str; 1]> = fields
        .iter()
        .map(|f| (*f, ["This field is required."]))
        .collect();
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

pub(super) async fn token(
    State(g): State<Ground>,
    ClientAddr(client): ClientAddr,
    p: Params,
) -> Result<Response, EmError> {
    let (user, password) = (p.text("username")?, p.text("password")?);
    let (Some(user), Some(password)) = (user.as_deref(), password.as_deref()) else {
        let missing: Vec<&'static str> = [("username", &user), ("password", &password)]
            .into_iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k)
            .collect();
        return Ok(required(&missing));
    };
    let access = match auth::login(&g, user, password, client)
        .await
        .map_err(EmError::internal)?
    {
        Login::Session(token) => token,
        // A disabled user is "no active account", as Clustergate-2's token view says it.
        Login::Wrong | Login::Disabled => {
            return Ok(AuthFailure::wrong_credentials().into_response());
        }
        // The same throttle as every login, answered as the rest of the EM API answers errors.
        Login::Throttled(r) => {
            return Err(ApiError::TooManyRequests {
                message: r.message(),
                retry_after: r.retry_after,
            }
            .into());
        }
    };
    let refresh = em::issue_refresh(&g, user)
        .await
        .map_err(EmError::internal)?;
    Ok(Json(Tokens { refresh, access }).into_response())
}

pub(super) async fn refresh(State(g): State<Ground>, p: Params) -> Result<Response, EmError> {
    let Some(token) = p.text("refresh")? else {
        return Ok(required(&["refresh"]));
    };
    match em::refresh(&g, &token).await.map_err(EmError::internal)? {
        Some(access) => Ok(Json(Access { access }).into_response()),
        None => Ok(AuthFailure::invalid_refresh().into_response()),
    }
}
