//! Customer segmentation for retain: named RFM segments, k-means and Gaussian mixtures, profiles.
