//! The protocol reference's vectors (§6) and property tests for the pure event code:
//! crypto, signatures and the envelope decoder.
#![allow(clippy::unwrap_used)]

mod protocol {
    mod envelope;
    mod properties;
    mod vectors;
}
