//! The test harness: the simulated Kubernetes and Slack servers of the
//! `rerun-sim` crate, and a `Tester` that starts the real bot in-process
//! against them.
#![allow(dead_code)]

pub mod cards;
pub mod process;
pub mod tester;

pub use rerun_sim::{CronJobFixture, Failure, FakeKube, FakeSlack, Message, Resource};
pub use rerun_sim::{kube, slack};
pub use tester::Tester;
