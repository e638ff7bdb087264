// Package secret owns encryption at rest: values such as a site's Connect
// shared secret are sealed with AES-256-GCM under a versioned key ring before
// they reach the database, so a database dump alone does not reveal them.
//
// # Keys
//
// Keys come from IDBRIDGE_ENCRYPTION_KEYS in the form
// "kid:base64(32 bytes)[,kid:base64...]" (see [ParseKeys]). The first key
// seals new values; every key opens. Rotation is therefore: put a new key in
// front, re-seal the values for which [Ring.NeedsRotation] reports true, then
// drop the old key once none is left. The embedded SQLite default instead
// keeps a generated key in the data directory ([LoadOrCreateDevKey]).
//
// # Sealed format
//
//	+---------+------------+------------------+--------------+----------------------+
//	| version | kid length | kid              | nonce        | ciphertext + GCM tag |
//	| 1 byte  | 1 byte     | 1..32 bytes      | 12 bytes     | len(plaintext) + 16  |
//	+---------+------------+------------------+--------------+----------------------+
//
// The key ID travels in clear so that a value can be opened by whichever key
// of the ring sealed it and so that rotation can find stale values without
// decrypting them ([KeyID]). Because it is in clear, the header (version,
// kid length and kid) is also part of the GCM additional data: otherwise a
// value could be relabelled, for example presented as sealed under another
// ID that maps to the same bytes, or under a future format version with a
// different meaning, and still open. With the header authenticated, any
// change to it fails like any other tampering.
//
// The caller's associated data ([AD]) binds a value to its table, column and
// row, so a ciphertext copied from one site's row to another's, or from one
// column to another, fails to open instead of handing out the wrong secret.
//
// Nonces are random; with 96-bit nonces a key should seal well under 2^32
// values, far beyond what this service stores between rotations.
package secret
