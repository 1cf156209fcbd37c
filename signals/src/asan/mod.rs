//! placeholder
use crate::artifact::{ArtifactError, Ingested};
pub fn sniff(_h: &str) -> bool {
    false
}
pub fn parse(_t: &str) -> Result<Ingested, ArtifactError> {
    Err(ArtifactError::TooLarge { limit: 0 })
}
