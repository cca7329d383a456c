//! An Airflow-compatible Execution API server on actix-web.
//!
//! The library half: [`store`] (SQLite or PostgreSQL through one code path),
//! [`api`] (the routes, one file per group with its wire types, declared with
//! `#[execution_route]` inside `#[execution_router]` modules), [`app`] (mounting
//! them under `/execution` with their middleware) and [`openapi`].

pub mod api;
pub mod app;
pub mod body;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod decoding;
pub mod openapi;
pub mod private_files;
pub mod serde_compat;
pub mod serve;
pub mod signing;
pub mod store;
#[cfg(test)]
mod temp_dir;
pub mod versions;
