//! The deterministic cost pass: what one iteration of a scenario costs the service, counted
//! under valgrind rather than timed, so the figures repeat whatever else the machine does.

pub mod callgrind;
pub mod dhat;
