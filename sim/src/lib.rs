//! Simulated outside systems for rerun-bot: a Kubernetes apiserver, the Slack
//! Web API (with Socket Mode) and, for Microsoft Teams, the Bot Framework
//! (OpenID metadata, token endpoint, Connector).
//!
//! They are real HTTP servers on loopback with state, spoken to by the real
//! clients (kube-rs, slack-morphism, the bot's Bot Framework code), and free of
//! test-only shortcuts: the tests, the benchmark and `rerun-bot demo` share them.

pub mod kube;
mod report;
pub mod slack;
pub mod teams;

pub use kube::{CronJobFixture, Failure, FakeKube, Resource};
pub use slack::{FakeSlack, Message};
pub use teams::FakeTeams;
