//! The real `pandav` binary against the emulator.
