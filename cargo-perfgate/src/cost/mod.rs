//! The deterministic cost pass: what one iteration of a scenario costs the service, counted
//! under valgrind rather than timed, so the figures repeat whatever else the machine does.

pub mod callgrind;
pub mod dhat;
pub mod idle;
pub mod valgrind;
pub mod window;

pub use valgrind::{CostError, CostRun, Tool, Valgrind};
pub use window::{Window, WindowFiles};
