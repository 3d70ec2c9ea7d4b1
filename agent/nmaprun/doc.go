// Package nmaprun owns the agent's interaction with the nmap binary: it
// starts nmap in its own process group, streams the XML report nmap writes to
// stdout, converts each host into the package's own plain [Host] type as soon
// as nmap finishes it, and maps nmap's per-phase progress reports onto one
// monotonic percentage.
//
// Decoding is incremental and memory-bounded: hosts are handed to [Events] one
// at a time and never accumulated, and every XML element is read through a
// byte budget. [Decode] works on any reader, so recorded nmap output can be
// replayed in tests without running nmap.
//
// github.com/Ullaakut/nmap/v3 is used only for its XML struct definitions;
// nothing outside this package needs to import it. Argument vectors are built
// by package scanspec; this package runs whatever vector it is given.
package nmaprun
