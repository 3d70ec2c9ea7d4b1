// Package pki owns Scanorama's built-in certificate authority: the
// controller CA (ECDSA P-256, crypto/x509 only, no openssl), the server
// certificates a controller issues itself, the short-lived client
// certificates of enrolled agents and the identity they carry, the
// enrollment token format, and the fingerprint pinning an agent uses on first
// contact.
//
// Agent identity: CommonName is the agent id; one URI SAN
// scanorama://site/<site>/agent/<agent-id> names its site. The controller
// trusts the identity only of a certificate this CA issued.
package pki
