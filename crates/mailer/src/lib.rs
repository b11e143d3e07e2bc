//! Email rendering and sending for retain: tera templates, SMTP, the exactly-once send ledger.
