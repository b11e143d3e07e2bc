//! Predictive customer value for retain: BG/NBD, Gamma-Gamma, P(alive) and CLV.
