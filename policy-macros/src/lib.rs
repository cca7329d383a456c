//! Attribute macros declaring token policies on actix-web handlers.
