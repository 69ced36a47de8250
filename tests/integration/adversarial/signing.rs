//! Adversarial tests: signing (filled in by the trust work).
