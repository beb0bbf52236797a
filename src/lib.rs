//! Patina: a REST/JSON gateway in front of legacy databases, driven by mapping files.

pub mod codec;
pub mod diag;
pub mod sql;
pub mod config;
pub mod catalog;
pub mod mapping;
