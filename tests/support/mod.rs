//! The test harness: fake Kubernetes and Slack servers on loopback, and a
//! `Tester` that starts the real bot in-process against them.
//!
//! The fakes are self-contained (no bot types), so they can move into a crate
//! of their own for `rerun-bot demo` later.
#![allow(dead_code)]

pub mod kube;
pub mod slack;
pub mod tester;

pub use self::kube::{CronJobFixture, Failure, FakeKube, Resource};
pub use self::slack::{FakeSlack, Message};
pub use tester::Tester;
