//! Nothing here: the integration tests live in `it/`.
