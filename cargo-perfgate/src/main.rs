fn main() {
    std::process::exit(cargo_perfgate::main_with_args(std::env::args_os()));
}
