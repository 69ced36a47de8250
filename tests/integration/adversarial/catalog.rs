//! Adversarial tests: catalog (filled in by the trust work).
