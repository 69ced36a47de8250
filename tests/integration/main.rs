//! End-to-end tests: the real `coffer` binary against a real PostgreSQL server, checked
//! with the standard tools (gunzip, tar, age, psql, sha256sum).

mod adversarial;
mod backup;
mod barehost;
mod browser;
mod bundle;
mod flat;
mod harness;
mod list;
mod ops;
mod parallel;
mod pieces;
mod remote;
mod restore;
mod serve;
mod stream;
mod webdriver;
