//! Emulator crypto against the published vectors (tests/vectors/*.json).

mod common;
use common::*;
use emu115::{ec115, m115, util::pickcode};

fn arr16(v: &[u8]) -> [u8; 16] {
    v.try_into().unwrap()
}

#[test]
fn m115_derive_vectors() {
    for v in vectors("m115-vectors.json")["derive_key_vectors"].as_array().unwrap() {
        let seed = h(v["key16"].as_str().unwrap());
        assert_eq!(hex::encode(m115::derive(&seed, 4)), v["key4"].as_str().unwrap());
        assert_eq!(hex::encode(m115::derive(&seed, 12)), v["key12"].as_str().unwrap());
    }
}

#[test]
fn m115_server_decrypts_test_key_client_vectors() {
    let key = m115::RsaKey::test_key();
    let vs = vectors("m115-vectors.json");
    let list = vs["encode_test_key_deterministic_pad_server_can_decrypt"].as_array().unwrap();
    assert_eq!(list.len(), 9);
    for v in list {
        let (plain, k) = m115::server_decode(&key, v["encoded_base64"].as_str().unwrap()).unwrap();
        assert_eq!(hex::encode(&plain), v["plaintext_hex"].as_str().unwrap(), "{}", v["name"]);
        assert_eq!(hex::encode(k), v["client_key16"].as_str().unwrap());
    }
}

#[test]
fn m115_server_encode_matches_decode_vectors_and_client_procedure() {
    let key = m115::RsaKey::test_key();
    let vs = vectors("m115-vectors.json");
    let list = vs["decode_test_key_server_to_client"].as_array().unwrap();
    assert_eq!(list.len(), 9);
    for v in list {
        let plain = h(v["plaintext_hex"].as_str().unwrap());
        let k = arr16(&h(v["client_key16"].as_str().unwrap()));
        let s = arr16(&h(v["server_key16"].as_str().unwrap()));
        assert_eq!(hex::encode(m115::server_payload(&plain, &k, &s)), v["server_payload_hex"].as_str().unwrap());
        // type-1 padding is deterministic: byte-exact
        let enc = m115::server_encode_with(&key, &plain, &k, &s);
        assert_eq!(enc, v["encoded_base64"].as_str().unwrap(), "{}", v["name"]);
        // and the documented client procedure (inline in tests/common) decodes it
        assert_eq!(m115_decode(&enc, &k), plain);
        // random S also decodes
        assert_eq!(m115_decode(&m115::server_encode(&key, &plain, &k), &k), plain);
    }
}

#[test]
fn m115_roundtrip_random_padding_client() {
    let key = m115::RsaKey::test_key();
    for len in [0usize, 1, 3, 16, 101, 102, 117, 500, 1000] {
        let plain: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let k = [0x5au8; 16];
        let enc = m115_encode(&plain, &k);
        let (dec, k2) = m115::server_decode(&key, &enc).unwrap();
        assert_eq!(dec, plain);
        assert_eq!(k2, k);
    }
}

#[test]
fn ec115_k_ec_vectors() {
    for v in vectors("ec115-vectors.json")["k_ec_token_vectors"].as_array().unwrap() {
        let pub30 = h(v["client_pubkey_30"].as_str().unwrap());
        let ts = v["timestamp_u32"].as_u64().unwrap() as u32;
        let (r1, r2) = (v["r1"].as_u64().unwrap() as u8, v["r2"].as_u64().unwrap() as u8);
        let tok = v["token_base64"].as_str().unwrap();
        let d = ec115::decode_k_ec(tok).unwrap();
        assert_eq!(d.pub30.to_vec(), pub30);
        assert_eq!((d.timestamp, d.r1, d.r2), (ts, r1, r2));
        assert_eq!(ec115::encode_k_ec(&pub30.clone().try_into().unwrap(), ts, r1, r2), tok);
        assert_eq!(k_ec(&pub30, ts, r1, r2), tok, "inline client encoder");
    }
    // a corrupted CRC is rejected
    let mut t = vectors("ec115-vectors.json")["k_ec_token_vectors"][0]["token_base64"].as_str().unwrap().to_string();
    t.replace_range(0..1, "A");
    assert!(ec115::decode_k_ec(&t).is_err());
}

#[test]
fn ec115_ecdh_vectors() {
    use p224::elliptic_curve::sec1::ToEncodedPoint;
    let consts = vectors("ec115-constants.json");
    let mut sp = vec![4u8];
    sp.extend(h(consts["server_pubkey_xy_56"].as_str().unwrap()));
    let server_pub = p224::PublicKey::from_sec1_bytes(&sp).unwrap();
    for v in vectors("ec115-vectors.json")["ecdh_vectors"].as_array().unwrap() {
        let sk = p224::SecretKey::from_slice(&h(v["client_private_scalar_hex"].as_str().unwrap())).unwrap();
        let cp = sk.public_key().to_encoded_point(true);
        let mut pub30 = vec![0x1d];
        pub30.extend_from_slice(cp.as_bytes());
        assert_eq!(hex::encode(&pub30), v["client_pubkey_30"].as_str().unwrap());
        let ss = p224::ecdh::diffie_hellman(sk.to_nonzero_scalar(), server_pub.as_affine());
        let secret: [u8; 28] = ss.raw_secret_bytes().as_slice().try_into().unwrap();
        assert_eq!(hex::encode(secret), v["shared_secret_x_28"].as_str().unwrap());
        let (k, iv) = ec115::key_iv_from_secret(&secret);
        assert_eq!(hex::encode(k), v["aes_key"].as_str().unwrap());
        assert_eq!(hex::encode(iv), v["aes_iv"].as_str().unwrap());
    }
}

#[test]
fn ec115_emulator_ecdh_with_test_scalar() {
    use p224::elliptic_curve::sec1::ToEncodedPoint;
    let server = ec115::ServerKey::generate();
    let mut sp = vec![4u8];
    sp.extend(h(&server.public_xy_hex()));
    let server_pub = p224::PublicKey::from_sec1_bytes(&sp).unwrap();
    let client = p224::SecretKey::random(&mut rand::rngs::OsRng);
    let mut pub30 = vec![0x1d];
    pub30.extend_from_slice(client.public_key().to_encoded_point(true).as_bytes());
    let ss = p224::ecdh::diffie_hellman(client.to_nonzero_scalar(), server_pub.as_affine());
    let secret: [u8; 28] = ss.raw_secret_bytes().as_slice().try_into().unwrap();
    let (k, iv) = server.derive(&pub30.try_into().unwrap()).unwrap();
    assert_eq!(k.to_vec(), secret[..16].to_vec());
    assert_eq!(iv.to_vec(), secret[12..].to_vec());
}

#[test]
fn ec115_request_body_vectors_all_paddings() {
    let vs = vectors("ec115-vectors.json");
    let list = vs["request_body_vectors"].as_array().unwrap();
    assert_eq!(list.len(), 8);
    for v in list {
        let key: [u8; 16] = arr16(&h(v["aes_key"].as_str().unwrap()));
        let iv: [u8; 16] = arr16(&h(v["aes_iv"].as_str().unwrap()));
        let plain = v["plaintext_ascii"].as_str().unwrap();
        for field in ["ciphertext_hex_pkcs7", "ciphertext_hex_zero", "ciphertext_hex_p115cipher"] {
            let ct = h(v[field].as_str().unwrap());
            let got = ec115::decrypt_request(&key, &iv, &ct).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), plain, "{field} {}", v["key_source"]);
        }
        // our inline client encoder reproduces the vectors
        assert_eq!(
            hex::encode(aes_encrypt(&key, &iv, plain.as_bytes(), Pad::Pkcs7)),
            v["ciphertext_hex_pkcs7"].as_str().unwrap()
        );
        assert_eq!(
            hex::encode(aes_encrypt(&key, &iv, plain.as_bytes(), Pad::Zero)),
            v["ciphertext_hex_zero"].as_str().unwrap()
        );
        assert_eq!(
            hex::encode(aes_encrypt(&key, &iv, plain.as_bytes(), Pad::P115cipher)),
            v["ciphertext_hex_p115cipher"].as_str().unwrap()
        );
    }
}

#[test]
fn ec115_response_body_vectors_byte_exact() {
    for v in vectors("ec115-vectors.json")["response_body_vectors"].as_array().unwrap() {
        let key = arr16(&h(v["aes_key"].as_str().unwrap()));
        let iv = arr16(&h(v["aes_iv"].as_str().unwrap()));
        let want = h(v["response_hex"].as_str().unwrap());
        let plain = ec_decode_response(&key, &iv, &want);
        assert_eq!(plain.len() as u64, v["plaintext_len"].as_u64().unwrap());
        assert_eq!(sha1_lower(&plain), v["plaintext_sha1"].as_str().unwrap());
        if let Some(p) = v["plaintext_ascii"].as_str() {
            assert_eq!(p.as_bytes(), &plain[..]);
        }
        let r = v["tail_xor_byte"].as_u64().unwrap() as u8;
        assert_eq!(ec115::encode_response(&key, &iv, &plain, r), want);
    }
}

#[test]
fn upload_sig_token_vectors() {
    for v in vectors("upload-sign-vectors.json")["sig_token_vectors"].as_array().unwrap() {
        let uid = v["userid"].as_u64().unwrap().to_string();
        let s = ec115::upload_sig(
            &uid,
            v["userkey"].as_str().unwrap(),
            v["fileid"].as_str().unwrap(),
            v["target"].as_str().unwrap(),
        );
        assert_eq!(s, v["sig"].as_str().unwrap());
        let t = ec115::upload_token(
            v["fileid"].as_str().unwrap(),
            &v["filesize"].as_u64().unwrap().to_string(),
            v["sign_key"].as_str().unwrap(),
            v["sign_val"].as_str().unwrap(),
            &uid,
            &v["t"].as_u64().unwrap().to_string(),
            v["appversion"].as_str().unwrap(),
        );
        assert_eq!(t, v["token"].as_str().unwrap());
    }
}

#[test]
fn pickcode_vectors() {
    for v in vectors("pickcode-vectors.json")["vectors"].as_array().unwrap() {
        let id: u64 = v["id"].as_str().unwrap().parse().unwrap();
        let pc = pickcode::encode(id, v["stable_point"].as_str().unwrap(), v["prefix"].as_str().unwrap());
        assert_eq!(pc, v["pickcode"].as_str().unwrap());
        let (p, id2, sp) = pickcode::decode(&pc).unwrap();
        assert_eq!(
            (p.as_str(), id2, sp.as_str()),
            (v["prefix"].as_str().unwrap(), id, v["stable_point"].as_str().unwrap())
        );
    }
}
