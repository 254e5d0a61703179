//! The one integration-test binary: the real app over HTTP.

mod harness;
mod s3server;

mod admin;
mod auth;
mod backup_limits;
mod backups;
mod cli;
mod crash;
mod damage;
mod destinations;
mod docs;
mod fuzz;
mod golden;
mod help;
mod inventory;
mod jobs;
mod kudos;
mod observability;
mod oidc;
mod permissions;
mod restart;
mod restore;
mod store;
mod tls;
mod tokens;
