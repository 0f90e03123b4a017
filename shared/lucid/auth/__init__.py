"""Wallet sign-in and the token lifecycle; no FastAPI here (routes live in functions/auth).

base58, tron   TRON addresses and signatures (Base58Check, Keccak-256, secp256k1 recovery)
message        the EIP-4361-style sign-in message, built and parsed
signin         challenge, login, refresh and logout over Redis nonces and MongoDB tokens
tokens, keys   access-token JWTs and the keys that sign and verify them (with rotation)
refresh        opaque, single-use refresh tokens with reuse detection; every revocation
revocation     revoked sign-ins: the Redis copy every check reads, over the MongoDB record
               (`revocation_record`, imported only where MongoDB is needed)
authorizer     the Lambda REQUEST authorizer's decision
"""
