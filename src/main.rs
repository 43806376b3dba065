// Counts heap bytes (one relaxed atomic per allocation) so `lastmile sim` can report what its
// machines hold.
#[global_allocator]
static ALLOC: lastmile::sim::alloc::CountingAlloc = lastmile::sim::alloc::CountingAlloc;

fn main() -> std::process::ExitCode {
    lastmile::cli::main()
}
