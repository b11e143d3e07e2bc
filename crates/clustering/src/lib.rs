//! Customer segmentation for retain: named RFM segments, k-means and Gaussian mixtures, profiles.
//!
//! Pure computation over [`retain_core`] types. The entry point is [`segment`]: given customers'
//! [`CustomerFeatures`](retain_core::CustomerFeatures) (and optionally CLV
//! [`Prediction`](retain_core::Prediction)s) and [`SegmentParams`], it returns a serialisable
//! [`SegmentationRun`] — method, parameters, seed, as-of date, k and the score of every candidate
//! k, the feature [`Scaling`], the RFM score [`RfmBoundaries`], the fitted [`Model`], per-segment
//! [`SegmentProfile`]s and one [`Assignment`] per customer. A stored run places new customers with
//! [`SegmentationRun::assign`]; [`migration_between`] compares two runs.
//!
//! Modules: [`rfm`] (scores and the named segment grid), [`features`] (feature choice and
//! scaling), [`kmeans`] (the k-means engine, linfa traits at its boundary), [`gmm`] (linfa's
//! Gaussian mixture), [`silhouette`] (choosing k), [`profile`], [`segment`] (runs), [`migration`].

pub mod error;
pub mod features;
pub mod gmm;
pub mod kmeans;
pub mod migration;
pub mod profile;
pub mod rfm;
pub mod segment;
pub mod silhouette;

pub use error::{ClusteringError, Result};
pub use features::{Feature, Scaling};
pub use gmm::GaussianParams;
pub use kmeans::{KMeansConfig, KMeansFit, Precision, MAX_K};
pub use migration::{migration, migration_between, MigrationMatrix};
pub use profile::SegmentProfile;
pub use rfm::{RfmBoundaries, RfmScores, RfmSegment};
pub use segment::{
    assign, segment, segment_with_progress, Assignment, KChoice, KScore, Method, Model, NoProgress,
    Progress, SegmentInput, SegmentParams, SegmentationRun,
};
