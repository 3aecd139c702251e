fn main() -> std::process::ExitCode {
    cache_heal::run()
}
