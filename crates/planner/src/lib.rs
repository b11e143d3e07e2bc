//! Campaign planning for retain: goals matched to segments by expected incremental value.
