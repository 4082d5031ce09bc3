//! Every Adaptive Card rerun-bot sends to Teams is built here, one function each.
