//! `cargo perfgate record`: the run's pipeline with more rounds and no comparison, then the baseline
//! file.

use crate::cli::{CommonArgs, RecordArgs, RunArgs};
use crate::error::Result;
use crate::ui::Ui;

pub fn run(common: &CommonArgs, args: &RecordArgs, ui: &Ui) -> Result<i32> {
    let run_args = RunArgs {
        filter: args.filter.clone(),
        load: args.load.clone(),
        cost: args.cost.clone(),
        ..Default::default()
    };
    super::run::pipeline(common, &run_args, Some(args), ui)
}
