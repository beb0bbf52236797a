//! Patina: a REST/JSON gateway in front of legacy databases, driven by mapping files.

pub mod codec;
pub mod diag;
pub mod sql;
pub mod config;
pub mod catalog;
pub mod mapping;
pub mod source;
pub mod encode;
pub mod http;
pub mod app;
