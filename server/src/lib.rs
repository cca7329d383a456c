//! An Airflow-compatible Execution API server on actix-web.
//!
//! The library half: [`store`] (SQLite or PostgreSQL through one code path),
//! [`models`] (the Task SDK's wire types), [`api`] (the routes, declared with
//! `#[execution_route]` inside `#[execution_router]` modules), [`app`] (mounting
//! them under `/execution` with their middleware) and [`openapi`].

pub mod api;
pub mod app;
pub mod body;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod models;
pub mod openapi;
pub mod serve;
pub mod signing;
pub mod store;
