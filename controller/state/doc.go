// Package state owns the vocabularies the database stores as text (a job's
// status, an agent's state, a host_history event, a lease's outcome, a
// webhook's format and a delivery's state) and their one mapping to the API's
// enums. Every mapping is exhaustive and fails loudly: an unknown string is an
// error, never a silent *_UNSPECIFIED. The SQL CHECK constraints list the same
// strings; pgtest-backed tests keep the two in step.
//
// Scan types and ping methods are not here: they belong to agent/scanspec,
// and agent/scanspec/specpb maps them to the API.
package state
