//! Patina: a REST/JSON gateway in front of legacy databases, driven by mapping files.

pub mod app;
pub mod audit;
pub mod auth;
pub mod bridge;
pub mod cache;
pub mod catalog;
pub mod clock;
pub mod codec;
pub mod config;
pub mod cursor;
pub mod diag;
pub mod dialect;
pub mod encode;
pub mod http;
pub mod mapping;
pub mod metrics;
pub mod openapi;
pub mod secret;
pub mod shape;
pub mod source;
pub mod sql;
pub mod state;
