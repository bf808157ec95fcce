//! `cargo perfgate init`.

use crate::cli::{CommonArgs, InitArgs};
use crate::error::Result;
use crate::ui::Ui;

pub fn run(_common: &CommonArgs, _args: &InitArgs, _ui: &Ui) -> Result<i32> {
    todo!()
}
