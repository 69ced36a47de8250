//! Adversarial tests: dump (filled in by the trust work).
