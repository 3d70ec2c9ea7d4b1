// Package scanspec owns Scanorama's typed scan vocabulary: port specifications,
// scan options, target lists and their translation into an nmap argument
// vector.
//
// It is shared by the controller, which validates what an administrator asks
// for, and by the agent, which re-validates every job it receives and builds
// the nmap command line from it. The package never accepts raw nmap argument
// strings: every flag that reaches nmap is produced by [Args] from validated,
// typed values, so a job description cannot smuggle arbitrary options (output
// files, script arguments, DNS servers, ...) onto the agent's command line.
//
// The package is pure Go and performs no I/O.
package scanspec
