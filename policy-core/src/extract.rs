//! The handler extractor for the current token.

use std::future::{Ready, ready};
use std::ops::Deref;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use uuid::Uuid;

use crate::authorize::authenticate;
use crate::claims::Claims;
use crate::error::AuthError;
use crate::scope::TokenType;

/// The validated token of the current request.
///
/// Reads the claims a route guard already validated; validates (once) only if
/// nothing did. It checks no route policy: use it behind
/// `#[execution_route]`, which does.
///
/// ```
/// use policy_core::Token;
///
/// async fn whoami(token: Token) -> String {
///     format!("{} ({})", token.sub(), token.token_type())
/// }
/// # let _ = actix_web::web::get().to(whoami);
/// ```
#[derive(Clone, Debug)]
pub struct Token(Arc<Claims>);

impl Token {
    /// The token type.
    pub fn token_type(&self) -> TokenType {
        self.0.scope
    }

    /// The subject.
    pub fn sub(&self) -> Uuid {
        self.0.sub
    }

    /// The shared claims.
    pub fn claims(&self) -> &Arc<Claims> {
        &self.0
    }

    /// The shared claims, by value.
    pub fn into_inner(self) -> Arc<Claims> {
        self.0
    }
}

impl Deref for Token {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.0
    }
}

impl FromRequest for Token {
    type Error = AuthError;
    type Future = Ready<Result<Token, AuthError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).map(Token))
    }
}
