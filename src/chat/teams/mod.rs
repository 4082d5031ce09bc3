//! Microsoft Teams over the Bot Framework protocol (DESIGN.md "Microsoft Teams
//! contract"): inbound `/api/messages` with JWT validation, the token and
//! Connector clients, and Adaptive Card rendering. No Teams type leaves here.

pub mod cards;
