//! Black-box tests of the HTTP API: the real server on an ephemeral port
//! (in-memory adapters), spoken to over real sockets the way the original
//! app's clients speak to it.

mod helpers;
mod ws;

mod accounts;
mod admission;
mod bounds;
mod docs;
mod flaky_log;
mod guests;
mod limits;
mod mysql_outage;
mod outage;
mod protocol;
mod rooms_compat;
mod rooms_json;
mod rooms_rest;
mod search;
mod shutdown;
mod users;
