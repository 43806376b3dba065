//! The actix shell: one actor per machine ([`driver::Driver`]), the log writer, the clock and
//! kernel executors. Actors hold no business logic; they stamp, drive, persist and deliver.
//! No actor awaits another actor's reply inside a handler: messages between actors are
//! fire-and-forget, and results of outside calls come back as inputs.

pub mod babel;
pub mod chain;
pub mod clock;
pub mod driver;
pub mod kernel;
pub mod log_writer;
