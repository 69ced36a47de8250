//! Adversarial tests: filesystem (filled in by the trust work).
