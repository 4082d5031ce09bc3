//! The pure core: the rules of rerun-bot, with no I/O.
//!
//! Nothing in here touches the network, the disk or the clock: time comes in as
//! an argument and functions return decisions. The adapters (`kube`, `chat`,
//! `store`) turn the outside world into these types and carry out the decisions.

pub mod alert;
pub mod batch;
pub mod board;
pub mod command;
pub mod hold;
pub mod incident;
pub mod model;
pub mod overrides;
pub mod policy;
pub mod request;
pub mod schedule;
pub mod slots;
pub mod snooze;
pub mod storm;
pub mod text;
pub mod ticket;

pub use alert::{AlertDecision, FailureAlert, ThreadState};
pub use incident::{AlertStory, Grouping, RunHistory};
pub use model::{Condition, ContainerExit, CronJobSnapshot, JobSnapshot, OnHold};
