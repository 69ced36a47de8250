//! Hostile and damaged inputs, one module per rule of the trust issue: every test runs the
//! real binary against a real PostgreSQL server and checks what an operator would see.

mod catalog;
mod dump;
mod encoding;
mod filesystem;
mod lexing;
mod output;
mod proof;
mod secrets;
mod signing;
mod swap;
