//! `log` records into OBS's log through obs-wrapper's logger, every line prefixed
//! `[obs-goaway]` (whatever module of the crate wrote it) so users can find them.

use log::{LevelFilter, Log, Metadata, Record};
use obs_wrapper::log::Logger;

struct Prefixed(Logger);

impl Log for Prefixed {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info || metadata.target().starts_with("obs_goaway")
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        self.0.log(
            &Record::builder()
                .args(*record.args())
                .level(record.level())
                .target("obs-goaway")
                .build(),
        );
    }

    fn flush(&self) {}
}

/// Installs the logger (once; OBS may load the module only once anyway).
pub(crate) fn init() {
    let inner = Logger::new().with_max_level(LevelFilter::Info);
    if log::set_boxed_logger(Box::new(Prefixed(inner))).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}
