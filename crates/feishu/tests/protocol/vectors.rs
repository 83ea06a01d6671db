//! Every vector of feishu-protocol.md §6, byte for byte.

use feishu::crypto::{self, aes_key};
use feishu::vectors::*;

#[test]
fn vector_a_official_doc_sample() {
    assert_eq!(hex::encode(aes_key(A_KEY)), A_KEY_DIGEST_HEX);
    assert_eq!(crypto::decrypt(A_KEY, A_CIPHERTEXT).unwrap(), A_PLAINTEXT);
}

#[test]
fn vector_b_go_sdk_full_padding_block() {
    let plain = crypto::decrypt(B_KEY, B_CIPHERTEXT).unwrap();
    assert_eq!(plain, B_PLAINTEXT);
    assert_eq!(
        plain.len() % 16,
        0,
        "B is padded with a whole block of 0x10"
    );
    assert!(plain.contains("张三"));
}

#[test]
fn vector_c_java_sdk() {
    let plain = crypto::decrypt(C_KEY, C_CIPHERTEXT).unwrap();
    assert_eq!(plain, C_PLAINTEXT);
    assert!(plain.ends_with(r#""type":"url_verification1"}"#));
}

#[test]
fn vector_d_node_sdk_challenge() {
    assert_eq!(crypto::decrypt(D_KEY, D_CIPHERTEXT).unwrap(), D_PLAINTEXT);
}

#[test]
fn go_sdk_signature_vector() {
    let sig = crypto::signature(
        GO_SDK_SIGNATURE_TIMESTAMP,
        GO_SDK_SIGNATURE_NONCE,
        B_KEY,
        B_PLAINTEXT.as_bytes(),
    );
    assert_eq!(sig, GO_SDK_SIGNATURE);
}

#[test]
fn worked_example_encrypts_to_the_exact_bytes() {
    assert_eq!(hex::encode(aes_key(WORKED_KEY)), WORKED_KEY_DIGEST_HEX);
    assert_eq!(WORKED_PLAINTEXT.len(), 528);
    assert_eq!(
        crypto::encrypt_with_iv(WORKED_KEY, WORKED_PLAINTEXT.as_bytes(), WORKED_IV),
        WORKED_ENCRYPT
    );
    assert!(WORKED_ENCRYPT.starts_with("AAECAwQFBgcICQoLDA0OD"));
    assert_eq!(
        crypto::decrypt(WORKED_KEY, WORKED_ENCRYPT).unwrap(),
        WORKED_PLAINTEXT
    );
}

#[test]
fn worked_example_signatures_encrypted_and_plaintext() {
    let body = crypto::encrypted_body(WORKED_ENCRYPT);
    assert!(body.starts_with(r#"{"encrypt":"AAEC"#));
    assert_eq!(
        crypto::signature(WORKED_TIMESTAMP, WORKED_NONCE, WORKED_KEY, body.as_bytes()),
        WORKED_SIGNATURE_ENCRYPTED
    );
    assert!(crypto::verify_signature(
        WORKED_TIMESTAMP,
        WORKED_NONCE,
        WORKED_KEY,
        body.as_bytes(),
        WORKED_SIGNATURE_ENCRYPTED
    ));
    assert_eq!(
        crypto::signature(
            WORKED_TIMESTAMP,
            WORKED_NONCE,
            "",
            WORKED_PLAINTEXT.as_bytes()
        ),
        WORKED_SIGNATURE_PLAINTEXT
    );
}

#[test]
fn worked_example_encrypted_url_verification() {
    assert_eq!(WORKED_URL_VERIFICATION_PLAINTEXT.len(), 106);
    assert_eq!(
        crypto::encrypt_with_iv(
            WORKED_KEY,
            WORKED_URL_VERIFICATION_PLAINTEXT.as_bytes(),
            WORKED_URL_VERIFICATION_IV
        ),
        WORKED_URL_VERIFICATION_ENCRYPT
    );
    assert_eq!(
        crypto::decrypt(WORKED_KEY, WORKED_URL_VERIFICATION_ENCRYPT).unwrap(),
        WORKED_URL_VERIFICATION_PLAINTEXT
    );
}

#[test]
fn real_traffic_plaintext_signature_uses_the_empty_key() {
    assert_eq!(REAL_TRAFFIC_BODY.len(), 740);
    assert!(crypto::verify_signature(
        REAL_TRAFFIC_TIMESTAMP,
        REAL_TRAFFIC_NONCE,
        "",
        REAL_TRAFFIC_BODY.as_bytes(),
        REAL_TRAFFIC_SIGNATURE
    ));
    assert_eq!(
        crypto::signature(
            REAL_TRAFFIC_TIMESTAMP,
            REAL_TRAFFIC_NONCE,
            "",
            REAL_TRAFFIC_BODY.as_bytes()
        ),
        REAL_TRAFFIC_SIGNATURE
    );
}
