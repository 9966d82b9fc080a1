// The system's libcrypto (OpenSSL 3: Debian's libssl3, already in every image through
// openssh-server and FFmpeg's network stack): SHA-256, SHA-1, Ed25519 and random bytes for
// `SystemCrypto`, so the box carries no BoringSSL of its own beside swift-nio-ssl's (issue 25).
// Ed25519 goes through small helpers here, each a fixed-size key and a length-checked message.
#ifndef JUNCTION_CLIBCRYPTO_SHIM_H
#define JUNCTION_CLIBCRYPTO_SHIM_H

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stddef.h>
#include <stdint.h>

/// The 32-byte public key of a 32-byte Ed25519 private key (RFC 8032 §5.1.5). 1 on success.
static inline int jlc_ed25519_public_key(const uint8_t *private_key, uint8_t *public_key) {
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, private_key, 32);
    if (key == NULL) return 0;
    size_t length = 32;
    int ok = EVP_PKEY_get_raw_public_key(key, public_key, &length) == 1 && length == 32;
    EVP_PKEY_free(key);
    return ok;
}

/// Signs `length` bytes with a 32-byte private key into 64 bytes (RFC 8032 §5.1.6, pure
/// Ed25519: deterministic). 1 on success.
static inline int jlc_ed25519_sign(const uint8_t *private_key, const uint8_t *message, size_t length, uint8_t *signature) {
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, private_key, 32);
    if (key == NULL) return 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t out = 64;
    int ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1
        && EVP_DigestSign(ctx, signature, &out, message, length) == 1 && out == 64;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok;
}

/// 1 when `signature` (64 bytes) is a valid Ed25519 signature of the message by `public_key`
/// (32 bytes), 0 when it is not or the key is no point of the curve.
static inline int jlc_ed25519_verify(const uint8_t *public_key, const uint8_t *message, size_t length, const uint8_t *signature) {
    EVP_PKEY *key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, public_key, 32);
    if (key == NULL) return 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1
        && EVP_DigestVerify(ctx, signature, 64, message, length) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok;
}

/// `count` bytes from the system's CSPRNG. 1 on success.
static inline int jlc_random_bytes(uint8_t *out, int count) { return RAND_bytes(out, count); }

#endif
