//! What cache-heal knows about uv's cache: its layout per uv version ([`layout`]), the
//! revision pointers of source distributions ([`revision`]), its lock ([`lock`]), pruning to
//! wheels-only like `uv cache prune --ci` ([`prune`]) or leaving out of a save what that
//! prune removes ([`save_filter`]), healing missing sources for the interpreters about to use
//! the cache ([`heal`]), and what their offline builds still lack ([`build_backends`]).
//!
//! This module knows nothing about stores or archives; the facts it relies on, with their
//! sources in uv, are in `docs/uv-cache.md`.

pub mod build_backends;
pub mod heal;
pub mod layout;
pub mod lock;
pub mod prune;
pub mod revision;
pub mod save_filter;
