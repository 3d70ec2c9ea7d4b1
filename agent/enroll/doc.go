// Package enroll owns an agent's identity on disk: it enrolls with a
// one-time token (generating the key locally: it never leaves the agent),
// pinning the controller by the CA fingerprint the token carries; it keeps
// key, certificate and CA as 0600 files under the agent's data directory;
// and it renews the certificate over mTLS well before it expires, without a
// restart, so a restarted agent needs no token.
package enroll
