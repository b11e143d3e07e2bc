//! Model selection (placeholder).
