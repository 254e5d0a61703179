//! The one integration-test binary: the real app over HTTP.

mod harness;
mod s3server;

mod admin;
mod auth;
mod backups;
mod cli;
mod crash;
mod destinations;
mod golden;
mod inventory;
mod kudos;
mod observability;
mod permissions;
mod restart;
mod store;
